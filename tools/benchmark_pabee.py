"""Measure PABEE's wall-clock speed against the dense baselines on the same dev texts.

    python tools/benchmark_pabee.py --model_dir runs/pabee/sst2 --task_name SST-2 \\
        --data_dir runs/pabee/SST-2-8k --patience 1,2 --batch_sizes 1,32 --examples 300

Every side is timed by `common.benchmark` (warm-up, interleaved repeats, medians, paired ratios,
background load). Batch size 1 is the original's setting: PABEE's exit loop on each text alone
at its own length against the dense model on the same unpadded text (c). Larger batch sizes run
the batched per-example exit (exited rows leave the batch) on length-sorted, dynamically padded
batches, against the dense model (a) padded to the max length and (b) on the same dynamic
batches (graph and XLA; the faster is the reference), and check that its predictions and exit
layers equal the batch-1 ones. Each row gives the task metric, the average exit layer, L/X and
the analytic FLOPs ratio on the real lengths beside the measured speed-up; --output writes the
JSON record.
"""

from common import precision
from common.cli import ArgumentParser, command
from common.errors import UserError, parse_int_list

COLUMNS = [("batch_size", "batch"), ("side", "side"), ("metric", "metric"),
           ("avg_exit_layer", "avg exit layer"), ("layer_ratio", "L/X"),
           ("flops_speedup", "FLOPs ratio"), ("ms_per_example", "ms / example"),
           ("speedup_vs_padded", "vs (a) padded"), ("speedup_vs_dynamic", "vs (b) dynamic"),
           ("speedup_vs_unpadded", "vs (c) unpadded"), ("paired_speedup", "paired speed-up"),
           ("measured_over_layer", "measured / L/X"),
           ("prediction_mismatches", "pred. mismatches vs batch 1")]


def build_parser():
    p = ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model_dir", required=True, help="a trained PABEE checkpoint folder")
    p.add_argument("--task_name", required=True, help="GLUE task of the checkpoint")
    p.add_argument("--data_dir", required=True, help="folder with the task's dev.tsv")
    p.add_argument("--max_seq_length", type=int, help="default: the checkpoint's max_length")
    p.add_argument("--patience", default="1,2", help="comma list of patience values >= 1")
    p.add_argument("--batch_sizes", default="1,32",
                   help="comma list; 1 = per-example latency (the original's setting)")
    p.add_argument("--examples", type=int, default=200, help="first N dev examples")
    p.add_argument("--repeats", type=int, default=5, help="timed passes of every side")
    p.add_argument("--warmup", type=int, default=1, help="untimed passes of every side")
    p.add_argument("--regression_threshold", type=float, default=0.0,
                   help="STS-B: predictions closer than this count as the same")
    p.add_argument("--sides", help="comma list of the sides to time (default: all; e.g. "
                   "dense-dynamic-xla,pabee-dynamic-t2)")
    p.add_argument("--jit_compile", action="store_true",
                   help="XLA-compile PABEE's layer steps (the dense sides are timed as a graph "
                        "and XLA-compiled regardless)")
    precision.add_flags(p)
    p.add_argument("--output", help="also write the JSON record to this file (default: no file)")
    return p


def run(args, command="python tools/benchmark_pabee.py", log=print):
    from common import benchmark
    from common.checkpoints import read_sidecar
    from common.metrics import compute_metrics
    from common.tasks import get_task
    from common.tokenization import load_tokenizer
    from common.training import logits_to_predictions
    from pabee import speed
    from pabee.patience import EarlyExitEngine, ExitRule, parse_patience_list
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
        built[size] = {side.name: side for side in speed.sides(engine, arrays, size, rules)}
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
                summary = speed.exit_summary(side, model, arrays, single.get(patience))
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


@command
def main(argv=None):
    from common import benchmark

    args = build_parser().parse_args(argv)
    precision.apply_flags(args)
    benchmark.run_tool("tools/benchmark_pabee.py", args, argv, run, COLUMNS, args.output)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
