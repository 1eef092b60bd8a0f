"""Measure AdapLeR's wall-clock speed-up beside its FLOPs speed-up (see adapler/benchmark.py).

A trained checkpoint on real texts:
    python tools/benchmark_adapler.py --MODEL_PATH directory/bert/22/sst2/models/adaptive_lr/X_lr \
        --TASK sst2 --DATA_DIR /path/to/SST-2 --NUM_EXAMPLES 200
BERT-base shape with random weights (CPs scaled so that eta removes tokens; timing only):
    python tools/benchmark_adapler.py --RANDOM_BERT_BASE --ETA 0.6 --TASK sst2 --MAX_LENGTH 128

Writes a JSON record with --OUTPUT; prints a markdown table.
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras  # noqa: E402
import numpy as np  # noqa: E402

from adapler import benchmark  # noqa: E402
from adapler.data import default_data_dir_for, load_split  # noqa: E402
from common import precision  # noqa: E402
from common.config import BertConfig  # noqa: E402
from common.data import default_model_dir  # noqa: E402
from common.errors import UserError, cli_entry  # noqa: E402
from common.inference import configure_threads  # noqa: E402
from common.tasks import get_task  # noqa: E402
from common.tokenization import load_tokenizer  # noqa: E402


def random_bert_base(eta, seed):
    """BERT-base shape, random weights; CP output kernels widened so shares differ and eta
    removes tokens (the stock 0.02 init gives near-uniform shares that nothing falls below)."""
    from adapler.stages import build_model

    keras.utils.set_random_seed(seed)  # the same random model (and kept lengths) every run
    model = build_model(BertConfig(), 2, 512)
    rng = np.random.default_rng(seed)
    for predictor in model.predictors:
        kernel = predictor.out.kernel
        predictor.out.kernel.assign(rng.normal(0.0, 0.6, kernel.shape).astype(np.float32))
    model.eta.assign(np.full(model.eta.shape, eta, np.float32))
    return model


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--MODEL_PATH", help="AdapLeR checkpoint folder")
    source.add_argument("--RANDOM_BERT_BASE", action="store_true",
                        help="random BERT-base weights (timing only)")
    parser.add_argument("--ETA", type=float, default=0.6, help="eta of the random model")
    parser.add_argument("--SEED", type=int, default=0)
    parser.add_argument("--TASK", default="sst2")
    parser.add_argument("--DATA_DIR", default=None)
    parser.add_argument("--SPLIT", default="dev")
    parser.add_argument("--MAX_LENGTH", type=int, default=None,
                        help="default: the checkpoint's (random model: 128)")
    parser.add_argument("--NUM_EXAMPLES", type=int, default=200)
    parser.add_argument("--REPEATS", type=int, default=5)
    parser.add_argument("--BATCH_SIZE", type=int, default=32)
    parser.add_argument("--TOKENIZER", default=None,
                        help="vocab for the random model (default: the MiniLM package's, which "
                             "is bert-base-uncased's)")
    parser.add_argument("--XLA_BASELINE", action="store_true",
                        help="also time vanilla XLA-compiled per text length at batch 1 "
                             "(one compile per distinct length during the warm-up)")
    parser.add_argument("--OUTPUT", default=None, help="write the results as JSON here")
    precision.add_flags(parser, upper=True)
    return parser


def table(single, batched):
    lines = ["| setting | vanilla | AdapLeR | measured speed-up | FLOPs speed-up |",
             "|---|---|---|---|---|",
             f"| batch 1, unpadded ({single['examples']} texts, mean length "
             f"{single['mean_length']:.1f}) | {single['vanilla_ms']:.2f} ms | "
             f"{single['adapler_ms']:.2f} ms | {single['measured_speedup']:.2f}x | "
             f"{single['flops_speedup']:.2f}x |"]
    if "vanilla_xla_ms" in single:
        lines.append(f"| batch 1, vanilla XLA-compiled per length | {single['vanilla_xla_ms']:.2f}"
                     f" ms | {single['adapler_ms']:.2f} ms | {single['speedup_vs_xla']:.2f}x | "
                     f"{single['flops_speedup']:.2f}x |")
    rates = batched["throughput"]
    adapler = rates["AdapLeR (length-sorted, compacted)"]
    for name, rate in rates.items():
        if not name.startswith("AdapLeR"):
            lines.append(f"| batch {batched['batch_size']}: AdapLeR compacted vs {name} | "
                         f"{rate:.1f} ex/s | {adapler:.1f} ex/s | {adapler / rate:.2f}x | |")
    return "\n".join(lines)


@cli_entry
def main(argv=None):
    args = build_parser().parse_args(argv)
    precision.apply_flags(args)
    task = get_task(args.TASK)
    if args.MODEL_PATH:
        from adapler.inference import load_model
        model, tokenizer, sidecar = load_model(args.MODEL_PATH)
        max_length = args.MAX_LENGTH or sidecar.get("max_length") or 128
    else:
        model = random_bert_base(args.ETA, args.SEED)
        tokenizer = load_tokenizer(args.TOKENIZER or default_model_dir())
        max_length = args.MAX_LENGTH or 128
    arrays, _ = load_split(task, args.DATA_DIR or default_data_dir_for(task), args.SPLIT,
                           tokenizer, max_length, limit=args.NUM_EXAMPLES)
    if len(arrays["input_ids"]) < 2:
        raise UserError("--NUM_EXAMPLES must leave at least 2 texts")
    single = benchmark.single_instance(model, arrays, args.REPEATS, args.XLA_BASELINE)
    batched = benchmark.batched(model, arrays, args.BATCH_SIZE, args.REPEATS)
    same = int(np.sum(batched["predictions"] == np.asarray(single["predictions"])))
    print(table(single, batched))
    print(f"mean tokens per layer (lr_mode): {single['mean_kept']}")
    print(f"batched predictions equal to lr_mode one by one: {same}/{len(batched['predictions'])}")
    if args.OUTPUT:
        record = {"arguments": vars(args), "max_length": max_length,
                  "single_instance": {k: v for k, v in single.items()
                                      if k not in ("predictions", "kept")},
                  "batched_throughput": batched["throughput"], "same_predictions": same}
        with open(args.OUTPUT, "w", encoding="utf-8") as handle:
            json.dump(record, handle, indent=1)


if __name__ == "__main__":
    configure_threads()  # all available cores intra-op, one inter-op thread, before any TF op
    main()
