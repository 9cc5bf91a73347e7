"""The trainer through `rnnzoo.api.train`: resume equality, checkpoints, TBPTT, NaN, Ctrl-C, budgets."""

from __future__ import annotations

import json
import logging
import math

import pytest
import torch

from rnnzoo.api import evaluate, train
from rnnzoo.errors import CheckpointError, IncompatibleError, RnnzooError
from rnnzoo.tasks.copy import CopyTask
from rnnzoo.training.checkpoint import FORMAT_VERSION, load_checkpoint_file, save_checkpoint
from rnnzoo.training.trainer import RunDiverged, TrainingError

from .conftest import TINY_ADDING, TINY_COPY, compose_config


def history(run_dir) -> list[list[float]]:
    return load_checkpoint_file(run_dir / "checkpoints" / "last.pt")["history"]


def test_run_folder_has_everything(tmp_path):
    final = train(compose_config(TINY_COPY), tmp_path)
    assert (tmp_path / "checkpoints" / "last.pt").is_file()
    assert (tmp_path / "checkpoints" / "best.pt").is_file()
    assert list((tmp_path / "tb").glob("events.out.tfevents.*"))
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved == pytest.approx(final)
    assert {"val/recall_accuracy", "test/loss", "test/baseline_loss", "train/steps"} <= set(saved)
    assert saved["train/steps"] == 6


def test_checkpoint_loads_with_weights_only(tmp_path):
    train(compose_config(TINY_COPY), tmp_path)
    payload = torch.load(tmp_path / "checkpoints" / "best.pt", map_location="cpu", weights_only=True)
    assert payload["rnnzoo_format"] == FORMAT_VERSION
    assert payload["config"]["model"]["name"] == "lstm"
    assert {"model", "optimizer", "scheduler", "rng", "step", "epoch", "best_metric", "task"} <= set(payload)


def interrupt_training_at(monkeypatch, call: int) -> None:
    """Raise KeyboardInterrupt (Ctrl-C) at the `call`-th training step of the copy task."""
    real_step = CopyTask.step
    calls = {"n": 0}

    def step(self, network, batch, state=None):
        if network.training:
            calls["n"] += 1
            if calls["n"] == call:
                raise KeyboardInterrupt
        return real_step(self, network, batch, state)

    monkeypatch.setattr(CopyTask, "step", step)


@pytest.mark.parametrize("extra", [[], ["model.dropout=0.3", "model.num_layers=2"],
                                   ["trainer.schedule=warmup_cosine", "trainer.warmup_steps=3"]])
def test_resume_continues_the_same_loss_curve(tmp_path, monkeypatch, extra):
    """N steps, Ctrl-C, resume, N steps: the losses of 2N steps uninterrupted (dropout included)."""
    config = [*TINY_COPY, "trainer.max_steps=8", "trainer.eval_every=4", "task.batches_per_epoch=5", *extra]
    train(compose_config(config), tmp_path / "whole")
    with monkeypatch.context() as patch:
        interrupt_training_at(patch, 5)
        with pytest.raises(KeyboardInterrupt):
            train(compose_config(config), tmp_path / "first")
    assert load_checkpoint_file(tmp_path / "first" / "checkpoints" / "last.pt")["step"] == 4
    resumed = [*config, f"resume={tmp_path / 'first' / 'checkpoints' / 'last.pt'}"]
    train(compose_config(resumed), tmp_path / "second")
    whole, second = history(tmp_path / "whole"), history(tmp_path / "second")
    assert [s for s, _ in second] == list(range(1, 9))
    assert [loss for _, loss in second] == pytest.approx([loss for _, loss in whole], rel=1e-6, abs=1e-7)


def test_eval_reproduces_the_final_metrics(tmp_path):
    final = train(compose_config(TINY_COPY), tmp_path / "run")
    metrics = evaluate({"checkpoint": str(tmp_path / "run" / "checkpoints" / "best.pt"), "split": "test",
                        "trainer": {"device": "cpu"}}, tmp_path / "eval")
    assert metrics == {k: v for k, v in final.items() if k.startswith("test/")}
    assert json.loads((tmp_path / "eval" / "metrics.json").read_text()) == metrics


def test_the_inference_verbs_take_trainer_num_threads(tmp_path):
    for verb in ("eval", "predict", "sample", "translate"):  # Hydra refuses a key its config lacks
        assert compose_config(["checkpoint=x.pt", "trainer.num_threads=2"], name=verb).trainer.num_threads == 2
    train(compose_config(TINY_COPY), tmp_path / "run")
    try:  # all four load their checkpoint through the same function
        evaluate({"checkpoint": str(tmp_path / "run" / "checkpoints" / "best.pt"), "trainer": {"num_threads": 2}})
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(1)


def test_truncated_bptt_cuts_windows_and_trains(tmp_path):
    final = train(compose_config([*TINY_COPY, "trainer.tbptt_steps=4"]), tmp_path)
    # copy sequences have 2*3+2 = 8 steps: two windows per batch, so 6 batches give >= 6 steps
    assert final["train/steps"] >= 6


def test_tbptt_windows_without_targets_are_skipped(tmp_path):
    """Adding: only the last step has a target, so only the last window makes a step."""
    final = train(compose_config([*TINY_ADDING, "trainer.tbptt_steps=3", "trainer.max_steps=4"]), tmp_path)
    assert final["train/steps"] == 4
    assert load_checkpoint_file(tmp_path / "checkpoints" / "last.pt")["batch_in_epoch"] == 4


def test_tbptt_needs_a_stateful_model(tmp_path):
    with pytest.raises(IncompatibleError, match="tbptt_steps needs a model that carries its state"):
        train(compose_config([*TINY_COPY, "trainer.tbptt_steps=4", "model.bidirectional=true"]), tmp_path)


def test_gradient_accumulation_counts_optimizer_steps(tmp_path):
    final = train(compose_config([*TINY_COPY, "trainer.accumulate=2", "trainer.max_steps=3"]), tmp_path)
    assert final["train/steps"] == 3
    assert load_checkpoint_file(tmp_path / "checkpoints" / "last.pt")["batch_in_epoch"] == 6


def make_second_batch_nan(monkeypatch) -> None:
    real_step = CopyTask.step
    calls = {"n": 0}

    def sometimes_nan(self, network, batch, state=None):
        out = real_step(self, network, batch, state)
        if network.training:
            calls["n"] += 1
            if calls["n"] == 2:
                out.loss = out.loss * float("nan")
        return out

    monkeypatch.setattr(CopyTask, "step", sometimes_nan)


def test_nan_loss_stops_naming_the_step(tmp_path, monkeypatch):
    make_second_batch_nan(monkeypatch)
    with pytest.raises(TrainingError, match="loss is nan at step 2"):
        train(compose_config(TINY_COPY), tmp_path)


def test_nan_loss_can_skip_batches(tmp_path, monkeypatch):
    make_second_batch_nan(monkeypatch)
    final = train(compose_config([*TINY_COPY, "trainer.on_nan=skip", "trainer.max_steps=4"]), tmp_path)
    assert final["train/steps"] == 4
    assert load_checkpoint_file(tmp_path / "checkpoints" / "last.pt")["batch_in_epoch"] == 5


def test_skipping_ends_training_when_every_batch_is_nan(tmp_path, monkeypatch, caplog):
    real_step = CopyTask.step

    def always_nan(self, network, batch, state=None):
        out = real_step(self, network, batch, state)
        out.loss = out.loss * float("nan")
        return out

    monkeypatch.setattr(CopyTask, "step", always_nan)
    monkeypatch.setattr("rnnzoo.training.trainer.MAX_SKIPPED_IN_A_ROW", 3)
    with caplog.at_level(logging.ERROR, logger="rnnzoo"):  # without the limit: an endless loop
        with pytest.raises(RunDiverged, match="training diverged") as diverged:
            train(compose_config([*TINY_COPY, "trainer.on_nan=skip", "trainer.max_steps=4"]), tmp_path)
    final = diverged.value.metrics
    assert final["train/steps"] == 0 and "val/loss" in final  # ends unsolved, and still evaluated
    assert json.loads((tmp_path / "metrics.json").read_text())["diverged"] is True  # strict JSON: NaN is null
    assert load_checkpoint_file(tmp_path / "checkpoints" / "last.pt")["batch_in_epoch"] == 3
    assert "the loss was nan for 3 batches in a row at step 1 (diverged" in caplog.text


def test_ctrl_c_saves_last_checkpoint(tmp_path, monkeypatch):
    interrupt_training_at(monkeypatch, 5)
    with pytest.raises(KeyboardInterrupt):
        train(compose_config([*TINY_COPY, "trainer.eval_every=100"]), tmp_path)
    assert load_checkpoint_file(tmp_path / "checkpoints" / "last.pt")["step"] == 4


def test_target_stops_early(tmp_path):
    final = train(compose_config([*TINY_COPY, "task.target=0.0", "trainer.max_steps=50"]), tmp_path)
    assert final["train/steps"] == 3  # the first evaluation already reaches recall accuracy >= 0


def test_max_epochs_and_max_time_budgets(tmp_path):
    final = train(compose_config([*TINY_COPY, "trainer.max_steps=null", "trainer.max_epochs=2",
                                  "task.batches_per_epoch=3"]), tmp_path / "epochs")
    assert final["train/steps"] == 6
    final = train(compose_config([*TINY_COPY, "trainer.max_steps=null", "trainer.max_time=0.5"]), tmp_path / "time")
    assert final["train/steps"] >= 1


@pytest.mark.parametrize("optimizer,schedule", [("sgd", "step"), ("adamw", "plateau"), ("adam", "warmup_cosine")])
def test_optimizers_and_schedules_run(tmp_path, optimizer, schedule):
    final = train(compose_config([*TINY_COPY, f"trainer.optimizer={optimizer}", f"trainer.schedule={schedule}",
                                  "trainer.clip_mode=value"]), tmp_path)
    assert final["train/steps"] == 6


@pytest.mark.parametrize("override,message", [
    ("trainer.optimizer=rmsprop", "trainer.optimizer='rmsprop' is not one of: adam, adamw, sgd"),
    ("trainer.lr=-1", "trainer.lr=-1.0 is out of range: must be > 0"),
    ("trainer.device=tpu", "trainer.device='tpu' is not a device"),
    ("trainer.device=cuda", "CUDA is not available"),
    ("task.delay=0", "task.delay=0 is out of range: must be >= 1"),
    ("model.init=magic", "init must be default or chrono"),
])
def test_bad_values_are_user_errors(tmp_path, override, message):
    if "cuda" in override and torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    with pytest.raises(RnnzooError, match=message.replace("(", r"\(").replace(")", r"\)")):
        train(compose_config([*TINY_COPY, override]), tmp_path)


def test_resume_from_a_missing_file_is_a_user_error(tmp_path):
    with pytest.raises(CheckpointError, match="checkpoint not found"):
        train(compose_config([*TINY_COPY, f"resume={tmp_path / 'nope.pt'}"]), tmp_path)


def test_checkpoint_errors(tmp_path):
    train(compose_config(TINY_COPY), tmp_path / "run")
    good = tmp_path / "run" / "checkpoints" / "best.pt"
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[:500])
    foreign = tmp_path / "foreign.pt"
    torch.save({"state_dict": {}}, foreign)
    newer = tmp_path / "newer.pt"
    payload = load_checkpoint_file(good)
    payload.pop("rnnzoo_format")
    save_checkpoint(payload, newer)
    raw = torch.load(newer, weights_only=True)
    raw["rnnzoo_format"] = FORMAT_VERSION + 1
    torch.save(raw, newer)
    for path, message in [(tmp_path / "missing.pt", "not found"), (truncated, "truncated or corrupt"),
                          (foreign, "not an rnnzoo checkpoint"), (newer, "newer than this rnnzoo reads")]:
        with pytest.raises(CheckpointError, match=message):
            load_checkpoint_file(path)


def test_atomic_save_keeps_the_old_file_when_writing_fails(tmp_path, monkeypatch):
    path = save_checkpoint({"x": torch.ones(2)}, tmp_path / "c.pt")

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken)
    with pytest.raises(CheckpointError, match=f"cannot write the checkpoint {path}: disk full"):  # one line
        save_checkpoint({"x": torch.zeros(2)}, path)
    assert torch.equal(torch.load(path, weights_only=True)["x"], torch.ones(2))


def test_gradient_probe_records_dl_dh_without_disturbing_training(tmp_path):
    config = [*TINY_ADDING, "model.dropout=0.2", "model.num_layers=2"]
    train(compose_config(config), tmp_path / "plain")
    train(compose_config([*config, "trainer.grad_probe_every=3"]), tmp_path / "probed")
    assert history(tmp_path / "probed") == history(tmp_path / "plain")
    records = [json.loads(line) for line in (tmp_path / "probed" / "grad_probe.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [3, 6]
    norms = records[0]["norms"]
    assert len(norms) == 8  # one per time step
    assert norms[-1] > 0 and norms[0] > 0  # the recurrence carries gradient back to t = 0
    assert norms[-1] > norms[0]  # ...and it shrinks on the way


def test_gradient_probe_needs_a_recurrent_model(tmp_path):
    from rnnzoo.training.diagnostics import GradientProbe
    with pytest.raises(RnnzooError, match="needs a recurrent model"):
        GradientProbe(None, None, tmp_path, torch.nn.Linear(2, 2))


def test_gradient_probe_norms_survive_float32_underflow():
    from rnnzoo.training.diagnostics import gradient_norm
    vanished = torch.full((64,), 1e-25)  # float32 holds each entry, but not its square
    assert float(vanished.norm()) == 0.0 and gradient_norm(vanished) == pytest.approx(8e-25, rel=1e-6)
    assert gradient_norm(None) == 0.0


def test_adding_predicts_the_sum_of_marked_numbers(tmp_path):
    from rnnzoo.api import predict
    train(compose_config(TINY_ADDING), tmp_path)
    config = {"checkpoint": str(tmp_path / "checkpoints" / "best.pt"), "trainer": {"device": "cpu"}}
    outputs = list(predict(config, ["0.1 0.5* 0.2 0.3 0.9 0.4* 0.1 0.2"]))
    assert len(outputs) == 1 and math.isfinite(float(outputs[0]))  # a number, one per line
    with pytest.raises(RnnzooError, match="input line 1: expected numbers with exactly two marked"):
        list(predict(config, ["0.1 0.2 0.3"]))


def test_adamw_decays_matrices_but_not_biases_or_norm_gains():
    from rnnzoo.training.config import TrainerConfig
    from rnnzoo.training.optim import build_optimizer
    network = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.LayerNorm(4))
    optimizer = build_optimizer(network.parameters(), TrainerConfig(optimizer="adamw", weight_decay=0.1))
    decay = {id(p): group["weight_decay"] for group in optimizer.param_groups for p in group["params"]}
    assert decay[id(network[0].weight)] == 0.1
    assert decay[id(network[0].bias)] == decay[id(network[1].weight)] == decay[id(network[1].bias)] == 0.0


def test_every_training_step_runs_in_training_mode_after_the_evaluations(tmp_path, monkeypatch):
    """The trainer switches back to train() after each evaluation (which leaves the network in eval mode)."""
    modes: list[bool] = []
    real = CopyTask.build_network

    def build_network(self, body):
        network = real(self, body)
        network.head.register_forward_hook(lambda module, inputs, output: modes.append(module.training))
        return network

    monkeypatch.setattr(CopyTask, "build_network", build_network)
    train(compose_config(TINY_COPY), tmp_path)  # 6 steps, evaluating after steps 3 and 6
    assert modes.count(True) == 6 and False in modes[3:modes.index(True, 3)]


def test_freeze_leaves_the_named_parameters_as_they_started(tmp_path):
    frozen = "trainer.freeze=[body.rnn.weight_hh_l0,head]"
    weights = [load_checkpoint_file(tmp_path / name / "checkpoints" / "last.pt")["model"]
               for name in ("short", "long")
               if train(compose_config([*TINY_COPY, frozen, f"trainer.max_steps={3 if name == 'short' else 6}"]),
                        tmp_path / name)]
    for name in ("body.rnn.weight_hh_l0", "head.weight", "head.bias"):
        assert weights[0][name].equal(weights[1][name]), name
    assert not weights[0]["body.rnn.weight_ih_l0"].equal(weights[1]["body.rnn.weight_ih_l0"])  # still trains


def test_freeze_of_a_name_that_matches_nothing_lists_the_parts(tmp_path):
    with pytest.raises(RnnzooError, match=r"trainer.freeze: no parameter is named 'body.rn'.*parts: body.rnn, head$"):
        train(compose_config([*TINY_COPY, "trainer.freeze=[body.rn]"]), tmp_path)
