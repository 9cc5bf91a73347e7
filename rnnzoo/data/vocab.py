"""Vocabulary: tokens <-> integer ids, specials first.

The specials take ids 0, 1, 2, ... in the order given (by default `<pad>`=0, `<unk>`=1,
`<bos>`=2, `<eos>`=3, `<mask>`=4), so padding is always id 0 and a checkpoint's embedding
rows mean the same thing whatever the data. A token of the data that spells a special (PTB's
text already holds `<unk>`) is that special, not a second entry.

Code asks for a special by its *role* (`pad_id`, `unk_id`, `bos_id`, `eos_id`, `mask_id`), never
by an id or a spelling: a vocabulary read from elsewhere keeps its own ids and names
(`Vocabulary.from_pieces`: BERT's vocab.txt has [PAD]=0, [UNK]=100, [CLS]=101, [SEP]=102,
[MASK]=103, which play pad, unk, bos, eos and mask).

    vocab = Vocabulary.build(sentence_tokens, min_freq=2)
    ids = vocab.encode(["the", "cat"]); vocab.decode(ids) == ["the", "cat"]
    Vocabulary.from_state_dict(vocab.state_dict()) == vocab   # plain lists: weights_only-safe
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Iterable, Sequence

SPECIALS: tuple[str, ...] = ("<pad>", "<unk>", "<bos>", "<eos>", "<mask>")
PAD, UNK, BOS, EOS, MASK = SPECIALS
ROLES: tuple[str, ...] = ("pad", "unk", "bos", "eos", "mask")  # what the specials are for, in SPECIALS' order
DEFAULT_ROLES: dict[str, str] = dict(zip(ROLES, SPECIALS))


class Vocabulary:
    """An ordered list of tokens; a token's id is its position, the specials coming first."""

    def __init__(self, tokens: Iterable[str], specials: Sequence[str] = SPECIALS) -> None:
        self.specials: tuple[str, ...] = tuple(specials)
        if len(set(self.specials)) != len(self.specials):
            raise ValueError(f"specials must be distinct, got {list(self.specials)}")
        regular = [token for token in tokens if token not in self.specials]
        if len(set(regular)) != len(regular):
            duplicates = sorted(t for t, n in Counter(regular).items() if n > 1)
            raise ValueError(f"tokens must be distinct; repeated: {duplicates[:10]}")
        self._index([*self.specials, *regular], {r: t for r, t in DEFAULT_ROLES.items() if t in self.specials})

    @classmethod
    def from_pieces(cls, pieces: Sequence[str], roles: dict[str, str]) -> "Vocabulary":
        """The tokens at their own ids (`pieces[i]` has id i, as line i of a BERT vocab.txt), with
        `roles` naming the token of each role it has ({"pad": "[PAD]", "bos": "[CLS]", ...});
        ValueError for a repeated piece, an unknown role or a role's token not among the pieces."""
        unknown = sorted(set(roles) - set(ROLES))
        if unknown:
            raise ValueError(f"unknown special roles {unknown}: the roles are {', '.join(ROLES)}")
        seen: dict[str, int] = {}
        for index, piece in enumerate(pieces):
            if piece in seen:
                raise ValueError(f"token {piece!r} is repeated (ids {seen[piece]} and {index})")
            seen[piece] = index
        missing = [f"{role} ({token!r})" for role, token in roles.items() if token not in seen]
        if missing:
            raise ValueError(f"no token for the special role {', '.join(missing)}")
        vocab = cls.__new__(cls)
        vocab.specials = tuple(roles[role] for role in ROLES if role in roles)
        vocab._index(list(pieces), {role: roles[role] for role in ROLES if role in roles})
        return vocab

    def _index(self, itos: list[str], roles: dict[str, str]) -> None:
        self.itos: list[str] = itos
        self.stoi: dict[str, int] = {token: index for index, token in enumerate(itos)}
        self.roles: dict[str, str] = roles  # role -> its token, for the roles this vocabulary has
        self.special_ids: frozenset[int] = frozenset(self.stoi[token] for token in self.specials)

    @property
    def specials_first(self) -> bool:
        """Whether the specials hold ids 0, 1, ... in order under their rnnzoo roles (every
        vocabulary rnnzoo builds; one read from a BERT vocab.txt, as a rule, not)."""
        return self.itos[:len(self.specials)] == list(self.specials) and \
            self.roles == {r: t for r, t in DEFAULT_ROLES.items() if t in self.specials}

    @classmethod
    def build(cls, sequences: Iterable[Iterable[str]], min_freq: int = 1, max_size: int | None = None,
              specials: Sequence[str] = SPECIALS) -> "Vocabulary":
        """The tokens of `sequences`, most frequent first; ties in alphabetical order.

        Alphabetical ties make the vocabulary a function of the token counts alone, so the
        same data in another order gives the same ids. `min_freq` drops rarer tokens (they
        become `<unk>`); `max_size` keeps at most that many tokens besides the specials.
        """
        counts: Counter[str] = Counter()
        for sequence in sequences:
            counts.update(sequence)
        return cls.from_counts(counts, min_freq, max_size, specials)

    @classmethod
    def from_counts(cls, counts: Counter[str], min_freq: int = 1, max_size: int | None = None,
                    specials: Sequence[str] = SPECIALS) -> "Vocabulary":
        """`build` from token counts already made (a corpus counted a chunk at a time)."""
        if min_freq < 1:
            raise ValueError(f"min_freq must be >= 1, got {min_freq}")
        if max_size is not None and max_size < 0:
            raise ValueError(f"max_size must be >= 0 or None, got {max_size}")
        counts = Counter(counts)
        for special in specials:
            counts.pop(special, None)
        ranked = sorted((token for token, n in counts.items() if n >= min_freq), key=lambda t: (-counts[t], t))
        return cls(ranked[:max_size] if max_size is not None else ranked, specials)

    # --- ids of the specials, by role (None where absent) ---
    def role_id(self, role: str) -> int | None:
        """The id of the token playing `role` (one of ROLES), None where this vocabulary has none."""
        token = self.roles.get(role)
        return None if token is None else self.stoi[token]

    @property
    def pad_id(self) -> int | None:
        return self.role_id("pad")

    @property
    def unk_id(self) -> int | None:
        return self.role_id("unk")

    @property
    def bos_id(self) -> int | None:
        return self.role_id("bos")

    @property
    def eos_id(self) -> int | None:
        return self.role_id("eos")

    @property
    def mask_id(self) -> int | None:
        return self.role_id("mask")

    # --- lookups ---
    def __len__(self) -> int:
        return len(self.itos)

    def __contains__(self, token: object) -> bool:
        return token in self.stoi

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocabulary) and \
            (self.itos, self.specials, self.roles) == (other.itos, other.specials, other.roles)

    def __repr__(self) -> str:
        return f"Vocabulary({len(self)} tokens, specials={list(self.specials)})"

    def encode(self, tokens: Iterable[str]) -> list[int]:
        """Ids of `tokens`; unknown tokens get `<unk>`'s id (an error when there is no `<unk>`)."""
        unk = self.unk_id
        if unk is None:
            return [self._strict_id(token) for token in tokens]
        return [self.stoi.get(token, unk) for token in tokens]

    def _strict_id(self, token: str) -> int:
        try:
            return self.stoi[token]
        except KeyError:
            raise KeyError(f"token {token!r} is not in the vocabulary, which has no unknown-word token") from None

    def decode(self, ids: Iterable[int], skip_specials: bool = False) -> list[str]:
        """Tokens of `ids` (plain ints or 0-d tensors); `skip_specials` drops every special."""
        tokens = []
        for index in ids:
            index = int(index)
            if not 0 <= index < len(self.itos):
                raise IndexError(f"id {index} is outside the vocabulary (0..{len(self.itos) - 1})")
            if not (skip_specials and index in self.special_ids):
                tokens.append(self.itos[index])
        return tokens

    # --- saving ---
    def state_dict(self) -> dict[str, Any]:
        """Plain lists and strings, so `torch.load(weights_only=True)` reads a checkpoint holding it;
        a vocabulary with its specials elsewhere than first keeps every token at its id and its roles."""
        if self.specials_first:
            return {"specials": list(self.specials), "tokens": self.itos[len(self.specials):]}
        return {"pieces": list(self.itos), "roles": dict(self.roles)}

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> "Vocabulary":
        if "roles" in state:
            return cls.from_pieces(state["pieces"], state["roles"])
        return cls(state["tokens"], state["specials"])
