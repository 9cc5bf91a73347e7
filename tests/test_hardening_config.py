"""Issue 16, groups 4 and 7: every numeric option is checked against its declared range once,
where its config is made; bad verb options and binary input are one line; a model with a
shape that fits a task gets it; the progress bar and TensorBoard show what a user needs."""

from __future__ import annotations

import dataclasses
import math
import re

import pytest
from omegaconf import OmegaConf

from rnnzoo import api
from rnnzoo.cli import _input_lines
from rnnzoo.decoding import SampleOptions
from rnnzoo.errors import IncompatibleError, RnnzooError
from rnnzoo.listing import options, overview
from rnnzoo.models.traits import Fit, find_fit
from rnnzoo.registry import DATASETS, MODELS, TASKS, Range, field_range, help_field, typed
from rnnzoo.training.config import TrainerConfig

from .conftest import TINY_COPY, compose_config, run_cli

api._load_registries()


def numeric(config_field: dataclasses.Field) -> bool:
    return str(config_field.type).split(" |")[0] in ("int", "float")


def every_config() -> list[tuple[str, type]]:
    configs = [("trainer", TrainerConfig), ("sample", SampleOptions)]
    for registry in (MODELS, TASKS, DATASETS):
        configs += [(f"{registry.kind} {entry.name}", entry.config) for entry in registry if entry.config]
    return configs


# --- every numeric option declares its range ----------------------------------------------
@pytest.mark.parametrize("where, config", every_config(), ids=lambda v: v if isinstance(v, str) else "")
def test_every_numeric_option_has_a_range(where, config):
    missing = [f.name for f in dataclasses.fields(config) if numeric(f) and field_range(f) is None]
    assert not missing, (f"{where}: give {', '.join(missing)} a range: "
                         "help_field(..., ge=/gt=/le=/lt= or unbounded=True)")


@pytest.mark.parametrize("where, config", every_config(), ids=lambda v: v if isinstance(v, str) else "")
def test_every_default_is_in_its_range(where, config):
    typed(config, {}, where)  # raises on a default outside its own range


@pytest.mark.parametrize("allowed, text, inside, outside", [
    (Range(ge=0, lt=1), "in [0, 1)", [0, 0.5], [1, -0.1, math.nan, math.inf]),
    (Range(gt=0, le=1), "in (0, 1]", [1, 1e-9], [0, 1.5]),
    (Range(ge=1), ">= 1", [1, 10**9], [0, -1, True]),
    (Range(gt=0), "> 0", [1e-6], [0, -math.inf]),
    (Range(le=2), "<= 2", [-5, 2], [3]),
    (Range(), "any number", [-1e30, 0, 7], [math.nan, "7"]),
])
def test_range_text_and_membership(allowed, text, inside, outside):
    assert str(allowed) == text
    assert all(value in allowed for value in inside)
    assert not any(value in allowed for value in outside)


def test_a_field_without_a_range_is_caught():
    @dataclasses.dataclass
    class Forgetful:
        width: int = help_field(4, "how wide")
        rate: float = help_field(0.5, "how fast", gt=0, le=1)

    assert [f.name for f in dataclasses.fields(Forgetful) if field_range(f) is None] == ["width"]
    with pytest.raises(RnnzooError, match=re.escape("toy.rate=2.0 is out of range: must be in (0, 1]")):
        typed(Forgetful, {"rate": 2}, "toy")


# --- out of range: one line naming the key, the value and the range, before any work -------
@pytest.mark.parametrize("overrides, message", [
    (["model.dropout=1.5"], "model.dropout=1.5 is out of range: must be in [0, 1)"),
    (["model.hidden_size=0"], "model.hidden_size=0 is out of range: must be >= 1"),
    (["task.batch_size=0"], "task.batch_size=0 is out of range: must be >= 1"),
    (["task.batch_size=-1"], "task.batch_size=-1 is out of range: must be >= 1"),
    (["task.eval_examples=0"], "task.eval_examples=0 is out of range: must be >= 1"),
    (["task.target=1.5"], "task.target=1.5 is out of range: must be in [0, 1] or null"),
    (["trainer.max_steps=0"], "trainer.max_steps=0 is out of range: must be >= 1 or null"),
    (["trainer.lr=nan"], "trainer.lr=nan is out of range: must be > 0"),
    (["trainer.gamma=2"], "trainer.gamma=2.0 is out of range: must be in (0, 1]"),
])
def test_out_of_range_copy_options_fail_before_any_work(overrides, message):
    with pytest.raises(RnnzooError, match=re.escape(message)):
        api.build(api.plain(compose_config([*TINY_COPY, *overrides])))


@pytest.mark.parametrize("overrides, message", [
    (["task=adding", "task.batch_size=0"], "task.batch_size=0 is out of range: must be >= 1"),
    (["task=adding", "task.batch_size=-1"], "task.batch_size=-1 is out of range: must be >= 1"),
    (["task=adding", "task.length=1"], "task.length=1 is out of range: must be >= 2"),
    (["task=adding", "model=transformer", "model.dropout=1"], "model.dropout=1.0 is out of range: must be in [0, 1)"),
    (["task=adding", "model=jordan", "model.state_decay=-0.1"],
     "model.state_decay=-0.1 is out of range: must be in [0, 1]"),
    (["task=associative", "model=hopfield", "task.flip_fraction=0.6"],
     "task.flip_fraction=0.6 is out of range: must be in [0, 0.5]"),
    (["task=translation", "dataset=reversal", "dataset.alphabet=0"],
     "dataset.alphabet=0 is out of range: must be in [1, 286]"),
    (["task=translation", "dataset=multi30k", "dataset.valid_fraction=1"],
     "dataset.valid_fraction=1.0 is out of range: must be in (0, 1)"),
])
def test_out_of_range_options_of_other_models_tasks_and_datasets(overrides, message):
    with pytest.raises(RnnzooError, match=re.escape(message)):
        api.build(api.plain(compose_config(overrides)))


def test_create_model_names_the_option():
    with pytest.raises(RnnzooError, match=re.escape("model 'lstm': dropout=1.5 is out of range: must be in [0, 1)")):
        api.create_model("lstm", dropout=1.5)


@pytest.mark.parametrize("override, message", [
    ("model.dropout=1.5", "error: model.dropout=1.5 is out of range: must be in [0, 1)"),
    ("task.batch_size=0", "error: task.batch_size=0 is out of range: must be >= 1"),
])
def test_the_command_line_prints_one_line(tmp_path, override, message):
    result = run_cli("train", *TINY_COPY, override, f"hydra.run.dir={tmp_path / 'run'}", timeout=60)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert [line for line in result.stderr.splitlines() if line.startswith("error: ")] == [message]
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_list_shows_each_options_range():
    listed = options("model.", MODELS.entry("lstm").config)
    assert re.search(r"model\.dropout\s+float\s+0\.0\s+in \[0, 1\)", listed), listed
    assert re.search(r"model\.forget_bias\s+float\s+1\.0\s+any number", listed), listed
    assert re.search(r"trainer\.max_steps\s+int \| None\s+5000\s+>= 1 or null", options("trainer", TrainerConfig))


# --- the verbs' own options and input ------------------------------------------------------
@pytest.mark.parametrize("values, message", [
    ({"top_k": 0}, "top_k=0 is out of range: must be >= 1 or null"),
    ({"top_k": -3}, "top_k=-3 is out of range: must be >= 1 or null"),
    ({"top_p": 0}, "top_p=0.0 is out of range: must be in (0, 1] or null"),
    ({"top_p": 1.5}, "top_p=1.5 is out of range: must be in (0, 1] or null"),
    ({"temperature": -1}, "temperature=-1.0 is out of range: must be >= 0"),
    ({"max_new_tokens": 0}, "max_new_tokens=0 is out of range: must be >= 1"),
])
def test_sample_options_are_checked_before_the_checkpoint_is_read(values, message):
    config = {"checkpoint": "/nonexistent/best.pt", "prompt": "", **values}
    with pytest.raises(RnnzooError, match="^" + re.escape(message) + "$"):
        next(api.sample(config))


@pytest.mark.parametrize("content, message", [
    (b"\x7fELF\x02\x01\x01\x00\x00\x00\xff\xfe\x00\x00", "is not UTF-8 text (a binary file?)"),
    (b"1 2 3\n\x00\x01\x02\n", "is not a text file: line 2 holds a NUL byte"),
])
def test_binary_input_is_one_error_naming_the_file(tmp_path, content, message):
    path = tmp_path / "input.bin"
    path.write_bytes(content)
    with pytest.raises(RnnzooError, match=re.escape(f"input={path} {message}")):
        list(_input_lines(OmegaConf.create({"input": str(path)})))


def test_text_input_reads_every_line(tmp_path):
    path = tmp_path / "input.txt"
    path.write_text("1 2 3\nä ö\n", encoding="utf-8")
    assert list(_input_lines(OmegaConf.create({"input": str(path)}))) == ["1 2 3\n", "ä ö\n"]


# --- a model whose other shape fits the task gets it -----------------------------------------
@pytest.mark.parametrize("task, model, fit", [
    ("translation", "transformer", Fit()),  # its default shape fits: it stays
    ("generation", "transformer", Fit({"shape": "decoder"}, {"sampling": "random"})),
    ("tagging", "transformer", Fit({"shape": "encoder"})),  # reads both ways, not the causal decoder
    ("classification", "transformer", Fit({"shape": "encoder"})),
    ("generation", "lstm", Fit()),
    ("associative", "transformer", None),
    ("translation", "lstm", None),
])
def test_find_fit(task, model, fit):
    assert find_fit(task, model) == fit


@pytest.mark.parametrize("task, shape", [("copy", "encoder"), ("adding", "encoder")])
def test_a_shape_left_at_its_default_is_changed_to_one_that_fits(task, shape, caplog):
    config = api.plain(compose_config([f"task={task}", "model=transformer", "model.d_model=8", "model.num_heads=2",
                                       "model.num_layers=1", "task.eval_examples=8"]))
    _task, network, _ = api.build(config)
    assert type(network.body).__name__ == "TransformerEncoder"
    assert config["model"]["shape"] == shape  # what the run's checkpoints keep
    assert f"only with model.shape={shape}" in caplog.text


@pytest.mark.parametrize("overrides, message", [
    # the model's shape alone cannot do it: the task's own option is the user's to change
    ([], "Models that fit: elman, gru, jordan, lstm, transformer (model.shape=decoder task.sampling=random)"),
    (["model.shape=encoder"], "transformer (model.shape=decoder task.sampling=random)"),  # a chosen shape stays
    (["model.shape=decoder", "task.sampling=streams"], "must be stateful"),
])
def test_where_no_shape_alone_fits_the_refusal_gives_the_overrides_that_do(overrides, message):
    config = api.plain(compose_config(["model=transformer", "task=generation", *overrides,
                                       "dataset=text_files", "dataset.train=never-read.txt"]))
    with pytest.raises(IncompatibleError, match=re.escape(message)):
        api.build(config)


def test_list_and_errors_show_the_transformer_under_every_task_a_shape_serves():
    listed = overview()
    row = [line.split() for line in listed.splitlines() if line.strip().startswith("transformer ")][-1]
    assert row[1:] == ["*", "-", "*", "*", "*", "-", "*", "y"], listed  # adding ... translation
    assert "* transformer for generation: model.shape=decoder task.sampling=random" in listed
    with pytest.raises(IncompatibleError, match=re.escape("transformer (model.shape=decoder task.sampling=random)")):
        api.check_compatible("generation", "hopfield", None)


# --- what a user meets first: TensorBoard, the progress bar ----------------------------------
def test_tensorboard_holds_one_run_with_its_hparams_and_only_curves_as_scalars(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    api.train(compose_config(TINY_COPY), tmp_path / "run")
    tb = tmp_path / "run" / "tb"
    assert [path.name for path in tb.iterdir() if path.is_dir()] == []  # no second run (tb/hparams) any more
    events = EventAccumulator(str(tb)).Reload()
    scalars = events.Tags()["scalars"]
    assert scalars and all(tag.startswith(("train/", "val/")) for tag in scalars), scalars  # no one-point cards
    assert {"_hparams_/experiment", "_hparams_/session_start_info"} <= set(events.PluginTagToContent("hparams"))
    assert any(tag.startswith("final metrics") for tag in events.Tags()["tensors"])


def test_the_progress_bar_shows_tokens_per_second_at_every_log_step(tmp_path, monkeypatch):
    from rnnzoo.training import trainer

    shown = []
    monkeypatch.setattr(trainer.tqdm, "set_postfix", lambda bar, postfix, refresh=True: shown.append(dict(postfix)))
    api.train(compose_config([*TINY_COPY, "trainer.progress=true", "trainer.log_every=2"]), tmp_path / "run")
    assert sum("tok/s" in postfix for postfix in shown) >= 3  # steps 2, 4, 6 (evaluations at 3 and 6 too)
