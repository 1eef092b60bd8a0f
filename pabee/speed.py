"""Wall-clock speed of PABEE against the vanilla model on the same inputs and the same weights.

The vanilla side is the model's full forward (embeddings, all L layers, pooler, last classifier:
PABEE's patience-0 path, i.e. a plain BERT classifier), compiled the same way as PABEE's
per-layer steps (`EarlyExitEngine`). Both sides see identical inputs with the same padding.

* `latency`: batch size 1, one example at a time, the two sides interleaved example by example
  (alternating which goes first) so background load hits both alike; per repeat the time of all
  examples is summed, the medians over repeats are compared, after one untimed pass.
* `throughput`: batches of `batch_size`; vanilla runs the full model on each batch, PABEE the
  batched per-example exit (exited rows leave the batch). The two sides alternate per repeat.
  It also checks that the batched predictions and exit layers equal the batch-1 ones.

Each measurement is reported beside the layer ratio L/X and the analytic FLOPs ratio (on the
padded length, or on each example's real length when padding is trimmed).
"""
import statistics
import time

import numpy as np

from pabee.patience import INPUT_KEYS, exit_statistics, map_batches


def trim_padding(features):
    """The same rows cut to their longest real length (padding does not change the outputs)."""
    length = int(np.max(np.sum(features["attention_mask"], axis=1)))
    return {key: features[key][:, :length] for key in INPUT_KEYS}


def _rows(arrays, trim):
    rows = [{key: arrays[key][i:i + 1] for key in INPUT_KEYS}
            for i in range(len(arrays["input_ids"]))]
    return [trim_padding(row) for row in rows] if trim else rows


def _timed(fn, *args):
    started = time.perf_counter()
    fn(*args)
    return time.perf_counter() - started


def _lengths(arrays, trim):
    """Tokens each example runs with: its real length when padding is trimmed."""
    if trim:
        return np.sum(arrays["attention_mask"], axis=1)
    return arrays["input_ids"].shape[1]


def _summary(engine, exit_layers, length, vanilla_times, pabee_times, count):
    stats = exit_statistics(engine.model.config, exit_layers, length, engine.model.num_labels)
    vanilla, pabee = statistics.median(vanilla_times), statistics.median(pabee_times)
    return {"examples": count, "avg_exit_layer": stats["avg_exit_layer"],
            "layer_ratio": stats["layer_ratio"], "flops_ratio": stats["flops_ratio"],
            "vanilla_seconds": vanilla, "pabee_seconds": pabee,
            "measured_speedup": vanilla / pabee,
            "vanilla_per_second": count / vanilla, "pabee_per_second": count / pabee}


def latency(engine, arrays, rule, repeats=5, trim=False):
    """Batch-1 latency, vanilla vs PABEE; returns a summary dict and the batch-1 ExitResult."""
    rows = _rows(arrays, trim)
    for row in rows:  # warm-up: one untimed pass over every input, both sides
        engine.full(row)
        engine.run(row, rule)
    vanilla_times, pabee_times, results = [], [], None
    for _ in range(repeats):
        vanilla_total = pabee_total = 0.0
        outcomes = []
        for index, row in enumerate(rows):
            if index % 2:
                pabee_total += _timed(lambda: outcomes.append(engine.run(row, rule)))
                vanilla_total += _timed(engine.full, row)
            else:
                vanilla_total += _timed(engine.full, row)
                pabee_total += _timed(lambda: outcomes.append(engine.run(row, rule)))
        vanilla_times.append(vanilla_total)
        pabee_times.append(pabee_total)
        results = outcomes
    exits = np.concatenate([r.exit_layers for r in results])
    logits = np.concatenate([r.logits for r in results])
    summary = _summary(engine, exits, _lengths(arrays, trim), vanilla_times, pabee_times,
                       len(rows))
    summary["batch_size"] = 1
    return summary, (logits, exits)


def throughput(engine, arrays, rule, batch_size, repeats=5, trim=False, reference=None):
    """Batched throughput, vanilla vs batched per-example exit. `reference` = the batch-1
    (logits, exit layers) to compare predictions with."""
    features = {key: arrays[key] for key in INPUT_KEYS}
    prepare = trim_padding if trim else (lambda batch: batch)
    batches = [prepare(b) for b in map_batches(lambda b: b, features, batch_size)]

    def vanilla():
        for batch in batches:
            engine.full(batch)

    def pabee():
        return [engine.run(batch, rule) for batch in batches]

    vanilla()  # warm-up (traces every batch shape once)
    results = pabee()
    vanilla_times, pabee_times = [], []
    for repeat in range(repeats):
        order = (vanilla, pabee) if repeat % 2 == 0 else (pabee, vanilla)
        times = {fn: _timed(fn) for fn in order}
        vanilla_times.append(times[vanilla])
        pabee_times.append(times[pabee])
    exits = np.concatenate([r.exit_layers for r in results])
    logits = np.concatenate([r.logits for r in results])
    summary = _summary(engine, exits, _lengths(arrays, trim), vanilla_times, pabee_times,
                       len(exits))
    summary["batch_size"] = batch_size
    if reference is not None:
        ref_logits, ref_exits = reference
        if engine.model.num_labels > 1:
            same = np.argmax(logits, -1) == np.argmax(ref_logits, -1)
        else:
            same = np.isclose(logits[:, 0], ref_logits[:, 0], atol=1e-4)
        summary["prediction_mismatches"] = int((~same).sum())
        summary["exit_layer_mismatches"] = int((exits != ref_exits).sum())
    return summary
