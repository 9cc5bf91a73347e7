"""rnnzoo export format=hf: a Hugging Face BERT folder that transformers loads and computes the
same with. References are built here (tiny random BERTs, a tiny pretraining run): no network."""

from __future__ import annotations

import json
import sys

import pytest
import torch
from omegaconf import OmegaConf

import rnnzoo
from rnnzoo import api
from rnnzoo.data.tokenize import Tokenizer
from rnnzoo.errors import RnnzooError
from rnnzoo.export import export
from rnnzoo.export.hf import check_folder, save_hf

from .conftest import compose_config, run_cli
from .test_bert import RUN, TINY_BERT
from .test_classification import TINY_CLASSIFICATION, labeled_lines
from .test_classification import tiny_files as labeled_files
from .test_hf_bert import CLASSIFY, hf_folder, save_reference
from .test_hf_tokenizer import PIECES
from .test_tagging import tiny_files as conll_files

transformers = pytest.importorskip("transformers", reason="the HF export tests need transformers (dev extra)")
pytest.importorskip("safetensors", reason="the HF export tests need safetensors (dev extra)")
from safetensors.torch import load_file  # noqa: E402  (after the skip)

TOL = 1e-5
SENTENCES = ["A lovely film .", "the Plot is dull and Boring", "Café crème, s'il vous plaît !",
             "zzqxv unheardofword", "", "the the the"]


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    """A tiny post-LN BERT pretrained a few steps on lower-cased text: its best.pt."""
    folder = tmp_path_factory.mktemp("pretrain")
    corpus = folder / "corpus.txt"
    lines = [line.split("\t", 1)[1] for line in labeled_lines(200, 7)] + ["Café crème, plaît !"] * 5
    corpus.write_text("\n".join(lines) + "\n")
    api.train(compose_config(["task=pretraining", "dataset=text_files", f"dataset.train={corpus}", *TINY_BERT,
                              *RUN, "task.vocab_size=90", "task.max_length=32", "task.batch_size=8",
                              "task.lowercase=true", "model.layer_norm_eps=1e-12", "trainer.max_steps=6",
                              "trainer.eval_every=6", "trainer.lr=3e-3"]), folder / "run")
    return folder / "run" / "checkpoints" / "best.pt"


def export_config(checkpoint, out, **options):
    """What `rnnzoo export checkpoint=... format=hf out=...` composes (configs/export.yaml's keys)."""
    return OmegaConf.create({"checkpoint": str(checkpoint), "format": "hf", "out": str(out), "check": True,
                             "tolerance": TOL, "overwrite": False, "trainer": {"device": "cpu", "num_threads": 1},
                             **options})


# --- HF -> rnnzoo -> HF ----------------------------------------------------------------------------
@pytest.mark.parametrize("cls", ["BertForPreTraining", "BertForMaskedLM"])
def test_round_trip_gives_the_same_tensors_and_config(tmp_path, cls):
    save_reference(tmp_path / "hf", cls, safe=True, intermediate_size=40, type_vocab_size=3, layer_norm_eps=1e-12)
    model, _ = rnnzoo.load_pretrained(tmp_path / "hf")
    save_hf(model, tmp_path / "back")
    theirs, ours = load_file(str(tmp_path / "hf" / "model.safetensors")), load_file(str(tmp_path / "back" /
                                                                                         "model.safetensors"))
    assert set(ours) == set(theirs)
    assert all(torch.equal(ours[name], theirs[name]) for name in theirs), [n for n in theirs
                                                                            if not torch.equal(ours[n], theirs[n])]
    written = json.loads((tmp_path / "back" / "config.json").read_text())
    original = json.loads((tmp_path / "hf" / "config.json").read_text())
    for key in ("architectures", "vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                "intermediate_size", "max_position_embeddings", "type_vocab_size", "layer_norm_eps", "pad_token_id"):
        assert written[key] == original[key], key
    diffs = check_folder(tmp_path / "back", model, tolerance=TOL)
    assert set(diffs) >= {"hidden states", "MLM logits"} and max(diffs.values()) <= TOL


def test_the_check_fails_on_a_wrong_tensor(tmp_path):
    save_reference(tmp_path / "hf", "BertForMaskedLM", safe=True)
    model, _ = rnnzoo.load_pretrained(tmp_path / "hf")
    save_hf(model, tmp_path / "back")
    with torch.no_grad():
        model.encoder.layers[1].feed_forward.outer.bias[0] += 0.01  # (a constant shift the LayerNorm would undo)
    with pytest.raises(RnnzooError, match="check failed: transformers' .* differ from rnnzoo's"):
        check_folder(tmp_path / "back", model, tolerance=TOL)


def test_a_run_started_from_a_bert_folder_exports_its_vocab_txt_verbatim(tmp_path):
    """Fine-tuned from a folder whose specials are not at 0..4 ([PAD]=1, [UNK]=6, [CLS]=7...): the
    export's vocab.txt is the folder's, byte for byte, and BertTokenizer still gives the run's ids."""
    folder, _ = hf_folder(tmp_path, "BertForPreTraining")  # uncased; the NSP head brings the pooler
    run = tmp_path / "run"
    api.train(compose_config([*CLASSIFY, *labeled_files(tmp_path), f"model.init_from={folder}",
                              "trainer.max_steps=2"]), run)
    out = export(export_config(run / "checkpoints" / "best.pt", tmp_path / "back"))  # check: ids, class logits
    assert (out / "vocab.txt").read_bytes() == (folder / "vocab.txt").read_bytes()
    options = json.loads((out / "tokenizer_config.json").read_text())
    assert {key: options[key] for key in ("do_lower_case", "strip_accents", "pad_token", "cls_token")} == \
        {"do_lower_case": True, "strip_accents": True, "pad_token": "[PAD]", "cls_token": "[CLS]"}
    config = json.loads((out / "config.json").read_text())
    assert config["architectures"] == ["BertForSequenceClassification"]
    assert config["pad_token_id"] == PIECES.index("[PAD]") and config["vocab_size"] == len(PIECES)


# --- a pretraining run --------------------------------------------------------------------------------
@pytest.mark.slow  # two `rnnzoo` processes: about 30 s on a shared machine
def test_the_cli_exports_and_refuses_with_exit_status_2(tmp_path, pretrained):
    out = tmp_path / "hf"
    result = run_cli("export", f"checkpoint={pretrained}", "format=hf", f"out={out}", "tolerance=1e-5")
    assert result.returncode == 0, result.stderr
    assert f"exported: {out}" in result.stdout and "check: BertForMaskedLM" in result.stderr
    assert (out / "vocab.txt").is_file() and (out / "model.safetensors").is_file()
    again = run_cli("export", f"checkpoint={pretrained}", "format=hf", f"out={out}")
    assert again.returncode == 2 and f"error: out={out} is not empty" in again.stderr


def test_a_pretraining_run_exports_to_bert_for_masked_lm(tmp_path, pretrained, caplog):
    caplog.set_level("INFO", logger="rnnzoo")
    out = export(export_config(pretrained, tmp_path / "hf"))
    assert "check: BertForMaskedLM from the folder against rnnzoo" in caplog.text
    network, task, _ = api.load_run(pretrained)
    model = network.body
    reference = transformers.BertForMaskedLM.from_pretrained(out).eval()
    vocab = task.tokenizer.vocab

    def framed(text):  # as rnnzoo frames a sentence for BERT: <bos> ... <eos>
        return [vocab.bos_id, *task.tokenizer.encode(task.normalize(text)), vocab.eos_id]

    encoded = [framed(s) for s in SENTENCES]
    lengths = torch.tensor([len(ids) for ids in encoded])
    mask = torch.arange(int(lengths.max()))[None] < lengths[:, None]  # (B, T)
    ids = torch.zeros(mask.shape, dtype=torch.long).masked_scatter(mask, torch.tensor(sum(encoded, [])))
    with torch.no_grad():
        expected = reference(input_ids=ids, attention_mask=mask.long()).logits[mask]  # (N, V)
        hidden, _ = model(ids, lengths)
        logits = model.mlm_logits(hidden[mask])  # (N, V)
    diff = (logits - expected).abs().max().item()
    print(f"pretraining run -> BertForMaskedLM: max |MLM logits diff| {diff:.2e} on {mask.sum()} tokens")
    assert diff <= TOL and lengths.min() < lengths.max()  # padded
    bert_tokenizer = transformers.BertTokenizer.from_pretrained(out)
    for sentence in SENTENCES:
        assert bert_tokenizer(sentence)["input_ids"] == framed(sentence)
    lines = (out / "vocab.txt").read_text().splitlines()
    assert lines[:5] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] and len(lines) == model.config.vocab_size
    assert lines[5:] == vocab.itos[5:]
    config = json.loads((out / "tokenizer_config.json").read_text())
    assert config["do_lower_case"] is True and config["strip_accents"] is False
    assert transformers.BertModel.from_pretrained(out).config.layer_norm_eps == 1e-12


def test_out_must_be_empty_unless_overwrite(tmp_path, pretrained):
    out = tmp_path / "hf"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(RnnzooError, match=f"out={out} is not empty: .*overwrite=true"):
        export(export_config(pretrained, out))
    assert not (out / "config.json").exists()
    (out / "tokenizer.json").write_text("{}")  # a stale fast tokenizer would be read instead of vocab.txt
    assert export(export_config(pretrained, out, overwrite=True, check=False)) == out
    assert (out / "model.safetensors").is_file() and not (out / "tokenizer.json").exists()
    (tmp_path / "file").write_text("")
    with pytest.raises(RnnzooError, match="is a file"):
        export(export_config(pretrained, tmp_path / "file"))


# --- fine-tuned runs, and what has no BERT folder ----------------------------------------------------
def finetune(tmp_path, *overrides, task="classification"):
    """best.pt of a tiny bert trained two steps on tiny classification (or tagging) files."""
    run = tmp_path / "run"
    data = (["dataset=labeled_files", *labeled_files(tmp_path), "task.pooling=first"] if task == "classification"
            else ["dataset=conll_files", *conll_files(tmp_path)])
    api.train(compose_config([f"task={task}", *data, *TINY_BERT, *RUN, "task.batch_size=4", "trainer.max_steps=2",
                              "trainer.eval_every=2", *overrides]), run)
    return run / "checkpoints" / "best.pt"


def test_a_classifier_with_berts_pooler_exports_to_sequence_classification(tmp_path):
    checkpoint = finetune(tmp_path, "task.tokenizer=wordpiece", "task.vocab_size=60", "model.next_sentence=true")
    out = export(export_config(checkpoint, tmp_path / "hf"))  # check=true: class logits within 1e-5
    config = json.loads((out / "config.json").read_text())
    labels = api.load_run(checkpoint)[1].labels.itos
    assert config["architectures"] == ["BertForSequenceClassification"]
    assert config["id2label"] == {str(i): label for i, label in enumerate(labels)}
    assert transformers.BertForSequenceClassification.from_pretrained(out).num_labels == len(labels)


def test_a_subword_tagger_exports_to_token_classification(tmp_path):
    checkpoint = finetune(tmp_path, "task.tokenizer=wordpiece", "task.vocab_size=60", task="tagging")
    out = export(export_config(checkpoint, tmp_path / "hf"))  # check=true: tag logits within 1e-5, every piece
    config = json.loads((out / "config.json").read_text())
    assert config["architectures"] == ["BertForTokenClassification"]
    assert list(config["label2id"]) == api.load_run(checkpoint)[1].tags.itos


def test_a_word_tokenizer_and_a_non_bert_checkpoint_are_refused(tmp_path, caplog):
    checkpoint = finetune(tmp_path, "task.tokenizer=word", "task.pooling=mean")
    with pytest.raises(RnnzooError, match="tokenizer is word: only a WordPiece vocabulary"):
        export(export_config(checkpoint, tmp_path / "hf"))
    assert "task.pooling=mean" in caplog.text and not (tmp_path / "hf").exists()  # nothing written
    run = tmp_path / "lstm"
    api.train(compose_config([*TINY_CLASSIFICATION, *labeled_files(tmp_path)]), run)
    with pytest.raises(RnnzooError, match="is a 'lstm' run: format=hf exports bert checkpoints only"):
        export(export_config(run / "checkpoints" / "best.pt", tmp_path / "x"))


def test_bpe_has_no_vocab_txt_and_pre_ln_no_bert_folder(tmp_path):
    bpe = Tokenizer.train("bpe", [" ".join(labeled_lines(50, 1))], vocab_size=300)
    model = api.create_model("bert", vocab_size=len(bpe), hidden_size=16, num_heads=2, num_layers=1)
    with pytest.raises(RnnzooError, match="tokenizer is bpe: .*no folder was written"):
        save_hf(model, tmp_path / "bpe", bpe)
    pre = api.create_model("bert", vocab_size=60, hidden_size=16, num_heads=2, num_layers=1, norm="pre")
    with pytest.raises(RnnzooError, match="model.norm=pre: Hugging Face's BERT is post-LN"):
        save_hf(pre, tmp_path / "pre")
    assert not (tmp_path / "bpe").exists() and not (tmp_path / "pre").exists()


def test_without_transformers_the_check_says_it_was_skipped(tmp_path, monkeypatch, caplog):
    model = api.create_model("bert", vocab_size=60, hidden_size=16, num_heads=2, num_layers=1)
    folder = save_hf(model, tmp_path / "hf")
    monkeypatch.setitem(sys.modules, "transformers", None)  # `import transformers` fails
    assert check_folder(folder, model) is None and "check skipped: transformers is not installed" in caplog.text
