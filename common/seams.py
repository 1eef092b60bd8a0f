"""The state that flows through the encoder loop and the seam objects that methods fill.

The loop (`BertBackbone.run_layers`, written once in `common.modeling`) runs, for each layer:

    state = seam.before_block(state, layer, training)          # AdapLeR
    hidden, probs = block.attention(state.hidden, state.bias)
    state = seam.between(state, probs, layer, training)        # PoWER-BERT
    hidden = block.feed_forward(state.hidden)
    state = seam.after_block(state, layer, training)           # PABEE

A method is a `Seam` that overrides the hooks it needs. A seam that owns layers or variables
(Soft-Extract's retention parameters, contribution predictors, internal classifiers) is a
`SeamLayer`, so the model holding it tracks and saves them; its hooks are plain methods, not
`call`, so they add no name scope and its sub-layers keep the keys `<sub-layer name>/...` they
would have as attributes of the model. Seams compose: `Composite(first, second)` runs both at
every hook, in order.

A seam object is fixed when the model is built; what changes from call to call (AdapLeR's mode
and thresholds) travels in `EncoderState.options`, which the seam reads, so the seam stays
composable. The loop always runs every layer it is given: no seam stops it. Early exit (PABEE)
is a loop of its own around `BertBackbone.run_layer` that decides after each layer whether to
run the next, per example (`pabee.patience`).
"""
import dataclasses

import keras
import tensorflow as tf
from keras import ops

MASK_VALUE = -10000.0


def attention_bias(mask, dtype="float32"):
    """(batch, length) mask of 1 (keep) / 0 (drop) -> additive bias (batch, 1, 1, length)."""
    mask = ops.cast(mask, dtype)
    return ops.reshape((1.0 - mask) * MASK_VALUE, (ops.shape(mask)[0], 1, 1, ops.shape(mask)[1]))


@dataclasses.dataclass(frozen=True)
class EncoderState:
    """What one layer hands to the next.

    hidden     (batch, n, d) word-vectors entering the next step
    mask       (batch, n) 1 for a real token still present, 0 for padding (float)
    bias       (batch, 1, 1, n) additive attention bias on the keys (from `mask`, or softened)
    positions  (batch, n) int32 original position of each slot (-1 for a padding slot)
    records    per-layer outputs a seam wants to hand back, name -> list (one entry per layer)
    options    a call's settings for the seams, name -> value (set at the start, carried as is)
    """
    hidden: object
    mask: object
    bias: object
    positions: object
    records: dict = dataclasses.field(default_factory=dict)
    options: dict = dataclasses.field(default_factory=dict)

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)

    def with_mask(self, mask):
        """The same state with a new keep mask and the attention bias recomputed from it."""
        return dataclasses.replace(self, mask=mask, bias=attention_bias(mask, self.hidden.dtype))

    def record(self, name, value):
        self.records.setdefault(name, []).append(value)


def initial_state(hidden, mask):
    """The state after the embeddings: every position present, positions 0..n-1."""
    mask = ops.cast(mask, hidden.dtype)
    batch, length = ops.shape(mask)[0], ops.shape(mask)[1]
    positions = ops.broadcast_to(ops.arange(length, dtype="int32")[None, :], (batch, length))
    return EncoderState(hidden, mask, attention_bias(mask, hidden.dtype), positions)


def compact(state, keep):
    """Move each row's kept tokens to the front (original order) and cut the batch to its
    longest survivor; the mask marks the real tokens, positions are -1 at padding slots."""
    length = tf.shape(keep)[1]
    index = tf.range(length)[None, :]
    order = tf.argsort(tf.where(keep, index, length + index), axis=-1, stable=True)
    order = order[:, :tf.reduce_max(tf.reduce_sum(tf.cast(keep, tf.int32), axis=-1))]
    valid = tf.gather(tf.cast(keep, state.hidden.dtype), order, batch_dims=1)
    positions = tf.where(valid > 0, tf.gather(state.positions, order, batch_dims=1), -1)
    return state.replace(hidden=tf.gather(state.hidden, order, batch_dims=1),
                         positions=positions).with_mask(valid)


class Seam:
    """No-op hooks; a method overrides the ones it fills. `layer` is 0-based."""

    def before_block(self, state, layer, training=False):
        return state

    def between(self, state, probs, layer, training=False):
        return state

    def after_block(self, state, layer, training=False):
        return state


class SeamLayer(keras.layers.Layer, Seam):
    """A seam that owns Keras layers or variables."""


class Composite(SeamLayer):
    """Several seams in one loop: each hook runs the seams in the order given."""

    def __init__(self, *seams, **kwargs):
        super().__init__(**kwargs)
        self.seams = list(seams)

    def before_block(self, state, layer, training=False):
        for seam in self.seams:
            state = seam.before_block(state, layer, training)
        return state

    def between(self, state, probs, layer, training=False):
        for seam in self.seams:
            state = seam.between(state, probs, layer, training)
        return state

    def after_block(self, state, layer, training=False):
        for seam in self.seams:
            state = seam.after_block(state, layer, training)
        return state


class Recorder(Seam):
    """Records each layer's output (`hidden_states`) and attention probabilities
    (`attentions`): the vanilla backbone's optional outputs."""

    def __init__(self, hidden_states=True, attentions=True):
        self.hidden_states, self.attentions = hidden_states, attentions

    def between(self, state, probs, layer, training=False):
        if self.attentions:
            state.record("attentions", probs)
        return state

    def after_block(self, state, layer, training=False):
        if self.hidden_states:
            state.record("hidden_states", state.hidden)
        return state


NO_SEAM = Seam()
