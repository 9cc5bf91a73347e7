"""The `rnnzoo` command: a verb, then Hydra overrides.

    rnnzoo train [overrides]                    train; `model=`, `task=`, `trainer.*`, `--multirun`...
    rnnzoo prepare [overrides of train]         tokenize that run's data into the token cache now
    rnnzoo eval checkpoint=PATH [split=test]    evaluate a checkpoint, rebuilt from the file alone
    rnnzoo predict checkpoint=PATH [input=FILE] one output line per input line (stdin by default)
    rnnzoo sample checkpoint=PATH prompt=...    stream generated text
    rnnzoo translate checkpoint=PATH [input=FILE] [beam_size=5] [alignment=true]
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
import sys
from typing import Callable

from omegaconf import DictConfig

from .errors import RnnzooError

log = logging.getLogger("rnnzoo")

USAGE = """usage: rnnzoo VERB [OVERRIDES...]

verbs:
  train   train a model on a task        rnnzoo train model=lstm task=copy trainer.max_steps=500
  prepare tokenize a run's data once     rnnzoo prepare task=generation dataset=text_files dataset.train=BIG.txt
  eval    evaluate a saved checkpoint    rnnzoo eval checkpoint=outputs/.../checkpoints/best.pt split=test
  predict tags/labels/answers per line   rnnzoo predict checkpoint=PATH input=lines.txt   (or stdin)
  sample  stream generated text          rnnzoo sample checkpoint=PATH prompt="ROMEO:" max_new_tokens=500
  translate  translate lines             rnnzoo translate checkpoint=PATH input=source.txt beam_size=5 [alignment=true]
  list    what can be trained            rnnzoo list   |   rnnzoo list model=lstm (its options)   |   rnnzoo list cache

Overrides are Hydra's: key=value, group=choice, --multirun a=1,2, --cfg job, hydra.run.dir=DIR.
`rnnzoo VERB --help` shows the config groups and the composed config of that verb.
"""

VERBS = {"train": "train", "prepare": "prepare", "eval": "eval", "predict": "predict", "sample": "sample",
         "translate": "translate"}


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE)
        return
    verb, rest = argv[0], argv[1:]
    try:
        if verb == "list":
            from .listing import print_listing
            print_listing(rest)
        elif verb in VERBS:
            _check_group_choices(rest)
            _run_hydra(verb, rest)
        else:
            raise RnnzooError(f"unknown verb '{verb}'; choices: {', '.join([*VERBS, 'list'])} (rnnzoo --help)")
    except RnnzooError as error:
        _fail(error)


def _fail(error: Exception) -> None:
    print(f"error: {error}", file=sys.stderr)
    sys.exit(2)


def _check_group_choices(overrides: list[str]) -> None:
    """`model=lstmm` fails here with close matches, before Hydra composes anything.

    A YAML preset of the group is a choice too (`model=bert_mini`: configs/model/bert_mini.yaml
    starts from bert_schema, so it configures the registered model bert at another size);
    which entry it configures is checked with the composed config, by name."""
    from .config import GROUPS, group_choices, register_schemas

    register_schemas()
    for override in overrides:
        key, _, value = override.partition("=")
        key = key.lstrip("+~")
        if key in GROUPS and value and "," not in value:  # a sweep (a,b) is Hydra's to expand
            registry = GROUPS[key]
            if value in group_choices(key):
                continue
            if value not in registry:
                raise RnnzooError(registry.unknown_message(value))
            raise RnnzooError(f"{key} '{value}' is registered but has no configs/{key}/{value}.yaml")


def _run_hydra(verb: str, overrides: list[str]) -> None:
    import hydra

    from .config import config_dir

    job = _guarded({"train": _train_job, "prepare": _prepare_job, "eval": _eval_job, "predict": _predict_job,
                    "sample": _sample_job, "translate": _translate_job}[verb])
    if verb == "train":
        from .training.distributed import hydra_overrides_for_rank
        overrides = hydra_overrides_for_rank(overrides)
    sys.argv = [f"rnnzoo {verb}", *overrides]
    hydra.main(config_path=str(config_dir()), config_name=VERBS[verb], version_base="1.3")(job)()


def _guarded(job: Callable[[DictConfig], None]) -> Callable[[DictConfig], None]:
    """Inside Hydra's call: user errors become one line and exit 2; Ctrl-C exits 130."""

    def run(cfg: DictConfig) -> None:
        try:
            job(cfg)
        except RnnzooError as error:
            _fail(error)
        except KeyboardInterrupt:
            print("interrupted; last.pt holds the state to resume from", file=sys.stderr)
            sys.exit(130)

    run.__name__ = job.__name__
    return run


def _output_dir() -> str:
    from hydra.core.hydra_config import HydraConfig
    return HydraConfig.get().runtime.output_dir


def _train_job(cfg: DictConfig) -> None:
    from .api import train
    from .training.distributed import process_rank, torchrun_worker

    run_dir = _output_dir()
    devices = int(cfg.get("trainer", {}).get("devices", 1))
    if devices > 1 and not torchrun_worker():
        _launch(devices, cfg, run_dir)
        return
    final = train(cfg, run_dir)
    if process_rank() == 0:
        print(_table(final))
        print(f"run folder: {run_dir}")


def _launch(devices: int, cfg: DictConfig, run_dir: str) -> None:
    """This run again as `devices` torchrun workers, writing into this run's folder."""
    from hydra.core.hydra_config import HydraConfig

    from .training.distributed import launch
    from .training.trainer import resolve_device

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


def _table(metrics: dict[str, float]) -> str:
    width = max(len(k) for k in metrics)
    return "\n".join(f"{k:<{width}}  {v:.6g}" if isinstance(v, float) else f"{k:<{width}}  {v}"
                     for k, v in metrics.items())
