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


@command
def main(argv=None):
    args = build_parser().parse_args(argv)
    precision.apply_flags(args)
    from common import benchmark
    from pabee.speed import COLUMNS, run

    benchmark.run_tool("tools/benchmark_pabee.py", args, argv, run, COLUMNS, args.output)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
