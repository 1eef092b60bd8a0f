"""AdapLeR's timing sides for `common.benchmark`, beside the dense baselines.

The dense sides run the same backbone and head without the contribution predictors. AdapLeR
runs in `lr_mode` (physical removal), one tf.function with data-dependent shapes:

    adapler-unpadded   batch 1, every text alone at its own length (the paper's setting)
    adapler-dynamic    the length-sorted, dynamically padded batches of the dense-dynamic
                       baseline; tokens are dropped row by row and the batch is compacted to its
                       longest survivor before every block (beyond the paper)

At batch 1 the reference (c) is the faster of the dense graph and the dense model XLA-compiled
per text length (the fastest plain model there on small backbones). FLOPs are those of each
text alone with the lengths `lr_mode` keeps (`flops_and_predictions`).

`run` is `tools/benchmark_adapler.py`'s measurement: every side at batch 1 and --BATCH_SIZE,
each side's task metric, and how many of AdapLeR's predictions equal lr_mode's on each text alone
(`random_bert_base`: the random BERT-base model it times without a checkpoint).
"""
import numpy as np

from adapler.data import default_data_dir_for, load_split
from adapler.flops import adapler_flops
from adapler.inference import compiled, load_model
from common import benchmark, flops
from common.config import BertConfig
from common.data import default_model_dir
from common.errors import UserError
from common.tasks import get_task
from common.tokenization import load_tokenizer

COLUMNS = [("batch_size", "batch"), ("side", "side"), ("median_ms", "ms per pass"),
           ("ms_per_example", "ms / example"), ("speedup_vs_padded", "vs (a) padded"),
           ("speedup_vs_dynamic", "vs (b) dynamic"), ("speedup_vs_unpadded", "vs (c) unpadded"),
           ("paired_speedup", "paired speed-up"), ("flops_speedup", "FLOPs speed-up"),
           ("metric", "metric"), ("same_predictions", "predictions = lr_mode alone")]


def vanilla_call(model):
    """features -> logits of the backbone and head without predictors."""
    return lambda features: model.classifier(model.bert(features, training=False)["pooled_output"])


def flops_and_predictions(model, arrays):
    """(vanilla FLOPs, AdapLeR FLOPs, lr_mode predictions, mean kept tokens per layer) of every
    text run alone and unpadded."""
    config, labels = model.config, model.num_labels
    vanilla = adapler = 0
    predictions, kept = [], []
    for example in benchmark.unpadded_examples(arrays):
        outputs = model(example, lr_mode=True)
        n = example["input_ids"].shape[1]
        lengths = [int(k[0]) for k in outputs["lengths"]]
        vanilla += flops.vanilla_flops(config, n, labels)
        adapler += adapler_flops(config, n, lengths, labels, model.cp_hidden)
        predictions.append(int(np.argmax(outputs["logits"][0])))
        kept.append(lengths)
    return vanilla, adapler, np.asarray(predictions), np.mean(kept, axis=0).round(1).tolist()


def sides(model, arrays, batch_size):
    """The dense baselines and AdapLeR's side at `batch_size` (see the module docstring)."""
    config, labels = model.config, model.num_labels
    result = benchmark.dense_sides(vanilla_call(model), arrays, batch_size,
                                   lambda n: flops.vanilla_flops(config, n, labels))
    adapler = benchmark.blocking(compiled(model, lr_mode=True))
    if batch_size == 1:
        items = benchmark.unpadded_examples(arrays)
        return result + [benchmark.Side("adapler-unpadded", adapler, items)]
    batches, order = benchmark.dynamic_batches(arrays, batch_size)
    return result + [benchmark.Side("adapler-dynamic", adapler, batches, order=order)]


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


def run(args, command, log=print):
    """`tools/benchmark_adapler.py`'s measurement: its JSON record."""
    from common.metrics import compute_metrics

    task = get_task(args.TASK)
    if args.MODEL_PATH:
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
    vanilla_flops, method_flops, alone, kept = flops_and_predictions(model, arrays)
    built = {}

    def make_sides(size):
        built[size] = {s.name: s for s in sides(model, arrays, size)}
        return list(built[size].values())

    sizes = [1] + ([args.BATCH_SIZE] if args.BATCH_SIZE > 1 else [])
    groups = benchmark.over_batch_sizes(sizes, make_sides, args.REPEATS, args.WARMUP, log,
                                        only=benchmark.parse_names(args.SIDES))
    for group in groups:
        size = group["batch_size"]
        for row in group["rows"]:
            method = row["side"].startswith("adapler")
            row["flops_speedup"] = vanilla_flops / method_flops if method else 1.0
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
                    vanilla_flops / method_flops}
    return benchmark.record(command, settings, groups)
