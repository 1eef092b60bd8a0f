"""PoWER-BERT's timing sides for `common.benchmark`, beside the dense baselines.

    powerbert-padded    Extract on batches padded to the max length (the paper's setting), XLA
    powerbert-dynamic   Extract on the length-sorted, dynamically padded batches of the
                        dense-dynamic baseline: a batch of width n keeps min(k_l, n) word-vectors
                        in block l (pads carry no significance, so the real tokens kept are the
                        padded run's), XLA-compiled once per batch width during the warm-up
    powerbert-dynamic-graph  the same batches as a graph traced once per batch width (as the
                        dense-dynamic-graph baseline): the baseline gets the faster of graph and
                        XLA, and so does the method; with the width static, a block whose k_l
                        covers the batch skips the selection, as under XLA
    powerbert-unpadded  batch 1, each text at its own length (same rule), XLA per length

Both models hold the same weights. FLOPs are counted per example on its real length n, with
the retention clipped to min(k_l, n) (`flops_on_lengths`); a length-scaled retention keeps
min(ceil(k_l n / N), n).
"""
import numpy as np

from common import benchmark, flops
from powerbert.flops import powerbert_flops
from common.data import real_lengths
from common.inference import compile_forward


def clipped(retention, n, scaled_from=None):
    """The word-vectors block l keeps on an input n tokens wide: min(k_l, n); with a
    length-scaled retention (`scaled_from` = N, the task's length) min(ceil(k_l n / N), n)."""
    if scaled_from:
        return [min(-(-int(k) * int(n) // scaled_from), int(n)) for k in retention]
    return [min(int(k), int(n)) for k in retention]


def scaling_length(model):
    """N when `model` scales its retention with the batch's length, else None."""
    return model.seam.max_length if model.seam.length_scaled else None


def _row_flops(config, retention, n, width, num_labels, scaled_from):
    """(vanilla, PoWER-BERT) FLOPs of one row of real length n in a batch of width `width`."""
    kept = [min(k, n) for k in clipped(retention, width, scaled_from)]
    return (flops.vanilla_flops(config, n, num_labels),
            powerbert_flops(config, n, kept, num_labels))


def flops_on_lengths(config, retention, lengths, num_labels=2, scaled_from=None):
    """(vanilla, PoWER-BERT) FLOPs summed over examples of the given real lengths, each run
    alone (a length-scaled retention scales with the example's own length, as at batch 1)."""
    pairs = [_row_flops(config, retention, int(n), int(n), num_labels, scaled_from)
             for n in lengths]
    return sum(v for v, _ in pairs), sum(m for _, m in pairs)


def items_flops(config, retention, items, num_labels=2, scaled_from=None):
    """(vanilla, PoWER-BERT) FLOPs of the rows in `items` as run: every row counted on its real
    length n; a length-scaled retention keeps min(ceil(k_l w / N), n) in a batch of width w."""
    pairs = [_row_flops(config, retention, int(n), item["input_ids"].shape[1], num_labels,
                        scaled_from)
             for item in items for n in real_lengths(item)]
    return sum(v for v, _ in pairs), sum(m for _, m in pairs)


def per_shape(model, jit_compile=True):
    """`model(features)` compiled once per input shape (Extract's k is a Python int that needs
    the static width), XLA or a graph, outputs copied to numpy."""
    return benchmark.blocking(compile_forward(model, jit_compile, per_shape=True))


def sides(vanilla, powerbert, arrays, batch_size):
    """The dense baselines and PoWER-BERT's sides at `batch_size` (see the module docstring)."""
    config, labels, retention = vanilla.config, vanilla.num_labels, powerbert.retention

    def vanilla_flops(n):
        return flops.vanilla_flops(config, n, labels)

    scaled = scaling_length(powerbert)

    def method_flops(items):
        return sum(powerbert_flops(config, n, clipped(retention, n, scaled), labels)
                   for n in benchmark.item_lengths(items))

    result = benchmark.dense_sides(vanilla, arrays, batch_size, vanilla_flops)
    run = per_shape(powerbert)
    if batch_size == 1:
        items = benchmark.unpadded_examples(arrays)
        return result + [benchmark.Side("powerbert-unpadded", run, items,
                                        flops=method_flops(items))]
    padded = benchmark.padded_batches(arrays, batch_size)
    dynamic, order = benchmark.dynamic_batches(arrays, batch_size)
    graph = per_shape(powerbert, jit_compile=False)
    return result + [
        benchmark.Side("powerbert-padded", run, padded, flops=method_flops(padded)),
        benchmark.Side("powerbert-dynamic", run, dynamic, flops=method_flops(dynamic),
                       order=order),
        benchmark.Side("powerbert-dynamic-graph", graph, dynamic, flops=method_flops(dynamic),
                       order=order)]


def mean_length(arrays):
    return float(np.mean(real_lengths(arrays)))
