"""Measure PoWER-BERT's inference speed-up over the vanilla model, beside its FLOPs speed-up.

    python tools/benchmark_powerbert.py                       # BERT-base, length 128, batch 32, 128
    python tools/benchmark_powerbert.py --batch_sizes 32 --repeats 9 \\
        --retention 80,73,70,50,50,40,33,27,20,15,13,3 --output runs/bench_powerbert.json

Both models get the same random weights (BERT-base shape unless --config; timing does not depend
on the values) and the same full-length random inputs; both forward passes are XLA-compiled the
same way, warmed up, then timed in interleaved repeats. Prints a markdown table: median
milliseconds per batch, the measured speed-up (ratio of medians, and the median of the
per-repeat ratios, which is less sensitive to background load), the analytic FLOPs speed-up
(`common.flops`) and measured / FLOPs. The default retention configuration is the paper's RTE
configuration (N = 256) halved for N = 128: 3.2x fewer FLOPs.
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from common import precision  # noqa: E402
from common.errors import UserError, cli_entry, parse_int_list  # noqa: E402

PAPER_RTE_HALVED = "77,63,56,53,43,40,36,24,18,14,11,3"
COLUMNS = (("batch_size", "batch"), ("vanilla_ms", "vanilla ms"), ("powerbert_ms", "PoWER ms"),
           ("measured_speedup", "measured speed-up"), ("paired_speedup", "median paired ratio"),
           ("flops_speedup", "FLOPs speed-up"), ("measured_over_flops", "measured / FLOPs"))


def build_parser():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", help="model config.json / bert_config.json (default BERT-base)")
    p.add_argument("--max_length", type=int, default=128)
    p.add_argument("--retention", default=PAPER_RTE_HALVED,
                   help="comma-separated word-vectors kept per block")
    p.add_argument("--batch_sizes", default="32,128")
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--output", help="also write the rows as JSON to this file")
    precision.add_flags(p)
    return p


def benchmark(config, max_length, retention, batch_size, repeats, warmup, seed=0):
    """One row: timings of vanilla and PoWER-BERT on the same random batch."""
    import numpy as np

    from common import flops
    from common.checkpoints import variable_key
    from common.modeling import SequenceClassifier, dummy_inputs
    from powerbert.model import PowerBertClassifier
    from powerbert.speed import measure_speedup

    vanilla = SequenceClassifier(config, 2)
    vanilla(dummy_inputs(max_length))
    powerbert = PowerBertClassifier(config, 2, retention=retention)
    powerbert(dummy_inputs(max_length))
    weights = {variable_key(v): v for v in vanilla.weights}
    for variable in powerbert.weights:
        variable.assign(weights[variable_key(variable)])
    rng = np.random.default_rng(seed)
    # ids from 1000 up skip BERT's special and unused tokens (tiny vocabularies: from the middle)
    low = min(1000, config.vocab_size // 2)
    ids = rng.integers(low, config.vocab_size, (batch_size, max_length)).astype(np.int32)
    inputs = {"input_ids": ids, "token_type_ids": np.zeros_like(ids),
              "attention_mask": np.ones_like(ids)}
    timing = measure_speedup(vanilla, powerbert, inputs, repeats, warmup)
    flops_speedup = flops.speedup(flops.vanilla_flops(config, max_length),
                                  flops.powerbert_flops(config, max_length, retention))
    return {"batch_size": batch_size, "max_length": max_length, "retention": retention,
            **timing, "flops_speedup": flops_speedup,
            "measured_over_flops": timing["measured_speedup"] / flops_speedup}


def markdown(rows):
    def cell(value):
        return f"{value:.2f}" if isinstance(value, float) else str(value)
    lines = ["| " + " | ".join(title for _, title in COLUMNS) + " |",
             "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(cell(row[key]) for key, _ in COLUMNS) + " |" for row in rows]
    return "\n".join(lines)


@cli_entry
def main(argv=None):
    args = build_parser().parse_args(argv)
    precision.apply_flags(args)
    from common.config import BertConfig
    from powerbert.retention import parse_retention

    config = BertConfig.from_json(args.config) if args.config else BertConfig()
    retention = parse_retention(args.retention, config.num_hidden_layers, args.max_length,
                                "--retention")
    batch_sizes = parse_int_list(args.batch_sizes, "--batch_sizes")
    if min(batch_sizes) < 1 or args.repeats < 1 or args.warmup < 0:
        raise UserError("--batch_sizes and --repeats must be >= 1, --warmup >= 0")
    rows = []
    for batch_size in batch_sizes:
        rows.append(benchmark(config, args.max_length, retention, batch_size, args.repeats,
                              args.warmup, args.seed))
        print(markdown(rows[-1:]), flush=True)
    print(f"\nretention {','.join(map(str, retention))} at length {args.max_length}, "
          f"{config.num_hidden_layers} layers, hidden {config.hidden_size}:\n{markdown(rows)}")
    if args.output:
        os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
        with open(args.output, "w", encoding="utf-8") as out:
            json.dump(rows, out, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
