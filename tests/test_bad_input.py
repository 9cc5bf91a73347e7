"""Issue 16's net of hostile input: one table of bad commands, each run through the real entry
point (`rnnzoo.cli.main`) under a time limit.

Every row asserts the exit status; that stderr has no traceback and, for a refusal, exactly one
`error:` line, which the row's pattern matches (for a run that succeeds or is interrupted, the
pattern is looked for in its whole output: the warning that says what was cut); and that the
module's finished runs (a copy, a generation, a classification, a tagging and a translation run,
with their data files) are byte for byte what they were.

Rows run in this process (no interpreter start: the whole table takes about a minute), except
those that need a process of their own: another user (read-only folders), the interpreter's own
exit. The cases an existing test asserts in depth (tests/test_hardening_*.py, test_cli.py,
test_cache.py) are here once more as one shallow row each; ids start with the issue's group
(g1-g7) or `known` for the kinds of input that were handled well before the issue.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import re
import shlex
import shutil
import signal
import sys
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pytest
import torch

from rnnzoo import cli
from rnnzoo.api import train
from rnnzoo.training.checkpoint import load_checkpoint_file
from rnnzoo.training.run_folder import LOCK_NAME, RunLock

from .conftest import TINY_ADDING, TINY_COPY, compose_config, run_cli
from .test_cache import generation
from .test_classification import TINY_CLASSIFICATION, labeled_lines
from .test_classification import tiny_files as labeled_files
from .test_cli import one_line_error
from .test_hardening_runs import Pwned, edited, run_as_other, shared_tmp, snapshot  # noqa: F401 (a fixture)
from .test_tagging import TINY_TAGGING
from .test_tagging import tiny_files as conll_files
from .test_trainer import interrupt_training_at
from .test_translation import TINY_TRANSLATION

ONE_THREAD = ["trainer.num_threads=1", "trainer.device=cpu"]
COPY = [*TINY_COPY, *ONE_THREAD]
ADDING = [*TINY_ADDING, *ONE_THREAD]
CLASSIFICATION = [*TINY_CLASSIFICATION, "trainer.num_threads=1"]
TAGGING = [*TINY_TAGGING, "trainer.num_threads=1"]
TRANSLATION = [*TINY_TRANSLATION, *ONE_THREAD, "model=bahdanau"]
PARALLEL = [o for o in TRANSLATION if not o.startswith("dataset.")] + ["dataset=parallel_files"]


# --- the module's finished runs: byte for byte the same after every row -----------------------------
@pytest.fixture(scope="module")
def made(tmp_path_factory) -> dict[str, str]:
    """Five finished runs and their data files under one folder; the placeholders rows use."""
    root = tmp_path_factory.mktemp("made")
    data = root / "data"
    data.mkdir()
    (data / "corpus.txt").write_text("ROMEO: But soft, what light through yonder window breaks?\n" * 60)
    cache = tmp_path_factory.mktemp("cache")  # outside root: the token cache may be written by rows
    gen = [o for o in generation("", cache, "task.level=char") if not o.startswith("dataset.train=")] + ONE_THREAD
    runs = {"copy": COPY, "generation": [*gen, f"dataset.train={data / 'corpus.txt'}"],
            "classification": [*CLASSIFICATION, *labeled_files(data)],
            "tagging": [*TAGGING, *conll_files(data)], "translation": [*TRANSLATION, "dataset=reversal"]}
    for name, overrides in runs.items():
        train(compose_config(overrides), root / name)
    places = {name: str(root / name / "checkpoints" / "best.pt") for name in runs}
    places.update(root=str(root), finished=str(root / "copy"), data=str(data),
                  COPY=" ".join(COPY), ADDING=" ".join(ADDING), GEN=" ".join(gen),
                  CLS=" ".join(CLASSIFICATION), TAG=" ".join(TAGGING), TR=" ".join(PARALLEL))
    return places


# --- one row of the table ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Case:
    argv: str  # a template: {tmp} the row's own folder, {copy} a checkpoint, {COPY} overrides... (`made`)
    status: int = 2
    says: str = ""  # the `error:` line matches it (re.search); status 0/130: the output holds it
    files: dict[str, str | bytes] = field(default_factory=dict)  # written into {tmp} first
    stdin: str = ""
    timeout: float = 30
    how: str = "in"  # "in" this process; "process" a new interpreter; "other" a process as another user
    setup: Callable[[Path, dict, pytest.MonkeyPatch], Callable | None] | None = None  # may return its undo
    then: Callable[[Path], None] | None = None  # checks of what the row left in {tmp}


def refusals(prefix: str, table: list[tuple[str, str, str]]) -> list:
    """Rows (name, argv, pattern) that exit 2 with one error line and need nothing else."""
    return [row(f"{prefix}-{name}", argv, 2, says) for name, argv, says in table]


def row(name: str, argv: str, status: int = 2, says: str = "", marks=(), **more) -> pytest.param:
    return pytest.param(Case(argv, status, says, **more), id=name, marks=marks)


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


class TimeLimit(BaseException):
    """Not an Exception: nothing in rnnzoo or Hydra catches it on the way out."""


@contextlib.contextmanager
def time_limit(seconds: float):
    def expire(signum, frame):
        raise TimeLimit(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@contextlib.contextmanager
def process_state(monkeypatch, stdin: str):
    """What a `cli.main` call changes in this process, put back afterwards: Hydra's global state and
    HYDRA_FULL_ERROR (which it sets), argv, stdin, and the logging Hydra configures per run."""
    from hydra.core.global_hydra import GlobalHydra

    loggers = [logging.getLogger(), *(lg for lg in logging.Logger.manager.loggerDict.values()
                                      if isinstance(lg, logging.Logger))]
    kept = {lg: (lg.handlers[:], lg.level, lg.propagate, lg.disabled) for lg in loggers}
    full_error = os.environ.pop("HYDRA_FULL_ERROR", None)
    monkeypatch.setattr(cli._JOB, "started", False)
    monkeypatch.setattr(sys, "argv", ["rnnzoo"])
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    GlobalHydra.instance().clear()
    try:
        yield
    finally:
        GlobalHydra.instance().clear()
        os.environ.pop("HYDRA_FULL_ERROR", None)
        if full_error is not None:
            os.environ["HYDRA_FULL_ERROR"] = full_error
        for lg, (handlers, level, propagate, disabled) in kept.items():
            for handler in lg.handlers:
                if handler not in handlers:
                    handler.close()
            lg.handlers[:], lg.level, lg.propagate, lg.disabled = handlers, level, propagate, disabled
        for lg in logging.Logger.manager.loggerDict.values():
            if isinstance(lg, logging.Logger) and lg not in kept:
                for handler in lg.handlers:
                    handler.close()
                lg.handlers.clear()


def run_in_process(argv: list[str], case: Case, monkeypatch) -> Result:
    """`rnnzoo ARGV` as the interpreter would run it: an uncaught exception prints its traceback
    and exits 1."""
    out, err = io.StringIO(), io.StringIO()
    with process_state(monkeypatch, case.stdin), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        terminal = logging.StreamHandler(err)  # as logging's last resort on a terminal (pytest's handlers hide it)
        terminal.setLevel(logging.WARNING)
        logging.getLogger().addHandler(terminal)
        try:
            with time_limit(case.timeout):
                cli.main(argv)
            status = 0
        except SystemExit as exit:
            status = exit.code if isinstance(exit.code, int) else (0 if exit.code is None else 1)
        except TimeLimit as expired:
            pytest.fail(f"rnnzoo {shlex.join(argv)[:300]}: {expired}")
        except Exception:  # noqa: BLE001 (what the interpreter would print)
            traceback.print_exc(file=err)
            status = 1
    return Result(status, out.getvalue(), err.getvalue())


def run(case: Case, folder: Path, made: dict, monkeypatch) -> Result:
    argv = shlex.split(case.argv.format(tmp=folder, **made))
    if argv and argv[0] in ("train", "eval", "prepare") and not any(a.startswith("hydra.run.dir=") for a in argv):
        argv.append(f"hydra.run.dir={folder / 'run'}")
    if case.how == "in":
        return run_in_process(argv, case, monkeypatch)
    runner = run_as_other if case.how == "other" else run_cli
    try:
        done = runner(*argv, cwd=folder, **({"timeout": case.timeout} if case.how == "process" else {}))
    except Exception as error:  # noqa: BLE001 (subprocess.TimeoutExpired)
        pytest.fail(f"rnnzoo {shlex.join(argv)[:300]}: {error}")
    return Result(done.returncode, done.stdout, done.stderr)


# --- what rows set up and check ---------------------------------------------------------------------
def checkpoint_without_config(folder, made, monkeypatch):
    edited(Path(made["copy"]), folder, lambda payload: payload.pop("config"))


def checkpoint_of_wrong_shape(folder, made, monkeypatch):
    edited(Path(made["copy"]), folder, lambda p: p["model"].update({next(iter(p["model"])): torch.zeros(3, 3)}))


def malicious_checkpoint(folder, made, monkeypatch):
    torch.save({"x": Pwned()}, folder / "evil.pt")


def string_format_checkpoint(folder, made, monkeypatch):
    torch.save({**load_checkpoint_file(made["copy"]), "rnnzoo_format": "1"}, folder / "s.pt")


def truncated_checkpoint(folder, made, monkeypatch):
    whole = Path(made["copy"]).read_bytes()
    (folder / "cut.pt").write_bytes(whole[:len(whole) // 2])


def hello_checkpoint(folder, made, monkeypatch):
    (folder / "hello.pt").write_bytes(b"hello")


def empty_checkpoint(folder, made, monkeypatch):
    (folder / "hello.pt").write_bytes(b"")


def copy_of_the_finished_run(folder, made, monkeypatch):
    shutil.copytree(made["finished"], folder / "run")


def lock_held(folder, made, monkeypatch):
    """This process holds the run folder's lock: another run is in progress there."""
    (folder / "run").mkdir()
    lock = RunLock(folder / "run")
    lock.acquire()
    return lock.release


def stale_lock(folder, made, monkeypatch):
    (folder / "run").mkdir()
    (folder / "run" / LOCK_NAME).write_text("999999999\n")  # no such process


def little_memory(folder, made, monkeypatch):
    monkeypatch.setattr("rnnzoo.training.memory.available_bytes", lambda device: 1000)


def ctrl_c_at_step_3(folder, made, monkeypatch):
    interrupt_training_at(monkeypatch, 3)


def read_only(which: str):
    """The row's folder/parent/run exists, and `which` of the two cannot be written (by the other user)."""
    def setup(folder, made, monkeypatch):
        (folder / "parent" / "run").mkdir(parents=True)
        folder.chmod(0o777)
        (folder / "parent" / ("" if which == "parent" else "run")).chmod(0o555)
    return setup


def nothing_written(folder: Path) -> None:
    assert not (folder / "run" / "checkpoints").exists() and not (folder / "run" / "metrics.json").exists()


def still_finished(folder: Path) -> None:
    assert (folder / "run" / "checkpoints" / "best.pt").is_file() and (folder / "run" / "metrics.json").is_file()


def no_run_folder(folder: Path) -> None:
    assert not (folder / "run").exists()


def diverged_json(folder: Path) -> None:
    text = (folder / "run" / "metrics.json").read_text()
    metrics = json.loads(text, parse_constant=lambda name: pytest.fail(f"bare {name} in metrics.json"))
    assert metrics["diverged"] is True


# --- file contents ----------------------------------------------------------------------------------
LONG_WORDS = " ".join(f"w{i % 50}" for i in range(200_000))[:1_000_000]  # a 1 MB line
LABELED = "\n".join(labeled_lines(30, 0)) + "\n"
PAIRS = "".join(f"{s}\t{t}\n" for s, t in [("c a b", "b a c"), ("a b", "b a"), ("d d a", "a d d")] * 10)
CONLL = "the DT B-NP\ncat NN I-NP\n\nsat VBD B-VP\n"
CONLLU = "# sent_id = 1\n1\tThe\tthe\tDET\tDT\t_\t2\tdet\t_\t_\n2\tcat\tcat\tNOUN\tNN\t_\t0\troot\t_\t_\n"
NOT_UTF8 = b"fine\nfine too\nnot \xff fine\n"
BINARY = b"\x7fELF\x02\x01\x01\x00\x00\x00\xff\xfe\x00\x00"
TAG_FILES = "dataset.valid={data}/valid.txt dataset.test={data}/test.txt"
CLS_FILES = "dataset.valid={data}/valid.txt dataset.test={data}/test.txt"


CASES = [
    # --- 1. lengths are bounded when read, the memory guard refuses before the kernel kills --------
    row("g1-translate-a-20000-character-line", "translate checkpoint={translation} input={tmp}/long.txt", 0,
        r"only its first \d+ are read", files={"long.txt": LONG_WORDS[:20_000] + "\n"}),
    row("g1-predict-a-1MB-line-classification", "predict checkpoint={classification} input={tmp}/long.txt", 0,
        r"longer than task.max_length=\d+", files={"long.txt": LONG_WORDS + "\n"}),
    row("g1-predict-a-1MB-line-tagging", "predict checkpoint={tagging} input={tmp}/long.txt", 0,
        r"longer than task.max_length=\d+", files={"long.txt": LONG_WORDS + "\n"}),
    row("g1-sample-a-20000-character-prompt", "sample checkpoint={generation} max_new_tokens=5 prompt=" + "x" * 20_000,
        0, r"a prompt of 20,000 tokens: only its last [\d,]+ are read"),
    row("g1-train-labeled-file-with-a-1MB-line", "train {CLS} dataset.train={tmp}/train.txt " + CLS_FILES, 0,
        r"1 of 31 training texts were longer and were cut", files={"train.txt": LABELED + "pos " + LONG_WORDS + "\n"}),
    row("g1-train-parallel-file-with-a-1MB-pair", "train {TR} dataset.train={tmp}/train.tsv "
        "dataset.valid={tmp}/val.tsv dataset.test={tmp}/val.tsv", 0,
        r"1 of 31 training pairs were longer and were dropped",
        files={"train.tsv": PAIRS + LONG_WORDS[:500_000] + "\t" + LONG_WORDS[:500_000] + "\n", "val.tsv": PAIRS}),
    row("g1-transformer-cuts-at-its-positions", "train task=tagging dataset=conll_files model=transformer "
        "model.d_model=16 model.num_heads=2 model.num_layers=1 model.max_positions=16 task.batch_size=4 "
        "trainer.max_steps=2 trainer.eval_every=2 trainer.progress=false trainer.num_threads=1 trainer.device=cpu "
        "dataset.train={tmp}/long.conll " + TAG_FILES, 0, r"1 of \d+ training sentences were longer and were cut",
        files={"long.conll": CONLL * 5 + "\n" + "".join(f"w{i} DT B-NP\n" for i in range(40))}),
    row("g1-memory-guard-refuses", "train {TAG} dataset.train={data}/train.txt " + TAG_FILES, 2,
        r"needs about .* GB for its activations.*lower task.batch_size=4 or task.max_length=256", setup=little_memory,
        then=nothing_written),

    # --- 2. resume= resumes the same run: anything but budgets and devices is refused -------------
    *(row(f"g2-resume-refuses-{key}", "train resume={finished}/checkpoints/last.pt " + override
          + " hydra.run.dir={finished}", 2, re.escape(shown) + ".*may change: trainer.max_steps")
      for key, override, shown in [
          ("task.delay", "task.delay=5", "task.delay=5 here but 2 in the checkpoint"),
          ("model.hidden_size", "model.hidden_size=32", "model.hidden_size=32 here but 16 in the checkpoint"),
          ("seed", "seed=3", "seed=3 here but 0 in the checkpoint"),
          ("model", "model=gru", "model.name=gru here but lstm in the checkpoint"),
          ("trainer.lr", "trainer.lr=0.5", "trainer.lr=0.5 here but"),
          ("task", "task=adding", "task.name=adding here but copy in the checkpoint")]),
    row("g2-resume-refuses-a-changed-training-file", "train {GEN} dataset.train={tmp}/other.txt "
        "resume={root}/generation/checkpoints/last.pt hydra.run.dir={root}/generation", 2,
        r"dataset.train=\S*other.txt here but \S*corpus.txt in the checkpoint",
        files={"other.txt": "other text\n" * 50}),
    row("g2-resume-into-another-runs-folder", "train resume={finished}/checkpoints/last.pt "
        "hydra.run.dir={root}/classification", 2, r"already holds a run"),
    row("g2-resume-may-change-the-budget", "train resume={tmp}/run/checkpoints/last.pt trainer.max_steps=8 "
        "trainer.num_threads=1 hydra.run.dir={tmp}/run", 0, r"finished at step 8", setup=copy_of_the_finished_run),
    row("g2-resume-of-a-missing-checkpoint", "train {COPY} resume=/no/such/file.pt", 2,
        r"checkpoint not found: /no/such/file.pt"),

    # --- 3. a run folder holds one run, and one run at a time --------------------------------------
    row("g3-train-into-a-finished-run", "train {COPY} hydra.run.dir={finished}", 2,
        r"already holds a run.*hydra.run.dir=.*resume=.*overwrite=true"),
    row("g3-train-into-a-folder-in-use", "train {COPY}", 2, rf"is in use by another run \(PID {os.getpid()}",
        setup=lock_held, then=nothing_written),
    row("g3-a-stale-lock-is-taken-over", "train {COPY}", 0, r"taking over the stale lock .* of PID 999999999",
        setup=stale_lock),
    row("g3-overwrite-true-replaces-the-run", "train {COPY} overwrite=true", 0, r"run folder:",
        setup=copy_of_the_finished_run),
    row("g3-overwrite-maybe-is-not-true", "train {COPY} overwrite=maybe", 2, r"overwrite=maybe must be true or false",
        setup=copy_of_the_finished_run, then=still_finished),
    row("g3-a-run-folder-below-a-file", "train {COPY} hydra.run.dir={tmp}/file/run", 2, r"\S*/file/run",
        files={"file": "x"}),

    # --- 4. one line where there were tracebacks ---------------------------------------------------
    *(row(f"g4-read-only-{which}-folder", "train {COPY} hydra.run.dir={tmp}/parent/run", 2,
          r"/parent/run.*(Permission denied|Read-only)", how="other", setup=read_only(which), timeout=120)
      for which in ("parent", "run")),
    row("g4-checkpoint-without-its-config", "eval checkpoint={tmp}/edited.pt", 2, r"has no run config",
        setup=checkpoint_without_config),
    row("g4-checkpoint-with-a-tensor-of-the-wrong-shape", "eval checkpoint={tmp}/edited.pt", 2,
        r"has shape \(3, 3\) there", setup=checkpoint_of_wrong_shape),
    *(row(f"g4-{task}-{option}={value}", "train {" + task.upper() + "} " + f"{option}={value}", 2,
          re.escape(f"{option}={value} is out of range: must be {allowed}"), then=nothing_written)
      for task, option, value, allowed in [
          ("copy", "task.batch_size", 0, ">= 1"), ("copy", "task.batch_size", -1, ">= 1"),
          ("adding", "task.batch_size", 0, ">= 1"), ("adding", "task.batch_size", -1, ">= 1"),
          ("copy", "task.eval_examples", 0, ">= 1"), ("copy", "model.dropout", 1.5, "in [0, 1)"),
          ("copy", "model.hidden_size", 0, ">= 1"), ("copy", "trainer.max_steps", 0, ">= 1 or null"),
          ("adding", "trainer.lr", -1.0, "> 0"), ("adding", "trainer.gamma", 2.0, "in (0, 1]")]),
    *(row(f"g4-sample-{option}", "sample checkpoint={generation} " + option, 2, "^error: " + re.escape(message))
      for option, message in [("top_k=0", "top_k=0 is out of range: must be >= 1 or null"),
                              ("top_p=1.5", "top_p=1.5 is out of range: must be in (0, 1] or null"),
                              ("temperature=-1", "temperature=-1.0 is out of range: must be >= 0"),
                              ("max_new_tokens=0", "max_new_tokens=0 is out of range: must be >= 1")]),
    row("g4-predict-a-binary-file", "predict checkpoint={copy} input={tmp}/input.bin", 2,
        r"input=\S+input.bin is not UTF-8 text \(a binary file\?\)", files={"input.bin": BINARY}),
    row("g4-predict-a-file-with-NUL-bytes", "predict checkpoint={copy} input={tmp}/input.bin", 2,
        r"is not a text file: line 2 holds a NUL byte", files={"input.bin": b"1 2 3\n\x00\x01\x02\n"}),
    row("g4-predict-binary-stdin", "predict checkpoint={copy}", 2, r"standard input is not a text file",
        stdin="1 2 3\n\x00\x00\n"),

    # --- 5. a diverged run says so ------------------------------------------------------------------
    row("g5-a-diverged-run-exits-3", "train {ADDING} trainer.on_nan=skip trainer.lr=1e30 trainer.grad_clip=null", 3,
        r"training diverged", then=diverged_json),

    # --- 6. messages --------------------------------------------------------------------------------
    row("g6-a-malicious-checkpoint", "eval checkpoint={tmp}/evil.pt", 2,
        r"^(?!.*weights_only).*is not a safe rnnzoo checkpoint", setup=malicious_checkpoint),
    row("g6-random-bytes-as-checkpoint", "predict checkpoint={tmp}/junk.pt", 2,
        r"^(?!.*weights_only).*is not a safe rnnzoo checkpoint", files={"junk.pt": bytes(range(256)) * 8}),
    row("g6-a-string-format-field", "eval checkpoint={tmp}/s.pt", 2, r"^(?!.*newer).*invalid checkpoint format '1'",
        setup=string_format_checkpoint),
    row("g6-a-long-bad-line-is-cut", "predict checkpoint={copy} input={tmp}/bad.txt", 2,
        r"^error: input line 2: .{0,200}\(800,000 characters\)$", files={"bad.txt": "1 2 3\n" + "9 " * 400_000 + "\n"}),
    *refusals("g6-hydra", [
        ("syntax", "train task.delay=[", r"no viable alternative at input '\['"),
        ("unknown-key", "train model.hiden_size=3", r"Key 'hiden_size' not in 'lstm_schema'"),
        ("wrong-type", "train model.hidden_size=big", r"model.hidden_size.*big"),
        ("append-existing-key", "train +model.hidden_size=3", r"An item is already at 'model.hidden_size'"),
        ("no-such-experiment", "train experiment=nope", r"Could not find 'experiment/nope'"),
        ("unknown-key-of-eval", "eval checkpoint={copy} frobnicate=1", r"frobnicate"),
        ("unknown-key-of-predict", "predict checkpoint={copy} beam=3", r"Key 'beam' is not in struct")]),
    row("g6-hydra-error-through-the-interpreter", "train task.delay=[ hydra.run.dir={tmp}/run", 2,
        r"no viable alternative at input '\['",
        how="process", then=no_run_folder),

    # --- 7. what a new user meets first --------------------------------------------------------------
    row("g7-transformer-for-generation-gives-the-overrides", "train model=transformer task=generation "
        "dataset=text_files dataset.train={data}/corpus.txt", 2,
        re.escape("transformer (model.shape=decoder task.sampling=random)")),
    row("g7-list-shows-the-transformer-under-generation", "list", 0,
        re.escape("transformer for generation: model.shape=decoder task.sampling=random")),

    # --- the kinds of input handled well before issue 16 --------------------------------------------
    *refusals("known-unknown", [
        ("model", "train model=lstmm", r"unknown model 'lstmm'; did you mean: lstm"),
        ("task", "train task=coppy", r"unknown task 'coppy'; did you mean: copy"),
        ("dataset", "train dataset=nope", r"unknown dataset 'nope'"),
        ("verb", "frobnicate", r"unknown verb 'frobnicate'; choices: train"),
        ("verb-close", "trian", r"unknown verb 'trian'"),
        ("list-model", "list model=nope", r"unknown model 'nope'"),
        ("list-task", "list task=nope", r"unknown task 'nope'"),
        ("eval-split", "eval checkpoint={copy} split=nope", r"split='nope' is not one of: val, test"),
        ("optimizer", "train {COPY} trainer.optimizer=rmsprop", r"not one of: adam, adamw, sgd"),
        ("precision", "train {COPY} trainer.precision=fp8", r"trainer.precision='fp8' is not one of: 32, bf16, 16")]),
    *(row(f"known-unknown-key-{key}", f"train {{COPY}} {key}=3", 2, re.escape(key.rsplit('.', 1)[1]))
      for key in ("trainer.max_step", "task.dely", "model.hiden", "trainer.lr_schedule")),
    *(row(f"known-wrong-type-{override.split('=')[0]}", "train {COPY} " + override, 2,
          re.escape(override.split("=")[0]))
      for override in ("trainer.lr=fast", "trainer.progress=maybe", "task.delay=1.5")),
    *(row(f"known-run-option-{override}", "train {COPY} " + override, 2, re.escape(says), then=nothing_written)
      for override, says in [("seed=x", "seed=x is out of range: must be an integer"),
                             ("seed=-1", "seed=-1 is out of range"), ("seed=1.5", "seed=1.5 is out of range"),
                             ("resume=3", "resume=3 must be the path of a checkpoint")]),
    row("known-tbptt-with-a-bidirectional-model", "train {COPY} model.bidirectional=true trainer.tbptt_steps=2", 2,
        r"tbptt_steps needs a model"),
    *(row(f"known-missing-{dataset}-file", f"train {{{task}}} dataset.train={{tmp}}/nope.txt", 2,
          r"(?i)nope.txt: .*no such file") for dataset, task in [
              ("text", "GEN"), ("labeled", "CLS"), ("conll", "TAG"), ("parallel", "TR")]),
    row("known-missing-conllu-file", "train {TAG} dataset=conllu_files dataset.train={tmp}/nope.conllu", 2,
        r"(?i)nope.conllu: .*no such file"),
    row("known-training-file-is-a-folder", "train {GEN} dataset.train={tmp}", 2, r"is a folder, expected a file"),
    row("known-training-file-is-a-folder-without-cache", "train {GEN} dataset.cache=false dataset.train={tmp}", 2,
        r"is a folder, expected a file"),
    row("known-missing-predict-input", "predict checkpoint={copy} input={tmp}/nope.txt", 2,
        r"input=\S*nope.txt: No such file"),
    *(row(f"known-malformed-{name}", argv, 2, says, files={"bad": content}) for name, argv, says, content in [
        ("conll-columns", "train {TAG} dataset.train={tmp}/bad",
         r"bad, line 2: expected 3 columns like line 1, found 2",
         "the DT B-NP\ncat NN\n"),
        ("conll-one-column", "train {TAG} dataset.train={tmp}/bad", r"bad, line 1: expected distinct token column",
         "the\ncat\n"),
        ("conll-not-utf8", "train {TAG} dataset.train={tmp}/bad", r"bad, line 3: expected utf-8 text",
         b"the DT B-NP\n\n\xff DT B-NP\n"),
        ("conllu-columns", "train {TAG} dataset=conllu_files dataset.train={tmp}/bad",
         r"bad, line 4: expected 10 tab-separated columns \(CoNLL-U\), found 3", CONLLU + "1\tcat\tNOUN\n"),
        ("conllu-word-id", "train {TAG} dataset=conllu_files dataset.train={tmp}/bad",
         r"bad, line 2: expected a word ID",
         CONLLU.replace("\n1\t", "\nx\t")),
        ("labeled-label-only", "train {CLS} dataset.train={tmp}/bad", r"bad, line 31: expected 'label<TAB>text'",
         LABELED + "pos\n"),
        ("parallel-no-tab", "train {TR} dataset.train={tmp}/bad", r"bad, line 31: expected 'source<TAB>target'",
         PAIRS + "just one side\n"),
        ("text-not-utf8", "train {GEN} dataset.train={tmp}/bad", r"bad, line 3: expected utf-8 text", NOT_UTF8 * 3),
        ("text-empty", "train {GEN} dataset.train={tmp}/bad", r"bad: the file is empty", "")]),
    row("known-parallel-line-counts-differ", "train {TR} dataset.source_lang=de dataset.target_lang=en "
        "dataset.train={tmp}/train", 2, r"train.de has 3 lines but \S*train.en has 2",
        files={"train.de": "a b\nc d\ne f\n", "train.en": "b a\nd c\n"}),
    row("known-parallel-empty-line", "train {TR} dataset.source_lang=de dataset.target_lang=en "
        "dataset.train={tmp}/train", 2, r"train.en, line 2: expected a sentence",
        files={"train.de": "a b\nc d\ne f\n", "train.en": "b a\n\nf e\n"}),
    *(row(f"known-checkpoint-{name}", f"{verb} checkpoint={path}", 2, says, setup=setup)
      for name, verb, path, says, setup in [
        ("missing", "eval", "/no/such/file.pt", r"checkpoint not found: /no/such/file.pt", None),
        ("a-folder", "eval", "{tmp}", r"checkpoint not found", None),
        ("truncated", "eval", "{tmp}/cut.pt", r"cut.pt", truncated_checkpoint),
        ("truncated-predict", "predict", "{tmp}/cut.pt", r"cut.pt", truncated_checkpoint),
        ("text-file", "translate", "{data}/corpus.txt", r"is not a readable checkpoint", None),
        ("five-bytes", "predict", "{tmp}/hello.pt", r"hello.pt is not a readable checkpoint", hello_checkpoint),
        ("empty", "sample", "{tmp}/hello.pt", r"hello.pt is not a readable checkpoint", empty_checkpoint)]),
    row("known-eval-needs-a-checkpoint", "eval", 2, r"eval needs checkpoint=PATH"),
    row("known-eval-split-train", "eval checkpoint={copy} split=train", 2, r"split='train' is not one of: val, test"),
    row("known-translate-beam-size-0", "translate checkpoint={translation} beam_size=0", 2, r"beam_size must be >= 1",
        stdin="a b c\n"),
    row("known-translate-a-copy-checkpoint", "translate checkpoint={copy}", 2, r"translate needs task=translation"),
    row("known-sample-a-copy-checkpoint", "sample checkpoint={copy} prompt=x", 2, r"does not generate text"),
    row("known-predict-a-bad-line", "predict checkpoint={copy}", 2, r"input line 2: expected 3 symbols from 1 to 4",
        stdin="1 2 3\n9 9\n"),
    row("known-ctrl-c-saves-and-exits-130", "train {COPY} trainer.max_steps=100", 130,
        r"continue with: rnnzoo train resume=\S+last.pt", setup=ctrl_c_at_step_3),
    row("known-prepare-a-generated-task", "prepare {COPY}", 0, r"nothing to cache"),
]


@pytest.mark.parametrize("case", CASES)
def test_bad_input(case: Case, made, tmp_path, monkeypatch, request):
    folder = request.getfixturevalue("shared_tmp") if case.how == "other" else tmp_path  # others may enter it
    before = snapshot(Path(made["root"]))
    for name, content in case.files.items():
        (folder / name).write_bytes(content if isinstance(content, bytes) else content.encode())
    monkeypatch.chdir(folder)
    undo = case.setup(folder, made, monkeypatch) if case.setup is not None else None
    try:
        result = run(case, folder, made, monkeypatch)
    finally:
        if undo is not None:
            undo()
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    assert result.returncode == case.status, (result.stdout[-2000:], result.stderr[-3000:])
    if case.status in (0, 130):
        errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
        assert not errors, errors
        assert re.search(case.says, result.stdout + result.stderr), (result.stdout[-2000:], result.stderr[-3000:])
    else:
        line = one_line_error(result)
        assert re.search(case.says, line), line[:1000]
    if case.then is not None:
        case.then(folder)
    assert snapshot(Path(made["root"])) == before


def test_a_row_that_hangs_fails_at_its_time_limit(monkeypatch):
    monkeypatch.setattr(cli, "main", lambda argv: signal.pause())  # waits for a signal: forever, but for the alarm
    with pytest.raises(pytest.fail.Exception, match="still running after 0.5 s"):
        run_in_process(["train"], Case("train", timeout=0.5), monkeypatch)
