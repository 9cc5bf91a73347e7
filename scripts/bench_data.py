"""What a corpus's size costs a run: preparation, time to the first training step, peak memory.

Issue 15's bench. It builds plain-text corpora of 1, 10, 100 and 1,000 MB (MB = 10**6 bytes)
by repeating tinyshakespeare's input.txt (cut at a line boundary), plus V.txt, the last 10% of
input.txt, as validation and test split, in a scratch folder (never in the repository; built
once, reused while its size is right). Then, for each level and size, with a fresh
$RNNZOO_CACHE_DIR each:

1. `python -m rnnzoo prepare ...` (the first run, which builds the token cache): wall time,
   MB/s (corpus MB over that wall time, the process's start included), peak resident memory
   (VmHWM, or wait4's ru_maxrss if higher) and peak anonymous memory (the highest RssAnon seen
   polling /proc/<pid>/status every 20 ms).
2. `python -m rnnzoo train ... trainer.max_steps=5` (a second run, from the cache; the fastest of
   `--repeats` runs, 3 by default, since other jobs on a shared machine only add delays): the time from
   the command to the first training step (the trainer's log line `first training batch done
   X s after the process started`), the whole run's wall time and the same two peaks.

Subword levels also time HF `tokenizers`' own `encode_batch` on the same file with the tokenizer
the cache holds (`task_state` in $RNNZOO_CACHE_DIR/tokens/*/vocab.json or meta.json), in this
process, against rnnzoo's preparation rate. Every child runs with one torch thread
(trainer.num_threads=1, OMP_NUM_THREADS=1) and its working directory in the scratch folder.

    python scripts/bench_data.py [--sizes 1,10,100,1000] [--levels char,word,bpe]
                                 [--compare-levels wordpiece] [--work DIR] [--out docs/bench_data.md]
    python scripts/bench_data.py --baseline ROOT_OR_PYTHON --sizes 1,10,100 --out docs/bench_data.md

`--baseline` measures code from before the token cache (a checkout's root, run with this Python
and PYTHONPATH=ROOT, or another environment's python): step 2 only, as that code has no
`prepare`. `--out` rewrites only this mode's marked section of the file and keeps the rest.
Targets (issue 15, 2 CPU cores): time to the first step at most 1.2x the 1 MB one at every size;
1,000 MB char: a 5-step run peaks at most 1.0 GB resident, preparing it at most 2.0 GB; char
preparation at least 30 MB/s; subword preparation at least 0.8x HF encode_batch's rate.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

REPO = Path(__file__).resolve().parent.parent
MB = 10**6
POLL_S = 0.02
STEPS = 5
ENCODE_RATE = re.compile(r"token cache: train split of \S+: .* \((\d+(?:\.\d+)?) MB/s of source\)")
FIRST_STEP = re.compile(r"first training batch done (\d+(?:\.\d+)?) s after the process started")
SUBWORD_LEVELS = ("bpe", "wordpiece")
HF_BATCH_LINES = 10_000
TARGETS = {"first_step_ratio": 1.2, "run_rss_gb": 1.0, "prepare_rss_gb": 2.0, "char_mb_s": 30.0,
           "subword_ratio": 0.8}
TARGET_SIZE_MB = 1000.0  # the memory targets are stated for the 1,000 MB char corpus


# --- corpora ----------------------------------------------------------------------------------

def reference_text() -> Path:
    """tinyshakespeare's input.txt: $RNNZOO_DATA_DIR, else ../shared/data beside the checkout."""
    roots = [Path(os.environ["RNNZOO_DATA_DIR"])] if os.environ.get("RNNZOO_DATA_DIR") else []
    roots.append(REPO.parent / "shared" / "data")
    for root in roots:
        path = root.expanduser() / "tinyshakespeare" / "input.txt"
        if path.is_file():
            return path
    tried = ", ".join(str(root / "tinyshakespeare" / "input.txt") for root in roots)
    sys.exit(f"error: tinyshakespeare's input.txt not found (tried {tried}); "
             "set RNNZOO_DATA_DIR to the folder holding tinyshakespeare/")


def corpus_bytes(source: bytes, size: int) -> Iterator[bytes]:
    """`source` repeated up to `size` bytes, the last copy cut after its last whole line."""
    if not source.endswith(b"\n"):
        source += b"\n"
    copies, rest = divmod(size, len(source))
    for _ in range(copies):
        yield source
    yield source[:source.rfind(b"\n", 0, rest) + 1]


def expected_size(source: bytes, size: int) -> int:
    """The length `corpus_bytes(source, size)` comes to, without building it."""
    return sum(len(piece) for piece in corpus_bytes(source, size))


def write_atomically(path: Path, pieces: Iterator[bytes]) -> None:
    """Write then rename, so an interrupted build never leaves a file that looks finished."""
    partial = path.with_name(path.name + ".partial")
    with open(partial, "wb") as handle:
        for piece in pieces:
            handle.write(piece)
    partial.replace(path)


def build_corpus(source: Path, path: Path, size: int) -> Path:
    """The corpus of `size` bytes at `path`, built unless it is there with the right length."""
    text = source.read_bytes()
    if not (path.is_file() and path.stat().st_size == expected_size(text, size)):
        write_atomically(path, corpus_bytes(text, size))
    return path


def validation_bytes(source: bytes, share: float = 0.1) -> bytes:
    """The last `share` of `source`, starting at a line's start."""
    start = int(len(source) * (1 - share))
    if start > 0 and source[start - 1:start] != b"\n":
        start = source.find(b"\n", start) + 1
    return source[start:]


def build_validation(source: Path, path: Path) -> Path:
    text = validation_bytes(source.read_bytes())
    if not (path.is_file() and path.read_bytes() == text):
        write_atomically(path, iter([text]))
    return path


# --- running a child and watching its memory ---------------------------------------------------

@dataclass
class Measured:
    """One child process: how long it ran, its memory peaks (kB) and its exit status."""
    wall_s: float
    rss_kb: int
    anon_kb: int
    returncode: int
    output: str


def parse_status(text: str) -> dict[str, int]:
    """/proc/<pid>/status's memory lines in kB: {'VmHWM': 123, 'RssAnon': 45, ...}."""
    fields = {}
    for line in text.splitlines():
        name, _, value = line.partition(":")
        parts = value.split()
        if len(parts) == 2 and parts[1] == "kB" and parts[0].isdigit():
            fields[name] = int(parts[0])
    return fields


def watch(pid: int) -> tuple[int, int, int]:
    """Poll /proc/<pid>/status every POLL_S until the child exits, then reap it with wait4.

    Returns (exit code, peak resident kB: the last VmHWM seen or ru_maxrss, whichever is higher,
    peak anonymous kB: the highest RssAnon seen)."""
    status_file = Path(f"/proc/{pid}/status")
    hwm = anon = 0
    while True:
        reaped, status, usage = os.wait4(pid, os.WNOHANG)
        if reaped:
            return os.waitstatus_to_exitcode(status), max(hwm, usage.ru_maxrss), anon
        try:
            fields = parse_status(status_file.read_text())
        except OSError:  # exiting between wait4 and the read
            fields = {}
        hwm = max(hwm, fields.get("VmHWM", 0))
        anon = max(anon, fields.get("RssAnon", 0))
        time.sleep(POLL_S)


def run_measured(command: list[str], env: dict[str, str], cwd: Path, log: Path) -> Measured:
    """Run `command`, its stdout and stderr into `log`; time it and watch its memory."""
    with open(log, "w") as handle:
        start = time.perf_counter()
        child = subprocess.Popen(command, env=env, cwd=cwd, stdout=handle, stderr=subprocess.STDOUT)
        try:
            returncode, rss_kb, anon_kb = watch(child.pid)
        except BaseException:  # Ctrl-C: leave no child running
            child.kill()
            child.wait()
            raise
        wall = time.perf_counter() - start
    child.returncode = returncode  # reaped by watch(); tell Popen so it does not wait again
    return Measured(wall, rss_kb, anon_kb, returncode, log.read_text(errors="replace"))


def first_step_seconds(text: str) -> float | None:
    """X from the trainer's line `first training batch done X s after the process started`."""
    match = FIRST_STEP.search(text)
    return float(match.group(1)) if match else None


# --- the code under test ----------------------------------------------------------------------

@dataclass
class Code:
    """Which rnnzoo the children run: a Python, and a checkout put first on PYTHONPATH (or none)."""
    python: str
    root: Path | None

    def env(self, cache_dir: Path) -> dict[str, str]:
        env = dict(os.environ, OMP_NUM_THREADS="1", RNNZOO_CACHE_DIR=str(cache_dir))
        if self.root is not None:
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(self.root), env.get("PYTHONPATH")]))
        return env

    def imported_from(self, cwd: Path) -> str:
        """Where `python -m rnnzoo` imports rnnzoo from, with this environment."""
        probe = [self.python, "-c", "import rnnzoo; print(rnnzoo.__file__)"]
        return subprocess.run(probe, env=self.env(cwd), cwd=cwd, capture_output=True, text=True,
                              check=True).stdout.strip()

    def revision(self) -> str:
        """The checkout's commit, and how many files differ from it."""
        root = self.root or REPO
        git = ["git", "-C", str(root)]
        try:
            sha = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                 check=True).stdout.strip()
            changed = subprocess.run([*git, "status", "--porcelain", "--untracked-files=no"],
                                     capture_output=True, text=True, check=True).stdout.splitlines()
        except (OSError, subprocess.CalledProcessError):
            return "unknown"
        return f"{sha} + {len(changed)} modified files" if changed else sha


def code_under_test(baseline: str | None) -> Code:
    """This checkout with this Python; or `--baseline`: a checkout's root, or another python."""
    if baseline is None:
        return Code(sys.executable, REPO)
    path = Path(baseline).expanduser().resolve()
    if path.is_dir():
        return Code(sys.executable, path)
    return Code(str(path), None)


def rnnzoo_command(code: Code, verb: str, corpus: Path, valid: Path, level: str, extra: list[str]) -> list[str]:
    return [code.python, "-m", "rnnzoo", verb, "task=generation", "dataset=text_files",
            f"dataset.train={corpus}", f"dataset.valid={valid}", f"dataset.test={valid}",
            f"task.level={level}", "trainer.num_threads=1", *extra]


# --- HF tokenizers' own rate ------------------------------------------------------------------

CACHE_STATE_FILES = ("*/vocab.json", "*/meta.json")  # the entry holding `task_state`, under either name


def cached_subword(cache_dir: Path) -> str | None:
    """The HF tokenizer JSON the token cache holds (task_state.tokenizer.subword), or None."""
    tokens = cache_dir / "tokens"
    for path in sorted(path for pattern in CACHE_STATE_FILES for path in tokens.glob(pattern)):
        try:
            state = json.loads(path.read_text()).get("task_state") or {}
        except (OSError, ValueError):
            continue
        subword = (state.get("tokenizer") or {}).get("subword")
        if subword:
            return subword
    return None


def line_batches(path: Path, lines: int = HF_BATCH_LINES) -> Iterator[list[str]]:
    """The file's lines (line ends kept), `lines` at a time: memory stays bounded."""
    batch: list[str] = []
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            batch.append(line)
            if len(batch) == lines:
                yield batch
                batch = []
    if batch:
        yield batch


def hf_rate(cache_dir: Path, corpus: Path) -> float | None:
    """MB/s of `Tokenizer.encode_batch` over the corpus, with the cache's tokenizer; None without one."""
    subword = cached_subword(cache_dir)
    if subword is None:
        return None
    from tokenizers import Tokenizer
    tokenizer = Tokenizer.from_str(subword)
    start = time.perf_counter()
    for batch in line_batches(corpus):
        tokenizer.encode_batch(batch)
    return corpus.stat().st_size / MB / (time.perf_counter() - start)


# --- one (level, size) ------------------------------------------------------------------------

@dataclass
class Row:
    """One level at one size. Times in s; memory in GB; None where not measured."""
    level: str
    size_mb: float
    prepare: Measured | None = None
    run: Measured | None = None
    first_step_s: float | None = None
    hf_mb_s: float | None = None
    encode_mb_s: float | None = None  # rnnzoo's own rate tokenizing the training file (its log line)

    @property
    def prepare_mb_s(self) -> float | None:
        return self.size_mb / self.prepare.wall_s if self.prepare else None


class Bench:
    """Runs the children for one (level, size) in its own scratch folder and cache."""

    def __init__(self, code: Code, work: Path, prepare: bool, repeats: int = 1) -> None:
        self.code, self.work, self.do_prepare, self.repeats = code, work, prepare, repeats
        self.valid = work / "V.txt"

    def measure(self, level: str, size_mb: float, corpus: Path, train: bool = True) -> Row:
        scratch = self.work / ("baseline" if not self.do_prepare else "new") / f"{level}-{size_label(size_mb)}MB"
        shutil.rmtree(scratch, ignore_errors=True)
        cache = scratch / "cache"
        cache.mkdir(parents=True)
        row = Row(level, size_mb)
        if self.do_prepare:
            row.prepare = self.child("prepare", level, corpus, scratch, [])
            found = ENCODE_RATE.search(row.prepare.output)
            row.encode_mb_s = float(found.group(1)) if found else None
            if level in SUBWORD_LEVELS:
                row.hf_mb_s = hf_rate(cache, corpus)
        if train:  # the fastest of `repeats` runs: other jobs on a shared machine only ever slow a run down
            runs = [self.train_run(level, corpus, scratch / f"run{i}") for i in range(self.repeats)]
            row.run, row.first_step_s = min(runs, key=lambda run: run[1] if run[1] is not None else float("inf"))
        return row

    def train_run(self, level: str, corpus: Path, run_dir: Path) -> tuple[Measured, float | None]:
        """One 5-step training run from the cache, and its time to the first step."""
        extra = [f"trainer.max_steps={STEPS}", "task.eval_tokens=2000", "trainer.progress=false",
                 f"hydra.run.dir={run_dir}"]
        run = self.child("train", level, corpus, run_dir.parent, extra)
        return run, first_step_seconds(run.output) or first_step_seconds(read_or_empty(run_dir / "train.log"))

    def child(self, verb: str, level: str, corpus: Path, scratch: Path, extra: list[str]) -> Measured:
        command = rnnzoo_command(self.code, verb, corpus, self.valid, level, extra)
        measured = run_measured(command, self.code.env(scratch / "cache"), scratch, scratch / f"{verb}.log")
        if measured.returncode != 0:
            tail = "\n".join(measured.output.splitlines()[-15:])
            raise SystemExit(f"error: `{shlex.join(command)}` exited with {measured.returncode}:\n{tail}")
        return measured


def read_or_empty(path: Path) -> str:
    return path.read_text(errors="replace") if path.is_file() else ""


def size_label(size_mb: float) -> str:
    return f"{size_mb:g}"


# --- report -----------------------------------------------------------------------------------

def fmt(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:,.{digits}f}"


def gb(kb: int) -> float:
    return kb * 1024 / 10**9


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


LEVEL_HEADER = ["corpus MB", "prepare s", "prepare MB/s", "prepare peak RSS GB", "prepare peak anon GB",
                "to first step s", "vs smallest", f"{STEPS}-step run s", "run peak RSS GB", "run peak anon GB"]


def level_table(rows: list[Row]) -> str:
    """One level's rows; 'vs smallest' is the time to the first step over the smallest corpus's."""
    base = rows[0].first_step_s if rows else None
    cells = []
    for row in rows:
        prep, run = row.prepare, row.run
        ratio = row.first_step_s / base if row.first_step_s is not None and base else None
        cells.append([size_label(row.size_mb), fmt(prep and prep.wall_s, 1), fmt(row.prepare_mb_s, 1),
                      fmt(prep and gb(prep.rss_kb)), fmt(prep and gb(prep.anon_kb)),
                      fmt(row.first_step_s, 1), fmt(ratio) + ("x" if ratio is not None else ""),
                      fmt(run and run.wall_s, 1), fmt(run and gb(run.rss_kb)), fmt(run and gb(run.anon_kb))])
    return markdown_table(LEVEL_HEADER, cells)


def subword_table(rows: list[Row]) -> str:
    cells = []
    for row in rows:
        ratio = row.encode_mb_s / row.hf_mb_s if row.encode_mb_s and row.hf_mb_s else None
        cells.append([row.level, size_label(row.size_mb), fmt(row.prepare_mb_s), fmt(row.encode_mb_s),
                      fmt(row.hf_mb_s), fmt(ratio) + ("x" if ratio is not None else "")])
    return markdown_table(["level", "corpus MB", "whole prepare MB/s", "rnnzoo tokenizing MB/s",
                           "HF encode_batch MB/s", "ratio"], cells)


def verdict(ok: bool | None, text: str) -> str:
    mark = "n/a" if ok is None else ("met" if ok else "NOT met")
    return f"- **{mark}**: {text}"


def verdicts(by_level: dict[str, list[Row]]) -> list[str]:
    """The issue's targets against the rows measured; n/a where a row they need was not run."""
    lines = []
    for level, rows in by_level.items():
        if not any(row.run for row in rows):
            continue  # prepared only (--compare-levels)
        ratios = [(r.first_step_s / rows[0].first_step_s, r.size_mb) for r in rows
                  if r.first_step_s is not None and rows[0].first_step_s]
        worst = max(ratios, default=None)
        lines.append(verdict(None if worst is None else worst[0] <= TARGETS["first_step_ratio"],
                             f"{level}: time to the first step <= {TARGETS['first_step_ratio']}x the smallest "
                             f"corpus's at every size (worst: {fmt(worst and worst[0])}x"
                             f"{f' at {size_label(worst[1])} MB' if worst else ''})"))
    char = {row.size_mb: row for row in by_level.get("char", [])}
    big = char.get(TARGET_SIZE_MB)
    run_rss = gb(big.run.rss_kb) if big and big.run else None
    prep_rss = gb(big.prepare.rss_kb) if big and big.prepare else None
    lines.append(verdict(None if run_rss is None else run_rss <= TARGETS["run_rss_gb"],
                         f"char {TARGET_SIZE_MB:g} MB, {STEPS}-step run: peak RSS {fmt(run_rss)} GB "
                         f"<= {TARGETS['run_rss_gb']} GB"))
    lines.append(verdict(None if prep_rss is None else prep_rss <= TARGETS["prepare_rss_gb"],
                         f"char {TARGET_SIZE_MB:g} MB, preparation: peak RSS {fmt(prep_rss)} GB "
                         f"<= {TARGETS['prepare_rss_gb']} GB"))
    largest = max(char.values(), key=lambda r: r.size_mb, default=None)
    rate = largest.prepare_mb_s if largest else None
    lines.append(verdict(None if rate is None else rate >= TARGETS["char_mb_s"],
                         f"char preparation {fmt(rate, 1)} MB/s >= {TARGETS['char_mb_s']:g} MB/s "
                         f"(largest corpus{f', {size_label(largest.size_mb)} MB' if largest else ''}; "
                         "the process's start counts, so small corpora read low)"))
    for level in SUBWORD_LEVELS:
        measured = [r for r in by_level.get(level, []) if r.encode_mb_s]
        row = max(measured, key=lambda r: r.size_mb, default=None)
        ratio = row.encode_mb_s / row.hf_mb_s if row and row.hf_mb_s else None
        if row is not None:
            lines.append(verdict(None if ratio is None else ratio >= TARGETS["subword_ratio"],
                                 f"{level} tokenizing at {fmt(ratio)}x HF encode_batch's rate >= "
                                 f"{TARGETS['subword_ratio']}x ({size_label(row.size_mb)} MB)"))
    return lines


def machine() -> str:
    model = next((line.split(":", 1)[1].strip() for line in read_or_empty(Path("/proc/cpuinfo")).splitlines()
                  if line.startswith("model name")), "unknown CPU")
    memory = parse_status(read_or_empty(Path("/proc/meminfo"))).get("MemTotal", 0)
    return (f"{len(os.sched_getaffinity(0))} CPUs (nproc), {model}, {gb(memory):.0f} GB memory; "
            f"{datetime.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}")


def report(args: argparse.Namespace, code: Code, imported: str, by_level: dict[str, list[Row]]) -> str:
    command = shlex.join(["python", "scripts/bench_data.py", *args.argv])
    parts = [f"Command: `{command}`", "",
             f"Code: `{imported}` ({code.revision()}); machine: {machine()}.", ""]
    for level, rows in by_level.items():
        if any(row.run for row in rows):
            parts += [f"#### {level}", "", level_table(rows), ""]
    subword = [row for rows in by_level.values() for row in rows if row.level in SUBWORD_LEVELS and row.prepare]
    if subword:
        parts += ["#### Subword preparation against HF tokenizers' encode_batch (same file, same tokenizer)", "",
                  subword_table(subword), ""]
    if not args.baseline:
        parts += ["#### Targets", "", *verdicts(by_level), ""]
    return "\n".join(parts)


def write_section(path: Path, name: str, body: str) -> None:
    """Put `body` between this section's markers in `path`, keeping everything else (hand-written text)."""
    begin, end = f"<!-- bench_data:{name}:begin -->", f"<!-- bench_data:{name}:end -->"
    block = f"{begin}\n{body.rstrip()}\n{end}"
    text = read_or_empty(path)
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        text = head + block + rest.split(end, 1)[1]
    else:
        text = (text.rstrip() + "\n\n" if text.strip() else "") + block + "\n"
    path.write_text(text)


# --- main -------------------------------------------------------------------------------------

def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1,10,100,1000", help="corpus sizes in MB (10**6 bytes)")
    parser.add_argument("--levels", default="char,word,bpe", help="task.level values, a table each")
    parser.add_argument("--compare-levels", default="wordpiece",
                        help="subword levels only prepared (no run), for the HF comparison ('' for none)")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "rnnzoo_bench_data",
                        help="scratch folder: corpora, caches, runs (not inside the repository)")
    parser.add_argument("--baseline", metavar="ROOT_OR_PYTHON",
                        help="measure code from before the token cache: train runs only, no prepare")
    parser.add_argument("--out", type=Path, help="markdown file whose section of this mode is rewritten")
    parser.add_argument("--repeats", type=int, default=3,
                        help="training runs per corpus; the fastest counts (a shared machine only adds delays)")
    args = parser.parse_args(argv)
    args.argv = argv
    args.sizes = sorted(float(size) for size in args.sizes.split(","))
    args.levels = [level for level in args.levels.split(",") if level]
    compare = [level for level in args.compare_levels.split(",") if level and level not in args.levels]
    args.compare_levels = [] if args.baseline else compare
    return args


def build_inputs(work: Path, sizes: list[float]) -> dict[float, Path]:
    """V.txt and one corpus per size in `work`; refuses a folder inside the repository."""
    work = work.resolve()
    if work == REPO or REPO in work.parents:
        sys.exit(f"error: --work {work} is inside the repository; pick a scratch folder")
    work.mkdir(parents=True, exist_ok=True)
    source = reference_text()
    build_validation(source, work / "V.txt")
    return {size: build_corpus(source, work / f"corpus_{size_label(size)}MB.txt", int(size * MB)) for size in sizes}


def main(argv: list[str] | None = None) -> None:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    corpora = build_inputs(args.work, args.sizes)
    code = code_under_test(args.baseline)
    imported = code.imported_from(args.work)
    print(f"measuring rnnzoo from {imported}; scratch in {args.work}", file=sys.stderr)
    bench = Bench(code, args.work.resolve(), prepare=not args.baseline, repeats=args.repeats)
    by_level: dict[str, list[Row]] = {}
    for level in [*args.levels, *args.compare_levels]:
        for size, corpus in corpora.items():
            row = bench.measure(level, size, corpus, train=level in args.levels)
            by_level.setdefault(level, []).append(row)
            print(progress_line(row), file=sys.stderr, flush=True)
    text = report(args, code, imported, by_level)
    print(text)
    if args.out:
        write_section(args.out, "baseline" if args.baseline else "cache", text)


def progress_line(row: Row) -> str:
    parts = [f"prepare {row.prepare.wall_s:.1f} s, {gb(row.prepare.rss_kb):.2f} GB"] if row.prepare else []
    if row.run:
        parts.append(f"first step {fmt(row.first_step_s, 1)} s, run {row.run.wall_s:.1f} s, "
                     f"{gb(row.run.rss_kb):.2f} GB")
    return f"{row.level} {size_label(row.size_mb)} MB: " + "; ".join(parts)


if __name__ == "__main__":
    main()
