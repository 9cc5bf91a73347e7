"""A BERT folder's WordPiece tokenizer (rnnzoo.models.hf_bert.load_tokenizer) gives the ids of
transformers' BertTokenizer (tokenizers-backed) and BertTokenizerLegacy (the Python original) for
the same folder, with the specials wherever its vocab.txt has them; roles, decoding, saving and
the masking recipe follow the folder's ids. Every vocab.txt is written here: no network."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from rnnzoo.data import Tokenizer, Vocabulary
from rnnzoo.errors import RnnzooError
from rnnzoo.models.hf_bert import load_tokenizer
from rnnzoo.tasks.pretraining import mask_tokens

transformers = pytest.importorskip("transformers", reason="the BertTokenizer references need transformers (dev extra)")

LETTERS = [chr(c) for c in range(ord("a"), ord("z") + 1)]
# [unused] first, as in Google's vocabularies, so that no special holds its rnnzoo id (0..4)
PIECES = ["[unused0]", "[PAD]", "[unused1]", "[unused2]", "[unused3]", "[unused4]", "[UNK]", "[CLS]", "[SEP]",
          "[MASK]", "[NS]", "the", "film", "was", "good", "bad", "cafe", "café", "naive", "naïve", "Hello", "The",
          "run", "##ing", "un", "##aff", "##able", ",", ".", "!", "?", "'", "-", "(", ")", "中", "国", "é",
          *LETTERS, *(f"##{c}" for c in LETTERS), "##é", "É"]
ROLES = {"pad": "[PAD]", "unk": "[UNK]", "bos": "[CLS]", "eos": "[SEP]", "mask": "[MASK]"}
SENTENCES = ["Hello, world!", "the café's naïve runs.", "Unaffable hello", "中国 hello中国", "x" * 101, "x" * 100,
             "  The\tcafe\u00a0running  ", "a[MASK]b [CLS] the film [SEP]", "zzz qqq", "ÉTÉ é", "(good)-bad?",
             "café\x00 b\u200b", "", "the " * 30, "☃ snow"]
# tokenizer_config.json contents: absent (BertTokenizer lower-cases by default), uncased, cased, uncased
# keeping accents, no CJK splitting
CONFIGS = {"default": None, "uncased": {"do_lower_case": True}, "cased": {"do_lower_case": False},
           "accents": {"do_lower_case": True, "strip_accents": False},
           "no_cjk": {"do_lower_case": False, "tokenize_chinese_chars": False}}


def write_vocab(folder: Path, options: dict | None = None, pieces: list[str] = PIECES) -> Path:
    """A BERT tokenizer folder: vocab.txt (+ tokenizer_config.json where `options`)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.txt").write_text("\n".join(pieces) + "\n", encoding="utf-8")
    if options is not None:
        (folder / "tokenizer_config.json").write_text(json.dumps(options))
    return folder


@pytest.mark.parametrize("name", list(CONFIGS))
def test_ids_are_bert_tokenizers(tmp_path, name):
    folder = write_vocab(tmp_path, CONFIGS[name])
    ours = load_tokenizer(folder)
    references = [transformers.BertTokenizer.from_pretrained(folder),
                  transformers.BertTokenizerLegacy.from_pretrained(folder)]
    unknown = 0
    for sentence in SENTENCES:
        ids = ours.encode(sentence)
        framed = [ours.vocab.bos_id, *ids, ours.vocab.eos_id]  # what a task frames a sentence as
        for reference in references:
            assert ids == reference.encode(sentence, add_special_tokens=False), (type(reference).__name__, sentence)
            assert framed == reference(sentence)["input_ids"], (type(reference).__name__, sentence)
        unknown += ids.count(PIECES.index("[UNK]"))
    assert unknown >= 2  # "x" * 101 (past max_input_chars_per_word) and "☃" (no piece spells it) at least
    assert ours.encode_batch(SENTENCES) == [ours.encode(s) for s in SENTENCES]
    assert ours.lowercases == (name in ("default", "uncased", "accents"))


def test_long_words_and_accents_as_bert(tmp_path):
    ours = load_tokenizer(write_vocab(tmp_path))  # BertTokenizer's defaults: uncased, accents stripped
    assert ours.tokenize("x" * 100)[:2] == ["x", "##x"] and ours.tokenize("x" * 101) == ["[UNK]"]
    assert ours.tokenize("Naïve CAFÉ") == ["naive", "cafe"]
    assert load_tokenizer(write_vocab(tmp_path / "c", {"do_lower_case": False})).tokenize("Naïve") == \
        ["[UNK]"]  # cased: "N" + "##a" ... but no "##ï": one unknown word, as BERT's WordPiece
    assert ours.tokenize("中国") == ["中", "国"]


def test_never_split_as_the_python_tokenizer(tmp_path):
    """never_split keeps a whole word as it is; BertTokenizer (tokenizers-backed) ignores the option,
    the Python original honours it: rnnzoo follows the original for the words among the pieces
    (one that is not, the original makes [UNK]; rnnzoo splits it as any word)."""
    folder = write_vocab(tmp_path, {"do_lower_case": True, "never_split": ["[NS]", "[NOT-A-PIECE]"]})
    ours, legacy = load_tokenizer(folder), transformers.BertTokenizerLegacy.from_pretrained(folder)
    for sentence in ["[NS] the [NS]x film [NS]", "x[NS] [ns]", "The (NS)"]:
        assert ours.encode(sentence) == legacy.encode(sentence, add_special_tokens=False), sentence
    assert ours.encode("[NS]") == [PIECES.index("[NS]")] and len(ours) == len(PIECES)  # nothing added


def test_the_folder_written_by_transformers_5(tmp_path):
    """transformers 5's save_pretrained writes tokenizer.json instead of vocab.txt: read as well."""
    transformers.BertTokenizer.from_pretrained(write_vocab(tmp_path / "src", {"do_lower_case": False})) \
        .save_pretrained(tmp_path / "saved")
    assert not (tmp_path / "saved" / "vocab.txt").exists()
    ours = load_tokenizer(tmp_path / "saved")
    assert ours.pieces() == PIECES and not ours.lowercases
    reference = transformers.BertTokenizer.from_pretrained(tmp_path / "saved")
    assert all(ours.encode(s) == reference.encode(s, add_special_tokens=False) for s in SENTENCES)


def test_roles_keep_the_folders_ids(tmp_path):
    ours = load_tokenizer(write_vocab(tmp_path))
    vocab = ours.vocab
    assert (vocab.pad_id, vocab.unk_id, vocab.bos_id, vocab.eos_id, vocab.mask_id) == (1, 6, 7, 8, 9)
    assert vocab.roles == ROLES and vocab.special_ids == {1, 6, 7, 8, 9} and not vocab.specials_first
    assert ours.pieces() == PIECES and vocab.itos[0] == "[unused0]"
    assert ours.bert_options() == {"do_lower_case": True, "strip_accents": None, "tokenize_chinese_chars": True}
    ids = [7, *ours.encode("the film was bad"), 9, 8, 1, 1]
    assert ours.decode(ids) == "the film was bad"  # [CLS] [SEP] [MASK] [PAD] left out, as their roles say
    assert ours.decode([7, *ours.encode("the ☃"), 8]) == "the [UNK]"  # [UNK] is content: kept
    assert vocab.decode(ids, skip_specials=True) == ["the", "film", "was", "bad"]


def test_state_dict_round_trips_through_a_safe_checkpoint(tmp_path):
    ours = load_tokenizer(write_vocab(tmp_path / "v", {"do_lower_case": True, "never_split": ["[NS]"]}))
    torch.save({"tokenizer": ours.state_dict()}, tmp_path / "t.pt")
    again = Tokenizer.from_state_dict(torch.load(tmp_path / "t.pt", weights_only=True)["tokenizer"])
    assert again.vocab == ours.vocab and again.vocab.roles == ROLES and again.lowercases
    assert all(again.encode(s) == ours.encode(s) for s in [*SENTENCES, "[NS] x[NS]"])
    # vocabularies rnnzoo builds keep their layout and their saved form
    vocab = Vocabulary(["a", "b"])
    assert vocab.specials_first and vocab.state_dict() == {"specials": list(vocab.specials), "tokens": ["a", "b"]}
    assert Vocabulary.from_state_dict(vocab.state_dict()) == vocab and vocab.roles["bos"] == "<bos>"
    moved = Vocabulary.from_pieces(PIECES, ROLES)
    assert Vocabulary.from_state_dict(moved.state_dict()) == moved and moved != Vocabulary(PIECES)


def test_masking_never_chooses_nor_draws_the_folders_specials(tmp_path):
    vocab = load_tokenizer(write_vocab(tmp_path)).vocab
    specials = sorted(vocab.special_ids)
    ids = torch.randint(0, len(vocab), (64, 40), generator=torch.Generator().manual_seed(0))
    corrupted, chosen = mask_tokens(ids, 0.5, len(vocab), vocab.mask_id, torch.Generator().manual_seed(1), specials)
    is_special = torch.isin(ids, torch.tensor(specials))
    assert chosen.any() and not (chosen & is_special).any()
    assert torch.equal(corrupted[is_special], ids[is_special])
    drawn = corrupted[chosen & (corrupted != ids) & (corrupted != vocab.mask_id)]
    assert drawn.numel() > 50 and not torch.isin(drawn, torch.tensor(specials)).any()
    # rnnzoo's own layout: the list of its special ids draws exactly what the count 5 drew
    same = [mask_tokens(ids % 90, 0.15, 90, 4, torch.Generator().manual_seed(2), s) for s in (5, [0, 1, 2, 3, 4])]
    assert all(torch.equal(a, b) for a, b in zip(*same))


def test_bad_folders_are_named(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(RnnzooError, match=r"empty has no vocab.txt"):
        load_tokenizer(tmp_path / "empty")
    no_mask = write_vocab(tmp_path / "no_mask", pieces=[p for p in PIECES if p != "[MASK]"])
    with pytest.raises(RnnzooError, match=r"vocab.txt: no token for the special role mask \('\[MASK\]'\)"):
        load_tokenizer(no_mask)
    renamed = write_vocab(tmp_path / "renamed", {"mask_token": {"content": "[NS]"}},
                          pieces=[p for p in PIECES if p != "[MASK]"])
    assert load_tokenizer(renamed).vocab.mask_id == PIECES.index("[NS]") - 1  # tokenizer_config.json names it
    repeated = write_vocab(tmp_path / "repeated", pieces=[*PIECES, "the"])
    with pytest.raises(RnnzooError, match=r"token 'the' is repeated \(ids 11 and"):
        load_tokenizer(repeated)
    (tmp_path / "bad_json").mkdir()
    write_vocab(tmp_path / "bad_json")
    (tmp_path / "bad_json" / "tokenizer_config.json").write_text("{oops")
    with pytest.raises(RnnzooError, match=r"tokenizer_config.json is not valid JSON"):
        load_tokenizer(tmp_path / "bad_json")
