"""The command line, through a subprocess as a user types it: train, eval, list, --help, bad input."""

from __future__ import annotations

import json

import pytest

from .conftest import TINY_COPY, run_cli


def one_line_error(result) -> str:
    """Bad input exits non-zero with `error: ...` on stderr and no traceback."""
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("cli") / "run"
    result = run_cli("train", *TINY_COPY, f"hydra.run.dir={run_dir}")
    assert result.returncode == 0, result.stderr
    return run_dir, result


def test_train_writes_the_run_folder(trained_run):
    run_dir, result = trained_run
    assert "test/recall_accuracy" in result.stdout
    for path in [".hydra/config.yaml", "train.log", "metrics.json", "checkpoints/best.pt", "checkpoints/last.pt"]:
        assert (run_dir / path).exists(), path
    assert "finished at step 6" in (run_dir / "train.log").read_text()


def test_eval_from_the_checkpoint_alone_matches_training(trained_run, tmp_path):
    run_dir, _ = trained_run
    result = run_cli("eval", f"checkpoint={run_dir / 'checkpoints' / 'best.pt'}", "split=test", "trainer.device=cpu",
                     f"hydra.run.dir={tmp_path}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    trained = json.loads((run_dir / "metrics.json").read_text())
    evaluated = json.loads((tmp_path / "metrics.json").read_text())
    assert evaluated == {k: v for k, v in trained.items() if k.startswith("test/")}
    assert "test/recall_accuracy" in result.stdout


def test_configs_are_found_from_any_directory(tmp_path):
    result = run_cli("train", "--cfg", "job", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "name: lstm" in result.stdout and "name: copy" in result.stdout


def test_multirun_sweeps(tmp_path):
    result = run_cli("train", "--multirun", *TINY_COPY, "trainer.max_steps=2", "model.hidden_size=8,12",
                     f"hydra.sweep.dir={tmp_path}")
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_dir()) == ["0", "1"]
    assert (tmp_path / "1" / "metrics.json").exists()


def test_list_shows_models_tasks_datasets_and_fit():
    result = run_cli("list")
    assert result.returncode == 0, result.stderr
    for word in ["models:", "lstm", "tasks:", "copy", "adding", "datasets:", "synthetic", "which model fits"]:
        assert word in result.stdout
    options = run_cli("list", "model=lstm")
    assert "model.hidden_size" in options.stdout and "units per layer" in options.stdout


def test_help_says_what_to_type():
    result = run_cli("--help")
    assert result.returncode == 0 and "rnnzoo train" in result.stdout and "rnnzoo eval" in result.stdout
    verb_help = run_cli("train", "--help")
    assert verb_help.returncode == 0 and "model" in verb_help.stdout


@pytest.mark.parametrize("args,message", [
    (["train", "model=lstmm"], "unknown model 'lstmm'; did you mean: lstm"),
    (["train", "task=coppy"], "unknown task 'coppy'; did you mean: copy"),
    (["train", "dataset=nope"], "unknown dataset 'nope'"),
    (["frobnicate"], "unknown verb 'frobnicate'"),
    (["train", *TINY_COPY, "model.bidirectional=true", "trainer.tbptt_steps=2"], "tbptt_steps needs a model"),
    (["train", *TINY_COPY, "trainer.optimizer=rmsprop"], "not one of: adam, adamw, sgd"),
    (["train", *TINY_COPY, "resume=/no/such/file.pt"], "checkpoint not found: /no/such/file.pt"),
    (["eval", "checkpoint=/no/such/file.pt"], "checkpoint not found"),
    (["eval"], "eval needs checkpoint=PATH"),
    (["list", "model=nope"], "unknown model 'nope'"),
])
def test_bad_input_is_one_clear_line(args, message):
    assert message in one_line_error(run_cli(*args))


@pytest.mark.parametrize("override,key", [("model.hidden_size=big", "model.hidden_size"),
                                          ("model.hiden_size=3", "hiden_size"),
                                          ("trainer.max_step=3", "max_step")])
def test_unknown_keys_and_wrong_types_name_the_key(override, key):
    result = run_cli("train", override)
    assert result.returncode != 0
    assert key in result.stderr and "Traceback" not in result.stderr


def test_eval_of_a_file_that_is_not_a_checkpoint(tmp_path):
    junk = tmp_path / "junk.pt"
    junk.write_text("not a checkpoint")
    assert "is not a safe rnnzoo checkpoint" in one_line_error(run_cli("eval", f"checkpoint={junk}"))


def test_predict_copies_symbols_from_stdin_and_files(trained_run, tmp_path):
    run_dir, _ = trained_run
    checkpoint = f"checkpoint={run_dir / 'checkpoints' / 'best.pt'}"
    lines = tmp_path / "lines.txt"
    lines.write_text("1 2 3\n4 4 1\n")
    from_file = run_cli("predict", checkpoint, f"input={lines}")
    assert from_file.returncode == 0, from_file.stderr
    outputs = from_file.stdout.splitlines()
    assert len(outputs) == 2 and all(len(o.split()) == 3 for o in outputs)
    assert all(1 <= int(s) <= 4 or int(s) in (0, 5) for o in outputs for s in o.split())
    import os
    import subprocess
    import sys
    piped = subprocess.run([sys.executable, "-m", "rnnzoo", "predict", checkpoint], input="1 2 3\n",
                           capture_output=True, text=True, env=dict(os.environ, PYTHONWARNINGS="ignore"))
    assert piped.returncode == 0 and piped.stdout.splitlines() == outputs[:1]


def test_predict_rejects_a_bad_line_naming_it(trained_run):
    run_dir, _ = trained_run
    import os
    import subprocess
    import sys
    checkpoint = run_dir / "checkpoints" / "best.pt"
    result = subprocess.run([sys.executable, "-m", "rnnzoo", "predict", f"checkpoint={checkpoint}"],
                            input="1 2 3\n9 9\n", capture_output=True, text=True,
                            env=dict(os.environ, PYTHONWARNINGS="ignore"))
    assert "input line 2: expected 3 symbols from 1 to 4" in one_line_error(result)


def test_sample_needs_a_generation_task(trained_run):
    run_dir, _ = trained_run
    result = run_cli("sample", f"checkpoint={run_dir / 'checkpoints' / 'best.pt'}", "prompt=x")
    assert "does not generate text" in one_line_error(result)
