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

from common import precision
from common.cli import ArgumentParser, command


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


@command
def main(argv=None):
    args = build_parser().parse_args(argv)
    from adapler.speed import COLUMNS, run
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
