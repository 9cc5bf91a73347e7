"""rnnzoo.load_pretrained: a Hugging Face BERT folder imported as an rnnzoo bert computes what
transformers computes. The references are tiny random BERTs built here: no network."""

from __future__ import annotations

import json

import pytest
import torch

import rnnzoo
from rnnzoo.errors import RnnzooError

transformers = pytest.importorskip("transformers", reason="the HF BERT import tests need transformers (dev extra)")
pytest.importorskip("safetensors", reason="the HF BERT import tests need safetensors (dev extra)")

TOL = 1e-5


def tiny_config(**overrides):
    options = dict(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                   intermediate_size=37, max_position_embeddings=64, type_vocab_size=2, layer_norm_eps=1e-12)
    options.update(overrides)
    return transformers.BertConfig(**options)


def save_reference(tmp_path, cls, safe: bool, seed: int = 0, **overrides):
    torch.manual_seed(seed)
    reference = getattr(transformers, cls)(tiny_config(**overrides)).eval()
    with torch.no_grad():  # biases and LayerNorms away from their 0 / 1 init, so a mix-up shows
        for name, p in reference.named_parameters():
            if "LayerNorm" in name or name.endswith("bias"):
                p.add_(0.1 * torch.randn_like(p))
    reference.save_pretrained(tmp_path, safe_serialization=safe)
    if not safe and not (tmp_path / "pytorch_model.bin").exists():
        # transformers 5 writes safetensors whatever it is told: the older layout, written by hand
        from safetensors.torch import load_file

        torch.save(load_file(str(tmp_path / "model.safetensors")), tmp_path / "pytorch_model.bin")
        (tmp_path / "model.safetensors").unlink()
    return reference


def padded_batch(vocab_size: int = 100):
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(1, vocab_size, (3, 11), generator=g)
    lengths = torch.tensor([11, 7, 4])
    mask = torch.arange(11)[None] < lengths[:, None]
    ids = ids.masked_fill(~mask, 0)
    segments = (torch.arange(11)[None] >= (lengths[:, None] // 2)).long() * mask
    return ids, lengths, mask, segments


@pytest.mark.parametrize("safe", [True, False], ids=["safetensors", "pytorch_model.bin"])
@pytest.mark.parametrize("cls", ["BertForPreTraining", "BertForMaskedLM"])
def test_import_reproduces_hidden_states_and_mlm_logits(tmp_path, cls, safe):
    reference = save_reference(tmp_path, cls, safe)
    assert (tmp_path / ("model.safetensors" if safe else "pytorch_model.bin")).is_file()
    model, config = rnnzoo.load_pretrained(tmp_path)
    assert not model.training
    assert (config.num_layers, config.hidden_size, config.num_heads, config.d_ff) == (2, 32, 2, 37)
    assert config.layer_norm_eps == 1e-12 and config.next_sentence == (cls == "BertForPreTraining")
    ids, lengths, mask, segments = padded_batch()
    with torch.no_grad():
        out = reference(input_ids=ids, attention_mask=mask.long(), token_type_ids=segments,
                        output_hidden_states=True)
        hidden, _ = model(ids, lengths, segments=segments)
        logits = model.mlm_logits(hidden[mask])
    expected_hidden = out.hidden_states[-1][mask]
    expected_logits = out.logits[mask] if cls == "BertForMaskedLM" else out.prediction_logits[mask]
    hidden_diff = (hidden[mask] - expected_hidden).abs().max().item()
    logits_diff = (logits - expected_logits).abs().max().item()
    print(f"{cls} safe={safe}: max |hidden diff| {hidden_diff:.2e}, max |MLM logits diff| {logits_diff:.2e}")
    assert hidden_diff <= TOL and logits_diff <= TOL
    assert torch.equal(hidden[~mask], torch.zeros_like(hidden[~mask]))  # rnnzoo's pads are 0
    if cls == "BertForPreTraining":
        nsp_diff = (model.nsp_logits(hidden) - out.seq_relationship_logits).abs().max().item()
        assert nsp_diff <= TOL


def test_import_without_segments_is_segment_a(tmp_path):
    reference = save_reference(tmp_path, "BertForMaskedLM", True, seed=3)
    model, _ = rnnzoo.load_pretrained(tmp_path)
    ids, lengths, mask, _ = padded_batch()
    with torch.no_grad():
        expected = reference(input_ids=ids, attention_mask=mask.long()).logits[mask]
        hidden, _ = model(ids, lengths)
        assert (model.mlm_logits(hidden[mask]) - expected).abs().max().item() <= TOL


def test_layer_norm_eps_matters_and_defaults_unchanged(tmp_path):
    """At eps 1e-5 the imported network would differ from BERT's (why the option exists)."""
    assert rnnzoo.create_model("bert", vocab_size=50).config.layer_norm_eps == 1e-5
    reference = save_reference(tmp_path, "BertForMaskedLM", True, seed=4)
    model, config = rnnzoo.load_pretrained(tmp_path)
    for module in model.modules():
        if isinstance(module, torch.nn.LayerNorm):
            assert module.eps == 1e-12
    ids, lengths, mask, _ = padded_batch()
    with torch.no_grad():
        reference.bert.embeddings.LayerNorm.weight.mul_(1e-3)  # a tiny variance after the embedding norm
        model.embeddings.norm.weight.mul_(1e-3)
        expected = reference(input_ids=ids, attention_mask=mask.long()).logits[mask]
        ok = model.mlm_logits(model(ids, lengths)[0][mask])
        for module in model.modules():
            if isinstance(module, torch.nn.LayerNorm):
                module.eps = 1e-5
        off = model.mlm_logits(model(ids, lengths)[0][mask])
    assert (ok - expected).abs().max().item() <= TOL
    assert (off - expected).abs().max().item() > 1e-4


def test_missing_tensor_is_named_and_nothing_loads(tmp_path):
    from safetensors.torch import load_file, save_file

    save_reference(tmp_path, "BertForMaskedLM", True)
    weights = load_file(str(tmp_path / "model.safetensors"))
    del weights["bert.encoder.layer.1.attention.self.key.bias"]
    save_file(weights, str(tmp_path / "model.safetensors"))
    with pytest.raises(RnnzooError, match=r"encoder\.layer\.1\.attention\.self\.key\.bias"):
        rnnzoo.load_pretrained(tmp_path)


def test_mismatched_shape_is_named(tmp_path):
    save_reference(tmp_path, "BertForMaskedLM", True)
    hf = json.loads((tmp_path / "config.json").read_text())
    hf["intermediate_size"] = 40
    (tmp_path / "config.json").write_text(json.dumps(hf))
    with pytest.raises(RnnzooError, match=r"encoder\.layer\.0\.intermediate\.dense\.weight has shape \(37, 32\)"):
        rnnzoo.load_pretrained(tmp_path)


def test_bert_model_folder_without_mlm_head_is_refused(tmp_path):
    save_reference(tmp_path, "BertModel", True)
    with pytest.raises(RnnzooError, match=r"cls\.predictions.*BertForMaskedLM"):
        rnnzoo.load_pretrained(tmp_path)


def test_unsupported_config_and_missing_files(tmp_path):
    with pytest.raises(RnnzooError, match="no config.json"):
        rnnzoo.load_pretrained(tmp_path)
    save_reference(tmp_path, "BertForMaskedLM", True)
    hf = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**hf, "hidden_act": "relu"}))
    with pytest.raises(RnnzooError, match="hidden_act='relu'"):
        rnnzoo.load_pretrained(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps(hf))
    (tmp_path / "model.safetensors").unlink()
    with pytest.raises(RnnzooError, match="no model.safetensors or pytorch_model.bin"):
        rnnzoo.load_pretrained(tmp_path)
