"""Measure AdapLeR's wall-clock speed-up beside its FLOPs speed-up (see adapler/speed.py).

A trained checkpoint on real texts:
    python tools/benchmark_adapler.py --MODEL_PATH directory/bert/22/sst2/models/adaptive_lr/X_lr \
        --TASK sst2 --DATA_DIR /path/to/SST-2 --NUM_EXAMPLES 200
BERT-base shape with random weights (CPs scaled so that eta removes tokens; timing only):
    python tools/benchmark_adapler.py --RANDOM_BERT_BASE --ETA 0.6 --TASK sst2 --MAX_LENGTH 128

Every side is timed by `common.benchmark` on the same texts (warm-up, interleaved repeats,
medians, paired ratios, background load): at batch 1 the dense model on each unpadded text (c)
and AdapLeR's lr_mode; at --BATCH_SIZE the dense baselines (a) padded to MAX_LENGTH and (b)
length-sorted dynamic padding (graph and XLA) and AdapLeR compacting the dynamic batches.
"speed-up" is against (b) batched and (c) at batch 1; each side's task metric and, for AdapLeR,
how many predictions equal lr_mode's on each text alone are given beside it. Prints a markdown
table; --OUTPUT writes the JSON record.
"""

import numpy as np

from adapler import speed as adapler_speed
from adapler.data import default_data_dir_for, load_split
from common.config import BertConfig
from common.data import default_model_dir
from common import precision
from common.cli import ArgumentParser, command
from common.errors import UserError
from common.tasks import get_task
from common.tokenization import load_tokenizer


def random_bert_base(eta, seed):
    """BERT-base shape, random weights; CP output kernels widened so shares differ and eta
    removes tokens (the stock 0.02 init gives near-uniform shares that nothing falls below)."""
    import keras

    from adapler.model import build_model

    keras.utils.set_random_seed(seed)  # the same random model (and kept lengths) every run
    model = build_model(BertConfig(), 2, 512)
    rng = np.random.default_rng(seed)
    for predictor in model.predictors:
        kernel = predictor.out.kernel
        predictor.out.kernel.assign(rng.normal(0.0, 0.6, kernel.shape).astype(np.float32))
    model.eta.assign(np.full(model.eta.shape, eta, np.float32))
    return model


def build_parser():
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--MODEL_PATH", help="AdapLeR checkpoint folder (this or "
                                             "--RANDOM_BERT_BASE is required)")
    source.add_argument("--RANDOM_BERT_BASE", action="store_true",
                        help="random BERT-base weights (timing only; this or --MODEL_PATH is "
                             "required)")
    parser.add_argument("--ETA", type=float, default=0.6, help="eta of the random model")
    parser.add_argument("--SEED", type=int, default=0, help="seed of the random model")
    parser.add_argument("--SIDES", help="comma list of the sides to time (default: all; e.g. "
                   "dense-dynamic-xla,adapler-dynamic)")
    parser.add_argument("--TASK", default="sst2", help="the task whose texts are timed")
    parser.add_argument("--DATA_DIR", default=None,
                        help="the task's folder (default: ./data/<task>; SST-2: the bundled "
                             "sample)")
    parser.add_argument("--SPLIT", default="dev", help="the split whose texts are timed")
    parser.add_argument("--MAX_LENGTH", type=int, default=None,
                        help="default: the checkpoint's (random model: 128)")
    parser.add_argument("--NUM_EXAMPLES", type=int, default=200, help="the first N texts")
    parser.add_argument("--REPEATS", type=int, default=5, help="timed passes of every side")
    parser.add_argument("--WARMUP", type=int, default=1, help="untimed passes of every side")
    parser.add_argument("--BATCH_SIZE", type=int, default=32,
                        help="the batched setting (timed beside batch 1; 1: batch 1 only)")
    parser.add_argument("--TOKENIZER", default=None,
                        help="vocab for the random model (default: the MiniLM package's, which "
                             "is bert-base-uncased's)")
    parser.add_argument("--OUTPUT", default=None,
                        help="also write the result as JSON here (default: no file)")
    precision.add_flags(parser, upper=True)
    return parser


COLUMNS = [("batch_size", "batch"), ("side", "side"), ("median_ms", "ms per pass"),
           ("ms_per_example", "ms / example"), ("speedup_vs_padded", "vs (a) padded"),
           ("speedup_vs_dynamic", "vs (b) dynamic"), ("speedup_vs_unpadded", "vs (c) unpadded"),
           ("paired_speedup", "paired speed-up"), ("flops_speedup", "FLOPs speed-up"),
           ("metric", "metric"), ("same_predictions", "predictions = lr_mode alone")]


def run(args, command, log=print):
    from common import benchmark
    from common.metrics import compute_metrics

    task = get_task(args.TASK)
    if args.MODEL_PATH:
        from adapler.inference import load_model
        model, tokenizer, sidecar = load_model(args.MODEL_PATH)
        max_length = args.MAX_LENGTH or sidecar.get("max_length") or 128
    else:
        model = random_bert_base(args.ETA, args.SEED)
        tokenizer = load_tokenizer(args.TOKENIZER or default_model_dir())
        max_length = args.MAX_LENGTH or 128
    benchmark.check_counts(REPEATS=args.REPEATS, WARMUP=args.WARMUP, BATCH_SIZE=args.BATCH_SIZE,
                           NUM_EXAMPLES=args.NUM_EXAMPLES)
    arrays, _ = load_split(task, args.DATA_DIR or default_data_dir_for(task), args.SPLIT,
                           tokenizer, max_length, limit=args.NUM_EXAMPLES)
    if len(arrays["input_ids"]) < 2:
        raise UserError("--NUM_EXAMPLES must leave at least 2 texts")
    vanilla_flops, adapler_flops, alone, kept = adapler_speed.flops_and_predictions(
        model, arrays)
    built = {}

    def make_sides(size):
        built[size] = {s.name: s for s in adapler_speed.sides(model, arrays, size)}
        return list(built[size].values())

    sizes = [1] + ([args.BATCH_SIZE] if args.BATCH_SIZE > 1 else [])
    groups = benchmark.over_batch_sizes(sizes, make_sides, args.REPEATS, args.WARMUP, log,
                                        only=benchmark.parse_names(args.SIDES))
    for group in groups:
        size = group["batch_size"]
        for row in group["rows"]:
            method = row["side"].startswith("adapler")
            row["flops_speedup"] = vanilla_flops / adapler_flops if method else 1.0
            row["paired_speedup"] = row.get(f"paired_speedup_vs_{benchmark.headline(size)}")
            logits = benchmark.outputs_in_order(built[size][row["side"]])
            predictions = np.argmax(logits, axis=-1)
            if "labels" in arrays:
                row["metric"] = compute_metrics(task, predictions, arrays["labels"])[task.metric]
            if method:
                row["same_predictions"] = f"{int(np.sum(predictions == alone))}/{len(alone)}"
    settings = {"task": task.name, "split": args.SPLIT, "max_length": max_length,
                "weights": args.MODEL_PATH or f"random BERT-base, eta {args.ETA}",
                "examples": len(arrays["input_ids"]),
                "mean_length": float(np.mean(benchmark.real_lengths(arrays))),
                "mean_kept_per_layer": kept, "metric": task.metric, "repeats": args.REPEATS,
                "warmup": args.WARMUP, "flops_speedup_on_real_lengths":
                    vanilla_flops / adapler_flops}
    return benchmark.record(command, settings, groups)


@command
def main(argv=None):
    args = build_parser().parse_args(argv)
    from common import benchmark
    from common.inference import configure_threads

    configure_threads()  # all available cores intra-op, one inter-op thread, before any TF op
    precision.apply_flags(args)
    result = benchmark.run_tool("tools/benchmark_adapler.py", args, argv, run, COLUMNS,
                                args.OUTPUT)
    print(f"mean tokens per layer (lr_mode): {result['settings']['mean_kept_per_layer']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
