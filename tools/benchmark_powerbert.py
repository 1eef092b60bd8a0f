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
from common.errors import UserError, parse_int_list

PAPER_RTE_HALVED = "77,63,56,53,43,40,36,24,18,14,11,3"
COLUMNS = [("batch_size", "batch"), ("side", "side"), ("median_ms", "ms per pass"),
           ("ms_per_example", "ms / example"), ("speedup_vs_padded", "vs (a) padded"),
           ("speedup_vs_dynamic", "vs (b) dynamic"), ("speedup_vs_unpadded", "vs (c) unpadded"),
           ("paired_speedup", "paired speed-up"), ("flops_speedup", "FLOPs speed-up"),
           ("measured_over_flops", "measured / FLOPs"), ("metric", "metric")]


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
    from common import benchmark

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
    from common import benchmark
    from common.metrics import compute_metrics, main_metric
    from common.training import logits_to_predictions

    for group in groups:
        for row in group["rows"]:
            side = sides_by_size[group["batch_size"]][row["side"]]
            logits = benchmark.outputs_in_order(side)
            predictions = logits_to_predictions(logits, logits.shape[-1])
            row["metric"] = compute_metrics(task, predictions, labels)[main_metric(task)]


def run(args, command, log=print):
    from common import benchmark
    from common.config import BertConfig
    from common.inference import configure_threads
    from common.tasks import get_task
    from powerbert import speed
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
    scaled = speed.scaling_length(powerbert)
    vanilla_flops, method_flops = speed.flops_on_lengths(config, retention, lengths,
                                                         vanilla.num_labels, scaled)
    built = {}

    def make_sides(size):
        built[size] = {s.name: s for s in speed.sides(vanilla, powerbert, arrays, size)}
        return list(built[size].values())

    groups = benchmark.over_batch_sizes(batch_sizes, make_sides, args.repeats, args.warmup, log,
                                        only=benchmark.parse_names(args.sides))
    for group in groups:
        for row in group["rows"]:
            row["flops_speedup"] = 1.0
            if row["side"].startswith("powerbert"):  # on the real lengths of the rows as run
                vanilla_part, method_part = speed.items_flops(
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


@command
def main(argv=None):
    from common import benchmark

    args = build_parser().parse_args(argv)
    precision.apply_flags(args)
    benchmark.run_tool("tools/benchmark_powerbert.py", args, argv, run, COLUMNS, args.output)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
