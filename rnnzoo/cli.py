"""The `rnnzoo` command: a verb, then Hydra overrides.

    rnnzoo train [overrides]                    train; `model=`, `task=`, `trainer.*`, `--multirun`...
    rnnzoo prepare [overrides of train]         tokenize that run's data into the token cache now
    rnnzoo eval checkpoint=PATH [split=test]    evaluate a checkpoint, rebuilt from the file alone
    rnnzoo predict checkpoint=PATH [input=FILE] one output line per input line (stdin by default)
    rnnzoo sample checkpoint=PATH prompt=...    stream generated text
    rnnzoo translate checkpoint=PATH [input=FILE] [beam_size=5] [alignment=true]
    rnnzoo export checkpoint=PATH format=hf|onnx out=PATH    a checkpoint for another runtime
    rnnzoo serve checkpoint=PATH [port=8000]    an HTTP JSON API and a page showing the model's inside
    rnnzoo list [model=NAME | task=NAME]        models, tasks, datasets, which fits which; options

The verb is taken off argv and the rest goes to `hydra.main` untouched, so every Hydra
feature works (overrides, `--multirun`, `--cfg job`, `hydra.run.dir=`). Mistakes the user
can fix print one line, `error: ...`, and exit with status 2.

`rnnzoo train trainer.devices=N` composes its config, then runs
`torchrun --standalone --nproc_per_node=N -m rnnzoo train` with the same overrides, pointed at
the run folder it made (see rnnzoo.training.distributed); under torchrun only rank 0 has a run
folder and prints results.
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from .errors import RnnzooError

log = logging.getLogger("rnnzoo")

USAGE_NOTES = """Overrides are Hydra's: key=value, group=choice, --multirun a=1,2, --cfg job, hydra.run.dir=DIR.
`rnnzoo VERB --help` shows the config groups and the composed config of that verb.
"""

USER_ERROR = 2  # the exit status of every mistake the user can fix, Hydra's own (bad override syntax, unknown key) too


@dataclass(frozen=True)
class Verb:
    """One `rnnzoo VERB`: the Hydra config it composes (configs/<config>.yaml; None: the verb
    reads its arguments itself), the job that runs it, and its line of the usage text. The
    table, VERBS, closes this module, after the jobs it names."""

    config: str | None
    job: Callable[[Any], None]
    help: str
    example: str


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return
    name, rest = argv[0], argv[1:]
    try:
        verb = VERBS.get(name)
        if verb is None:
            raise RnnzooError(f"unknown verb '{name}'; choices: {', '.join(VERBS)} (rnnzoo --help)")
        if verb.config is None:
            verb.job(rest)
        else:
            _check_group_choices(rest)
            _run_hydra(name, rest)
    except RnnzooError as error:
        _fail(error)


def usage() -> str:
    """`rnnzoo --help`: one line per verb of the table, then how overrides work."""
    width = max(map(len, VERBS))
    lines = [f"  {name:<{width}}  {verb.help:<30} {verb.example}" for name, verb in VERBS.items()]
    return "\n".join(["usage: rnnzoo VERB [OVERRIDES...]", "", "verbs:", *lines, "", USAGE_NOTES])


def _fail(error: Exception) -> None:
    """One line, and the error's exit status: 2 (a mistake the user can fix) unless it has its own
    (a diverged run: 3)."""
    print(f"error: {error}", file=sys.stderr)
    sys.exit(getattr(error, "exit_status", USER_ERROR))


def _check_group_choices(overrides: list[str]) -> None:
    """`model=lstmm` fails here with close matches, before Hydra composes anything.

    A choice is a registered name (stored as its group option, no YAML needed), a registered
    variant (`model=bert_mini`: bert at another size) or a YAML config of the group
    (`model=bert_pretrained`); which entry it configures is checked with the composed config."""
    from .config import GROUPS, YAML_GROUPS, group_choices, register_schemas, unknown_yaml_choice, yaml_choices

    register_schemas()
    for override in overrides:
        key, _, value = override.partition("=")
        key = key.lstrip("+~")
        if key in GROUPS and value and "," not in value:  # a sweep (a,b) is Hydra's to expand
            if value not in group_choices(key):
                raise RnnzooError(GROUPS[key].unknown_message(value))
        if key in YAML_GROUPS and value and "," not in value and value != "null":
            if value not in yaml_choices(key):
                raise RnnzooError(unknown_yaml_choice(key, value))


def _run_hydra(verb: str, overrides: list[str]) -> None:
    import hydra
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from .config import config_dir

    job = _guarded(VERBS[verb].job)
    if verb == "train":
        from .training.distributed import hydra_overrides_for_rank
        from .training.run_folder import resume_in_its_folder
        from .training.search import check_command
        check_command(overrides)
        overrides = hydra_overrides_for_rank(resume_in_its_folder(overrides))
    sys.argv = [f"rnnzoo {verb}", *overrides]
    own_errors = "HYDRA_FULL_ERROR" not in os.environ  # else the user asked for Hydra's tracebacks
    try:
        # Hydra raises its errors to us instead of exiting 1; only for this call, or a caller running
        # several commands in one process (the tests) would pass it on and get tracebacks after the first
        os.environ.setdefault("HYDRA_FULL_ERROR", "1")
        hydra.main(config_path=str(config_dir()), config_name=VERBS[verb].config, version_base="1.3")(job)()
    except (HydraException, OmegaConfBaseException) as error:
        if _JOB.started or not own_errors:
            raise
        _fail(RnnzooError(_one_line(error)))
    except OSError as error:  # Hydra writing the run folder (.hydra/, the log) before the job
        if _JOB.started or not own_errors:
            raise
        _fail(RnnzooError(f"cannot write {error.filename}: {error.strerror}; choose another folder with "
                          "hydra.run.dir="))
    except ValueError as error:
        if str(error) != "No trials are completed yet.":  # Optuna's, when every trial of a search failed
            raise
        _fail(RnnzooError("every trial of the search failed (each said why above): no best trial"))
    except SystemExit as exit:
        if exit.code == 1 and not _JOB.started:  # Hydra refused the command line (it said why, above)
            sys.exit(USER_ERROR)
        raise
    finally:
        if own_errors:
            os.environ.pop("HYDRA_FULL_ERROR", None)


def _one_line(error: BaseException) -> str:
    """Hydra's message about the command line (and OmegaConf's beneath it) on one line, without
    the `full_key:`/`object_type=` details that repeat it."""
    texts = [str(error), str(error.__cause__ or "")]
    lines = [line.strip().rstrip(".") for text in texts for line in text.splitlines()]
    return "; ".join(line for line in lines if line and not line.startswith(("full_key:", "object_type=")))


class _JOB:
    """Whether Hydra got as far as calling the job: its exit status 1 before that is a user error."""

    started = False


def _guarded(job: Callable[[DictConfig], Any]) -> Callable[[DictConfig], Any]:
    """Inside Hydra's call: user errors become one line and exit 2; Ctrl-C exits 130. The job's
    value goes back to Hydra (a search trial's objective). A trial of a search that fails says
    why in one line and raises to Hydra, which records it as failed: the search goes on
    (rnnzoo.training.search)."""

    def run(cfg: DictConfig) -> Any:
        _JOB.started = True
        try:
            return job(cfg)
        except RnnzooError as error:
            from .training.search import in_search
            if in_search():
                print(f"error: trial {_output_dir()} failed, the search goes on: {error}", file=sys.stderr)
                raise
            _fail(error)
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            sys.exit(130)

    run.__name__ = job.__name__
    return run


def _output_dir() -> str:
    from hydra.core.hydra_config import HydraConfig
    return HydraConfig.get().runtime.output_dir


class RunFolderCheck(Callback):
    """A Hydra callback (configs/train.yaml) that refuses a run folder holding another run, or one
    that cannot be written, before Hydra writes `.hydra/` into it: the refused folder stays as
    it was. rnnzoo.api.train checks again, holding the folder's lock (rnnzoo.training.run_folder)."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        from hydra.core.hydra_config import HydraConfig

        from .training.run_folder import check_free, check_writable

        if config.hydra.output_subdir is None:  # keeps no run folder: prepare, torchrun ranks other than 0
            return
        HydraConfig.instance().set_config(config)  # for ${hydra:...} in hydra.run.dir
        folder = Path(str(config.hydra.run.dir))
        try:
            from .run_config import check_run_options
            check_run_options(config)  # overwrite=maybe must not pass as true here
            check_free(folder, config.get("resume"), bool(config.get("overwrite", False)))
            check_writable(folder)
            if config.get("resume") is not None:  # a refused resume into its own folder leaves it as it was
                from .run_config import plain
                from .training.setup import resumed
                job = OmegaConf.masked_copy(config, [key for key in config if key != "hydra"])
                resumed(plain(job), config.hydra.overrides.task)
        except RnnzooError as error:
            _fail(error)


def _train_job(cfg: DictConfig) -> float | None:
    """Train; under --multirun, return the monitored validation value (a search's objective)."""
    from hydra.core.hydra_config import HydraConfig

    from .api import train
    from .training.distributed import process_rank, torchrun_worker
    from .training.search import objective

    run_dir = _output_dir()
    devices = int(cfg.get("trainer", {}).get("devices", 1))
    if devices > 1 and not torchrun_worker():
        _launch(devices, cfg, run_dir)
        return None
    try:
        final = train(cfg, run_dir, overrides=HydraConfig.get().overrides.task)
    except KeyboardInterrupt:
        _interrupted(Path(run_dir))
        raise
    if process_rank() == 0:
        print(_table(final))
        print(f"run folder: {run_dir}")
    elif torchrun_worker():
        _leave_now()
    return objective(cfg, final)


def _leave_now() -> None:
    """A torchrun worker other than rank 0, its run done (the process group destroyed, nothing of
    the run left to write: rank 0 writes it all), exits without the interpreter's teardown. That
    teardown sometimes aborted rank 1 ("terminate called without an active exception", exit -6, a
    C++ thread still joinable as static objects are destroyed), and torchrun then failed the whole
    run after it had finished: seen in about one CI run in six (tests/test_scale.py)."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def _interrupted(run_dir: Path) -> None:
    """Ctrl-C: the command that continues the run, where its last.pt was saved."""
    from .training.run_folder import resume_command

    last = run_dir / "checkpoints" / "last.pt"
    if last.is_file():
        print(f"interrupted; continue with: {resume_command(last, run_dir)}", file=sys.stderr)
        sys.exit(130)


def _launch(devices: int, cfg: DictConfig, run_dir: str) -> None:
    """This run again as `devices` torchrun workers, writing into this run's folder."""
    from hydra.core.hydra_config import HydraConfig

    from .training.device import resolve_device
    from .training.distributed import launch

    overrides = HydraConfig.get().overrides
    own = [o for o in overrides.hydra if o.partition("=")[0] not in ("hydra.run.dir", "hydra.mode")
           and not o.startswith("hydra.sweep.")]
    quoted_dir = "'" + run_dir.replace("'", "\\'") + "'"
    device = resolve_device(str(cfg.get("trainer", {}).get("device", "auto")))
    status = launch(devices, device, [*overrides.task, *own, f"hydra.run.dir={quoted_dir}"])
    if status != 0:  # the workers said why, above
        sys.exit(status)


def _prepare_job(cfg: DictConfig) -> None:
    from .api import prepare

    logging.basicConfig(level=logging.INFO, format="%(message)s")  # the cache's progress lines, on stderr
    task = prepare(cfg)
    entries = getattr(task, "cache_entries", {})
    if not entries:
        print(f"nothing to cache: dataset '{cfg.dataset.name}' is generated, or dataset.cache=false")
        return
    from .listing import cache_table
    print(cache_table(list(entries.items())))


def _eval_job(cfg: DictConfig) -> None:
    from .api import evaluate

    metrics = evaluate(cfg, _output_dir())
    print(_table(metrics))


def _input_lines(cfg: DictConfig):
    source = cfg.get("input")
    if source in (None, "", "-"):
        return _text_lines(sys.stdin, "standard input")
    try:
        return _text_lines(open(source, encoding="utf-8"), f"input={source}")
    except OSError as error:
        raise RnnzooError(f"input={source}: {error.strerror}") from None


def _text_lines(stream, name: str):
    """The lines of `stream`; a binary one (not UTF-8, or NUL bytes) is one error naming it,
    not a decoding traceback halfway through the predictions."""
    try:
        for number, line in enumerate(stream, 1):
            if "\0" in line:
                raise RnnzooError(f"{name} is not a text file: line {number} holds a NUL byte")
            yield line
    except UnicodeDecodeError as error:
        raise RnnzooError(f"{name} is not UTF-8 text (a binary file?): {error.reason}") from None


def _predict_job(cfg: DictConfig) -> None:
    from .api import predict

    for output in predict(cfg, _input_lines(cfg)):
        print(output, flush=True)


def _translate_job(cfg: DictConfig) -> None:
    from .api import translate

    for output in translate(cfg, _input_lines(cfg)):
        print(output, flush=True)


def _sample_job(cfg: DictConfig) -> None:
    from .api import sample

    for piece in sample(cfg):
        print(piece, end="", flush=True)
    print()


def _export_job(cfg: DictConfig) -> None:
    from .export import export

    logging.basicConfig(level=logging.INFO, format="%(message)s")  # the checks' lines, on stderr
    print(f"exported: {export(cfg)}")


def _serve_job(cfg: DictConfig) -> None:
    try:
        from .serve.app import serve
    except ModuleNotFoundError as error:
        raise RnnzooError(f"rnnzoo serve needs the Python package '{error.name}': "
                          "pip install 'rnnzoo[serve]'") from None
    serve(cfg)


def _table(metrics: dict[str, float]) -> str:
    width = max(len(k) for k in metrics)
    return "\n".join(f"{k:<{width}}  {v:.6g}" if isinstance(v, float) else f"{k:<{width}}  {v}"
                     for k, v in metrics.items())


def _list_job(args: list[str]) -> None:
    """`rnnzoo list ...` reads its own arguments: it composes no config."""
    from .listing import print_listing
    print_listing(args)


# --- the verb table: what `rnnzoo VERB` runs, and its line of `rnnzoo --help` -------------------
VERBS: dict[str, Verb] = {
    "train": Verb("train", _train_job, "train a model on a task",
                  "rnnzoo train model=lstm task=copy trainer.max_steps=500"),
    "prepare": Verb("prepare", _prepare_job, "tokenize a run's data once",
                    "rnnzoo prepare task=generation dataset=text_files dataset.train=BIG.txt"),
    "eval": Verb("eval", _eval_job, "evaluate a saved checkpoint",
                 "rnnzoo eval checkpoint=outputs/.../checkpoints/best.pt split=test"),
    "predict": Verb("predict", _predict_job, "tags/labels/answers per line",
                    "rnnzoo predict checkpoint=PATH input=lines.txt   (or stdin)"),
    "sample": Verb("sample", _sample_job, "stream generated text",
                   'rnnzoo sample checkpoint=PATH prompt="ROMEO:" max_new_tokens=500'),
    "translate": Verb("translate", _translate_job, "translate lines",
                      "rnnzoo translate checkpoint=PATH input=source.txt beam_size=5 [alignment=true]"),
    "export": Verb("export", _export_job, "a model for another runtime",
                   "rnnzoo export checkpoint=PATH format=onnx out=DIR   (format=hf: a HF BERT folder)"),
    "serve": Verb("serve", _serve_job, "HTTP API and a page",
                  "rnnzoo serve checkpoint=PATH port=8000   (then open http://127.0.0.1:8000/)"),
    "list": Verb(None, _list_job, "what can be trained",
                 "rnnzoo list   |   rnnzoo list model=lstm (its options)   |   rnnzoo list cache"),
}
