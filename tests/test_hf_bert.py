"""rnnzoo.load_pretrained: a Hugging Face BERT folder imported as an rnnzoo bert computes what
transformers computes; `model.init_from=FOLDER` fine-tunes it (classification, tagging, more
masked-LM pretraining) with the folder's own tokenizer and ids, and `rnnzoo predict` reads the
result. The references are tiny random BERTs built here, with a vocab.txt of test_hf_tokenizer: no network."""

from __future__ import annotations

import json

import pytest
import torch

import rnnzoo
from rnnzoo import api
from rnnzoo.errors import RnnzooError
from rnnzoo.training.pretrained import read_pretrained

from .conftest import compose_config, run_cli
from .test_classification import tiny_files as labeled_files
from .test_hf_tokenizer import PIECES, write_vocab
from .test_tagging import tiny_files as conll_files

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


# --- model.init_from=FOLDER: the folder's tokenizer, shape and weights in a run ------------------------
RUN = ["trainer.progress=false", "trainer.device=cpu", "trainer.num_threads=1", "trainer.log_every=2"]
CLASSIFY = ["task=classification", "dataset=labeled_files", "model=bert_pretrained", "task.pooling=first",
            "task.batch_size=4", "trainer.max_steps=4", "trainer.eval_every=2", *RUN]


def hf_folder(tmp_path, cls="BertForPreTraining", lowercase=True, **overrides):
    """A tiny random BERT saved by transformers with PIECES as its vocab.txt ([PAD]=1, [UNK]=6,
    [CLS]=7, [SEP]=8, [MASK]=9): (folder, the reference model)."""
    folder = tmp_path / "hf"
    reference = save_reference(folder, cls, True, vocab_size=len(PIECES), pad_token_id=PIECES.index("[PAD]"),
                               **overrides)
    write_vocab(folder, {"do_lower_case": lowercase})
    return folder, reference


SHAPES = {"tiny": {}, "wider": dict(hidden_size=48, num_hidden_layers=3, num_attention_heads=4, intermediate_size=64,
                                     type_vocab_size=3, layer_norm_eps=1e-7, max_position_embeddings=40)}


@pytest.mark.parametrize("shape", list(SHAPES))
@pytest.mark.parametrize("cls", ["BertForPreTraining", "BertForMaskedLM"])
def test_init_from_a_folder_computes_what_transformers_does(tmp_path, cls, shape):
    """The fine-tuning network's body is the folder's BERT: on a padded batch of sentences the task
    encodes ([CLS] ... [SEP] at the folder's ids), hidden states and MLM logits are transformers'."""
    folder, reference = hf_folder(tmp_path, cls, **SHAPES[shape])
    config = api.plain(compose_config([*CLASSIFY, *labeled_files(tmp_path), f"model.init_from={folder}"]))
    task, network, _ = api.build(config)
    hf = reference.config
    assert task.tokenizer.pieces() == PIECES and config["model"]["layer_norm_eps"] == hf.layer_norm_eps
    assert config["model"]["next_sentence"] == (cls == "BertForPreTraining")
    assert (config["model"]["d_ff"], config["model"]["num_layers"], config["model"]["type_vocab_size"]) == \
        (hf.intermediate_size, hf.num_hidden_layers, hf.type_vocab_size)
    body = network.body.eval()
    # the folder's [PAD] (id 1) is the row without gradient, as HF's pad_token_id; not row 0 ("!")
    assert body.embeddings.tokens.padding_idx == config["model"]["pad_id"] == PIECES.index("[PAD]")
    sentences = ["the film was good", "Naïve, bad!", "a superb story, really quite lovely"]
    items = [task.encode(rnnzoo.data.LabeledText("pos", s.split())) for s in sentences]
    batch = task.collate(items)
    mask = batch.mask
    assert batch.inputs[0, 0] == PIECES.index("[CLS]") and batch.inputs[0, 5] == PIECES.index("[SEP]")
    with torch.no_grad():
        out = reference(input_ids=batch.inputs, attention_mask=mask.long(), output_hidden_states=True)
        hidden, _ = body(batch.inputs, batch.lengths)
        logits = body.mlm_logits(hidden[mask])
    expected = out.logits if cls == "BertForMaskedLM" else out.prediction_logits
    hidden_diff = (hidden[mask] - out.hidden_states[-1][mask]).abs().max().item()
    logits_diff = (logits - expected[mask]).abs().max().item()
    print(f"init_from {cls} {shape}: max |hidden diff| {hidden_diff:.2e}, max |MLM logits diff| {logits_diff:.2e}")
    assert hidden_diff <= TOL and logits_diff <= TOL


@pytest.mark.slow  # two `rnnzoo` processes: about 20 s on a shared machine
def test_cli_classification_from_a_folder_then_predict(tmp_path):
    """`rnnzoo train ... model.init_from=FOLDER`, then `rnnzoo predict` on its checkpoint (the folder gone)."""
    folder, _ = hf_folder(tmp_path)
    run_dir = tmp_path / "run"
    result = run_cli("train", *CLASSIFY, *labeled_files(tmp_path), f"model.init_from={folder}",
                     f"hydra.run.dir={run_dir}")
    assert result.returncode == 0, result.stderr
    assert "test/accuracy" in result.stdout
    for name in folder.iterdir():
        name.unlink()
    lines = tmp_path / "lines.txt"
    lines.write_text("the film was good\n\nNaïve, bad!\n")
    predicted = run_cli("predict", f"checkpoint={run_dir / 'checkpoints' / 'best.pt'}", f"input={lines}",
                        "trainer.device=cpu")
    assert predicted.returncode == 0, predicted.stderr
    answers = predicted.stdout.splitlines()
    assert len(answers) == 3 and answers[1] == "" and {answers[0], answers[2]} <= {"pos", "neg"}


def test_tagging_from_a_folder_reads_first_pieces(tmp_path):
    folder, _ = hf_folder(tmp_path, "BertForMaskedLM")
    overrides = ["task=tagging", "dataset=conll_files", "model=bert_pretrained", "task.batch_size=4",
                 "task.char_dim=0", "trainer.max_steps=4", "trainer.eval_every=2", *RUN, *conll_files(tmp_path),
                 f"model.init_from={folder}"]
    task, _, _ = api.build(api.plain(compose_config(overrides)))
    ids, _, _, starts = task.encode(rnnzoo.data.TaggedSentence(["the", "quickly", "mat"], ["DT", "RB", "NN"]))
    assert ids[0] == PIECES.index("[CLS]") and ids[-1] == PIECES.index("[SEP]")
    assert [PIECES[ids[s]] for s in starts] == ["the", "q", "m"]  # the first piece of each word
    run = tmp_path / "run"
    final = api.train(compose_config(overrides), run)
    assert "test/accuracy" in final
    config = compose_config([f"checkpoint={run / 'checkpoints' / 'best.pt'}", "trainer.device=cpu"], "predict")
    answers = list(api.predict(config, ["the red cat sat\n"]))
    assert len(answers[0].split()) == 4


def test_more_pretraining_from_a_folder(tmp_path):
    """task=pretraining continues BERT's masked-LM training from the folder: never masking its specials."""
    folder, _ = hf_folder(tmp_path)
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("the film was good . a bad film !\n" * 40 + "the end\n")  # a short last sequence: pads
    overrides = ["task=pretraining", "dataset=text_files", f"dataset.train={corpus}", "model=bert_pretrained",
                 f"model.init_from={folder}", "task.max_length=32", "task.batch_size=4", "trainer.max_steps=3",
                 "trainer.eval_every=3", *RUN]
    task, network, _ = api.build(api.plain(compose_config(overrides)))
    assert network.body.next_sentence and task.tokenizer.vocab.mask_id == PIECES.index("[MASK]")
    padded = 0
    for batch in task.train_batches(0):
        real = torch.arange(batch.inputs.shape[1]) < batch.lengths[:, None]  # (B, T)
        assert batch.targets[0, 0] == PIECES.index("[CLS]") and (batch.targets[~real] == PIECES.index("[PAD]")).all()
        assert not torch.isin(batch.targets[batch.mask], torch.tensor(sorted(task.tokenizer.vocab.special_ids))).any()
        assert not (batch.mask & ~real).any()  # pads are never chosen
        padded += int((~real).sum())
    assert padded
    final = api.train(compose_config(overrides), tmp_path / "run")
    assert final["test/loss"] > 0


def test_init_from_a_bad_folder_says_what_is_wrong(tmp_path):
    folder, _ = hf_folder(tmp_path, "BertForMaskedLM", lowercase=False)  # a cased BERT
    files = labeled_files(tmp_path)

    def build(*overrides):
        return api.build(api.plain(compose_config([*CLASSIFY, *files, f"model.init_from={folder}", *overrides])))

    with pytest.raises(RnnzooError, match=r"task.lowercase=true, but .* cased"):  # a cased BERT fed lower case
        build("task.lowercase=true")
    build("task.lowercase=false")
    with pytest.raises(RnnzooError, match=r"Hugging Face BERT folder: it starts model 'bert'.*not 'lstm'"):
        read_pretrained(str(folder), "lstm")  # (only bert has model.init_from today)
    vocab = (folder / "vocab.txt").read_text()
    (folder / "vocab.txt").write_text(vocab.replace("[MASK]\n", ""))
    with pytest.raises(RnnzooError, match=r"vocab.txt: no token for the special role mask"):
        build()
    (folder / "vocab.txt").write_text(vocab + "extra\n")
    with pytest.raises(RnnzooError, match=r"config.json says vocab_size=\d+, but .* holds \d+ tokens"):
        build()
    (folder / "vocab.txt").unlink()
    with pytest.raises(RnnzooError, match=r"model.init_from: .* has no vocab.txt"):
        build()
    (folder / "config.json").unlink()
    with pytest.raises(RnnzooError, match=r"folder without config.json"):
        build()


def test_cloze_predict_of_an_uncased_folder_keeps_the_mask_token(tmp_path):
    """task.lowercase=true lower-cases the line around [MASK], not [MASK] itself: each mask is filled
    by one token instead of being read as the pieces of '[mask]'."""
    folder, _ = hf_folder(tmp_path, "BertForMaskedLM")
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("the film was good . a bad film !\n" * 20)
    overrides = ["task=pretraining", "dataset=text_files", f"dataset.train={corpus}", "model=bert_pretrained",
                 f"model.init_from={folder}", "task.lowercase=true", "task.max_length=32", "task.batch_size=4",
                 "trainer.max_steps=2", "trainer.eval_every=2", *RUN]
    api.train(compose_config(overrides), tmp_path / "run")
    config = compose_config([f"checkpoint={tmp_path / 'run' / 'checkpoints' / 'best.pt'}", "trainer.device=cpu"],
                            "predict")
    task, _, _ = api.build(api.plain(compose_config(overrides)))
    vocab = task.tokenizer.vocab
    assert task.tokenizer.encode("the [MASK] film").count(vocab.mask_id) == 1  # [mask] would be pieces
    [answer] = list(api.predict(config, ["The Film was [MASK] !"]))
    words = answer.split()
    assert "mask" not in answer.lower() and words[:2] == ["the", "film"] and len(words) >= 4, answer
