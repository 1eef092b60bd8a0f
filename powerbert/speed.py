"""PoWER-BERT's timing sides for `common.benchmark`, beside the dense baselines.

    powerbert-padded    Extract on batches padded to the max length (the paper's setting), XLA
    powerbert-dynamic   Extract on the length-sorted, dynamically padded batches of the
                        dense-dynamic baseline: a batch of width n keeps min(k_l, n) word-vectors
                        in block l (pads carry no significance, so the real tokens kept are the
                        padded run's), XLA-compiled once per batch width during the warm-up
    powerbert-dynamic-graph  the same batches as a graph traced once per batch width (as the
                        dense-dynamic-graph baseline): the baseline gets the faster of graph and
                        XLA, and so does the method; with the width static, a block whose k_l
                        covers the batch skips the selection, as under XLA
    powerbert-unpadded  batch 1, each text at its own length (same rule), XLA per length

Both models hold the same weights. FLOPs are counted per example on its real length n, with
the retention clipped to min(k_l, n) (`flops_on_lengths`); a length-scaled retention keeps
min(ceil(k_l n / N), n).

`run` is `tools/benchmark_powerbert.py`'s measurement (every side, FLOPs speed-ups on the real
lengths, the task metric with --model); `padding_comparison` is `tools/powerbert_padding.py`'s
check that the dynamically padded run keeps the padded run's tokens and predictions (no timing).
"""
import numpy as np

from common import benchmark, flops
from powerbert.flops import powerbert_flops
from common.data import length_sorted_batches, real_lengths
from common.errors import UserError, parse_int_list
from common.inference import compile_forward, configure_threads

COLUMNS = [("batch_size", "batch"), ("side", "side"), ("median_ms", "ms per pass"),
           ("ms_per_example", "ms / example"), ("speedup_vs_padded", "vs (a) padded"),
           ("speedup_vs_dynamic", "vs (b) dynamic"), ("speedup_vs_unpadded", "vs (c) unpadded"),
           ("paired_speedup", "paired speed-up"), ("flops_speedup", "FLOPs speed-up"),
           ("measured_over_flops", "measured / FLOPs"), ("metric", "metric")]


def clipped(retention, n, scaled_from=None):
    """The word-vectors block l keeps on an input n tokens wide: min(k_l, n); with a
    length-scaled retention (`scaled_from` = N, the task's length) min(ceil(k_l n / N), n)."""
    if scaled_from:
        return [min(-(-int(k) * int(n) // scaled_from), int(n)) for k in retention]
    return [min(int(k), int(n)) for k in retention]


def scaling_length(model):
    """N when `model` scales its retention with the batch's length, else None."""
    return model.seam.max_length if model.seam.length_scaled else None


def _row_flops(config, retention, n, width, num_labels, scaled_from):
    """(vanilla, PoWER-BERT) FLOPs of one row of real length n in a batch of width `width`."""
    kept = [min(k, n) for k in clipped(retention, width, scaled_from)]
    return (flops.vanilla_flops(config, n, num_labels),
            powerbert_flops(config, n, kept, num_labels))


def flops_on_lengths(config, retention, lengths, num_labels=2, scaled_from=None):
    """(vanilla, PoWER-BERT) FLOPs summed over examples of the given real lengths, each run
    alone (a length-scaled retention scales with the example's own length, as at batch 1)."""
    pairs = [_row_flops(config, retention, int(n), int(n), num_labels, scaled_from)
             for n in lengths]
    return sum(v for v, _ in pairs), sum(m for _, m in pairs)


def items_flops(config, retention, items, num_labels=2, scaled_from=None):
    """(vanilla, PoWER-BERT) FLOPs of the rows in `items` as run: every row counted on its real
    length n; a length-scaled retention keeps min(ceil(k_l w / N), n) in a batch of width w."""
    pairs = [_row_flops(config, retention, int(n), item["input_ids"].shape[1], num_labels,
                        scaled_from)
             for item in items for n in real_lengths(item)]
    return sum(v for v, _ in pairs), sum(m for _, m in pairs)


def per_shape(model, jit_compile=True):
    """`model(features)` compiled once per input shape (Extract's k is a Python int that needs
    the static width), XLA or a graph, outputs copied to numpy."""
    return benchmark.blocking(compile_forward(model, jit_compile, per_shape=True))


def sides(vanilla, powerbert, arrays, batch_size):
    """The dense baselines and PoWER-BERT's sides at `batch_size` (see the module docstring)."""
    config, labels, retention = vanilla.config, vanilla.num_labels, powerbert.retention

    def vanilla_flops(n):
        return flops.vanilla_flops(config, n, labels)

    scaled = scaling_length(powerbert)

    def method_flops(items):
        return sum(powerbert_flops(config, n, clipped(retention, n, scaled), labels)
                   for n in benchmark.item_lengths(items))

    result = benchmark.dense_sides(vanilla, arrays, batch_size, vanilla_flops)
    run = per_shape(powerbert)
    if batch_size == 1:
        items = benchmark.unpadded_examples(arrays)
        return result + [benchmark.Side("powerbert-unpadded", run, items,
                                        flops=method_flops(items))]
    padded = benchmark.padded_batches(arrays, batch_size)
    dynamic, order = benchmark.dynamic_batches(arrays, batch_size)
    graph = per_shape(powerbert, jit_compile=False)
    return result + [
        benchmark.Side("powerbert-padded", run, padded, flops=method_flops(padded)),
        benchmark.Side("powerbert-dynamic", run, dynamic, flops=method_flops(dynamic),
                       order=order),
        benchmark.Side("powerbert-dynamic-graph", graph, dynamic, flops=method_flops(dynamic),
                       order=order)]


def mean_length(arrays):
    return float(np.mean(real_lengths(arrays)))


def load_models(args, config, retention):
    """(vanilla, PoWER-BERT) with the same weights, and the tokenizer of --model (or None)."""
    import keras

    from common import checkpoints
    from common.checkpoints import variable_key
    from common.modeling import SequenceClassifier, dummy_inputs
    from powerbert.model import PowerBertClassifier

    keras.utils.set_random_seed(args.seed)
    labels = 2
    source = checkpoints.resolve_source(args.model) if args.model else None
    if source is not None:
        labels = (source.sidecar or {}).get("num_labels", labels)
    vanilla = SequenceClassifier(config, labels)
    vanilla(dummy_inputs(args.max_length))
    if source is not None:
        checkpoints.load_backbone_weights(vanilla, source)
    powerbert = PowerBertClassifier(config, labels, retention=retention,
                                    length_scaled=args.length_scaled, max_length=args.max_length)
    powerbert(dummy_inputs(args.max_length))
    weights = {variable_key(v): v for v in vanilla.weights}
    for variable in powerbert.weights:
        variable.assign(weights[variable_key(variable)])
    return vanilla, powerbert, source


def inputs(args, config, source):
    """The rows every side runs: real texts of --task or random ones."""
    if args.task:
        from common.tasks import get_task
        from common.tokenization import load_tokenizer

        if not args.data_dir:
            raise UserError("--task needs --data_dir (the folder holding its files)")
        tokenizer = load_tokenizer(source.folder if source else _default_vocab())
        return benchmark.real_inputs(get_task(args.task), args.data_dir, args.split, tokenizer,
                                     args.max_length, args.examples)
    benchmark.check_counts(examples=args.examples)
    return benchmark.random_inputs(config, args.examples, args.max_length, args.seed,
                                   args.min_length)


def _default_vocab():
    from common.data import default_model_dir
    return default_model_dir()


def add_accuracy(groups, sides_by_size, task, labels):
    """Each side's task metric from its outputs on the timed texts."""
    from common.metrics import compute_metrics, main_metric
    from common.training import logits_to_predictions

    for group in groups:
        for row in group["rows"]:
            side = sides_by_size[group["batch_size"]][row["side"]]
            logits = benchmark.outputs_in_order(side)
            predictions = logits_to_predictions(logits, logits.shape[-1])
            row["metric"] = compute_metrics(task, predictions, labels)[main_metric(task)]


def run(args, command, log=print):
    """`tools/benchmark_powerbert.py`'s measurement: its JSON record."""
    from common.config import BertConfig
    from common.tasks import get_task
    from powerbert.retention import parse_retention

    configure_threads()
    batch_sizes = parse_int_list(args.batch_sizes, "--batch_sizes")
    benchmark.check_counts(repeats=args.repeats, warmup=args.warmup, examples=args.examples,
                           **{"batch_sizes": min(batch_sizes)})
    task = get_task(args.task) if args.task else None
    if args.model:
        from common.checkpoints import resolve_source
        config = resolve_source(args.model).config
    else:
        config = BertConfig.from_json(args.config) if args.config else BertConfig()
    retention = parse_retention(args.retention, config.num_hidden_layers, args.max_length,
                                "--retention")
    vanilla, powerbert, source = load_models(args, config, retention)
    arrays = inputs(args, config, source)
    lengths = benchmark.real_lengths(arrays)
    scaled = scaling_length(powerbert)
    vanilla_flops, method_flops = flops_on_lengths(config, retention, lengths,
                                                   vanilla.num_labels, scaled)
    built = {}

    def make_sides(size):
        built[size] = {s.name: s for s in sides(vanilla, powerbert, arrays, size)}
        return list(built[size].values())

    groups = benchmark.over_batch_sizes(batch_sizes, make_sides, args.repeats, args.warmup, log,
                                        only=benchmark.parse_names(args.sides))
    for group in groups:
        for row in group["rows"]:
            row["flops_speedup"] = 1.0
            if row["side"].startswith("powerbert"):  # on the real lengths of the rows as run
                vanilla_part, method_part = items_flops(
                    config, retention, built[group["batch_size"]][row["side"]].items,
                    vanilla.num_labels, scaled)
                row["flops_speedup"] = vanilla_part / method_part
            row["paired_speedup"] = row.get(
                f"paired_speedup_vs_{benchmark.headline(group['batch_size'])}")
            row["measured_over_flops"] = (None if row["speedup"] is None
                                          else row["speedup"] / row["flops_speedup"])
    if task is not None and args.model and "labels" in arrays:
        add_accuracy(groups, built, task, arrays["labels"])
    settings = {"retention": retention, "max_length": args.max_length,
                "length_scaled": args.length_scaled,
                "weights": args.model or f"random ({args.config or 'BERT-base shape'})",
                "inputs": f"{args.task} {args.split} ({args.data_dir})" if task else
                f"random, lengths {args.min_length or args.max_length}-{args.max_length}",
                "examples": int(len(lengths)), "mean_length": float(lengths.mean()),
                "metric": task.metric if task else None,
                "repeats": args.repeats, "warmup": args.warmup, "batch_sizes": batch_sizes,
                "flops_speedup_on_real_lengths": vanilla_flops / method_flops}
    return benchmark.record(command, settings, groups)


def sorted_batches(arrays, batch_size):
    """Length-sorted batches of the features (`common.data.length_sorted_batches`): (row
    indices, padded to N, padded to the batch's longest row)."""
    features = {key: arrays[key] for key in ("input_ids", "token_type_ids", "attention_mask")}
    order, padded = length_sorted_batches(features, batch_size, dynamic=False)
    _, trimmed = length_sorted_batches(features, batch_size)
    starts = range(0, len(order), batch_size)
    for start, full, short in zip(starts, padded, trimmed):
        yield order[start:start + batch_size], full, short


def _kept_real(state, lengths):
    """Per block and row, the set of real positions kept."""
    return [[frozenset(p[p < length].tolist()) for p, length in zip(np.asarray(kept), lengths)]
            for kept in state.records["positions"]]


def compare_padding(model, arrays, batch_size):
    """Logits of the padded and the dynamically padded runs (in row order) and the counts."""
    count = len(arrays["input_ids"])
    padded_logits = np.zeros((count, model.num_labels), np.float32)
    dynamic_logits = np.zeros_like(padded_logits)
    kept_differ = blocks = tokens = 0
    for rows, padded, trimmed in sorted_batches(arrays, batch_size):
        (full, full_state), (short, short_state) = model.forward(padded), model.forward(trimmed)
        padded_logits[rows], dynamic_logits[rows] = np.asarray(full), np.asarray(short)
        real = padded["attention_mask"].sum(1)
        for a, b in zip(_kept_real(full_state, real), _kept_real(short_state, real)):
            kept_differ += sum(x != y for x, y in zip(a, b))
            blocks += len(rows)
        tokens += trimmed["input_ids"].shape[1] * len(rows)
    return {"rows": count,
            "predictions_differ": int((padded_logits.argmax(-1)
                                       != dynamic_logits.argmax(-1)).sum()),
            "row_blocks_keeping_other_tokens": int(kept_differ), "row_blocks": int(blocks),
            "max_logit_diff": float(np.abs(padded_logits - dynamic_logits).max()),
            "mean_batch_length": tokens / count,
            "padded_logits": padded_logits, "dynamic_logits": dynamic_logits}


def padding_comparison(args):
    """`tools/powerbert_padding.py`: PoWER-BERT on the task's dev rows, padded to N and
    dynamically padded, compared (`compare_padding`); the JSON object it prints."""
    from common import checkpoints
    from common.data import default_model_dir, encode_examples, read_split
    from common.tasks import get_task
    from common.tokenization import load_tokenizer
    from powerbert.model import build_powerbert
    from powerbert.retention import parse_retention

    task = get_task(args.task)
    if task.is_regression:
        raise UserError(f"{task.glue_name} is a regression task; pass a classification task")
    source = checkpoints.resolve_source(args.checkpoint or default_model_dir())
    sidecar = source.sidecar or {}
    max_length = args.max_length or sidecar.get("max_length") or task.max_length
    checkpoints.check_max_length(source.config, max_length)
    layers = source.config.num_hidden_layers
    if args.retention:
        retention = parse_retention(args.retention, layers, max_length, "--retention")
    elif sidecar.get("retention_config"):
        retention = sidecar["retention_config"]
    else:
        raise UserError("no retention configuration: pass --retention (one value per block)")
    examples = read_split(task, args.data_dir, "dev")
    arrays = encode_examples(load_tokenizer(source.folder), examples, max_length)
    arrays = {key: value[:args.rows] for key, value in arrays.items()}
    model = build_powerbert(source.config, task.num_labels, max_length,
                            retention=retention, length_scaled=args.length_scaled,
                            padding_queries=args.padding_queries == "all")
    trained = checkpoints.load_backbone_weights(model, source)
    if not trained:
        kernel = model.classifier.kernel
        kernel.assign(np.random.default_rng(args.seed).normal(size=kernel.shape)
                      .astype(np.float32))
    result = compare_padding(model, arrays, args.batch_size)
    padded, dynamic = result.pop("padded_logits"), result.pop("dynamic_logits")
    if trained and "labels" in arrays and not task.is_regression:
        for name, logits in (("padded_acc", padded), ("dynamic_acc", dynamic)):
            result[name] = float((logits.argmax(-1) == arrays["labels"]).mean())
    return {"task": task.name, "max_length": max_length, "retention": retention,
            "padding_queries": args.padding_queries, "length_scaled": args.length_scaled,
            **result}
