"""Measure PoWER-BERT's inference speed against the dense baselines, beside its FLOPs speed-up.

    python tools/benchmark_powerbert.py                       # BERT-base, length 128, batch 32, 128
    python tools/benchmark_powerbert.py --config $MINILM/config.json --max_length 64 \\
        --retention 41,33,26,18,17,9 --task sst-2 --data_dir /path/to/SST-2 --batch_sizes 1,32
    python tools/benchmark_powerbert.py --model runs/powerbert/sst2/retrain --task sst-2 \\
        --data_dir /path/to/SST-2 --max_length 64 --retention 41,33,26,18,17,9 --output b.json

Both models hold the same weights (random, BERT-base shape unless --config; or --model's) and
see the same texts: real ones (--task and --data_dir, the --split file read by the task's reader)
or random ones (--examples rows, lengths uniform in [--min_length, --max_length]). Every side
is timed by `common.benchmark` (warm-up, interleaved repeats, medians, paired ratios,
background load): the dense baselines (a) padded, (b) length-sorted dynamic padding (graph and
XLA) and (c) batch 1 unpadded, and PoWER-BERT padded and dynamically padded (or unpadded at
batch 1). "speed-up" is against (b) at batch > 1 and (c) at batch 1; FLOPs are counted on the
real lengths of each side's rows as run (`--length_scaled` keeps more word-vectors in wider
batches, so its FLOPs depend on the batching). With real labelled texts and --model, every
side's task metric is given too. The default retention is the paper's RTE configuration
(N = 256) halved for N = 128.
"""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from common import precision
from common.cli import ArgumentParser, command

PAPER_RTE_HALVED = "77,63,56,53,43,40,36,24,18,14,11,3"


def build_parser():
    p = ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", help="model config.json / bert_config.json (default BERT-base)")
    p.add_argument("--model", help="checkpoint whose weights both models load by key (an HF "
                                   "folder or any of our classifier / PoWER-BERT checkpoints; "
                                   "default: random weights)")
    p.add_argument("--max_length", type=int, default=128, help="N, the padded input length")
    p.add_argument("--retention", default=PAPER_RTE_HALVED,
                   help="comma-separated word-vectors kept per block")
    p.add_argument("--length_scaled", action="store_true",
                   help="keep ceil(k_l * n / N) word-vectors in a batch of width n (N = "
                        "--max_length) instead of min(k_l, n)")
    p.add_argument("--task", help="time real texts of this task (with --data_dir; default: "
                                  "random rows)")
    p.add_argument("--data_dir", help="the task's data folder (required with --task)")
    p.add_argument("--split", default="dev", help="--task: the split whose texts are timed")
    p.add_argument("--examples", type=int, default=256,
                   help="random rows, or the first N real ones (default 256)")
    p.add_argument("--min_length", type=int,
                   help="random rows: shortest length (default: all at --max_length)")
    p.add_argument("--batch_sizes", default="32,128", help="comma list of timed batch sizes")
    p.add_argument("--repeats", type=int, default=7, help="timed passes of every side")
    p.add_argument("--warmup", type=int, default=2, help="untimed passes of every side")
    p.add_argument("--seed", type=int, default=0, help="seed of the random weights and rows")
    p.add_argument("--sides", help="comma list of the sides to time (default: all; e.g. "
                   "dense-dynamic-xla,powerbert-dynamic)")
    precision.add_flags(p)
    p.add_argument("--output", help="also write the result as JSON to this file (default: no "
                                    "file)")
    return p


@command
def main(argv=None):
    args = build_parser().parse_args(argv)
    precision.apply_flags(args)
    from common import benchmark
    from powerbert.speed import COLUMNS, run

    benchmark.run_tool("tools/benchmark_powerbert.py", args, argv, run, COLUMNS, args.output)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
