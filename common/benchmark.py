"""The one timing harness behind every speed figure of the toolkit.

A `Side` is one way of running the same workload: a callable and the list of items (batches or
single texts) one pass feeds it, prepared before timing. `measure(sides)` warms every side up,
then runs `repeats` passes with the sides interleaved item by item (the order rotates by one each
item and repeat, so every side takes every position alike and background load hits all of them);
the time of a pass is the sum of its items' call times. `summarise` gives each side's median pass
time, spread, examples/s, and its speed-up over reference sides (ratio of medians and the median
of the per-repeat paired ratios). `Remote(factory, kwargs)` builds sides in a worker process:
sides of another framework (a PyTorch model beside TensorFlow ones: both in one process
crashed with a segmentation fault with PyPI's default torch build) run there, timed by the worker
around the call itself, still interleaved with the local sides; a missing package skips them with
one note. `run_sides` does all of this for one set of sides, `over_batch_sizes` for a tool's
batch sizes against the baselines.

The baselines every speed table carries (`dense_sides`, `REFERENCES`):
    dense-padded        batches padded to the max length, dataset order (the papers' convention)
    dense-dynamic-*     length-sorted batches cut to their longest text (`common.data.
                        length_sorted_batches`), graph and XLA: the faster of the two is the
                        reference of an unqualified speed-up when batched
    dense-unpadded      batch 1, each text at its own length: the reference at batch 1

`LoadWatch` records what can skew a timing (/proc/loadavg before and after, the share of the
CPU other processes took while we timed, the busiest of them), `machine()` the CPU and its
vector/matrix flags (avx512_bf16, amx_*, ...) and library versions; `record` and `report` give the
JSON record (with the git commit, `git_commit`; written with `common.files.write_json`) and the
markdown. `Stopwatch` times a stage (not a speed figure).
"""
import dataclasses
import multiprocessing
import os
import platform
import shlex
import sys
import time
from importlib import metadata
from typing import Callable, Sequence

import numpy as np

from common.errors import UserError
from common import tables
from common.files import write_json
from common.progress import Progress

CPU_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "avx512_fp16", "avx_vnni",
             "amx_tile", "amx_bf16", "amx_int8")
LIBRARIES = ("tensorflow", "keras", "numpy", "torch", "transformers", "onnxruntime")
BUSY_WARNING = 0.2  # other processes' share of all cores above which a report warns
INSTALL = {"torch": "pip install torch transformers", "transformers": "pip install transformers",
           "onnxruntime": "pip install onnx onnxruntime", "onnx": "pip install onnx onnxruntime"}


@dataclasses.dataclass
class Side:
    """One way of running the workload. `run(item)` must return only when the result exists
    (call `.numpy()` on tensors: `blocking` does). `examples` = examples per pass (default: the
    number of rows of the items, else of items); `flops` = analytic FLOPs of one pass; `order`
    = the original index of each row of the concatenated items (None: dataset order); `probe(item)`
    = the outputs agreement checks compare (default: `run`'s); `note` = a line for the report."""
    name: str
    run: Callable
    items: Sequence
    examples: int = None
    flops: float = None
    order: np.ndarray = None
    probe: Callable = None
    note: str = None

    def __post_init__(self):
        if self.examples is None:
            self.examples = sum(_rows(item) for item in self.items)


@dataclasses.dataclass
class Remote:
    """Sides built in a worker process by `factory` ("module:function"), called there as
    `factory(**kwargs)` -> list of Side; the worker imports nothing of the parent's frameworks."""
    factory: str
    kwargs: dict


def _rows(item):
    if isinstance(item, dict) and "input_ids" in item:
        return len(item["input_ids"])
    return 1


def outputs_in_order(side, pick=lambda output: output):
    """`pick(side.run(item))` of every item, concatenated and put back in dataset order."""
    from common.data import restore_order

    joined = np.concatenate([np.asarray(pick(side.run(item))) for item in side.items])
    return joined if side.order is None else restore_order(joined, np.asarray(side.order))


def blocking(function):
    """`function(item)` whose outputs are copied to numpy, so a timed call includes the work."""
    import tensorflow as tf

    return lambda item: tf.nest.map_structure(np.asarray, function(item))


# ---------------------------------------------------------------- worker processes

def _worker(connection, factory, kwargs):
    import importlib

    from common.cli import quiet_tensorflow

    quiet_tensorflow()  # a spawned worker starts without the parent's quiet TensorFlow import
    module, name = factory.split(":")
    try:
        sides = getattr(importlib.import_module(module), name)(**kwargs)
    except Exception as err:  # reported to the parent as one line
        connection.send(("error", f"{type(err).__name__}: {err}"))
        return
    connection.send(("ready", [(s.name, len(s.items), s.examples, s.flops, s.note)
                               for s in sides]))
    by_name = {side.name: side for side in sides}
    while True:
        command, *rest = connection.recv()
        if command == "stop":
            return
        side = by_name[rest[0]]
        if command == "time":
            start = time.perf_counter()
            side.run(side.items[rest[1]])
            connection.send(time.perf_counter() - start)
        elif command == "output":
            connection.send((side.probe or side.run)(side.items[rest[1]]))


class _RemoteSide:
    """The parent's handle of one side living in a worker."""

    def __init__(self, name, count, examples, flops, note, connection, pid):
        self.name, self.items, self.examples, self.flops = name, [None] * count, examples, flops
        self.note = note
        self.connection, self.pid = connection, pid

    def timed(self, index):
        self.connection.send(("time", self.name, index))
        return self.connection.recv()

    def output(self, index):
        self.connection.send(("output", self.name, index))
        return self.connection.recv()


class Workers:
    """Start the workers of `Remote` specs (a context manager: the workers stop on exit)."""

    def __init__(self):
        self.processes = []

    def start(self, remote):
        context = multiprocessing.get_context("spawn")
        parent, child = context.Pipe()
        process = context.Process(target=_worker, args=(child, remote.factory, remote.kwargs),
                                  daemon=True)
        process.start()
        self.processes.append((process, parent))
        status, payload = parent.recv()
        if status == "error":
            raise RuntimeError(payload)
        return [_RemoteSide(*spec, parent, process.pid) for spec in payload]

    def pids(self):
        return [process.pid for process, _ in self.processes]

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        for process, connection in self.processes:
            try:
                connection.send(("stop",))
            except (OSError, BrokenPipeError):
                pass
            process.join(timeout=10)
            if process.is_alive():
                process.terminate()


# ---------------------------------------------------------------- timing

def _timed(side, index):
    if isinstance(side, _RemoteSide):
        return side.timed(index)
    item = side.items[index]
    start = time.perf_counter()
    side.run(item)
    return time.perf_counter() - start


def measure(sides, repeats, warmup=1, worker_pids=(), rounds=1, progress="timing"):
    """{'times': {side: [seconds per pass]}, 'round_times': [the same per round],
    'environment': ...} for `sides` (Side or worker handles) interleaved item by item;
    `warmup` untimed passes first, then `rounds` x `repeats` timed passes. `progress`: the
    name shown with the passes done (common.progress; None: nothing shown)."""
    check_counts(repeats=repeats, warmup=warmup, rounds=rounds)
    names = [side.name for side in sides]
    if len(set(names)) != len(names):
        raise ValueError(f"side names must differ: {names}")
    longest = max(len(side.items) for side in sides)
    shown = (Progress(warmup + rounds * repeats, f"{progress} {len(sides)} side(s)", unit="pass")
             if progress else None)
    for _ in range(warmup):
        for side in sides:
            for index in range(len(side.items)):
                _timed(side, index)
        if shown:
            shown.add(1)
    watch = LoadWatch(worker_pids)
    round_times = []
    for _ in range(rounds):
        times = {name: [] for name in names}
        for repeat in range(repeats):
            spent = dict.fromkeys(names, 0.0)
            for index in range(longest):
                shift = (repeat + index) % len(sides)
                for side in sides[shift:] + sides[:shift]:
                    if index < len(side.items):
                        spent[side.name] += _timed(side, index)
            for name in names:
                times[name].append(spent[name])
            if shown:
                shown.add(1)
        round_times.append(times)
    pooled = {name: [t for times in round_times for t in times[name]] for name in names}
    return {"times": pooled, "round_times": round_times, "environment": watch.stop()}


def check_counts(**counts):
    """UserError unless repeats/batch sizes are >= 1 (warmup >= 0)."""
    for name, value in counts.items():
        low = 0 if name == "warmup" else 1
        if value is None or value < low:
            raise UserError(f"--{name} must be >= {low}, got {value}")


def summarise(measurement, sides, references=None, headline=None):
    """One row per side. `references` {label: [side names]}: for each label, the fastest of the
    named sides present is the reference R, and a side gets `speedup_vs_<label>` (R's median
    pass time over its own), `paired_speedup_vs_<label>` (median over repeats of R's time over
    its own in the same repeat) and `reference_<label>` (R's name). `speedup` = the
    `headline` label's speed-up."""
    times = measurement["times"]
    medians = {name: float(np.median(values)) for name, values in times.items()}
    chosen = {}
    for label, candidates in (references or {}).items():
        present = [name for name in candidates if name in times]
        if present:
            chosen[label] = min(present, key=medians.get)
    rows = []
    for side in sides:
        values = times[side.name]
        median = medians[side.name]
        row = {"side": side.name, "examples": side.examples, "repeats": len(values),
               "median_ms": 1e3 * median,
               "p10_ms": 1e3 * float(np.percentile(values, 10)),
               "p90_ms": 1e3 * float(np.percentile(values, 90)),
               "ms_per_example": 1e3 * median / side.examples,
               "examples_per_s": side.examples / median,
               "gflops_per_pass": None if side.flops is None else side.flops / 1e9,
               "times_ms": [round(1e3 * t, 3) for t in values]}
        for label, reference in chosen.items():
            row[f"reference_{label}"] = reference
            row[f"speedup_vs_{label}"] = medians[reference] / median
            row[f"paired_speedup_vs_{label}"] = float(np.median(
                np.divide(times[reference], values)))
            flops = {s.name: s.flops for s in sides}
            if flops.get(reference) and side.flops:
                row[f"flops_speedup_vs_{label}"] = flops[reference] / side.flops
            if len(measurement.get("round_times", [])) > 1:
                row[f"round_speedups_vs_{label}"] = [
                    float(np.median(r[reference]) / np.median(r[side.name]))
                    for r in measurement["round_times"]]
        row["speedup"] = row.get(f"speedup_vs_{headline}") if headline else None
        rows.append(row)
    return rows


def row_of(rows, side):
    """The row of the named side."""
    return next(row for row in rows if row["side"] == side)


def run_sides(local, remote=(), repeats=5, warmup=1, references=None, headline=None,
              check=None, notes=None, rounds=1):
    """Build the remote sides (a missing package skips them with one note saying what to
    install), measure everything together and summarise. `check(outputs)` gets {side: probe
    (or run) output of the first item} before timing (agreement checks); its return value is
    kept as measurement['check']. Returns (rows, measurement)."""
    notes = notes if notes is not None else []
    with Workers() as workers:
        sides = list(local)
        for spec in remote:
            try:
                sides += workers.start(spec)
            except RuntimeError as err:
                message = str(err)
                missing = next((name for name in INSTALL if f"'{name}'" in message), None)
                if not message.startswith("ModuleNotFoundError") or missing is None:
                    raise
                notes.append(f"{spec.factory}: skipped ({missing} is not installed; "
                             f"`{INSTALL[missing]}` enables it)")
        notes += [side.note for side in sides if side.note]
        checked = None
        if check is not None:
            checked = check({side.name: side.output(0) if isinstance(side, _RemoteSide)
                             else (side.probe or side.run)(side.items[0]) for side in sides})
        measurement = measure(sides, repeats, warmup, workers.pids(), rounds)
        measurement["check"] = checked
    measurement["notes"] = notes
    return summarise(measurement, sides, references, headline), measurement


# ---------------------------------------------------------------- the machine and its load

def _read(path):
    try:
        with open(path, encoding="ascii", errors="replace") as handle:
            return handle.read()
    except OSError:
        return None


def _cpu_jiffies():
    """(busy, total) jiffies over all cores, or None off Linux."""
    text = _read("/proc/stat")
    if not text:
        return None
    values = [int(v) for v in text.splitlines()[0].split()[1:]]
    return sum(values) - values[3] - values[4], sum(values)  # minus idle and iowait


def _process_jiffies():
    """{pid: (command, user + system jiffies)} of every process we may read."""
    result = {}
    for entry in os.listdir("/proc") if os.path.isdir("/proc") else ():
        if entry.isdigit():
            text = _read(f"/proc/{entry}/stat")
            if text and ")" in text:
                command = text[text.index("(") + 1:text.rindex(")")]
                fields = text[text.rindex(")") + 2:].split()
                result[int(entry)] = (command, int(fields[11]) + int(fields[12]))
    return result


def _loadavg():
    text = _read("/proc/loadavg")
    return [float(v) for v in text.split()[:3]] if text else None


class LoadWatch:
    """What else ran while we timed: load averages, other processes' CPU share, the busiest."""

    def __init__(self, own_pids=()):
        self.own = {os.getpid(), *own_pids}
        self.started = time.perf_counter()
        self.loadavg = _loadavg()
        self.jiffies = _cpu_jiffies()
        self.processes = _process_jiffies()

    def stop(self):
        jiffies, processes = _cpu_jiffies(), _process_jiffies()
        seconds = time.perf_counter() - self.started
        tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
        busy = []
        for pid, (command, used) in processes.items():
            before = self.processes.get(pid, (command, 0))[1]
            share = (used - before) / tick / max(seconds, 1e-9)
            if pid not in self.own and share >= 0.05:
                busy.append({"pid": pid, "command": command, "cpu_percent": round(100 * share)})
        own = sum(processes[p][1] - self.processes.get(p, ("", 0))[1]
                  for p in self.own if p in processes)
        share = None
        if jiffies and self.jiffies and jiffies[1] > self.jiffies[1]:
            share = (jiffies[0] - self.jiffies[0] - own) / (jiffies[1] - self.jiffies[1])
            share = min(max(share, 0.0), 1.0)
        return {"loadavg_before": self.loadavg, "loadavg_after": _loadavg(),
                "background_cpu_share": share, "seconds": round(seconds, 3),
                "busy_processes": sorted(busy, key=lambda p: -p["cpu_percent"])[:5]}


def machine():
    """CPU model, core counts, the CPU flags that decide kernel choice, library versions."""
    info = _read("/proc/cpuinfo") or ""
    model = next((line.split(":", 1)[1].strip() for line in info.splitlines()
                  if line.startswith("model name")), platform.processor() or platform.machine())
    flags = next((line.split(":", 1)[1].split() for line in info.splitlines()
                  if line.startswith("flags")), [])
    versions = {}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count()
    return {"cpu": model, "nproc": os.cpu_count(), "available_cores": cores,
            "cpu_flags": [flag for flag in CPU_FLAGS if flag in flags],
            "platform": platform.platform(), "python": platform.python_version(),
            "versions": versions}


def load_lines(environment):
    """Markdown bullet lines describing the background load of a measurement."""
    env = environment
    lines = [f"- load average {env['loadavg_before']} before, {env['loadavg_after']} after"]
    share = env["background_cpu_share"]
    if share is not None:
        lines.append(f"- other processes kept {100 * share:.0f}% of all cores busy while we timed")
        if share > BUSY_WARNING:
            lines.append("- **warning**: the machine was busy; rerun on a quiet machine")
    for process in env["busy_processes"]:
        lines.append(f"- busy: pid {process['pid']} {process['command']} "
                     f"({process['cpu_percent']}% of a core)")
    return lines


class Stopwatch:
    """Wall-clock seconds since it was made: the duration of a stage (not a speed figure)."""

    def __init__(self):
        self.started = time.perf_counter()

    @property
    def seconds(self):
        return time.perf_counter() - self.started


def overhead_per_call(calls=2000):
    """Seconds the harness adds per timed call: a pass of no-op calls through `measure`."""
    side = Side("noop", lambda item: None, [None] * calls, examples=calls)
    start = time.perf_counter()
    result = measure([side], repeats=1, warmup=0, progress=None)
    total = time.perf_counter() - start
    return total / calls, result["times"]["noop"][0] / calls


# ---------------------------------------------------------------- inputs and baselines

def real_inputs(task, data_dir, split, tokenizer, max_length, limit=None):
    """Encoded rows of a split of a task's data folder (the task's own reader); labels kept."""
    from common.data import encode_examples, read_split

    examples = read_split(task, data_dir, split)
    arrays = encode_examples(tokenizer, examples, max_length)
    if limit is not None:
        check_counts(examples=limit)
        arrays = {key: value[:limit] for key, value in arrays.items()}
    return arrays


def random_inputs(config, count, max_length, seed=0, min_length=None):
    """Random ids from the middle of the vocabulary, lengths uniform in [min_length, max_length]
    (all `max_length` when min_length is None); [CLS] first, padding after."""
    rng = np.random.default_rng(seed)
    low = min(1000, config.vocab_size // 2)  # skip BERT's special and unused ids
    ids = rng.integers(low, config.vocab_size, (count, max_length)).astype(np.int32)
    lengths = np.full(count, max_length) if min_length is None else rng.integers(
        max(min_length, 2), max_length + 1, count)
    mask = (np.arange(max_length)[None] < lengths[:, None]).astype(np.int32)
    ids[:, 0] = min(101, config.vocab_size - 1)
    return {"input_ids": ids * mask, "token_type_ids": np.zeros_like(ids),
            "attention_mask": mask}


FEATURES = ("input_ids", "token_type_ids", "attention_mask")


def features_of(arrays):
    return {key: np.asarray(arrays[key], np.int32) for key in FEATURES}


def padded_batches(arrays, batch_size):
    """Dataset order, every batch at the full width (the papers' convention)."""
    features = features_of(arrays)
    count = len(features["input_ids"])
    return [{k: v[start:start + batch_size] for k, v in features.items()}
            for start in range(0, count, batch_size)]


def dynamic_batches(arrays, batch_size):
    """Length-sorted batches cut to their longest text (and the sort order)."""
    from common.data import length_sorted_batches

    order, batches = length_sorted_batches(features_of(arrays), batch_size)
    return batches, order


def unpadded_examples(arrays):
    """Every row alone at its real length, batch 1."""
    from common.data import real_lengths

    features = features_of(arrays)
    return [{k: v[row:row + 1, :n] for k, v in features.items()}
            for row, n in enumerate(real_lengths(features))]


def real_lengths(arrays):
    from common.data import real_lengths as lengths
    return lengths(arrays)


def item_lengths(items):
    """Tokens per row of every item as run (the padded width, not the real length)."""
    return [width for item in items for width in [item["input_ids"].shape[1]] * _rows(item)]


def dense_sides(model, arrays, batch_size, vanilla_flops=None, jit_modes=("graph", "xla")):
    """The baselines: dense-padded (XLA), and dense-dynamic-graph and -xla at `batch_size` > 1,
    dense-unpadded (graph) and -xla (compiled once per text length, in the warm-up) at batch 1;
    the faster of each pair is the reference. `model` is a Keras classifier or a callable of
    the features dict; `vanilla_flops(n)` counts one example of n tokens. Returns the sides.

    The batched graph is traced once per batch shape, as PoWER-BERT's graph side must be (its
    Extract needs the static width): the baseline gets whatever static shapes give a graph."""
    from common.inference import compile_forward

    def side(name, items, jit, order=None):
        per_shape = batch_size > 1 and not jit
        run = blocking(compile_forward(model, jit_compile=jit, per_shape=per_shape))
        flops = sum(vanilla_flops(n) for n in item_lengths(items)) if vanilla_flops else None
        return Side(name, run, items, flops=flops, order=order)

    sides = [side("dense-padded", padded_batches(arrays, batch_size), True)]
    if batch_size == 1:
        items = unpadded_examples(arrays)
        return sides + [side(f"dense-unpadded{'' if mode == 'graph' else '-xla'}", items,
                             mode == "xla") for mode in jit_modes]
    batches, order = dynamic_batches(arrays, batch_size)
    sides += [side(f"dense-dynamic-{mode}", batches, mode == "xla", order) for mode in jit_modes]
    return sides


REFERENCES = {"padded": ["dense-padded"], "dynamic": ["dense-dynamic-graph", "dense-dynamic-xla"],
              "unpadded": ["dense-unpadded", "dense-unpadded-xla"]}


def headline(batch_size):
    """The reference of an unqualified speed-up: (b) batched, (c) at batch 1."""
    return "unpadded" if batch_size == 1 else "dynamic"


def git_commit():
    """HEAD of the repository this code runs from (+dirty with uncommitted changes), or None
    outside a git checkout."""
    import subprocess

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True,
                              text=True, timeout=10)
        if head.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=root, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def markdown_table(rows, columns):
    """`columns` = [(key, title)]; floats to 3 significant digits (2 decimals for ratios)."""
    def cell(key, value):
        if value is None:
            return "-"
        if isinstance(value, float):
            if "speedup" in key or "ratio" in key or "_over_" in key:
                return f"{value:.2f}"
            if key == "metric":
                return f"{value:.4f}"
            return f"{value:.1f}" if abs(value) >= 10 else f"{value:.3g}"
        return str(value)
    return tables.markdown_table([title for _, title in columns],
                                 [[cell(k, row.get(k)) for k, _ in columns] for row in rows])


def over_batch_sizes(batch_sizes, make_sides, repeats, warmup=1, log=print, only=None,
                     **options):
    """`run_sides(make_sides(b), ...)` for each batch size against the baselines (speed-up =
    vs dense-dynamic batched, vs dense-unpadded at batch 1); groups of rows, one per size.
    `only`: the side names to time (an unknown name is a UserError naming the known ones)."""
    check_counts(repeats=repeats, warmup=warmup)
    for size in batch_sizes:
        check_counts(batch_size=size)
    built = {size: make_sides(size) for size in batch_sizes}
    if only:
        known = {side.name for sides in built.values() for side in sides}
        unknown = [name for name in only if name not in known]
        if unknown:
            raise UserError(f"unknown side(s) {', '.join(unknown)}; at these batch sizes the "
                            f"sides are {', '.join(sorted(known))}")
        built = {size: [side for side in sides if side.name in only]
                 for size, sides in built.items()}
    groups = []
    for size in batch_sizes:
        if not built[size]:
            continue
        rows, measurement = run_sides(built[size], repeats=repeats, warmup=warmup,
                                      references=REFERENCES, headline=headline(size), **options)
        for row in rows:
            row["batch_size"] = size
        groups.append({"batch_size": size, "environment": measurement["environment"],
                       "notes": measurement["notes"], "rows": rows})
        log(f"timed batch size {size} (median ms per pass; every figure is in the table at the "
            "end): " + ", ".join(f"{r['side']} {r['median_ms']:.1f}" for r in rows))
    return groups


def parse_names(text):
    """'a, b' -> ['a', 'b'] (None or '' -> None: every side)."""
    names = [name.strip() for name in (text or "").split(",") if name.strip()]
    return names or None


def record(command, settings, groups):
    """The JSON record of one run (a result file, docs/results.md): command, git commit, date,
    machine, settings, and the groups of rows (each with the background load it was measured
    under)."""
    return {"command": command, "commit": git_commit(),
            "date": time.strftime("%Y-%m-%d %H:%M:%S"), "machine": machine(),
            "settings": settings, "runs": 1,
            "statistic": "per side: median pass time of the interleaved repeats (p10, p90 beside); "
                         "speed-ups: ratio of medians and median of the paired ratios",
            "groups": groups}


def report(result, columns):
    """Markdown: the command, machine, per-group load and notes, one table of all rows."""
    m = result["machine"]
    lines = [f"Command: `{result['command']}`", "",
             f"Machine: {m['available_cores']} of {m['nproc']} CPUs ({m['cpu']}; flags "
             f"{' '.join(m['cpu_flags']) or 'none of ' + ', '.join(CPU_FLAGS)}), "
             f"{', '.join(f'{k} {v}' for k, v in m['versions'].items())}; {result['date']}.", ""]
    for group in result["groups"]:
        lines.append(f"batch {group['batch_size']}:")
        lines += load_lines(group["environment"]) + [f"- {note}" for note in group["notes"]]
    rows = [row for group in result["groups"] for row in group["rows"]]
    return "\n".join(lines + ["", markdown_table(rows, columns)])


COLUMNS = [("batch_size", "batch"), ("side", "side"), ("median_ms", "ms per pass"),
           ("ms_per_example", "ms / example"), ("speedup_vs_padded", "vs (a) padded"),
           ("speedup_vs_dynamic", "vs (b) dynamic"), ("speedup_vs_unpadded", "vs (c) unpadded"),
           ("paired_speedup_vs_dynamic", "paired vs (b)"),
           ("paired_speedup_vs_unpadded", "paired vs (c)")]


def run_tool(script, args, argv, run, columns, output):
    """What every benchmark command does once its flags are parsed: `run(args, command)`, print
    the table, write the JSON record to `output` (if given); returns the record."""
    command = f"python {script} " + shlex.join(sys.argv[1:] if argv is None else argv)
    result = run(args, command)
    print(report(result, columns))
    if output:
        write_json(output, result, indent=2)
    return result
