"""Vocabulary: tokens <-> integer ids, specials first.

The specials take ids 0, 1, 2, ... in the order given (by default `<pad>`=0, `<unk>`=1,
`<bos>`=2, `<eos>`=3, `<mask>`=4), so padding is always id 0 and a checkpoint's embedding
rows mean the same thing whatever the data. A token of the data that spells a special (PTB's
text already holds `<unk>`) is that special, not a second entry.

    vocab = Vocabulary.build(sentence_tokens, min_freq=2)
    ids = vocab.encode(["the", "cat"]); vocab.decode(ids) == ["the", "cat"]
    Vocabulary.from_state_dict(vocab.state_dict()) == vocab   # plain lists: weights_only-safe
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Iterable, Sequence

SPECIALS: tuple[str, ...] = ("<pad>", "<unk>", "<bos>", "<eos>", "<mask>")
PAD, UNK, BOS, EOS, MASK = SPECIALS


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
        self.itos: list[str] = [*self.specials, *regular]
        self.stoi: dict[str, int] = {token: index for index, token in enumerate(self.itos)}

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

    # --- ids of the specials (None where absent) ---
    def _special_id(self, token: str) -> int | None:
        return self.stoi[token] if token in self.specials else None

    @property
    def pad_id(self) -> int | None:
        return self._special_id(PAD)

    @property
    def unk_id(self) -> int | None:
        return self._special_id(UNK)

    @property
    def bos_id(self) -> int | None:
        return self._special_id(BOS)

    @property
    def eos_id(self) -> int | None:
        return self._special_id(EOS)

    @property
    def mask_id(self) -> int | None:
        return self._special_id(MASK)

    # --- lookups ---
    def __len__(self) -> int:
        return len(self.itos)

    def __contains__(self, token: object) -> bool:
        return token in self.stoi

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocabulary) and (self.itos, self.specials) == (other.itos, other.specials)

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
            raise KeyError(f"token {token!r} is not in the vocabulary, which has no <unk>") from None

    def decode(self, ids: Iterable[int], skip_specials: bool = False) -> list[str]:
        """Tokens of `ids` (plain ints or 0-d tensors); `skip_specials` drops every special."""
        tokens = []
        for index in ids:
            index = int(index)
            if not 0 <= index < len(self.itos):
                raise IndexError(f"id {index} is outside the vocabulary (0..{len(self.itos) - 1})")
            if not (skip_specials and index < len(self.specials)):
                tokens.append(self.itos[index])
        return tokens

    # --- saving ---
    def state_dict(self) -> dict[str, Any]:
        """Plain lists of strings, so `torch.load(weights_only=True)` reads a checkpoint holding it."""
        return {"specials": list(self.specials), "tokens": self.itos[len(self.specials):]}

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> "Vocabulary":
        return cls(state["tokens"], state["specials"])
