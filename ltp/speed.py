"""LTP's timing sides for `common.benchmark`, beside the dense baselines, and its FLOPs.

The dense sides run the same backbone and head without pruning. LTP prunes physically (hard
thresholds, pruned tokens gathered away, each batch compacted to its longest survivor), one
tf.function with data-dependent shapes:

    ltp-unpadded   batch 1, every text alone at its own length
    ltp-dynamic    the length-sorted, dynamically padded batches of the dense-dynamic baseline

What a token keeps does not depend on its batch (the importance sums the present rows only and
divides by a constant, or by the text's own length), so the FLOPs
are those of every text alone on its real length with the counts it keeps (`kept_counts`).
"""
import numpy as np
from keras import ops

from common import benchmark, flops
from common.data import real_lengths
from common.inference import compile_forward
from common.training import predict
from ltp.flops import ltp_flops


def kept_counts(model, arrays, batch_size=64):
    """(rows, layers) int: the real tokens each block's feed-forward sub-layer processes."""
    def call(m, features):
        _, state = m.forward(features)
        return ops.stack(state.records["lengths"], axis=1)

    return np.rint(predict(model, arrays, batch_size, call=call)).astype(int)


def dev_flops(model, arrays, batch_size=64):
    """(vanilla FLOPs, LTP FLOPs, mean tokens kept per layer) over the rows of `arrays`, each
    on its real length."""
    kept = kept_counts(model, arrays, batch_size)
    config, labels = model.config, model.num_labels
    vanilla = method = 0
    for n, row in zip(real_lengths(arrays), kept):
        vanilla += flops.vanilla_flops(config, int(n), labels)
        method += ltp_flops(config, int(n), [int(k) for k in row], labels)
    return vanilla, method, [round(float(v), 2) for v in kept.mean(axis=0)]


def vanilla_call(model):
    """features -> logits of the same backbone and head without pruning."""
    return lambda features: model.classify(model.bert.encode(features), training=False)


def sides(model, arrays, batch_size):
    """The dense baselines and LTP's side at `batch_size` (see the module docstring)."""
    config, labels = model.config, model.num_labels
    vanilla_fn = lambda n: flops.vanilla_flops(config, n, labels)  # noqa: E731
    result = benchmark.dense_sides(vanilla_call(model), arrays, batch_size, vanilla_fn)
    _, method, _ = dev_flops(model, arrays)
    run = benchmark.blocking(compile_forward(model))
    if batch_size == 1:
        return result + [benchmark.Side("ltp-unpadded", run, benchmark.unpadded_examples(arrays),
                                        flops=method)]
    batches, order = benchmark.dynamic_batches(arrays, batch_size)
    return result + [benchmark.Side("ltp-dynamic", run, batches, flops=method, order=order)]
