"""`rnnzoo export format=hf`: an rnnzoo `bert` as a Hugging Face BERT folder.

    rnnzoo export checkpoint=RUN/checkpoints/best.pt format=hf out=DIR
    save_hf(model, DIR, tokenizer, lowercase=True)        the same from Python, no Hydra

The folder is what `save_pretrained` writes for a BERT, so `transformers.BertModel`,
`BertForMaskedLM` (etc.) `.from_pretrained(DIR)` and `BertTokenizer.from_pretrained(DIR)` read it:

    config.json              shape, dropouts, layer_norm_eps, pad_token_id, architectures
    model.safetensors        every tensor under its HF name, contiguous and unshared
    vocab.txt                the WordPiece pieces in id order, rnnzoo's specials renamed in place
    tokenizer_config.json    do_lower_case (the run's task.lowercase), accents, [CLS] etc.

The names are those of rnnzoo.models.hf_bert (`hf_names`, the table the import reads) run the
other way: rnnzoo's (3H, H) W^Q|W^K|W^V is cut back into query, key and value. The MLM decoder
is tied to the word embeddings in both libraries, so its weight is written once, as the word
embeddings, and `tie_word_embeddings` ties it again on loading (as `save_pretrained` does).

Which HF class the folder names (`architectures`) follows from the run:

    pretraining run                               BertForMaskedLM (BertForPreTraining with the NSP head)
    classification, task.pooling=first, pooler    BertForSequenceClassification (+ the classifier)
    tagging without a CRF                         BertForTokenClassification (+ the classifier; it
                                                  scores every piece, rnnzoo reads a word's first)
    any other fine-tuned run                      the body only (its head has no HF class), a warning

The MLM head (and the NSP head) are written in every case: a fine-tuned folder still loads into
BertForMaskedLM and back into rnnzoo (rnnzoo.load_pretrained needs them).

rnnzoo-trained WordPiece vocabularies hold `<pad> <unk> <bos> <eos> <mask>` at ids 0..4; they
are written as `[PAD] [UNK] [CLS] [SEP] [MASK]` at the same ids, so BertTokenizer gives the ids
the model was trained with ([CLS] text [SEP] is rnnzoo's <bos> text <eos>). A vocabulary read
from a HF vocab.txt already has those names and is written back verbatim. Byte-level BPE, char
and word tokenizers have no vocab.txt form: exporting them is an error.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file  # imported here: a missing package is the dispatcher's clear error
from torch import Tensor, nn

from ..data.tokenize import Tokenizer
from ..data.vocab import DEFAULT_ROLES
from ..errors import RnnzooError
from ..models.bert import INIT_STD, Bert, BertConfig
from ..models.hf_bert import SPECIAL_KEYS, hf_names
from . import prepare_out

log = logging.getLogger("rnnzoo")

WRITTEN = ("config.json", "model.safetensors", "vocab.txt", "tokenizer_config.json")
# files of an older export that loaders would read instead of (or besides) ours: removed by overwrite=true
COMPETING = ("pytorch_model.bin", "model.safetensors.index.json", "pytorch_model.bin.index.json",
             "tokenizer.json", "special_tokens_map.json")


@dataclass
class Head:
    """A fine-tuned task head that a transformers class computes: that class, its linear layer
    (C, H), the names of its C outputs and the dropout before it."""

    architecture: str
    layer: nn.Linear
    labels: list[str]
    dropout: float


# --- the CLI entry point ------------------------------------------------------------------------
def export(cfg: Any) -> Path:
    """`rnnzoo export format=hf`: the folder of `cfg.checkpoint` written to `cfg.out`, checked
    against transformers when `cfg.check` (and transformers is installed); the folder."""
    from ..build import rebuild  # the training stack, loaded only when exporting from a checkpoint
    from ..run_config import plain
    from ..training.setup import set_threads

    cfg = plain(cfg)
    checkpoint, out = _required(cfg, "checkpoint"), Path(_required(cfg, "out"))
    overwrite = bool(cfg.get("overwrite", False))
    prepare_out(out, overwrite, "hf", WRITTEN + COMPETING)  # before the checkpoint is read: the cheap refusal first
    set_threads((cfg.get("trainer") or {}).get("num_threads"))
    network, task, config = rebuild(checkpoint)
    model = getattr(network, "body", None)
    if not isinstance(model, Bert):
        raise RnnzooError(f"checkpoint {checkpoint} is a '{config['model']['name']}' run: format=hf exports "
                          "bert checkpoints only (format=onnx takes any model)")
    lowercase = bool(config["task"].get("lowercase", False))
    head = task_head(network, task)
    folder = save_hf(model, out, task.tokenizer, lowercase=lowercase, head=head, overwrite=overwrite)
    if cfg.get("check", True):
        check_folder(folder, model, task.tokenizer, lowercase=lowercase, head=head,
                     tolerance=float(cfg.get("tolerance", 1e-4)))
    return folder


def _required(cfg: dict[str, Any], key: str) -> str:
    value = cfg.get(key)
    if value in (None, "", "???"):
        raise RnnzooError(f"export format=hf needs {key}=PATH")
    return str(value)


def task_head(network: nn.Module, task: Any) -> Head | None:
    """The fine-tuned head of a task network where a transformers class computes it; None for
    a pretraining network, or (with a warning naming why) a head HF has no class for."""
    from ..tasks.classification import Classifier
    from ..tasks.tagging import Tagger

    if isinstance(network, Classifier):
        if network.pool.kind == "first" and network.body.pooler is not None:
            return Head("BertForSequenceClassification", network.head, list(task.labels.itos), network.dropout.p)
        log.warning("the classifier is left out (body and MLM head only): BertForSequenceClassification reads "
                    "tanh(W_p h_[CLS]), which this run's task.pooling=%s%s does not", network.pool.kind,
                    "" if network.pool.kind != "first" else " without a pooler (model.next_sentence=false)")
    elif isinstance(network, Tagger):
        if network.crf is None:
            return Head("BertForTokenClassification", network.head, list(task.tags.itos), network.dropout.p)
        log.warning("the tagger's CRF has no BertForTokenClassification counterpart: body and MLM head only")
    return None


# --- writing the folder ---------------------------------------------------------------------------
def save_hf(model: Bert, out: str | Path, tokenizer: Tokenizer | None = None, *, lowercase: bool = False,
            head: Head | None = None, overwrite: bool = False) -> Path:
    """Write `model` (and `tokenizer`, the one it was trained with: WordPiece; `lowercase` as the
    task lower-cased its text) as a Hugging Face BERT folder at `out`; the folder.

    Everything is computed and checked before the first file is written: a refusal (pre-LN,
    a tokenizer with no vocab.txt, `out` not empty without `overwrite`) leaves nothing behind."""
    pad_id = 0
    files: dict[str, str] = {}
    if tokenizer is not None:
        lines = vocab_lines(tokenizer, model.config.vocab_size)
        files = {"vocab.txt": "".join(f"{line}\n" for line in lines),
                 "tokenizer_config.json": _json(tokenizer_config(tokenizer, lines, lowercase,
                                                                 model.config.max_positions))}
        pad_id = tokenizer.vocab.pad_id if tokenizer.vocab.pad_id is not None else 0
    files["config.json"] = _json(hf_config(model, pad_id, head))
    weights = hf_state_dict(model, head)
    folder = Path(out)
    prepare_out(folder, overwrite, "hf", WRITTEN + COMPETING)  # an earlier export's files go, a loader's rivals too
    folder.mkdir(parents=True, exist_ok=True)
    save_file(weights, str(folder / "model.safetensors"), metadata={"format": "pt"})  # "pt": what HF checks
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8")
    if tokenizer is None:
        for name in ("vocab.txt", "tokenizer_config.json"):  # an earlier export's, not this model's
            (folder / name).unlink(missing_ok=True)
        log.warning("%s: no tokenizer given, so no vocab.txt: BertTokenizer cannot read this folder", folder)
    log.info("wrote %s (%s, %d tensors)", folder, json.loads(files["config.json"])["architectures"][0], len(weights))
    return folder


def hf_state_dict(model: Bert, head: Head | None = None) -> dict[str, Tensor]:
    """HF name -> tensor for every weight of `model` (and `head`): rnnzoo.models.hf_bert's table
    read backwards. Tensors are fresh contiguous copies (safetensors refuses shared memory);
    the tied MLM decoder weight is the word embeddings and is not written twice."""
    names = hf_names(model.config.num_layers, model.config.next_sentence)
    weights: dict[str, Tensor] = {}
    for ours, tensor in model.state_dict().items():
        if ours == "mlm.decoder.weight":  # the very Parameter embeddings.tokens.weight is (MaskedLMHead)
            continue
        if ours not in names:
            raise RnnzooError(f"no Hugging Face name known for rnnzoo's {ours}")  # a bert.py change not mapped
        theirs = names[ours]
        for name, part in zip(theirs, tensor.detach().chunk(len(theirs), 0)):  # W^Q|W^K|W^V: (3H, H) -> 3 (H, H)
            weights[name if name.startswith("cls.") else f"bert.{name}"] = _own_copy(part)
    if head is not None:
        weights["classifier.weight"] = _own_copy(head.layer.weight)  # (C, H)
        weights["classifier.bias"] = _own_copy(head.layer.bias)  # (C,)
    return weights


def _own_copy(tensor: Tensor) -> Tensor:
    """A contiguous CPU copy sharing memory with nothing (W^Q's chunk would share W^{QKV}'s)."""
    return tensor.detach().to("cpu", copy=True).contiguous()


def hf_config(model: Bert, pad_id: int = 0, head: Head | None = None) -> dict[str, Any]:
    """The config.json of `model`: the inverse of rnnzoo.models.hf_bert.bert_config."""
    config: BertConfig = model.config
    if config.norm != "post":
        raise RnnzooError(f"model.norm={config.norm}: Hugging Face's BERT is post-LN (LayerNorm after each "
                          "residual sum); a pre-LN bert computes another network and has no BERT folder")
    architecture = head.architecture if head else "BertForPreTraining" if config.next_sentence else "BertForMaskedLM"
    hf: dict[str, Any] = {
        "architectures": [architecture], "model_type": "bert", "vocab_size": config.vocab_size,
        "hidden_size": config.hidden_size, "num_hidden_layers": config.num_layers,
        "num_attention_heads": config.num_heads,
        "intermediate_size": model.encoder.layers[0].feed_forward.inner.out_features,  # d_ff, or 4 H where null
        "hidden_act": "gelu", "hidden_dropout_prob": config.dropout,
        "attention_probs_dropout_prob": config.attention_dropout,
        "max_position_embeddings": config.max_positions, "type_vocab_size": config.type_vocab_size,
        "position_embedding_type": "absolute", "initializer_range": INIT_STD,
        "layer_norm_eps": config.layer_norm_eps, "pad_token_id": pad_id, "tie_word_embeddings": True,
        "is_decoder": False, "dtype": str(model.embeddings.tokens.weight.dtype).removeprefix("torch."),
    }
    if head is not None:
        hf["id2label"] = {str(i): label for i, label in enumerate(head.labels)}
        hf["label2id"] = {label: i for i, label in enumerate(head.labels)}
        hf["classifier_dropout"] = head.dropout
    return hf


# --- the tokenizer --------------------------------------------------------------------------------
def vocab_lines(tokenizer: Tokenizer, vocab_size: int) -> list[str]:
    """vocab.txt's lines: the pieces in id order, rnnzoo's specials under BERT's names."""
    if tokenizer.level != "wordpiece":
        raise RnnzooError(f"the run's tokenizer is {tokenizer.level}: only a WordPiece vocabulary can be a BERT "
                          "vocab.txt (train with task.tokenizer=wordpiece), so no folder was written")
    vocab = tokenizer.vocab  # rnnzoo's own specials (<pad>... at 0..4) get BERT's names, any other stays
    renamed = {vocab.role_id(role): SPECIAL_KEYS[role][1] for role, token in vocab.roles.items()
               if token == DEFAULT_ROLES[role]}
    lines = [renamed.get(index, piece) for index, piece in enumerate(tokenizer.pieces())]
    if len(lines) != vocab_size:
        raise RnnzooError(f"the tokenizer has {len(lines)} pieces but the model {vocab_size} embeddings: "
                          "not the tokenizer this model was trained with")
    twice = sorted(line for line, n in Counter(lines).items() if n > 1)
    if twice:
        raise RnnzooError(f"vocab.txt would hold {twice[0]!r} twice (a piece spelled like a BERT special)")
    bad = next((line for line in lines if "\n" in line or "\r" in line), None)
    if bad is not None:
        raise RnnzooError(f"the piece {bad!r} cannot be one line of vocab.txt")
    return lines


def tokenizer_config(tokenizer: Tokenizer, lines: list[str], lowercase: bool, max_length: int) -> dict[str, Any]:
    """tokenizer_config.json: BertTokenizer set to split text as `tokenizer` (after the task's
    lower-casing) does, and the special tokens found at the vocabulary's special ids."""
    config: dict[str, Any] = {"tokenizer_class": "BertTokenizer", **normalization(tokenizer, lowercase),
                              "do_basic_tokenize": True, "model_max_length": max_length}
    for role, (key, _) in SPECIAL_KEYS.items():
        if role in tokenizer.vocab.roles:
            config[key] = lines[tokenizer.vocab.role_id(role)]
    return config


def normalization(tokenizer: Tokenizer, lowercase: bool) -> dict[str, bool]:
    """BertTokenizer's do_lower_case, strip_accents and tokenize_chinese_chars for `tokenizer`
    (its own normalizer's, `Tokenizer.bert_options`) after a task that lower-cases with Python's
    str.lower where `lowercase`: accents are stripped only where the tokenizer strips them."""
    options = tokenizer.bert_options()
    own = bool(options["do_lower_case"])
    strip = options["strip_accents"]  # None: BERT's default, strip when (the tokenizer) lower-cases
    return {"do_lower_case": own or lowercase, "strip_accents": own if strip is None else bool(strip),
            "tokenize_chinese_chars": bool(options["tokenize_chinese_chars"])}


def _json(value: dict[str, Any]) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False) + "\n"


# --- the check --------------------------------------------------------------------------------------
def check_folder(folder: str | Path, model: Bert, tokenizer: Tokenizer | None = None, *, lowercase: bool = False,
                 head: Head | None = None, tolerance: float = 1e-4) -> dict[str, float] | None:
    """Load `folder` with transformers and compare its outputs with `model`'s on a padded batch
    (hidden states and every head's logits, real positions only) and its BertTokenizer's ids
    with `tokenizer`'s; the largest differences, or None when transformers is not installed.
    A difference above `tolerance`, or other ids, is an RnnzooError."""
    try:
        import transformers
    except ImportError:
        log.warning("check skipped: transformers is not installed (pip install transformers)")
        return None
    verbosity = transformers.logging.get_verbosity()
    transformers.logging.set_verbosity_error()  # "weights not used": the heads another class has no place for
    folder = Path(folder)
    try:
        architecture = json.loads((folder / "config.json").read_text(encoding="utf-8"))["architectures"][0]
        reference = getattr(transformers, architecture).from_pretrained(folder).eval()
        diffs = compare_outputs(model.eval(), reference, head)
        if tokenizer is not None:
            check_ids(transformers.BertTokenizer.from_pretrained(folder), tokenizer, lowercase)
    finally:
        transformers.logging.set_verbosity(verbosity)
    log.info("check: %s from the folder against rnnzoo: max |difference| %s", architecture,
             ", ".join(f"{name} {diff:.2e}" for name, diff in diffs.items()))
    worst = max(diffs, key=diffs.get)
    if diffs[worst] > tolerance:
        raise RnnzooError(f"check failed: transformers' {worst} differ from rnnzoo's by {diffs[worst]:.2e} "
                          f"> tolerance={tolerance}")
    return diffs


def compare_outputs(model: Bert, reference: nn.Module, head: Head | None) -> dict[str, float]:
    """Max |rnnzoo - transformers| of the hidden states and of each head's outputs (name -> value)."""
    ids, lengths, mask, segments = probe_batch(model.config)
    with torch.no_grad():
        theirs = reference(input_ids=ids, attention_mask=mask.long(), token_type_ids=segments,
                           output_hidden_states=True)
        hidden, _ = model(ids, lengths, segments=segments)  # (B, T, H)
        pairs = {"hidden states": (hidden[mask], theirs.hidden_states[-1][mask])}
        if head is None:
            logits = theirs.logits if hasattr(theirs, "logits") else theirs.prediction_logits  # (B, T, V)
            pairs["MLM logits"] = (model.mlm_logits(hidden[mask]), logits[mask])
            if model.next_sentence:
                pairs["NSP logits"] = (model.nsp_logits(hidden), theirs.seq_relationship_logits)
        elif head.architecture == "BertForSequenceClassification":
            pairs["class logits"] = (head.layer(model.pooled(hidden)), theirs.logits)  # (B, C)
        else:
            pairs["tag logits"] = (head.layer(hidden)[mask], theirs.logits[mask])  # (N, K)
    return {name: (ours - expected).abs().max().item() for name, (ours, expected) in pairs.items()}


def probe_batch(config: BertConfig) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """A fixed padded batch: ids (3, T) anywhere in the vocabulary, lengths (3,), mask (3, T),
    segments (3, T) with a second segment where the model has one."""
    generator = torch.Generator().manual_seed(0)
    T = min(16, config.max_positions)
    lengths = torch.tensor([T, max(2, T // 2), 2])
    mask = torch.arange(T)[None] < lengths[:, None]  # (3, T)
    ids = torch.randint(0, config.vocab_size, (3, T), generator=generator).masked_fill(~mask, 0)  # (3, T)
    second = (torch.arange(T)[None] >= lengths[:, None] // 2) & mask  # (3, T) segment B
    return ids, lengths, mask, second.long() if config.type_vocab_size > 1 else torch.zeros_like(ids)


def check_ids(reference: Any, tokenizer: Tokenizer, lowercase: bool) -> None:
    """BertTokenizer on the folder must give the ids rnnzoo's tokenizer gives, framed
    [CLS] ... [SEP] as rnnzoo frames them <bos> ... <eos>, on text made of the vocabulary's own
    words, their capitalized forms, punctuation and an unknown word."""
    vocab = tokenizer.vocab
    words = [w for w in vocab.itos if w not in vocab.specials and not w.startswith("##")][:60]
    texts = [" ".join(words[i:i + 12]) for i in range(0, len(words), 12)]
    texts += [" ".join(w.capitalize() for w in words[:12]) + ", zzqxv!", "  ".join(words[:5]) + "."]
    for text in texts:
        ours = [vocab.bos_id, *tokenizer.encode(text.lower() if lowercase else text), vocab.eos_id]
        theirs = reference(text)["input_ids"]
        if theirs != ours:
            raise RnnzooError(f"check failed: BertTokenizer gives ids {theirs} for {text!r}, rnnzoo {ours}")
