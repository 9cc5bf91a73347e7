"""Issue 16, groups 2-6 (runs): resume resumes the same run, run folders are never overwritten
nor shared, a diverged run says so, and bad output folders and checkpoints fail on one line.

Every refusal asserts the exit status, one `error:` line without a traceback, and that the run
folder it touched is byte for byte what it was."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import torch

from rnnzoo import api
from rnnzoo.api import train
from rnnzoo.errors import CheckpointError, RnnzooError
from rnnzoo.training.checkpoint import load_checkpoint_file, save_checkpoint
from rnnzoo.training.resume import MAY_CHANGE, resumed_config
from rnnzoo.training.run_folder import LOCK_NAME, RunLock, write_metrics

from .conftest import TINY_ADDING, TINY_COPY, compose_config, run_cli
from .test_cli import one_line_error
from .test_trainer import interrupt_training_at

COPY = [*TINY_COPY, "task.delay=4", "trainer.max_steps=8", "trainer.eval_every=4", "task.batches_per_epoch=5"]


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under `folder` by relative path, with the hash of its bytes."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def refused(result, status: int = 2) -> str:
    assert result.returncode == status, result.stderr
    return one_line_error(result)


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    """A finished CLI run of COPY (delay 4): its folder."""
    run = tmp_path_factory.mktemp("finished") / "run"
    result = run_cli("train", *COPY, f"hydra.run.dir={run}")
    assert result.returncode == 0, result.stderr
    return run


# --- group 2: resume= resumes the same run -------------------------------------------------------
def test_the_printed_hint_resumes_the_same_run(tmp_path, monkeypatch, caplog):
    """Ctrl-C on task.delay=4, then the printed command alone (as the CLI passes its overrides):
    the delay is the checkpoint's, the folder the run's own, the loss curve the uninterrupted one."""
    whole = train(compose_config(COPY), tmp_path / "whole")
    with monkeypatch.context() as patch, caplog.at_level(logging.WARNING, logger="rnnzoo"):
        interrupt_training_at(patch, 5)
        with pytest.raises(KeyboardInterrupt):
            train(compose_config(COPY), tmp_path / "first")
    hint = caplog.text.split("continue with: ")[1].splitlines()[0]
    words = shlex.split(hint)
    assert words[:2] == ["rnnzoo", "train"] and not (tmp_path / "first" / LOCK_NAME).exists()
    overrides = [w for w in words[2:] if not w.startswith("hydra.")]
    run_dir = Path(next(w for w in words if w.startswith("hydra.run.dir=")).partition("=")[2])
    assert run_dir == tmp_path / "first"
    resumed = train(compose_config(overrides), run_dir, overrides=overrides)  # composed: task.delay=2 default
    saved = load_checkpoint_file(run_dir / "checkpoints" / "last.pt")
    assert saved["config"]["task"]["delay"] == 4
    whole_history = load_checkpoint_file(tmp_path / "whole" / "checkpoints" / "last.pt")["history"]
    assert [loss for _, loss in saved["history"]] == pytest.approx([loss for _, loss in whole_history], rel=1e-6)
    assert resumed["test/loss"] == pytest.approx(whole["test/loss"], rel=1e-6)


def log_says(run: Path, text: str) -> bool:
    log = run / "train.log"
    return log.exists() and text in log.read_text(errors="ignore")


def default_sigint() -> None:
    """A shell starts background jobs with SIGINT ignored, and Python then never raises
    KeyboardInterrupt: give the child the default, as a terminal would (CI runs in the background)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_then_the_printed_command_through_the_cli(tmp_path):
    """A real SIGINT: exit 130, a hint that `rnnzoo train` runs as printed, same delay."""
    run = tmp_path / "run"
    env = dict(os.environ, PYTHONWARNINGS="ignore", OMP_NUM_THREADS="1")
    # task.target=null: on an idle machine the tiny copy task reaches its target before the signal
    process = subprocess.Popen([sys.executable, "-m", "rnnzoo", "train", *TINY_COPY, "task.delay=4", "task.target=null",
                                "trainer.max_steps=100000", "trainer.eval_every=50", f"hydra.run.dir={run}"],
                               stderr=subprocess.PIPE, text=True, env=env, preexec_fn=default_sigint)
    deadline = time.time() + 60
    while not log_says(run, "first training batch done"):
        assert time.time() < deadline and process.poll() is None
        time.sleep(0.2)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    hint = stderr.split("continue with: ")[1].splitlines()[0]
    result = run_cli(*shlex.split(hint)[1:], "trainer.max_steps=3")  # a budget may change
    assert result.returncode == 0, result.stderr
    assert load_checkpoint_file(run / "checkpoints" / "last.pt")["config"]["task"]["delay"] == 4


@pytest.mark.parametrize("override,shown", [
    ("model.hidden_size=32", "model.hidden_size=32 here but 16 in the checkpoint"),
    ("task.delay=5", "task.delay=5 here but 4 in the checkpoint"),
    ("seed=3", "seed=3 here but 0 in the checkpoint"),
    ("model=gru", "model.name=gru here but lstm in the checkpoint"),
])
def test_resume_refuses_a_changed_setting_on_one_line(finished, override, shown):
    before = snapshot(finished)
    result = run_cli("train", f"resume={finished / 'checkpoints' / 'last.pt'}", override, f"hydra.run.dir={finished}")
    line = refused(result)
    assert shown in line and "may change: trainer.max_steps" in line
    assert snapshot(finished) == before


def test_resume_refuses_a_changed_training_file():
    saved = {"task": {"name": "generation"}, "dataset": {"name": "text_files", "train": "a.txt"}}
    given = {"task": {"name": "generation"}, "dataset": {"name": "text_files", "train": "b.txt"}}
    with pytest.raises(RnnzooError, match="dataset.train=b.txt here but a.txt in the checkpoint"):
        resumed_config(given, saved, "x.pt", ["dataset.train=b.txt"])


def test_resume_takes_what_may_change_and_keeps_the_rest():
    saved = {"seed": 1, "task": {"name": "copy", "delay": 300},
             "trainer": {"max_steps": 10, "lr": 0.1, "device": "cuda"}}
    given = {"seed": 0, "task": {"name": "copy", "delay": 5}, "trainer": {"max_steps": 20, "lr": 0.5, "device": "cpu"},
             "resume": "x.pt"}
    config = resumed_config(given, saved, "x.pt", ["resume=x.pt", "trainer.max_steps=20"])
    assert config == {"seed": 1, "task": {"name": "copy", "delay": 300}, "resume": "x.pt",
                      "trainer": {"max_steps": 20, "lr": 0.1, "device": "cuda"}}
    every = resumed_config({**saved, "trainer": {**saved["trainer"], "device": "cpu"}}, saved, "x.pt")  # from Python
    assert every["trainer"]["device"] == "cpu" and "trainer.device" in MAY_CHANGE
    with pytest.raises(RnnzooError, match="task.delay=5 here but 300"):  # a group choice sets its section
        resumed_config(given, saved, "x.pt", ["task=copy"])


def test_resume_without_a_folder_goes_on_in_the_checkpoints_own_run(tmp_path):
    """A hand-typed `rnnzoo train resume=RUN/checkpoints/last.pt` (no hydra.run.dir) continues in
    RUN, not in a new folder named from the default config; a space in the path is quoted."""
    run, elsewhere = tmp_path / "my run", tmp_path / "elsewhere"
    train(compose_config(COPY), run)
    elsewhere.mkdir()
    result = run_cli("train", f"resume={run / 'checkpoints' / 'last.pt'}", "trainer.max_steps=10", cwd=elsewhere)
    assert result.returncode == 0, result.stderr
    assert load_checkpoint_file(run / "checkpoints" / "last.pt")["step"] == 10
    assert list(elsewhere.iterdir()) == []  # no outputs/ folder opened beside


def test_resume_in_its_folder_leaves_a_chosen_folder_and_loose_checkpoints(tmp_path):
    from rnnzoo.training.run_folder import resume_in_its_folder
    (tmp_path / "run" / "checkpoints").mkdir(parents=True)
    given = [f"resume={tmp_path}/run/checkpoints/last.pt"]
    assert resume_in_its_folder(given) == [*given, f"hydra.run.dir={tmp_path / 'run'}"]
    assert resume_in_its_folder([*given, "hydra.run.dir=x"]) == [*given, "hydra.run.dir=x"]
    assert resume_in_its_folder(["resume=loose.pt"]) == ["resume=loose.pt"]  # not in a run's checkpoints/
    assert resume_in_its_folder(["--multirun", *given]) == ["--multirun", *given]


# --- group 3: run folders are never overwritten and never shared ------------------------------
def test_a_finished_run_folder_is_refused_and_left_as_it_was(finished):
    before = snapshot(finished)
    line = refused(run_cli("train", *TINY_COPY, f"hydra.run.dir={finished}"))
    assert str(finished) in line and "hydra.run.dir=" in line and "resume=" in line and "overwrite=true" in line
    assert snapshot(finished) == before


def test_resume_into_another_runs_folder_is_refused(finished, tmp_path):
    train(compose_config(TINY_COPY), tmp_path / "other")
    before = snapshot(tmp_path / "other")
    with pytest.raises(RnnzooError, match="already holds a run"):
        train(compose_config([*COPY, f"resume={finished / 'checkpoints' / 'last.pt'}"]), tmp_path / "other")
    assert snapshot(tmp_path / "other") == before


def test_overwrite_replaces_the_old_run_whole(tmp_path):
    train(compose_config([*TINY_COPY, "trainer.grad_probe_every=3"]), tmp_path)
    assert (tmp_path / "grad_probe.jsonl").exists()
    train(compose_config([*TINY_COPY, "overwrite=true"]), tmp_path)
    assert not (tmp_path / "grad_probe.jsonl").exists()  # nothing of the old run survives
    assert len(list((tmp_path / "tb").glob("events.*"))) == 1


def test_a_folder_in_use_fails_at_once_naming_the_holder(tmp_path):
    lock = RunLock(tmp_path)
    lock.acquire()  # this process is the run in progress
    try:
        # a run that waited for the lock instead of failing would hang: run_cli's timeout is the guard
        line = refused(run_cli("train", *TINY_COPY, f"hydra.run.dir={tmp_path}", timeout=120))
        assert f"in use by another run (PID {os.getpid()}" in line
    finally:
        lock.release()
    assert not (tmp_path / "checkpoints").exists()


def test_a_stale_lock_is_taken_over_with_a_notice(tmp_path, caplog):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / LOCK_NAME).write_text(f"{dead.pid}\n")
    with caplog.at_level(logging.WARNING, logger="rnnzoo"):
        train(compose_config(TINY_COPY), tmp_path)
    assert f"stale lock {tmp_path / LOCK_NAME} of PID {dead.pid} (no longer running)" in caplog.text
    assert not (tmp_path / LOCK_NAME).exists()


def test_ranks_other_than_0_claim_no_folder(tmp_path, monkeypatch):
    (tmp_path / "metrics.json").write_text("{}")
    monkeypatch.setenv("RANK", "1")
    with api._run_folder(tmp_path, {"resume": None}) as folder:
        assert folder == tmp_path and not (tmp_path / LOCK_NAME).exists()


# --- group 5: a diverged run says so ------------------------------------------------------------
def test_a_diverged_run_exits_3_with_strict_json(tmp_path):
    result = run_cli("train", *TINY_ADDING, "trainer.on_nan=skip", "trainer.lr=1e30", "trainer.grad_clip=null",
                     f"hydra.run.dir={tmp_path}")
    assert "training diverged" in refused(result, status=3)
    text = (tmp_path / "metrics.json").read_text()
    metrics = json.loads(text, parse_constant=lambda name: pytest.fail(f"bare {name} in metrics.json"))
    assert metrics["diverged"] is True and metrics["test/mse"] is None


def test_metrics_json_never_holds_bare_nan(tmp_path):
    write_metrics(tmp_path / "m.json", {"a": float("nan"), "b": float("inf"), "c": 1.5})
    assert json.loads((tmp_path / "m.json").read_text()) == {"a": None, "b": None, "c": 1.5}


# --- group 4: output folders that cannot be written, damaged checkpoints ----------------------
def as_another_user() -> list[str]:
    """Run as `nobody` where the tests run as root (whom file modes do not stop)."""
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        pytest.skip("root without setpriv: read-only folders cannot be tested")
    return ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


@pytest.fixture
def shared_tmp():
    """A folder other users can enter (pytest's own are private to the user)."""
    folder = Path(tempfile.mkdtemp(prefix="rnnzoo-ro-"))
    folder.chmod(0o755)
    yield folder
    for path in [folder, *folder.rglob("*")]:
        if path.is_dir():
            path.chmod(0o755)
    shutil.rmtree(folder)


def run_as_other(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONWARNINGS="ignore", OMP_NUM_THREADS="1", RNNZOO_CACHE_DIR=str(cwd / "cache"),
               HOME=str(cwd))
    return subprocess.run([*as_another_user(), sys.executable, "-m", "rnnzoo", *args], capture_output=True,
                          text=True, cwd=cwd, env=env, timeout=120)


@pytest.mark.parametrize("where", ["parent", "run", "checkpoints"])
def test_a_read_only_output_folder_is_one_line_naming_it(shared_tmp, where):
    run = shared_tmp / "parent" / "run"
    args = [*TINY_COPY]
    if where == "checkpoints":  # the run's own folder, resumed: only checkpoints/ is read-only
        train(compose_config(TINY_COPY), run)
        for path in [shared_tmp, *shared_tmp.rglob("*")]:
            path.chmod(0o777 if path.is_dir() else 0o666)
        args = [f"resume={run / 'checkpoints' / 'last.pt'}"]
        (run / "checkpoints").chmod(0o555)
    else:
        (run if where == "run" else run.parent).mkdir(parents=True)
        shared_tmp.chmod(0o777)
    before = snapshot(shared_tmp)
    (run if where == "run" else run.parent).chmod(0o555)
    line = refused(run_as_other("train", *args, f"hydra.run.dir={run}", cwd=shared_tmp))
    named = {"parent": run, "run": run, "checkpoints": run / "checkpoints"}[where]
    assert str(named) in line and ("Permission denied" in line or "Read-only" in line), line
    assert snapshot(shared_tmp) == before


def test_an_output_path_through_a_file_is_one_line(tmp_path):
    (tmp_path / "file").write_text("x")
    line = refused(run_cli("train", *TINY_COPY, f"hydra.run.dir={tmp_path / 'file' / 'run'}"))
    assert str(tmp_path / "file" / "run") in line


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("ckpt")
    train(compose_config(TINY_COPY), run)
    return run / "checkpoints" / "best.pt"


def edited(checkpoint: Path, folder: Path, edit) -> Path:
    payload = load_checkpoint_file(checkpoint)
    edit(payload)
    payload.pop("rnnzoo_format")
    return save_checkpoint(payload, folder / "edited.pt")


@pytest.mark.parametrize("edit,message", [
    (lambda p: p.pop("config"), "has no run config"),
    (lambda p: p["model"].update({next(iter(p["model"])): torch.zeros(3, 3)}), "has shape (3, 3) there"),
    (lambda p: p["config"]["model"].update(hidden_size=8), "has shape"),
])
def test_a_damaged_checkpoint_is_one_line(checkpoint, tmp_path, edit, message):
    path = edited(checkpoint, tmp_path / "c", edit)
    before = snapshot(path.parent)
    eval_folder = f"hydra.run.dir={tmp_path / 'e'}"
    assert message in refused(run_cli("eval", f"checkpoint={path}", "trainer.device=cpu", eval_folder))
    assert snapshot(path.parent) == before


# --- group 6: messages and exit statuses -----------------------------------------------------
class Pwned:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_a_malicious_checkpoint_never_gets_the_unsafe_advice(tmp_path):
    evil, junk = tmp_path / "evil.pt", tmp_path / "junk.pt"
    torch.save({"x": Pwned()}, evil)
    junk.write_bytes(bytes(range(256)) * 8)
    for path in (evil, junk):
        with pytest.raises(CheckpointError, match="is not a safe rnnzoo checkpoint") as error:
            load_checkpoint_file(path)
        assert "weights_only" not in str(error.value) and "\n" not in str(error.value)


def test_a_string_format_field_is_reported_as_such(checkpoint, tmp_path):
    payload = load_checkpoint_file(checkpoint)
    path = tmp_path / "s.pt"
    torch.save({**payload, "rnnzoo_format": "1"}, path)
    with pytest.raises(CheckpointError, match="invalid checkpoint format '1' \\(str") as error:
        load_checkpoint_file(path)
    assert "newer" not in str(error.value)


@pytest.mark.parametrize("override", ["model.hiden_size=3", "task.delay=[", "model.hidden_size=big"])
def test_hydras_errors_exit_2_on_one_line_like_rnnzoos(tmp_path, override):
    refused(run_cli("train", override, f"hydra.run.dir={tmp_path / 'run'}"))
    assert not (tmp_path / "run").exists()
