"""The translation task: batches, loss, decoding for validation, and the CLI from train to translate."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from rnnzoo.api import build, plain, train
from rnnzoo.data import ParallelPair
from rnnzoo.errors import RnnzooError

from .conftest import DATA_DIR, compose_config, run_cli

TINY_TRANSLATION = ["task=translation", "trainer.max_steps=6", "trainer.eval_every=3", "trainer.progress=false",
                    "model.hidden_size=16", "model.embedding_dim=8", "task.batch_size=8", "task.eval_batch_size=16",
                    "dataset.train_size=64", "dataset.val_size=16", "dataset.test_size=16"]


def tiny(*overrides: str, dataset: str = "reversal", model: str = "bahdanau") -> dict:
    return plain(compose_config([*TINY_TRANSLATION, f"dataset={dataset}", f"model={model}", *overrides]))


def test_batches_frame_targets_with_bos_and_eos():
    task, network, _ = build(tiny())
    batch = next(task.train_batches(0))
    bos, eos = task.specials["<bos>"], task.specials["<eos>"]
    assert torch.all(batch.target_in[:, 0] == bos)
    lengths = batch.mask.sum(1)
    assert torch.all(batch.target_out[torch.arange(len(lengths)), lengths - 1] == eos)
    # target_in shifted by one is target_out, where both are real tokens
    assert torch.equal(batch.target_in[:, 1:][batch.mask[:, 1:]], batch.target_out[:, :-1][batch.mask[:, 1:]])
    assert network.source_vocab_size == len(task.source_tokenizer)


def test_reversal_sources_and_targets_share_symbols_but_not_vocabularies_unless_asked():
    task, _, _ = build(tiny())
    assert task.source_tokenizer is not task.tokenizer
    shared, _, _ = build(tiny("task.shared_vocab=true"))
    assert shared.source_tokenizer is shared.tokenizer


def test_label_smoothing_raises_the_training_loss_but_not_the_reported_nll():
    task, network, _ = build(tiny())
    smooth_task, _, _ = build(tiny("task.label_smoothing=0.2"))
    batch = next(task.train_batches(0))
    network.train()
    torch.manual_seed(0)
    plain_out = task.step(network, batch, None)
    torch.manual_seed(0)
    smooth_out = smooth_task.step(network, batch, None)
    assert torch.equal(plain_out.stats["loss_sum"], smooth_out.stats["loss_sum"])
    assert not torch.equal(plain_out.loss, smooth_out.loss)


def test_scheduled_sampling_with_full_teacher_forcing_equals_teacher_forcing():
    task, network, _ = build(tiny("model.dropout=0"))
    batch = next(task.train_batches(0))
    network.train()
    forced, _ = network(batch.source, batch.source_lengths, batch.target_in)
    task.config.teacher_forcing = 1.0
    torch.testing.assert_close(task.scheduled_sampling(network, batch), forced, rtol=1e-5, atol=1e-5)
    task.config.teacher_forcing = 0.0  # fed its own argmax: different logits after step 1
    assert not torch.allclose(task.scheduled_sampling(network, batch), forced)


def test_evaluation_reports_bleu_chrf_exact_and_monitors_exact_on_generated_sets():
    task, network, _ = build(tiny())
    metrics = task.evaluate(network, "val", torch.device("cpu"))
    assert {"loss", "ppl", "accuracy", "bleu", "chrf", "exact"} <= set(metrics)
    assert task.monitor == "exact" and task.monitor_mode == "max"


def test_incompatible_models_and_options_fail_before_training():
    with pytest.raises(RnnzooError, match="cannot serve task 'translation'.*seq2seq"):
        build(plain(compose_config(["task=translation", "model=lstm", "dataset=reversal", "dataset.train_size=64"])))
    with pytest.raises(RnnzooError, match="cannot read dataset 'tinyshakespeare'"):
        build(plain(compose_config(["task=translation", "model=bahdanau", "dataset=tinyshakespeare"])))
    with pytest.raises(RnnzooError, match="beam_size"):
        build(tiny("task.beam_size=0"))
    with pytest.raises(RnnzooError, match="monitor"):
        build(tiny("task.monitor=rouge"))


@pytest.mark.parametrize("model,extra", [("seq2seq", []), ("seq2seq", ["model.form=sutskever"]),
                                         ("bahdanau", ["task.teacher_forcing=0.5", "task.beam_size=3"])])
def test_each_model_trains_and_reloads(tmp_path, model, extra):
    final = train(compose_config([*TINY_TRANSLATION, f"model={model}", *extra]), tmp_path)
    assert {"test/bleu", "test/exact", "test/loss"} <= set(final)
    assert (tmp_path / "checkpoints" / "best.pt").exists()


def test_cli_train_eval_translate_from_the_checkpoint_alone(tmp_path):
    done = run_cli("train", *TINY_TRANSLATION, "dataset=sorting", f"hydra.run.dir={tmp_path}/run", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    checkpoint = tmp_path / "run" / "checkpoints" / "best.pt"
    evaluated = run_cli("eval", f"checkpoint={checkpoint}", f"hydra.run.dir={tmp_path}/eval", cwd=tmp_path)
    assert evaluated.returncode == 0, evaluated.stderr
    assert "test/bleu" in evaluated.stdout and "test/exact" in evaluated.stdout
    beamed = run_cli("eval", f"checkpoint={checkpoint}", "beam_size=3", f"hydra.run.dir={tmp_path}/eval3", cwd=tmp_path)
    assert beamed.returncode == 0 and "test/bleu" in beamed.stdout, beamed.stderr
    source = tmp_path / "source.txt"
    source.write_text("c a b\n\nd d a\n")
    translated = run_cli("translate", f"checkpoint={checkpoint}", f"input={source}", "beam_size=2", cwd=tmp_path)
    assert translated.returncode == 0, translated.stderr
    lines = translated.stdout.split("\n")
    assert len(lines) == 4 and lines[1] == ""  # one output per input line (the empty one kept), then the end
    aligned = run_cli("translate", f"checkpoint={checkpoint}", f"input={source}", "alignment=true", cwd=tmp_path)
    assert aligned.returncode == 0, aligned.stderr
    assert "<-" in aligned.stdout and "(" in aligned.stdout
    predicted = run_cli("predict", f"checkpoint={checkpoint}", f"input={source}", cwd=tmp_path)
    assert predicted.returncode == 0, predicted.stderr
    assert predicted.stdout.split("\n")[0] == aligned.stdout.split("\n")[0]  # both greedy (the task's beam 1)
    bad = run_cli("translate", f"checkpoint={checkpoint}", f"input={source}", "beam_size=0", cwd=tmp_path)
    assert bad.returncode == 2 and "beam_size must be >= 1" in bad.stderr


def test_translate_refuses_other_tasks(tmp_path):
    done = run_cli("train", "task=copy", "trainer.max_steps=2", "trainer.eval_every=2", "trainer.progress=false",
                   "model.hidden_size=8", "task.eval_examples=8", f"hydra.run.dir={tmp_path}/run", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    refused = run_cli("translate", f"checkpoint={tmp_path}/run/checkpoints/last.pt", cwd=tmp_path)
    assert refused.returncode == 2 and "translate needs task=translation" in refused.stderr


def test_parallel_files_train_from_tab_separated_lines(tmp_path):
    pairs = [("ein hund", "a dog"), ("eine katze", "a cat"), ("ein mann", "a man"), ("eine frau", "a woman")]
    for split in ("train", "val", "test"):
        (tmp_path / f"{split}.tsv").write_text("".join(f"{s}\t{t}\n" for s, t in pairs))
    overrides = [o for o in TINY_TRANSLATION if not o.startswith("dataset.")]
    config = compose_config([*overrides, "dataset=parallel_files", f"dataset.train={tmp_path}/train.tsv",
                             f"dataset.valid={tmp_path}/val.tsv", f"dataset.test={tmp_path}/test.tsv"])
    task, _, _ = build(plain(config))
    assert task.monitor == "bleu"
    assert task.encode(ParallelPair("ein hund", "a dog"))[2] == "a dog"


@pytest.mark.skipif(not (DATA_DIR / "multi30k").is_dir(), reason=f"needs {DATA_DIR}/multi30k")
def test_multi30k_reads_german_to_english_with_subwords():
    config = compose_config([*[o for o in TINY_TRANSLATION if not o.startswith("dataset.")], "dataset=multi30k",
                             "task.tokenizer=bpe", "task.vocab_size=1000"])
    task, network, _ = build(plain(config))
    assert len(task.load("train")) == 29000 and len(task.load("val")) == 1014
    assert network.source_vocab_size == len(task.source_tokenizer) <= 1000
    assert task.tokenizer.decode(task.encode(task.load("val")[0])[1]) == task.load("val")[0].target


def test_length_experiment_scores_checkpoints_by_source_length(tmp_path):
    import importlib.util
    script = Path(__file__).resolve().parent.parent / "scripts" / "length_experiment.py"
    spec = importlib.util.spec_from_file_location("length_experiment", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    train(compose_config([*TINY_TRANSLATION, "dataset=reversal"]), tmp_path / "run")
    checkpoint = tmp_path / "run" / "checkpoints" / "best.pt"
    out = tmp_path / "length.png"
    module.main(["--run", f"tiny={checkpoint}", "--lengths", "3", "7", "--size", "5", "--out", str(out)])
    assert out.stat().st_size > 0
    table = out.with_suffix(".md").read_text()
    assert "| source length | 3 | 7 |" in table and "tiny (exact match (%))" in table


def test_tensorboard_gets_sample_translations_and_attention_heatmaps(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    train(compose_config([*TINY_TRANSLATION, "task.samples=2"]), tmp_path)
    events = EventAccumulator(str(tmp_path / "tb"), size_guidance={"images": 0, "tensors": 0})
    events.Reload()
    assert {"attention/0", "attention/1"} <= set(events.Tags()["images"])
    assert any(tag.startswith("translations") for tag in events.Tags()["tensors"])


def test_alignment_pieces_read_as_text_for_byte_level_bpe():
    from rnnzoo.data import Tokenizer
    from rnnzoo.tasks.translation import pieces
    tokenizer = Tokenizer.train("bpe", ["der mann fährt fahrrad", "die frau fährt auto"] * 20, vocab_size=300)
    ids = tokenizer.encode("der mann fährt")
    assert "".join(pieces(tokenizer, ids)).replace(" ", "") == "dermannfährt"
    assert not any(p.startswith("Ġ") for p in pieces(tokenizer, ids))
