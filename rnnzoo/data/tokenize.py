"""Tokenizer: text -> tokens -> ids and back, one object for every text task.

    level       tokens                                  decode
    char        list(text)                              ''.join  (exact round trip)
    word        text.split()                            ' '.join (exact for single-spaced text)
    bpe         byte-level BPE pieces (GPT-2's scheme,   exact round trip, any input: every byte
                Radford et al. 2019; Sennrich et al.      is in the base alphabet, nothing is <unk>
                2016's merges)
    wordpiece   BERT's WordPiece pieces (`##` marks a   words re-joined, spaces before
                word's continuation; Wu et al. 2016)     punctuation removed (lossy on spacing)

Subword tokenizers are trained here, with HuggingFace `tokenizers`, on the texts given (a
task passes its training split only, so validation text never shapes the vocabulary);
nothing is downloaded. A trained tokenizer's `vocab` has the same specials at the same ids
(`<pad>`=0, `<unk>`=1, `<bos>`=2, `<eos>`=3, `<mask>`=4). `Tokenizer.bert_wordpiece` instead
takes a published BERT's pieces (its vocab.txt, read by rnnzoo.models.hf_bert) with their own
ids and specials ([PAD] [UNK] [CLS] [SEP] [MASK] play pad, unk, bos, eos, mask) and BERT's
normalization, giving the ids of `transformers`' BertTokenizer. Tasks ask the vocabulary for a
special by its role (`vocab.bos_id`...), so they treat every level and layout alike.
`state_dict()` is plain data (the HF tokenizer as its JSON string, the roles where the specials
are not first), which a checkpoint read with `torch.load(weights_only=True)` can hold.

For writing such a tokenizer back out (a vocab.txt): `pieces()` lists every token in id order,
`vocab.roles` maps each role to its token, `bert_options()` gives the normalization settings.
"""

from __future__ import annotations

from typing import Any, Iterable

from .vocab import SPECIALS, Vocabulary

LEVELS = ("char", "word", "bpe", "wordpiece")
SUBWORD_LEVELS = ("bpe", "wordpiece")
BYTES = 256  # byte-level BPE's base alphabet
FRAMING = ("pad", "bos", "eos", "mask")  # the roles decode leaves out by default; unk is content and stays
MAX_WORD_CHARS = 100  # BERT's max_input_chars_per_word: a longer word is one unknown token


class Tokenizer:
    """Splits text into tokens of one level and maps them to the ids of `vocab`."""

    def __init__(self, level: str, vocab: Vocabulary, subword: Any = None) -> None:
        _check_level(level)
        if (subword is None) != (level not in SUBWORD_LEVELS):
            raise ValueError(f"level {level!r} {'needs' if subword is None else 'takes no'} subword model")
        self.level = level
        self.vocab = vocab
        self._subword = subword  # a tokenizers.Tokenizer for bpe/wordpiece

    @classmethod
    def train(cls, level: str, texts: list[str], vocab_size: int = 8000, min_freq: int = 1,
              max_size: int | None = None) -> "Tokenizer":
        """A tokenizer whose vocabulary comes from `texts` (give it the training split only).

        char/word: every token seen at least `min_freq` times, at most `max_size` besides the
        specials (`Vocabulary.build`). bpe/wordpiece: about `vocab_size` entries including the
        specials (fewer when the texts run out of merges; bpe needs more than 256 bytes + 5
        specials), capped by `max_size` + specials if given; `min_freq` is the trainer's
        minimum frequency of a merge.
        """
        _check_level(level)
        if isinstance(texts, str):
            raise TypeError("texts must be a list of strings (a single str would be read character by character)")
        if level == "char":
            return cls(level, Vocabulary.build((list(text) for text in texts), min_freq, max_size))
        if level == "word":
            return cls(level, Vocabulary.build((text.split() for text in texts), min_freq, max_size))
        if max_size is not None:
            vocab_size = min(vocab_size, max_size + len(SPECIALS))
        if level == "bpe" and vocab_size <= BYTES + len(SPECIALS):
            raise ValueError(f"byte-level BPE starts from {BYTES} bytes and {len(SPECIALS)} specials: vocab_size "
                             f"must exceed {BYTES + len(SPECIALS)} to leave room for merges, got {vocab_size}")
        subword = _train_subword(level, texts, vocab_size, min_freq)
        return cls(level, _mirror(subword), subword)

    @classmethod
    def bert_wordpiece(cls, pieces: list[str], roles: dict[str, str], lowercase: bool = True,
                       strip_accents: bool | None = None, chinese_chars: bool = True,
                       never_split: Iterable[str] = ()) -> "Tokenizer":
        """BERT's WordPiece tokenizer over `pieces` (id i = pieces[i], a vocab.txt's lines), built
        as `transformers`' BertTokenizer builds it, so the ids are its ids.

        `roles` names the token of each special role (pad, unk, bos = [CLS], eos = [SEP], mask).
        BERT's normalizer (Devlin et al. 2019's BasicTokenizer): control characters removed,
        whitespace made spaces, every CJK character a word of its own (`chinese_chars`), then
        lower-casing and accent stripping (`strip_accents` None: when lower-casing); then words
        split on whitespace and punctuation, and each word cut greedily into the longest pieces
        (a word of more than 100 characters, or one no pieces spell, is the unknown token).
        The specials and `never_split` words are matched in the raw text before any of this, as
        whole words for `never_split` (only those among the pieces: the Python BertTokenizer makes
        another [UNK], here it is split as any word; the tokenizers-backed one ignores never_split).
        ValueError for a repeated piece or a role's token missing.
        """
        from tokenizers import AddedToken, decoders, models, normalizers, pre_tokenizers
        from tokenizers import Tokenizer as HFTokenizer

        vocab = Vocabulary.from_pieces(pieces, roles)
        subword = HFTokenizer(models.WordPiece(dict(vocab.stoi), unk_token=roles["unk"],
                                               max_input_chars_per_word=MAX_WORD_CHARS))
        subword.normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=chinese_chars,
                                                        strip_accents=strip_accents, lowercase=lowercase)
        subword.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        subword.decoder = decoders.WordPiece(prefix="##")
        subword.add_special_tokens([roles[role] for role in vocab.roles])
        subword.add_tokens([AddedToken(word, single_word=True, normalized=False)
                            for word in never_split if word in vocab.stoi and word not in vocab.specials])
        return cls("wordpiece", _mirror(subword, vocab.roles), subword)

    def tokenize(self, text: str) -> list[str]:
        if self.level == "char":
            return list(text)
        if self.level == "word":
            return text.split()
        return self._subword.encode(text).tokens

    def encode(self, text: str) -> list[int]:
        if self._subword is not None:
            return self._subword.encode(text).ids
        return self.vocab.encode(self.tokenize(text))

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        """`encode` of each text; subwords through HF's batch encoding, which uses every core."""
        if self._subword is None:
            return [self.encode(text) for text in texts]
        encode = getattr(self._subword, "encode_batch_fast", self._subword.encode_batch)  # fast: no offsets
        return [encoding.ids for encoding in encode(texts)]

    def decode(self, ids: Iterable[int], skip_specials: bool = True) -> str:
        """The text of `ids`. `skip_specials` leaves out the pad, bos, eos and mask tokens
        (<pad>, <bos>, <eos>, <mask>; BERT's [PAD], [CLS], [SEP], [MASK]); the unknown token is
        written as itself ("<unk>", "[UNK]": it stands for real text)."""
        ids = [int(i) for i in ids]
        if skip_specials:
            framing = {self.vocab.role_id(role) for role in FRAMING}
            ids = [i for i in ids if i not in framing]
        tokens = self.vocab.decode(ids)  # checks the range, which HF's decode would not
        if self.level == "char":
            return "".join(tokens)
        if self.level == "word":
            return " ".join(tokens)
        return self._subword.decode(ids, skip_special_tokens=False)

    def __len__(self) -> int:
        return len(self.vocab)

    def pieces(self) -> list[str]:
        """Every token in id order (line i of a vocab.txt is id i); `vocab.roles` names the specials."""
        return list(self.vocab.itos)

    @property
    def lowercases(self) -> bool:
        """Whether the tokenizer lower-cases text itself (a BERT uncased vocabulary's does)."""
        return bool(getattr(self._subword, "normalizer", None) is not None
                    and getattr(self._subword.normalizer, "lowercase", False))

    def bert_options(self) -> dict[str, Any]:
        """The normalization as `transformers`' BertTokenizer options (tokenizer_config.json):
        do_lower_case, strip_accents, tokenize_chinese_chars. A wordpiece tokenizer rnnzoo trained
        has no normalizer: cased, accents kept (its CJK characters are not split apart)."""
        if self.level != "wordpiece":
            raise ValueError(f"only a wordpiece tokenizer has BERT's options, this one is {self.level}")
        normalizer = self._subword.normalizer
        if normalizer is None:
            return {"do_lower_case": False, "strip_accents": False, "tokenize_chinese_chars": False}
        return {"do_lower_case": normalizer.lowercase, "strip_accents": normalizer.strip_accents,
                "tokenize_chinese_chars": normalizer.handle_chinese_chars}

    def __repr__(self) -> str:
        return f"Tokenizer({self.level!r}, {len(self.vocab)} tokens)"

    def state_dict(self) -> dict[str, Any]:
        if self._subword is not None:
            state = {"level": self.level, "subword": self._subword.to_str()}
            if not self.vocab.specials_first:
                state["roles"] = dict(self.vocab.roles)
            return state
        return {"level": self.level, "vocab": self.vocab.state_dict()}

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> "Tokenizer":
        level = state["level"]
        if level in SUBWORD_LEVELS:
            from tokenizers import Tokenizer as HFTokenizer
            subword = HFTokenizer.from_str(state["subword"])
            return cls(level, _mirror(subword, state.get("roles")), subword)
        return cls(level, Vocabulary.from_state_dict(state["vocab"]))


def _check_level(level: str) -> None:
    if level not in LEVELS:
        raise ValueError(f"tokenizer level must be one of {', '.join(LEVELS)}, got {level!r}")


def _train_subword(level: str, texts: list[str], vocab_size: int, min_freq: int) -> Any:
    from tokenizers import Tokenizer as HFTokenizer
    from tokenizers import decoders, models, pre_tokenizers, trainers

    options = dict(vocab_size=vocab_size, min_frequency=min_freq, special_tokens=list(SPECIALS),
                   show_progress=False)
    if level == "bpe":
        # GPT-2's byte-level BPE: the 256 byte symbols are the base alphabet, so any text
        # encodes without <unk> and decodes back byte for byte (spaces and newlines included).
        subword = HFTokenizer(models.BPE())
        subword.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        subword.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), **options)
    else:
        # BERT's WordPiece, cased: split on whitespace and punctuation, `##` continues a word.
        subword = HFTokenizer(models.WordPiece(unk_token=SPECIALS[1]))
        subword.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        subword.decoder = decoders.WordPiece(prefix="##")
        trainer = trainers.WordPieceTrainer(continuing_subword_prefix="##", **options)
    subword.train_from_iterator(texts, trainer)
    return subword


def _mirror(subword: Any, roles: dict[str, str] | None = None) -> Vocabulary:
    """The HF tokenizer's pieces as a Vocabulary: with `roles` at their own ids, else (one rnnzoo
    trained) checking the specials hold ids 0..4."""
    pieces = sorted(subword.get_vocab(with_added_tokens=True).items(), key=lambda item: item[1])
    if [index for _, index in pieces] != list(range(len(pieces))):
        raise ValueError("subword tokenizer's ids are not 0, 1, 2, ... without gaps")
    if roles is not None:
        return Vocabulary.from_pieces([piece for piece, _ in pieces], roles)
    if [piece for piece, _ in pieces[:len(SPECIALS)]] != list(SPECIALS):
        raise ValueError(f"subword tokenizer's ids are not {list(SPECIALS)} then 5, 6, ...: not one rnnzoo trained")
    return Vocabulary([piece for piece, _ in pieces], SPECIALS)
