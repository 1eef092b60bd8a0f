"""PABEE's timing sides for `common.benchmark`, beside the dense baselines.

The dense sides run the plain backbone with no seam (embeddings, all L layers, pooler, last
classifier: a plain BERT classifier, which is PABEE's patience-0 path; on PABEE over PoWER-BERT
the same weights without Extract). PABEE runs through `EarlyExitEngine`:

    pabee-unpadded-t<P>   batch 1, every text alone at its own length, patience P
    pabee-dynamic-t<P>    batched per-example exit (exited rows leave the batch) on the
                          length-sorted, dynamically padded batches of the dense-dynamic baseline

`exit_summary` gives the exit statistics on the real lengths (L/X and the analytic FLOPs ratio)
and checks that the batched predictions and exit layers equal the batch-1 ones. `run` is
`tools/benchmark_pabee.py`'s measurement: every side per batch size and patience, with the task
metric, the exit statistics and the measured speed-up over L/X.
"""
import numpy as np

from common import benchmark
from common.errors import UserError, parse_int_list
from pabee.patience import EarlyExitEngine, ExitRule, exit_statistics, parse_patience_list

COLUMNS = [("batch_size", "batch"), ("side", "side"), ("metric", "metric"),
           ("avg_exit_layer", "avg exit layer"), ("layer_ratio", "L/X"),
           ("flops_speedup", "FLOPs ratio"), ("ms_per_example", "ms / example"),
           ("speedup_vs_padded", "vs (a) padded"), ("speedup_vs_dynamic", "vs (b) dynamic"),
           ("speedup_vs_unpadded", "vs (c) unpadded"), ("paired_speedup", "paired speed-up"),
           ("measured_over_layer", "measured / L/X"),
           ("prediction_mismatches", "pred. mismatches vs batch 1")]


def side_name(batch_size, patience):
    return f"pabee-{'unpadded' if batch_size == 1 else 'dynamic'}-t{patience}"


def sides(engine, arrays, batch_size, rules):
    """Dense baselines and one PABEE side per rule ({patience: ExitRule}) at `batch_size`."""
    model = engine.model
    result = benchmark.dense_sides(
        lambda features: model.classify(model.bert.encode(features), training=False), arrays,
        batch_size)
    if batch_size == 1:
        items, order = benchmark.unpadded_examples(arrays), None
    else:
        items, order = benchmark.dynamic_batches(arrays, batch_size)
    for patience, rule in rules.items():
        result.append(benchmark.Side(side_name(batch_size, patience),
                                     lambda item, rule=rule: engine.run(item, rule), items,
                                     order=order))
    return result


def exit_summary(side, model, arrays, reference=None):
    """Exit statistics of `side` on the real lengths, its logits, and with `reference` (the
    batch-1 side) the prediction and exit-layer mismatches against it."""
    logits = benchmark.outputs_in_order(side, lambda result: result.logits)
    exits = benchmark.outputs_in_order(side, lambda result: result.exit_layers)
    stats = exit_statistics(model.config, exits, benchmark.real_lengths(arrays),
                            model.num_labels, model.retention)
    summary = {"avg_exit_layer": stats["avg_exit_layer"], "layer_ratio": stats["layer_ratio"],
               "flops_speedup": stats["flops_ratio"], "logits": logits, "exits": exits}
    if reference is not None:
        if model.num_labels > 1:
            same = np.argmax(logits, -1) == np.argmax(reference["logits"], -1)
        else:
            same = np.isclose(logits[:, 0], reference["logits"][:, 0], atol=1e-4)
        summary["prediction_mismatches"] = int((~same).sum())
        summary["exit_layer_mismatches"] = int((exits != reference["exits"]).sum())
    return summary


def run(args, command="python tools/benchmark_pabee.py", log=print):
    """`tools/benchmark_pabee.py`'s measurement: its JSON record."""
    from common.checkpoints import read_sidecar
    from common.metrics import compute_metrics
    from common.tasks import get_task
    from common.tokenization import load_tokenizer
    from common.training import logits_to_predictions
    from pabee.pipeline import load_for_eval

    task = get_task(args.task_name)
    patience_list = parse_patience_list(args.patience)
    if 0 in patience_list:
        raise UserError("--patience 0 is the vanilla model itself; benchmark values >= 1")
    batch_sizes = parse_int_list(args.batch_sizes, "--batch_sizes")
    benchmark.check_counts(batch_sizes=min(batch_sizes), examples=args.examples,
                           repeats=args.repeats, warmup=args.warmup)
    sidecar = read_sidecar(args.model_dir)
    model = load_for_eval(args.model_dir, task)
    length = args.max_seq_length or sidecar.get("max_length", task.max_length)
    tokenizer = load_tokenizer(args.model_dir, cased=not sidecar["lower_case"])
    arrays = benchmark.real_inputs(task, args.data_dir, "dev", tokenizer, length, args.examples)
    engine = EarlyExitEngine(model, jit_compile=args.jit_compile)
    rules = {p: ExitRule(p, args.regression_threshold, task.is_regression) for p in patience_list}
    log(f"{model.num_layers} layers, hidden {model.config.hidden_size}, {len(arrays['labels'])} "
        f"{task.glue_name} dev examples at length {length}")
    built = {}

    def make_sides(size):
        built[size] = {side.name: side for side in sides(engine, arrays, size, rules)}
        return list(built[size].values())

    groups = benchmark.over_batch_sizes(sorted(set(batch_sizes)), make_sides, args.repeats,
                                        args.warmup, log, only=benchmark.parse_names(args.sides))
    single = {}
    for group in groups:
        size = group["batch_size"]
        for row in group["rows"]:
            side = built[size][row["side"]]
            row["paired_speedup"] = row.get(f"paired_speedup_vs_{benchmark.headline(size)}")
            if row["side"].startswith("pabee"):
                patience = int(row["side"].rsplit("-t", 1)[1])
                summary = exit_summary(side, model, arrays, single.get(patience))
                if size == 1:
                    single[patience] = summary
                logits = summary["logits"]
                row.update({k: v for k, v in summary.items() if k not in ("logits", "exits")},
                           patience=patience,
                           measured_over_layer=None if row["speedup"] is None
                           else row["speedup"] / summary["layer_ratio"])
            else:
                logits = benchmark.outputs_in_order(side)
            predictions = logits_to_predictions(logits, model.num_labels)
            row["metric"] = compute_metrics(task, predictions, arrays["labels"])[task.metric]
    lengths = benchmark.real_lengths(arrays)
    settings = {"model_dir": args.model_dir, "task": task.name, "max_length": length,
                "examples": int(len(lengths)), "mean_length": float(lengths.mean()),
                "metric": task.metric, "patience": patience_list, "batch_sizes": batch_sizes,
                "repeats": args.repeats, "warmup": args.warmup,
                "jit_compile": args.jit_compile}
    return benchmark.record(command, settings, groups)
