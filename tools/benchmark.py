"""Latency and throughput of the vanilla model against HF transformers' PyTorch model and ONNX
Runtime: same weights, same inputs, same thread count, one run.

    python tools/benchmark.py                                    # BERT-base shape, 32x128 and 1x128
    python tools/benchmark.py --model tests/fixtures/tiny_bert --shapes 8x32,1x16 --repeats 20
    python tools/benchmark.py --rounds 3 --json bench.json --docs docs/benchmarks.md

Our side is the classifier (`SequenceClassifier`: backbone, pooler, head) run through
`common.inference.compile_forward`, the function the methods and `predict` use; the weights are
random (BERT-base shape unless --config) or loaded with --model (an HF folder, a Google TF1
checkpoint or our own checkpoint). The PyTorch side is `*ForSequenceClassification` holding a
copy of the same weights; the ONNX Runtime side is that model exported with torch.onnx.export
(skipped, with the reason, when the export fails: it needs the `onnx` package). Before timing,
every side's logits (and PyTorch's last hidden state) must match ours to 1e-3.

Timing: each side is warmed up, then the sides' repeats are interleaved (the order rotates each
repeat) so background load hits all of them alike; the table gives the median, p10 and p90
latency of one batch, sequences/s, achieved GFLOP/s (analytic FLOPs, `common.flops`), the ratio
of medians to PyTorch, the median of the per-repeat (paired) ratios, and with --rounds > 1 the
range of the per-round ratios. It also reports how busy the other processes kept the CPU while
we timed. All sides get --threads intra-op threads and one inter-op thread.
"""
import argparse
import io
import json
import os
import platform
import shlex
import sys
import tempfile
import time
import warnings
from importlib import metadata

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

from common import precision  # noqa: E402
from common.errors import UserError, cli_entry  # noqa: E402

TOLERANCE = 1e-3
BUSY_WARNING = 0.2  # background share of all cores above which the report carries a warning
REFERENCE = "pytorch"
SECTION = "backbone"
FEATURES = ("input_ids", "token_type_ids", "attention_mask")
LIBRARIES = ("tensorflow", "keras", "numpy", "torch", "transformers", "onnxruntime", "onnx")
COLUMNS = (("shape", "batch x length"), ("side", "side"), ("median_ms", "median ms"),
           ("p10_ms", "p10 ms"), ("p90_ms", "p90 ms"), ("sequences_per_s", "seq/s"),
           ("gflops_per_s", "GFLOP/s"), ("ratio", "vs PyTorch"),
           ("paired_ratio", "paired ratio"), ("round_ratios", "ratio per round"))


def parse_shapes(text):
    """'32x128,1x128' -> [(32, 128), (1, 128)]."""
    shapes = []
    for part in text.split(","):
        try:
            batch, length = (int(v) for v in part.lower().split("x"))
        except ValueError:
            raise UserError(f"--shapes entry '{part}' is not BATCHxLENGTH (e.g. 32x128)") from None
        if batch < 1 or length < 1:
            raise UserError(f"--shapes entry '{part}' needs a positive batch size and length")
        shapes.append((batch, length))
    return shapes


def build_parser():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", help="HF model folder, Google bert_model.ckpt or our *.weights.h5 "
                                   "(default: random weights)")
    p.add_argument("--config", help="config.json / bert_config.json for random weights "
                                    "(default BERT-base shape)")
    p.add_argument("--num_labels", type=int, help="classifier outputs (default: the "
                                                  "checkpoint's, else 2)")
    p.add_argument("--shapes", default="32x128,1x128", help="comma-separated BATCHxLENGTH")
    p.add_argument("--warmup", type=int, default=2, help="untimed calls per side first")
    p.add_argument("--repeats", type=int, default=10, help="timed calls per side and round")
    p.add_argument("--rounds", type=int, default=1,
                   help="repeat the whole interleaved measurement; reports the spread")
    p.add_argument("--threads", type=int, help="intra-op threads of every side "
                                               "(default: the cores this process may use)")
    p.add_argument("--compare", default="pytorch,onnxruntime",
                   help="comma-separated other sides: pytorch, onnxruntime, or none")
    p.add_argument("--jit_compile", choices=("off", "on", "both"), default="off",
                   help="our side as a graph (off, what the toolkit uses), XLA-compiled, or both")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", help="also write settings and results to this JSON file")
    p.add_argument("--docs", help="write the table into this markdown file, between "
                                  f"<!-- BEGIN {SECTION} --> and <!-- END {SECTION} -->")
    precision.add_flags(p)
    return p


def check_args(args):
    for name in ("warmup", "repeats", "rounds", "threads"):
        value = getattr(args, name)
        if value is not None and value < (0 if name == "warmup" else 1):
            raise UserError(f"--{name} must be {'>= 0' if name == 'warmup' else 'positive'}, "
                            f"got {value}")
    compare = [c.strip() for c in args.compare.split(",") if c.strip() not in ("", "none")]
    unknown = sorted(set(compare) - {"pytorch", "onnxruntime"})
    if unknown:
        raise UserError(f"--compare: unknown side(s) {', '.join(unknown)}; "
                        "use pytorch, onnxruntime or none")
    if "onnxruntime" in compare and "pytorch" not in compare:
        raise UserError("--compare onnxruntime exports the PyTorch model; add pytorch")
    return compare


# ---------------------------------------------------------------- the model on each side

def load_model(args, max_length):
    """Our SequenceClassifier and a one-line description of its weights."""
    import keras

    from common import checkpoints
    from common.config import BertConfig
    from common.modeling import SequenceClassifier, dummy_inputs

    if args.model:
        model, source, _ = checkpoints.load_classifier(args.model, args.num_labels,
                                                       max_length=max_length)
        return model, f"{args.model} ({source.kind} checkpoint)"
    config = BertConfig.from_json(args.config) if args.config else BertConfig()
    checkpoints.check_max_length(config, max_length)
    keras.utils.set_random_seed(args.seed)
    model = SequenceClassifier(config, args.num_labels or 2)
    model(dummy_inputs())
    shape = f"shape of {args.config}" if args.config else "BERT-base shape"
    return model, f"random weights, {shape}"


def torch_model(model):
    """HF transformers' PyTorch *ForSequenceClassification holding a copy of `model`'s weights."""
    import torch
    import transformers

    from common.checkpoints import hf_assignments

    config = model.config
    shape = {name: getattr(config, name) for name in (
        "vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
        "intermediate_size", "hidden_act", "max_position_embeddings", "type_vocab_size",
        "layer_norm_eps")}
    if config.is_albert:
        hf = transformers.AlbertForSequenceClassification(transformers.AlbertConfig(
            embedding_size=config.embedding_size, num_hidden_groups=config.num_hidden_groups,
            num_labels=model.num_labels, **shape))
    else:
        hf = transformers.BertForSequenceClassification(
            transformers.BertConfig(num_labels=model.num_labels, **shape))
    state = {}
    for variable, names, kind in hf_assignments(model.bert, model.classifier):
        value = np.asarray(variable.numpy())
        parts = np.split(value, len(names), axis=-1) if kind == "fused" else [value]
        for name, part in zip(names, parts):
            part = part.T if kind != "copy" and part.ndim == 2 else part  # Keras (in, out)
            key = name if name.startswith("classifier.") else f"{hf.base_model_prefix}.{name}"
            state[key] = torch.from_numpy(np.ascontiguousarray(part))
    hf.load_state_dict(state, strict=True)
    return hf.eval()


def onnx_session(hf, example, threads):
    """An ONNX Runtime session of `hf`'s logits, exported with torch.onnx.export."""
    import onnxruntime
    import torch

    class Logits(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, token_type_ids, attention_mask):
            return self.inner(input_ids=input_ids, token_type_ids=token_type_ids,
                              attention_mask=attention_mask).logits

    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.inference_mode():
        warnings.simplefilter("ignore")
        torch.onnx.export(Logits(hf).eval(), tuple(example[k] for k in FEATURES), buffer,
                          input_names=list(FEATURES), output_names=["logits"], opset_version=17,
                          dynamic_axes={k: {0: "batch", 1: "length"} for k in FEATURES},
                          dynamo=False)
    hf.eval()  # the exporter restores the training flag it found; keep dropout off regardless
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    return onnxruntime.InferenceSession(buffer.getvalue(), options,
                                        providers=["CPUExecutionProvider"])


def build_sides(model, compare, jit_modes, threads, notes):
    """{side name: factory(inputs as numpy) -> run() returning logits as numpy}."""
    from common.inference import compile_forward

    factories = {}
    for jit in jit_modes:
        def ours(arrays, jit=jit):
            import tensorflow as tf
            forward = compile_forward(model, jit_compile=jit)
            inputs = {k: tf.constant(v) for k, v in arrays.items()}
            return lambda: np.asarray(forward(inputs))
        factories["tensorflow-xla" if jit else "tensorflow"] = ours
    if "pytorch" not in compare:
        return factories, None
    try:
        import torch
        hf = torch_model(model)
    except ImportError as err:
        notes.append(f"pytorch: skipped ({err.name or err} is not installed)")
        return factories, None
    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # already set in this process
        pass
    notes.append(f"pytorch: {type(hf).__name__}, attention implementation "
                 f"'{hf.config._attn_implementation}', {torch.get_num_threads()} intra-op and "
                 f"{torch.get_num_interop_threads()} inter-op thread(s)")

    def torch_inputs(arrays):
        return {k: torch.from_numpy(v.astype(np.int64)) for k, v in arrays.items()}

    def pytorch(arrays):
        inputs = torch_inputs(arrays)

        def run():
            with torch.inference_mode():
                return hf(**inputs).logits.numpy()
        return run
    factories[REFERENCE] = pytorch
    if "onnxruntime" in compare:
        try:
            session = onnx_session(hf, torch_inputs(make_inputs(model.config, 1, 8, 0)), threads)
        except Exception as err:  # missing onnx/onnxruntime, unsupported op...: skip this side
            first = str(err).strip().splitlines()[0] if str(err).strip() else ""
            notes.append(f"onnxruntime: skipped (export or load failed: {type(err).__name__}: "
                         f"{first}; `pip install onnx onnxruntime` enables it)")
        else:
            notes.append(f"onnxruntime: CPUExecutionProvider, {threads} intra-op and 1 inter-op "
                         "thread(s), sequential, all graph optimisations")

            def ort(arrays):
                feed = {k: v.astype(np.int64) for k, v in arrays.items()}
                return lambda: session.run(["logits"], feed)[0]
            factories["onnxruntime"] = ort
    return factories, hf


def make_inputs(config, batch, length, seed):
    """Identical random full-length inputs for every side (int32; sides convert outside timing)."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(1, config.vocab_size, (batch, length)).astype(np.int32)
    return {"input_ids": ids, "token_type_ids": np.zeros_like(ids),
            "attention_mask": np.ones_like(ids)}


def check_agreement(model, hf, runs, arrays):
    """Every side's logits, and PyTorch's last hidden state, must match ours to TOLERANCE."""
    logits = {name: run() for name, run in runs.items()}
    ours = logits["tensorflow"] if "tensorflow" in logits else logits["tensorflow-xla"]
    gaps = {name: float(np.abs(value - ours).max()) for name, value in logits.items()}
    if hf is not None:
        import torch
        with torch.inference_mode():
            hidden = hf(**{k: torch.from_numpy(v.astype(np.int64)) for k, v in arrays.items()},
                        output_hidden_states=True).hidden_states[-1].numpy()
        sequence = np.asarray(model.bert(arrays, training=False)["sequence_output"])
        gaps["pytorch last hidden state"] = float(np.abs(hidden - sequence).max())
    for name, gap in gaps.items():
        if not gap <= TOLERANCE:
            raise UserError(f"{name} differs from our model by {gap:.2e} (> {TOLERANCE}); "
                            "the weight copy or the config mapping is wrong for this model")
    return gaps


# ---------------------------------------------------------------- timing

def _cpu_jiffies():
    """(busy, total) jiffies over all cores from /proc/stat, or None off Linux."""
    try:
        with open("/proc/stat", encoding="ascii") as handle:
            values = [int(v) for v in handle.readline().split()[1:]]
    except OSError:
        return None
    return sum(values) - values[3] - values[4], sum(values)  # minus idle and iowait


def _background(before, after, own_seconds):
    """Share of all cores kept busy by other processes between two samples."""
    if before is None or after is None or after[1] <= before[1]:
        return None
    own = own_seconds * os.sysconf("SC_CLK_TCK")
    return min(max((after[0] - before[0] - own) / (after[1] - before[1]), 0.0), 1.0)


def time_interleaved(runs, repeats, warmup=0):
    """{side: [seconds per call]} and the background CPU shares, the sides' calls interleaved
    (the order rotates by one each repeat so every side takes every position equally)."""
    names = list(runs)
    for _ in range(warmup):
        for name in names:
            runs[name]()
    times, background = {name: [] for name in names}, []
    for repeat in range(repeats):
        shift = repeat % len(names)
        for name in names[shift:] + names[:shift]:
            jiffies, cpu = _cpu_jiffies(), os.times()
            start = time.perf_counter()
            runs[name]()
            times[name].append(time.perf_counter() - start)
            after = os.times()
            share = _background(jiffies, _cpu_jiffies(),
                                after.user + after.system - cpu.user - cpu.system)
            if share is not None:
                background.append(share)
    return times, background


def summarise(shape, rounds, flops_per_batch):
    """Table rows of one shape from the per-round timings."""
    batch, length = shape
    names = list(rounds[0])
    pooled = {name: [t for times in rounds for t in times[name]] for name in names}
    reference = REFERENCE if REFERENCE in names else None
    rows = []
    for name in names:
        median = float(np.median(pooled[name]))
        row = {"shape": f"{batch}x{length}", "side": name, "median_ms": 1e3 * median,
               "p10_ms": 1e3 * float(np.percentile(pooled[name], 10)),
               "p90_ms": 1e3 * float(np.percentile(pooled[name], 90)),
               "sequences_per_s": batch / median, "gflops_per_s": flops_per_batch / median / 1e9,
               "ratio": None, "paired_ratio": None, "round_ratios": None,
               "times_ms": [round(1e3 * t, 3) for t in pooled[name]]}
        if reference:
            row["ratio"] = median / float(np.median(pooled[reference]))
            row["paired_ratio"] = float(np.median(np.divide(pooled[name], pooled[reference])))
            per_round = [float(np.median(r[name]) / np.median(r[reference])) for r in rounds]
            row["round_ratios"] = per_round if len(rounds) > 1 else None
        rows.append(row)
    return rows


# ---------------------------------------------------------------- reporting

def machine_info():
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            cpu = next(line.split(":", 1)[1].strip() for line in handle
                       if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    versions = {}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return {"nproc": os.cpu_count(), "cpu": cpu, "platform": platform.platform(),
            "python": platform.python_version(), "versions": versions}


def _cell(key, value):
    if value is None:
        return "-"
    if key == "round_ratios":
        return f"{min(value):.2f}-{max(value):.2f}"
    if key in ("ratio", "paired_ratio"):
        return f"{value:.2f}x"
    if isinstance(value, float):
        return f"{value:.1f}" if abs(value) >= 10 else f"{value:.3g}"
    return str(value)


def markdown_table(rows):
    columns = [(k, t) for k, t in COLUMNS if any(row[k] is not None for row in rows)]
    lines = ["| " + " | ".join(title for _, title in columns) + " |",
             "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_cell(k, row[k]) for k, _ in columns) + " |" for row in rows]
    return "\n".join(lines)


def report(result):
    """The markdown block printed and written to the docs: command, machine, settings, table."""
    machine, settings = result["machine"], result["settings"]
    versions = ", ".join(f"{k} {v}" for k, v in machine["versions"].items())
    background = result["background_cpu"]
    lines = [f"Command: `{result['command']}`", "",
             f"Machine: {machine['nproc']} CPUs ({machine['cpu']}), {machine['platform']}, "
             f"Python {machine['python']}; {versions}.", "",
             f"Settings: {settings['weights']}; {settings['threads']} intra-op thread(s) per "
             f"side; TensorFlow inter-op threads {settings['inter_op']}; ours = "
             f"`common.inference.compile_forward` "
             f"({', '.join(settings['tensorflow_modes'])}), oneDNN "
             f"{'on' if settings['onednn'] else 'off'}; warm-up {settings['warmup']}, "
             f"{settings['repeats']} interleaved repeats x {settings['rounds']} round(s); "
             f"{result['date']}.", ""]
    lines += [f"- {note}" for note in result["notes"]]
    if background:
        busy = float(np.median(background))
        lines += [f"- background load: other processes kept a median {100 * busy:.0f}% of all "
                  f"cores busy while we timed (max {100 * max(background):.0f}%)"]
        if busy > BUSY_WARNING:
            lines += ["- **warning**: the machine was busy. PyTorch's OpenMP threads wait for "
                      "each other after every op and lose the most when a core is taken away, "
                      "so ratios measured now flatter the other sides; rerun on a quiet machine"]
    lines += ["- agreement with ours (max abs difference): " + ", ".join(
        f"{shape} {name} {gap:.1e}" for shape, gaps in result["agreement"].items()
        for name, gap in gaps.items())]
    return "\n".join(lines + ["", markdown_table(result["rows"])])


def write_docs(path, text):
    """Replace (or append) our section of the shared markdown file, atomically."""
    begin, end = f"<!-- BEGIN {SECTION} -->", f"<!-- END {SECTION} -->"
    block = f"{begin}\n## Backbone: vanilla forward pass vs PyTorch and ONNX Runtime\n\n" \
            f"Produced by `tools/benchmark.py` (see docs/backbone_benchmark.md). \"vs PyTorch\" is " \
            f"a side's median time over PyTorch's: below 1.00x that side is faster.\n\n" \
            f"{text}\n{end}"
    current = ""
    if os.path.exists(path):
        with open(path, encoding="utf-8") as handle:
            current = handle.read()
    if begin in current and end in current:
        head, rest = current.split(begin, 1)
        updated = head + block + rest.split(end, 1)[1]
    elif begin in current or end in current:
        raise UserError(f"{path} has only one of the markers {begin} / {end}; fix the file")
    else:
        updated = current.rstrip("\n") + ("\n\n" if current else "") + block + "\n"
    folder = os.path.dirname(os.path.abspath(path))
    handle, tmp = tempfile.mkstemp(dir=folder, suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(updated)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


# ---------------------------------------------------------------- main

def run(args, compare, command):
    from common import flops
    from common.inference import configure_threads

    shapes = parse_shapes(args.shapes)
    settings = configure_threads(args.threads)
    threads = settings["intra_op"]
    notes = []
    model, weights = load_model(args, max(length for _, length in shapes))
    jit_modes = {"off": [False], "on": [True], "both": [False, True]}[args.jit_compile]
    factories, hf = build_sides(model, compare, jit_modes, threads, notes)
    rows, agreement, background = [], {}, []
    for batch, length in shapes:
        arrays = make_inputs(model.config, batch, length, args.seed)
        runs = {name: factory(arrays) for name, factory in factories.items()}
        agreement[f"{batch}x{length}"] = check_agreement(model, hf, runs, arrays)
        rounds = []
        for index in range(args.rounds):
            times, busy = time_interleaved(runs, args.repeats, args.warmup if index == 0 else 0)
            rounds.append(times)
            background += busy
        per_batch = batch * flops.vanilla_flops(model.config, length, model.num_labels)
        rows += summarise((batch, length), rounds, per_batch)
    return {"command": command, "date": time.strftime("%Y-%m-%d %H:%M"), "machine": machine_info(),
            "settings": {"weights": weights, "threads": threads, "inter_op": settings["inter_op"],
                         "onednn": settings["onednn"],
                         "tensorflow_modes": ["XLA" if j else "graph" for j in jit_modes],
                         "warmup": args.warmup, "repeats": args.repeats, "rounds": args.rounds},
            "notes": notes, "agreement": agreement, "background_cpu": background, "rows": rows}


@cli_entry
def main(argv=None):
    args = build_parser().parse_args(argv)
    compare = check_args(args)
    precision.apply_flags(args)
    command = "python tools/benchmark.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    result = run(args, compare, command)
    text = report(result)
    print(text)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(result, handle, indent=2)
    if args.docs:
        write_docs(args.docs, text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
