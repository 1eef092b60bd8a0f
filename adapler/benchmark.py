"""Wall-clock speed of AdapLeR vs the same model run as plain BERT, beside the FLOPs speed-up.

* `single_instance`: the paper's setting. Every text alone and unpadded; vanilla = the same
  backbone and head without predictors, AdapLeR = `lr_mode` (physical removal). Both are one
  tf.function with a dynamic length, traced once during the warm-up. Each repeat runs every
  text through both sides, alternating which side goes first, so background load hits both
  alike; the result is the median over repeats of the summed time. With `xla_baseline` a third
  side joins the rotation: vanilla compiled by XLA once per text length (its compiles happen
  in the warm-up), the fastest plain model at batch size 1 on small backbones, which lr_mode,
  a graph of data-dependent shapes, cannot be.
* `batched` (beyond the paper): batches of length-sorted texts, each padded to its own longest
  text; AdapLeR drops tokens row by row and compacts the batch to its longest survivor before
  every block. Compared with vanilla on the same batches and with vanilla padded to MAX_LENGTH
  in dataset order; predictions must equal the single-instance `lr_mode` ones.
"""
import time

import numpy as np

from adapler.inference import FEATURES, compiled
from common import flops


def _examples(arrays):
    """Unpadded (1, n) feature dicts of every row."""
    lengths = arrays["attention_mask"].sum(axis=1)
    return [{key: arrays[key][row:row + 1, :n].astype(np.int32) for key in FEATURES}
            for row, n in enumerate(lengths)]


def single_instance(model, arrays, repeats=5, xla_baseline=False):
    """Latency of vanilla vs lr_mode on each text alone; FLOPs from the kept lengths."""
    sides = {"vanilla": compiled(model, lr_mode=False), "adapler": compiled(model, lr_mode=True)}
    if xla_baseline:
        sides["vanilla_xla"] = compiled(model, lr_mode=False, jit_compile=True)
    examples = _examples(arrays)
    predictions, kept = [], []
    for example in examples:  # warm-up (traces/compiles each side) and the lr_mode outcome
        for side in sides.values():
            side(example).numpy()
        outputs = model(example, lr_mode=True)
        predictions.append(int(np.argmax(outputs["logits"][0])))
        kept.append([int(n[0]) for n in outputs["lengths"]])
    totals = {name: [] for name in sides}
    for repeat in range(repeats):
        spent = dict.fromkeys(sides, 0.0)
        for index, example in enumerate(examples):
            shift = (repeat + index) % len(sides)
            order = list(sides)[shift:] + list(sides)[:shift]
            for name in order:
                start = time.perf_counter()
                sides[name](example).numpy()
                spent[name] += time.perf_counter() - start
        for name in sides:
            totals[name].append(spent[name])
    medians = {name: float(np.median(values)) for name, values in totals.items()}
    lengths = [e["input_ids"].shape[1] for e in examples]
    config, labels = model.config, model.num_labels
    vanilla_flops = sum(flops.vanilla_flops(config, n, labels) for n in lengths)
    adapler_flops = sum(flops.adapler_flops(config, n, k, labels, model.cp_hidden)
                        for n, k in zip(lengths, kept))
    result = {"examples": len(examples), "mean_length": float(np.mean(lengths)),
              "mean_kept": np.mean(kept, axis=0).round(1).tolist(),
              "vanilla_ms": 1000 * medians["vanilla"] / len(examples),
              "adapler_ms": 1000 * medians["adapler"] / len(examples),
              "measured_speedup": medians["vanilla"] / medians["adapler"],
              "flops_speedup": vanilla_flops / adapler_flops,
              "predictions": predictions, "kept": kept}
    if xla_baseline:
        result["vanilla_xla_ms"] = 1000 * medians["vanilla_xla"] / len(examples)
        result["speedup_vs_xla"] = medians["vanilla_xla"] / medians["adapler"]
    return result


def _batches(arrays, batch_size, order, trim=True):
    """Feature batches in `order`, each cut to its longest row (or kept at full width)."""
    result = []
    for start in range(0, len(order), batch_size):
        rows = order[start:start + batch_size]
        width = int(arrays["attention_mask"][rows].sum(axis=1).max()) if trim else None
        result.append({key: arrays[key][rows, :width].astype(np.int32) for key in FEATURES})
    return result


def batched(model, arrays, batch_size=32, repeats=5):
    """Throughput (examples/s) of vanilla padded to MAX_LENGTH, vanilla on length-sorted
    batches, and AdapLeR compacting those batches; plus AdapLeR's batched predictions."""
    count = len(arrays["input_ids"])
    by_length = np.argsort(arrays["attention_mask"].sum(axis=1), kind="stable")
    sorted_batches = _batches(arrays, batch_size, by_length)
    plans = {"vanilla (padded to MAX_LENGTH)": (compiled(model, False),
                                                _batches(arrays, batch_size, np.arange(count),
                                                         trim=False)),
             "vanilla (length-sorted batches)": (compiled(model, False), sorted_batches),
             "AdapLeR (length-sorted, compacted)": (compiled(model, True), sorted_batches)}
    predictions = np.zeros(count, np.int64)
    for function, batches in plans.values():  # warm-up: traces each function once
        for batch in batches:
            function(batch).numpy()
    adapler_fn = plans["AdapLeR (length-sorted, compacted)"][0]
    start = 0
    for batch in sorted_batches:
        logits = adapler_fn(batch).numpy()
        predictions[by_length[start:start + len(logits)]] = np.argmax(logits, axis=-1)
        start += len(logits)
    totals = {name: [] for name in plans}
    names = list(plans)
    for repeat in range(repeats):
        spent = dict.fromkeys(plans, 0.0)
        for index in range(len(sorted_batches)):
            for name in names[repeat % 3:] + names[:repeat % 3]:
                function, batches = plans[name]
                start_time = time.perf_counter()
                function(batches[index]).numpy()
                spent[name] += time.perf_counter() - start_time
        for name in plans:
            totals[name].append(spent[name])
    throughput = {name: count / float(np.median(values)) for name, values in totals.items()}
    return {"throughput": throughput, "predictions": predictions, "batch_size": batch_size}
