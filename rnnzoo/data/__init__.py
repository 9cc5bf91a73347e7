"""Data: readers, vocabularies, tokenizers, batching and dataset sources.

Importing this package registers the file datasets (tinyshakespeare, ptb, conll2000,
ud_english_ewt, wnut17, sst2, trec, multi30k and the *_files ones for the user's own files)
and the generated translation datasets (reversal, sorting, dates: `synthetic_parallel`) in
`rnnzoo.registry.DATASETS`; the synthetic tasks generate their own data. docs/datasets.md
has the table of datasets, splits and licenses.
"""

from . import named  # noqa: F401  (registers the named datasets)
from .batching import bucket_batches, pad_sequences, stream_batches
from .examples import KINDS, LabeledText, ParallelPair, TaggedSentence
from .readers import DataError, read_conll, read_conllu, read_labeled, read_parallel, read_text, read_tsv_pairs
from .remote import RemoteFile, cache_dir, download, md5sum
from .sources import FileDataset, default_root, open_dataset
from .synthetic_parallel import DATE_FORMATS, GeneratedParallel, length_split
from .tokenize import LEVELS, Tokenizer
from .vocab import SPECIALS, Vocabulary

__all__ = [
    "DATE_FORMATS", "KINDS", "LEVELS", "SPECIALS", "DataError", "FileDataset", "GeneratedParallel", "LabeledText",
    "ParallelPair", "RemoteFile", "TaggedSentence", "Tokenizer", "Vocabulary", "bucket_batches", "cache_dir",
    "default_root", "download", "length_split", "md5sum", "open_dataset", "pad_sequences", "read_conll",
    "read_conllu", "read_labeled", "read_parallel", "read_text", "read_tsv_pairs", "stream_batches",
]
