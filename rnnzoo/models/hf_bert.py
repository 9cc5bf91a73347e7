"""Importing a Hugging Face BERT folder (what `save_pretrained` writes) as an rnnzoo `bert`.

    model, config = rnnzoo.load_pretrained("path/to/bert-folder")
    tokenizer = load_tokenizer("path/to/bert-folder")     # its vocab.txt: BertTokenizer's ids

The folder holds `config.json` and the weights in `model.safetensors` (read with safetensors),
`pytorch_model.bin` (read with `torch.load(weights_only=True)`: no pickled code runs), or a
sharded `*.index.json` of either. `transformers` itself is not needed.

rnnzoo's bert computes the same network as `transformers`' BertForPreTraining (erf GELU,
embedding LayerNorm, post-LN blocks, tied MLM decoder, pooler and NSP head); only the names
differ, and W^Q, W^K, W^V are one (3H, H) matrix here. Every parameter of the rnnzoo model must
be found in the file with its shape, else an RnnzooError names the first missing or mismatched
tensor and nothing is loaded. Tensors rnnzoo has no place for (a classifier head, a pooler
without an NSP head) are left out with a warning.

`load_tokenizer` reads the folder's WordPiece vocabulary (vocab.txt, or the tokenizer.json that
transformers 5 writes instead) with the options of its tokenizer_config.json (do_lower_case,
strip_accents, tokenize_chinese_chars, never_split, the special tokens' spellings; BertTokenizer's
defaults where absent: lower-casing). The ids are the folder's own: [PAD] [UNK] [CLS] [SEP] [MASK]
wherever they are (100..103 in bert-base), playing rnnzoo's pad, unk, bos, eos and mask.
`model.init_from=FOLDER` uses both (rnnzoo.training.pretrained).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ..data.tokenize import Tokenizer
from ..errors import RnnzooError
from .bert import Bert, BertConfig

# HF names (after the "bert." prefix is removed) of what rnnzoo has no place for, silently skipped
IGNORED = ("embeddings.position_ids",)
# rnnzoo's special roles -> (the tokenizer_config.json key naming that token, BERT's spelling)
SPECIAL_KEYS = {"pad": ("pad_token", "[PAD]"), "unk": ("unk_token", "[UNK]"), "bos": ("cls_token", "[CLS]"),
                "eos": ("sep_token", "[SEP]"), "mask": ("mask_token", "[MASK]")}


def is_hf_folder(path: str | Path) -> bool:
    """Whether `path` is a folder in the layout `save_pretrained` writes (it holds config.json)."""
    return Path(path).is_dir() and (Path(path) / "config.json").is_file()


def load_pretrained(path: str | Path) -> tuple[Bert, BertConfig]:
    """(rnnzoo bert in eval mode with the folder's weights, its BertConfig) from a HF BERT folder."""
    folder = Path(path)
    if not folder.is_dir():
        raise RnnzooError(f"{folder} is not a folder: expected a Hugging Face BERT folder "
                          "(config.json and model.safetensors or pytorch_model.bin)")
    hf = read_config(folder)
    weights = _read_weights(folder)
    config = bert_config(hf, next_sentence=_has(weights, "cls.seq_relationship.weight"))
    model = Bert(config)
    state = map_state_dict(weights, model)
    model.load_state_dict(state, strict=True)
    return model.eval(), config


def read_config(path: str | Path) -> dict[str, Any]:
    """The folder's config.json as a dict (RnnzooError where it is missing or not JSON)."""
    return _read_json(Path(path) / "config.json", "expected a Hugging Face BERT folder")


def load_tokenizer(path: str | Path) -> Tokenizer:
    """The folder's WordPiece tokenizer: BertTokenizer's ids for the same folder (see the module
    docstring); RnnzooError naming the file for a missing vocabulary or special token."""
    folder = Path(path)
    options = _tokenizer_options(folder)
    roles = {role: _token_text(options.get(key, spelling)) for role, (key, spelling) in SPECIAL_KEYS.items()}
    pieces, source = _read_pieces(folder)
    try:
        return Tokenizer.bert_wordpiece(pieces, roles, lowercase=options.get("do_lower_case", True),
                                        strip_accents=options.get("strip_accents"),
                                        chinese_chars=options.get("tokenize_chinese_chars", True),
                                        never_split=options.get("never_split") or ())
    except ValueError as error:  # a repeated piece, a special missing
        raise RnnzooError(f"{source}: {error} (BERT's specials are {', '.join(s for _, s in SPECIAL_KEYS.values())}"
                          f"; tokenizer_config.json may name others)") from None


def _tokenizer_options(folder: Path) -> dict[str, Any]:
    """tokenizer_config.json's options over special_tokens_map.json's (both optional)."""
    options: dict[str, Any] = {}
    for name in ("special_tokens_map.json", "tokenizer_config.json"):
        if (folder / name).is_file():
            options.update(_read_json(folder / name, "a tokenizer's options"))
    return options


def _token_text(token: Any) -> str:
    """A special token's spelling, written as a string or as a serialized AddedToken."""
    return str(token["content"]) if isinstance(token, dict) else str(token)


def _read_pieces(folder: Path) -> tuple[list[str], Path]:
    """(the WordPiece vocabulary in id order, the file it came from): vocab.txt (line i is id i,
    as BertTokenizer reads it), else the vocabulary of a WordPiece tokenizer.json."""
    vocab_txt, tokenizer_json = folder / "vocab.txt", folder / "tokenizer.json"
    if vocab_txt.is_file():
        with open(vocab_txt, encoding="utf-8") as f:  # universal newlines, as BertTokenizer reads it
            return [line.rstrip("\n") for line in f], vocab_txt
    if tokenizer_json.is_file():
        model = _read_json(tokenizer_json, "a tokenizers tokenizer").get("model", {})
        if model.get("type") != "WordPiece":
            raise RnnzooError(f"{tokenizer_json} holds a {model.get('type')} model: a BERT's is WordPiece")
        ranked = sorted(model["vocab"].items(), key=lambda item: item[1])
        if [index for _, index in ranked] != list(range(len(ranked))):
            raise RnnzooError(f"{tokenizer_json}: the WordPiece ids are not 0, 1, 2, ... without gaps")
        return [piece for piece, _ in ranked], tokenizer_json
    raise RnnzooError(f"{folder} has no vocab.txt (nor a WordPiece tokenizer.json): a BERT folder's tokenizer "
                      "is its vocab.txt, one token a line, line i holding id i")


def bert_config(hf: dict[str, Any], next_sentence: bool = False) -> BertConfig:
    """An rnnzoo BertConfig of the shape a HF BERT config.json describes; RnnzooError for what rnnzoo
    cannot compute (another activation, relative positions, a decoder)."""
    def need(key: str) -> Any:
        if key not in hf:
            raise RnnzooError(f"config.json has no '{key}': is this a BERT folder?")
        return hf[key]

    model_type = hf.get("model_type", "bert")
    if model_type != "bert":
        raise RnnzooError(f"config.json says model_type={model_type!r}: only 'bert' can be imported")
    act = hf.get("hidden_act", "gelu")
    if act != "gelu":
        raise RnnzooError(f"hidden_act={act!r}: rnnzoo's bert computes the erf GELU ('gelu') only")
    positions = hf.get("position_embedding_type", "absolute")
    if positions != "absolute":
        raise RnnzooError(f"position_embedding_type={positions!r}: rnnzoo's bert has absolute positions only")
    if hf.get("is_decoder") or hf.get("add_cross_attention"):
        raise RnnzooError("a BERT decoder (is_decoder / add_cross_attention) cannot be imported: "
                          "rnnzoo's bert is an encoder")
    return BertConfig(vocab_size=need("vocab_size"), hidden_size=need("hidden_size"),
                      num_layers=need("num_hidden_layers"), num_heads=need("num_attention_heads"),
                      d_ff=need("intermediate_size"), max_positions=need("max_position_embeddings"),
                      type_vocab_size=hf.get("type_vocab_size", 2),
                      dropout=hf.get("hidden_dropout_prob", 0.1),
                      attention_dropout=hf.get("attention_probs_dropout_prob", 0.1),
                      layer_norm_eps=hf.get("layer_norm_eps", 1e-12), norm="post",
                      pad_id=hf.get("pad_token_id") or 0,
                      next_sentence=next_sentence)


def hf_names(num_layers: int, next_sentence: bool) -> dict[str, list[str]]:
    """rnnzoo parameter name -> the HF names (prefix "bert." removed) whose tensors make it,
    concatenated on dim 0 (W^Q, W^K, W^V) when several."""
    names = {
        "embeddings.tokens.weight": ["embeddings.word_embeddings.weight"],
        "embeddings.positions.learned.weight": ["embeddings.position_embeddings.weight"],
        "embeddings.segments.weight": ["embeddings.token_type_embeddings.weight"],
        "embeddings.norm.weight": ["embeddings.LayerNorm.weight"],
        "embeddings.norm.bias": ["embeddings.LayerNorm.bias"],
    }
    for i in range(num_layers):
        ours, theirs = f"encoder.layers.{i}.", f"encoder.layer.{i}."
        for p in ("weight", "bias"):
            names[ours + f"self_attention.projection.{p}"] = [theirs + f"attention.self.{m}.{p}"
                                                              for m in ("query", "key", "value")]
            names[ours + f"self_attention.output.{p}"] = [theirs + f"attention.output.dense.{p}"]
            names[ours + f"self_norm.{p}"] = [theirs + f"attention.output.LayerNorm.{p}"]
            names[ours + f"feed_forward.inner.{p}"] = [theirs + f"intermediate.dense.{p}"]
            names[ours + f"feed_forward.outer.{p}"] = [theirs + f"output.dense.{p}"]
            names[ours + f"feed_forward_norm.{p}"] = [theirs + f"output.LayerNorm.{p}"]
    for p in ("weight", "bias"):
        names[f"mlm.dense.{p}"] = [f"cls.predictions.transform.dense.{p}"]
        names[f"mlm.norm.{p}"] = [f"cls.predictions.transform.LayerNorm.{p}"]
    names["mlm.decoder.bias"] = ["cls.predictions.bias"]
    # mlm.decoder.weight is embeddings.tokens.weight (tied): filled from the embeddings
    if next_sentence:
        for p in ("weight", "bias"):
            names[f"pooler.{p}"] = [f"pooler.dense.{p}"]
            names[f"nsp.{p}"] = [f"cls.seq_relationship.{p}"]
    return names


def map_state_dict(weights: dict[str, Tensor], model: Bert) -> dict[str, Tensor]:
    """The rnnzoo state dict of `model` from HF-named `weights`, every tensor shape-checked;
    RnnzooError naming the first missing or mismatched tensor."""
    hf = _normalize(weights)
    config = model.config
    names = hf_names(config.num_layers, config.next_sentence)
    if "cls.predictions.bias" not in hf and "cls.predictions.decoder.bias" in hf:
        hf["cls.predictions.bias"] = hf["cls.predictions.decoder.bias"]
    expected = model.state_dict()
    state: dict[str, Tensor] = {}
    for ours, target in expected.items():
        if ours == "mlm.decoder.weight":
            continue
        if ours not in names:
            raise RnnzooError(f"no Hugging Face name known for rnnzoo's {ours}")  # a bert.py change not mapped
        parts = []
        for theirs in names[ours]:
            if theirs not in hf:
                hint = (" (saved from BertModel? rnnzoo's bert has a masked-LM head: save BertForMaskedLM "
                        "or BertForPreTraining)" if theirs.startswith("cls.") else "")
                raise RnnzooError(f"the checkpoint has no tensor {theirs}, needed for {ours}{hint}")
            parts.append(hf[theirs])
        tensor = parts[0] if len(parts) == 1 else torch.cat(parts, 0)
        if tuple(tensor.shape) != tuple(target.shape):
            raise RnnzooError(f"{' + '.join(names[ours])} has shape {tuple(tensor.shape)}, rnnzoo's {ours} "
                              f"needs {tuple(target.shape)} (from config.json): checkpoint and config disagree")
        state[ours] = tensor.to(target.dtype)
    state["mlm.decoder.weight"] = state["embeddings.tokens.weight"]
    decoder = hf.get("cls.predictions.decoder.weight")
    if decoder is not None and not torch.equal(decoder.to(state["embeddings.tokens.weight"].dtype),
                                               state["embeddings.tokens.weight"]):
        raise RnnzooError("cls.predictions.decoder.weight differs from embeddings.word_embeddings.weight: "
                          "rnnzoo's bert ties its MLM decoder to the token embeddings (tie_word_embeddings)")
    used = {n for group in names.values() for n in group} | {"cls.predictions.decoder.weight",
                                                             "cls.predictions.decoder.bias", *IGNORED}
    unused = sorted(set(hf) - used)
    if unused:
        warnings.warn(f"left out of the import (rnnzoo's bert has no place for them): {', '.join(unused)}",
                      stacklevel=3)
    return state


def _normalize(weights: dict[str, Tensor]) -> dict[str, Tensor]:
    """Remove the "bert." prefix and rename TF-era LayerNorm gamma / beta to weight / bias."""
    out = {}
    for name, tensor in weights.items():
        name = name.removeprefix("bert.")
        if name.endswith(".gamma"):
            name = name[:-len("gamma")] + "weight"
        elif name.endswith(".beta"):
            name = name[:-len("beta")] + "bias"
        out[name] = tensor
    return out


def _has(weights: dict[str, Tensor], name: str) -> bool:
    return name in weights or f"bert.{name}" in weights or name.removeprefix("bert.") in weights


def _read_json(path: Path, expected: str) -> dict[str, Any]:
    if not path.is_file():
        raise RnnzooError(f"{path.parent} has no {path.name}: {expected}")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise RnnzooError(f"{path} is not valid JSON: {e}") from e


def _read_weights(folder: Path) -> dict[str, Tensor]:
    """Every tensor of the folder's weights, by its HF name (safetensors preferred)."""
    for index_name, single in (("model.safetensors.index.json", "model.safetensors"),
                               ("pytorch_model.bin.index.json", "pytorch_model.bin")):
        if (folder / single).is_file():
            return _read_file(folder / single)
        if (folder / index_name).is_file():
            index = json.loads((folder / index_name).read_text(encoding="utf-8"))
            weights: dict[str, Tensor] = {}
            for shard in sorted(set(index.get("weight_map", {}).values())):
                weights.update(_read_file(folder / shard))
            return weights
    raise RnnzooError(f"{folder} has no model.safetensors or pytorch_model.bin (nor a sharded index of either)")


def _read_file(path: Path) -> dict[str, Tensor]:
    if path.suffix == ".safetensors":
        try:
            from safetensors.torch import load_file
        except ImportError as e:
            raise RnnzooError(f"reading {path} needs the safetensors package: pip install safetensors") from e
        return load_file(str(path), device="cpu")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # a pickle with code in it, or a truncated file
        raise RnnzooError(f"cannot read {path} safely (torch.load weights_only=True): {e}") from e
