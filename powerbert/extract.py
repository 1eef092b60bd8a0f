"""Soft-Extract (configuration search) and Extract (hard word-vector elimination): the reference's
`Soft_Extract` and `Hard_Extract` (model/model.py).

Both sit after a block's attention sub-layer (its residual + LayerNorm) and before its
feed-forward sub-layer, and both rank the word-vectors by `significance` (ties: lower position
first, as `top_k` does).

* `SoftExtract` multiplies the word-vector of significance rank j by the j-th retention
  parameter r[j] in [0, 1]; nothing is removed. r starts at 1 (the fine-tuned function) and
  carries an L1 penalty `penalty * sum(r)` (penalty = LAMBDA x block index).
* `extract` keeps [CLS] and the k-1 most significant other word-vectors, in their original order,
  and gathers the attention mask with the same positions. On inputs of a fixed length k is a
  Python int fixed per block, so every shape stays static and the model compiles with XLA; a
  batch shorter than k keeps all of its n word-vectors.
"""
import keras
import tensorflow as tf
from keras import ops


class ClipToUnit(keras.constraints.Constraint):
    """Clip a weight into [0, 1] after every optimizer step."""

    def __call__(self, w):
        return ops.clip(w, 0.0, 1.0)


class SoftExtract(keras.layers.Layer):
    """Scale each word-vector by the retention parameter of its significance rank."""

    def __init__(self, length, penalty, **kwargs):
        # No autocast: the significance scores stay float32 under mixed precision, so the
        # ranking is the float32 one (and so are the retention parameters and their L1 loss).
        super().__init__(autocast=False, **kwargs)
        self.length, self.penalty = int(length), float(penalty)

    def build(self, input_shape):
        self.retention = self.add_weight(
            name="retention", shape=(self.length,), initializer="ones",
            regularizer=keras.regularizers.L1(self.penalty), constraint=ClipToUnit())

    def call(self, x, scores):
        if x.shape[1] is not None and x.shape[1] != self.length:
            raise ValueError(f"{self.name} was built for {self.length} word-vectors, got "
                             f"{x.shape[1]}; pad inputs to the task's max length")
        ranks = significance_ranks(scores, self.length)
        return x * ops.cast(ops.expand_dims(ops.take(self.retention, ranks), -1), x.dtype)

    def mass(self):
        """Sum of the retention parameters: the block's soft word-vector budget."""
        return float(ops.sum(self.retention))


def significance_ranks(scores, length):
    """0-based rank of each of the `length` positions by descending score, ties to the lower
    position."""
    _, order = ops.top_k(scores, length)
    return ops.argsort(order, axis=-1)  # the inverse permutation of `order`


def extract_positions(scores, k):
    """The k kept positions per example, ascending: 0 ([CLS], never ranked) and the k-1
    highest-scoring positions among 1..n-1."""
    _, top = ops.top_k(scores[:, 1:], k - 1)
    cls = ops.zeros_like(scores[:, :1], dtype=top.dtype)
    return ops.sort(ops.concatenate([cls, top + 1], axis=1), axis=1)


def extract(x, mask, scores, k):
    """Keep min(k, n) word-vectors: x (batch, n, d), mask (batch, n), scores (batch, n) ->
    x (batch, k, d), mask (batch, k), positions (batch, k) into the incoming sequence.

    With n known (eager, XLA, inputs padded to a fixed length), k >= n keeps every position in
    order (the identity), so no gather is needed then. With n known only at run time (a graph
    traced for any batch length), k may be a scalar tensor too."""
    length = x.shape[1]
    if length is not None and isinstance(k, int):
        if k >= length:
            return x, mask, None
    else:
        k = ops.minimum(k, ops.shape(x)[1])
    positions = extract_positions(scores, k)
    return (tf.gather(x, positions, batch_dims=1), tf.gather(mask, positions, batch_dims=1),
            positions)
