"""The backbone benchmark behind `tools/benchmark.py`: our classifier (`common.inference.
compile_forward`) against HF transformers' PyTorch model and ONNX Runtime on the same weights and
inputs; the sides, the agreement check, the table and the docs section it writes."""
import io
import os
import tempfile
import time
import warnings

import numpy as np

from common import precision
from common.errors import UserError
from common import tables
from common.files import write_text

TOLERANCE = 1e-3
LOW_PRECISION = ("-bf16", "-fp16")  # side-name suffixes whose gaps are reported, not checked
REFERENCE = "pytorch"
SECTION = "backbone"
FEATURES = ("input_ids", "token_type_ids", "attention_mask")
HEAD_MODULES = ("classifier.", "pre_classifier.")  # outside the base model in HF's classifiers
COLUMNS = (("shape", "batch x length"), ("side", "side"), ("median_ms", "median ms"),
           ("p10_ms", "p10 ms"), ("p90_ms", "p90 ms"), ("sequences_per_s", "seq/s"),
           ("gflops_per_s", "GFLOP/s"), ("ratio", "vs PyTorch"),
           ("paired_ratio", "paired ratio"), ("round_ratios", "ratio per round"),
           ("vs_fp32", "speed-up vs fp32"))


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


def check_args(args):
    if args.task and not args.data_dir:
        raise UserError("--task needs --data_dir (the folder holding its files)")
    for name in ("warmup", "repeats", "rounds", "threads", "examples"):
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
    if args.precisions:
        if args.bf16 or args.fp16:
            raise UserError("--precisions names every precision to time; leave out --bf16/--fp16")
        names = [n.strip() for n in args.precisions.split(",") if n.strip()]
        unknown = sorted(set(names) - set(precision.POLICIES))
        if unknown or not names or len(set(names)) != len(names):
            raise UserError(f"--precisions: give distinct names among "
                            f"{', '.join(precision.POLICIES)}, got {args.precisions!r}")
        args.precisions = names
    else:
        args.precisions = [precision.precision_name(args.bf16, args.fp16)]
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
    checkpoints.check_max_length(config, max_length, fix="use shorter lengths in --shapes")
    keras.utils.set_random_seed(args.seed)
    model = SequenceClassifier(config, args.num_labels or 2)
    model(dummy_inputs())
    shape = f"shape of {args.config}" if args.config else "BERT-base shape"
    return model, f"random weights, {shape}"


def hf_state(model):
    """Our weights under HF transformers' parameter names (numpy, PyTorch layout)."""
    from common.checkpoints import hf_assignments

    prefix = model.config.family  # the HF model's base_model_prefix
    state = {}
    for variable, names, kind in hf_assignments(model.bert, model.classifier):
        value = np.asarray(variable.numpy())
        parts = np.split(value, len(names), axis=-1) if kind == "fused" else [value]
        for name, part in zip(names, parts):
            part = part.T if kind != "copy" and part.ndim == 2 else part  # Keras (in, out)
            key = name if name.startswith(HEAD_MODULES) else f"{prefix}.{name}"
            state[key] = np.ascontiguousarray(part)
    return state


def hf_shape(model):
    """(model type, the HF config fields of `model`): plain values, picklable into the worker."""
    return model.config.model_type, {**model.config.hf_dict(), "num_labels": model.num_labels}


def torch_model(model_type, shape, state_file):
    """HF transformers' PyTorch *ForSequenceClassification of the family `model_type` holding
    the weights in `state_file`."""
    import torch
    import transformers

    hf = transformers.AutoModelForSequenceClassification.from_config(
        transformers.AutoConfig.for_model(model_type, **shape))
    with np.load(state_file) as arrays:
        hf.load_state_dict({key: torch.from_numpy(arrays[key]) for key in arrays.files},
                           strict=True)
    return hf.eval()


def torch_features(hf):
    """The inputs `hf` takes (DistilBERT has no token types)."""
    import inspect
    return tuple(k for k in FEATURES if k in inspect.signature(hf.forward).parameters)


def onnx_session(hf, example, threads):
    """An ONNX Runtime session of `hf`'s logits, exported with torch.onnx.export."""
    import onnxruntime
    import torch

    class Logits(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, *inputs):
            return self.inner(**dict(zip(features, inputs))).logits

    features = torch_features(hf)
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.inference_mode():
        warnings.simplefilter("ignore")
        torch.onnx.export(Logits(hf).eval(), tuple(example[k] for k in features), buffer,
                          input_names=list(features), output_names=["logits"], opset_version=17,
                          dynamic_axes={k: {0: "batch", 1: "length"} for k in features},
                          dynamo=False)
    hf.eval()  # the exporter restores the training flag it found; keep dropout off regardless
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    return onnxruntime.InferenceSession(buffer.getvalue(), options,
                                        providers=["CPUExecutionProvider"])


def torch_sides(model_type, shape, state_file, items, threads, onnx):
    """The worker's sides: PyTorch (and ONNX Runtime with `onnx`) on `items`. Runs in its own
    process (`common.benchmark.Remote`); a side that cannot be built is left out, its reason
    in the side list's `notes` attribute."""
    import torch

    from common.benchmark import Side

    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # already set in this process
        pass
    hf = torch_model(model_type, shape, state_file)
    features = torch_features(hf)

    def torch_inputs(item):
        return {k: torch.from_numpy(item[k].astype(np.int64)) for k in features}

    def run(item):
        with torch.inference_mode():
            return hf(**torch_inputs(item)).logits.numpy()

    def probe(item):
        with torch.inference_mode():
            out = hf(**torch_inputs(item), output_hidden_states=True)
        return {"logits": out.logits.numpy(), "hidden": out.hidden_states[-1].numpy()}

    sides = [Side(REFERENCE, run, items, probe=probe,
                  note=f"pytorch: {type(hf).__name__}, attention implementation "
                       f"'{hf.config._attn_implementation}', {torch.get_num_threads()} intra-op "
                       f"and {torch.get_num_interop_threads()} inter-op thread(s), own process")]
    if onnx:
        try:
            session = onnx_session(hf, torch_inputs(items[0]), threads)
        except Exception as err:  # missing onnx/onnxruntime, unsupported op...: skip this side
            first = str(err).strip().splitlines()[0] if str(err).strip() else ""
            sides[0].note += (f"; onnxruntime: skipped (export or load failed: "
                              f"{type(err).__name__}: {first}; `pip install onnx onnxruntime` "
                              "enables it)")
        else:
            def ort(item):
                return session.run(["logits"], {k: item[k].astype(np.int64) for k in features})[0]
            sides.append(Side("onnxruntime", ort, items, probe=lambda item: {"logits": ort(item)},
                              note=f"onnxruntime: CPUExecutionProvider, {threads} intra-op and 1 "
                                   "inter-op thread(s), sequential, all graph optimisations"))
    return sides


def side_name(jit, precision_name):
    """tensorflow[-xla][-bf16|-fp16]."""
    return "tensorflow" + ("-xla" if jit else "") + ("" if precision_name == "fp32"
                                                     else f"-{precision_name}")


def tensorflow_sides(models, jit_modes, items):
    """Our classifier through `common.inference.compile_forward`, graph and/or XLA, once per
    precision ({precision name: model})."""
    from common.benchmark import Side, blocking
    from common.inference import compile_forward

    def prober(model):
        def probe(item):
            return {"logits": np.asarray(model(item, training=False), np.float32),
                    "hidden": np.asarray(model.bert(item, training=False)["sequence_output"],
                                         np.float32)}
        return probe

    return [Side(side_name(jit, name), blocking(compile_forward(model, jit_compile=jit)), items,
                 probe=prober(model))
            for name, model in models.items() for jit in jit_modes]


def make_inputs(config, batch, length, seed):
    """Identical random full-length inputs for every side (int32; sides convert outside timing)."""
    rng = np.random.default_rng(seed)
    # No padding id (RoBERTa's is 1): every position is a real token on every side.
    ids = rng.integers(config.pad_token_id + 1, config.vocab_size, (batch, length)).astype(np.int32)
    return {"input_ids": ids, "token_type_ids": np.zeros_like(ids),
            "attention_mask": np.ones_like(ids)}


def check_agreement(outputs):
    """Every full-precision side's logits, and PyTorch's last hidden state, must match ours to
    TOLERANCE; the gaps of bf16/fp16 sides are reported, not checked (they round by design)."""
    ours = outputs[min((name for name in outputs if name.startswith("tensorflow")),
                       key=lambda name: (name.endswith(LOW_PRECISION), len(name)))]
    gaps = {name: float(np.abs(value["logits"] - ours["logits"]).max())
            for name, value in outputs.items()}
    if REFERENCE in outputs:
        gaps["pytorch last hidden state"] = float(
            np.abs(outputs[REFERENCE]["hidden"] - ours["hidden"]).max())
    for name, gap in gaps.items():
        if not name.endswith(LOW_PRECISION) and not gap <= TOLERANCE:
            raise UserError(f"{name} differs from our model by {gap:.2e} (> {TOLERANCE}); "
                            "the weight copy or the config mapping is wrong for this model")
    return gaps


def table_rows(shape, rows):
    """The table's rows of one shape from the harness rows (ratios: time over PyTorch's)."""
    times = {row["side"]: row["times_ms"] for row in rows}
    result = []
    for row in rows:
        median = row["median_ms"] / 1e3
        ratios = {"ratio": None, "paired_ratio": None, "round_ratios": None,
                  "vs_fp32": row.get("speedup_vs_fp32")}
        if REFERENCE in times:
            ratios["ratio"] = 1.0 / row["speedup_vs_reference"]
            ratios["paired_ratio"] = float(np.median(np.divide(times[row["side"]],
                                                               times[REFERENCE])))
            if "round_speedups_vs_reference" in row:
                ratios["round_ratios"] = [1.0 / r for r in row["round_speedups_vs_reference"]]
        result.append({"shape": shape, "side": row["side"], "median_ms": row["median_ms"],
                       "p10_ms": row["p10_ms"], "p90_ms": row["p90_ms"],
                       "sequences_per_s": row["examples_per_s"],
                       "gflops_per_s": row["gflops_per_pass"] / median, **ratios,
                       "times_ms": row["times_ms"]})
    return result


def _cell(key, value):
    if value is None:
        return "-"
    if key == "round_ratios":
        return f"{min(value):.2f}-{max(value):.2f}"
    if key in ("ratio", "paired_ratio", "vs_fp32"):
        return f"{value:.2f}x"
    if isinstance(value, float):
        return f"{value:.1f}" if abs(value) >= 10 else f"{value:.3g}"
    return str(value)


def markdown_table(rows):
    columns = [(k, t) for k, t in COLUMNS if any(row[k] is not None for row in rows)]
    return tables.markdown_table([title for _, title in columns],
                                 [[_cell(k, row[k]) for k, _ in columns] for row in rows])


def report(result):
    """The markdown block printed and written to the docs: command, machine, settings, table."""
    from common.benchmark import CPU_FLAGS, load_lines

    machine, settings = result["machine"], result["settings"]
    versions = ", ".join(f"{k} {v}" for k, v in machine["versions"].items())
    lines = [f"Command: `{result['command']}`", "",
             f"Machine: {machine['available_cores']} of {machine['nproc']} CPUs "
             f"({machine['cpu']}; flags {' '.join(machine['cpu_flags']) or 'none of ' + ', '.join(CPU_FLAGS)}), "
             f"{machine['platform']}, Python {machine['python']}; {versions}.", "",
             f"Settings: {settings['weights']}; inputs {settings['inputs']}; "
             f"{settings['threads']} intra-op thread(s) per "
             f"side; TensorFlow inter-op threads {settings['inter_op']}; ours = "
             f"`common.inference.compile_forward` "
             f"({', '.join(settings['tensorflow_modes'])}; "
             f"{', '.join(settings.get('precisions', ['fp32']))}), oneDNN "
             f"{'on' if settings['onednn'] else 'off'}; warm-up {settings['warmup']}, "
             f"{settings['repeats']} interleaved repeats x {settings['rounds']} round(s); "
             f"{result['date']}.", ""]
    lines += [f"- {note}" for note in result["notes"]]
    for shape, environment in result["environments"].items():
        lines += [f"- {shape}: {line[2:]}" for line in load_lines(environment)]
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
    write_text(path, updated)


# ---------------------------------------------------------------- the run

def workload(args, model, batch, length, tokenizer_folder):
    """The items every side runs for one BATCHxLENGTH: one random full-length batch, or the real
    texts in length-sorted dynamically padded batches."""
    from common import benchmark

    if not args.task:
        return [make_inputs(model.config, batch, length, args.seed)]
    from common.tasks import get_task
    from common.tokenization import load_tokenizer

    arrays = benchmark.real_inputs(get_task(args.task), args.data_dir, args.split,
                                   load_tokenizer(tokenizer_folder), length, args.examples)
    return benchmark.dynamic_batches(arrays, batch)[0]


def run(args, compare, command):
    from common import benchmark, flops
    from common.inference import configure_threads

    shapes = parse_shapes(args.shapes)
    settings = configure_threads(args.threads)
    threads = settings["intra_op"]
    models = {}
    for name in args.precisions:  # a layer's precision is fixed when it is built
        precision.set_precision(name)
        models[name], weights = load_model(args, max(length for _, length in shapes))
    precision.set_precision("fp32")
    model = models[args.precisions[0]]
    if args.task:
        from common.checkpoints import resolve_source
        from common.data import default_model_dir
        folder = resolve_source(args.model).folder if args.model else default_model_dir()
    jit_modes = {"off": [False], "on": [True], "both": [False, True]}[args.jit_compile]
    references = {"reference": [REFERENCE]}
    if "fp32" in models and len(models) > 1:  # the faster fp32 side of ours
        references["fp32"] = [side_name(jit, "fp32") for jit in jit_modes]
    notes, rows, agreement, environments = [], [], {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        state_file = os.path.join(tmp, "weights.npz")
        if compare:
            np.savez(state_file, **hf_state(model))
            model_type, shape = hf_shape(model)
        for batch, length in shapes:
            items = workload(args, model, batch, length, folder if args.task else None)
            label = f"{batch}x{length}"
            remote = [benchmark.Remote("common.backbone_benchmark:torch_sides", dict(
                model_type=model_type, shape=shape, state_file=state_file, items=items,
                threads=threads, onnx="onnxruntime" in compare))] if compare else []
            harness_rows, measurement = benchmark.run_sides(
                tensorflow_sides(models, jit_modes, items), remote, repeats=args.repeats,
                warmup=args.warmup, rounds=args.rounds, check=check_agreement,
                references=references, notes=[])
            agreement[label] = measurement["check"]
            environments[label] = measurement["environment"]
            notes += [note for note in measurement["notes"] if note not in notes]
            per_pass = sum(flops.vanilla_flops(model.config, item["input_ids"].shape[1],
                                               model.num_labels) * len(item["input_ids"])
                           for item in items)
            for row in harness_rows:
                row["gflops_per_pass"] = per_pass / 1e9
            rows += table_rows(label, harness_rows)
    inputs = (f"{args.task} {args.split} texts ({args.data_dir}), length-sorted dynamic batches"
              if args.task else "random ids, full length")
    return {"command": command, "commit": benchmark.git_commit(),
            "date": time.strftime("%Y-%m-%d %H:%M"), "machine": benchmark.machine(),
            "settings": {"weights": weights, "inputs": inputs, "threads": threads,
                         "inter_op": settings["inter_op"], "onednn": settings["onednn"],
                         "tensorflow_modes": ["XLA" if j else "graph" for j in jit_modes],
                         "precisions": args.precisions,
                         "warmup": args.warmup, "repeats": args.repeats, "rounds": args.rounds},
            "notes": notes, "agreement": agreement, "environments": environments, "rows": rows}


def run_and_report(args, command):
    """Check the flags, run the benchmark, print its report and write --json / --docs."""
    compare = check_args(args)
    result = run(args, compare, command)
    text = report(result)
    print(text)
    if args.json:
        from common.files import write_json
        write_json(args.json, result, indent=2)
    if args.docs:
        write_docs(args.docs, text)
