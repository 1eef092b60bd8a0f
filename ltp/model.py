"""LTP as seam code: `LtpSeam` fills the shared encoder loop's `between` seam (after a block's
attention sub-layer, before its feed-forward sub-layer, where the original's pruner sits) and, in
the soft stage, `after_block`; `LtpClassifier` is the shared `SeamClassifier` with that seam.

Kim et al. 2022 (KDD; code kssteven418/LTP, `prune_modules.py: AbsoluteThresholdTokenPruner`):

    importance  s_l(i) = 1/(H n) sum_h sum_j A_l[h, j, i]     (section 3.1, Eq. 2): the attention
                token i receives in layer l, summed over the present query rows j, averaged over
                the H heads and n positions
    hard        keep i when s_l(i) >= max(1e-5, theta_l); the others leave for good
    soft        m_l(i) = sigmoid((s_l(i) - theta_l) / T) scales the block's output (section 3.2,
                Eq. 4); the regularizer lambda sum_l mean_i m_l(i) (Eq. 5) pushes theta up

theta_l starts at `final_token_threshold * l / L` (0-based l, the original's rising start) and is
learned in the soft stage; a layer whose starting threshold is 0 (the first) never prunes: in the
original its threshold is 0, the pruner returns before it builds a mask, and so the threshold
never gets a gradient either.

n (`score_length`) is 128 by default: the original pads every text to 128 and divides by that
width, and its thresholds and temperatures (0.01, 1e-3) are on that scale; a constant also keeps
a token's fate independent of its batch under dynamic padding. `score_length=0` divides by each
text's own length instead. The regularizer's mean runs over the same n positions per text.

Where this differs from the original code, on purpose (docs/ltp.md):
* [CLS] is never pruned: the head reads it. The original may mask [CLS] as a key while its row
  goes on being computed; here pruned tokens are removed physically, so [CLS] has to stay.

A call's mode travels in `state.options[OPTION]` (`Pruning`): `soft` (the soft stage's
training), `mask` (hard thresholds as an attention mask: static shapes, the hard stage's
training) or `remove` (hard thresholds, pruned tokens gathered away and each batch compacted to
its longest survivor: inference). `mask` and `remove` give the same logits. Records per layer:
`lengths` ((batch,) real tokens the block's feed-forward sub-layer processes), in soft mode
`soft_masks` (None for a layer that does not prune), with `remove` `positions` (original
positions kept, -1 at padding slots).
"""
import dataclasses
import warnings

import keras
import numpy as np
from keras import ops

from common.checkpoints import check_max_length, load_weights
from common.errors import UserError
from common.modeling import SeamClassifier, dummy_inputs
from common.seams import SeamLayer, compact

OPTION = "ltp"
MIN_THRESHOLD = 1e-5  # the original's floor under a hard threshold
SCORE_LENGTH = 128  # the original's padded width, the n of Eq. 2 there
THRESHOLD_PREFIX = "ltp_"

# Once every token but [CLS] is pruned, attention runs over one key; Keras warns about that
# softmax on every eager call although it is exactly what should happen.
warnings.filterwarnings("ignore", message="You are using a softmax over axis -1 of a tensor")


@dataclasses.dataclass(frozen=True)
class Pruning:
    """A call's settings: `mode` ('soft', 'mask' or 'remove'), the sigmoid's `temperature` (soft
    mode) and `scale`, a factor on every learned threshold (an inference knob; 1: as learned)."""
    mode: str = "remove"
    temperature: float = 1e-3
    scale: float = 1.0


MODES = ("soft", "mask", "remove")


def importance(probs, query_mask, length):
    """Attention probabilities (batch, heads, queries, keys), the present query rows (batch,
    queries) and the divisor n (batch,) -> s (batch, keys): Eq. 2, in float32."""
    probs = ops.cast(probs, "float32")
    received = ops.einsum("bhqk,bq->bk", probs, ops.cast(query_mask, "float32"))
    heads = ops.cast(ops.shape(probs)[1], "float32")
    return received / (heads * ops.cast(length, "float32")[:, None])


class LtpSeam(SeamLayer):
    """The per-layer thresholds and the pruning itself (module docstring). The learned threshold
    of layer l is `threshold_base[l] + threshold[l]` (the original's `keep_threshold_base` +
    `keep_threshold`, the offset initialised at 0, so a weight decay pulls it back to the
    base)."""

    def __init__(self, num_layers, final_token_threshold=0.01, score_length=SCORE_LENGTH,
                 **kwargs):
        super().__init__(autocast=False, **kwargs)
        self.num_layers, self.score_length = num_layers, int(score_length)
        base = np.array([final_token_threshold * layer / num_layers
                         for layer in range(num_layers)], dtype=np.float32)
        self.prunes = [bool(value > 0) for value in base]
        # Not autocast: the importance and the thresholds compare in float32 under mixed
        # precision.
        self.threshold_base = self.add_weight(
            shape=(num_layers,), name=f"{THRESHOLD_PREFIX}threshold_base", trainable=False,
            initializer=keras.initializers.Constant(base), autocast=False)
        self.threshold = self.add_weight(shape=(num_layers,), name=f"{THRESHOLD_PREFIX}threshold",
                                         initializer="zeros", autocast=False)

    def thresholds(self):
        """The effective thresholds theta_l (L,), as numbers."""
        return [float(v) for v in ops.convert_to_numpy(self.threshold_base + self.threshold)]

    def with_pruning(self, state, pruning):
        return state.replace(options={**state.options, OPTION: pruning})

    def between(self, state, probs, layer, training=False):
        pruning = state.options.get(OPTION) or Pruning()
        if layer == 0:
            length = ops.sum(ops.cast(state.mask, "float32"), axis=-1)
            if self.score_length:
                length = ops.full_like(length, float(self.score_length))
            state.record("score_length", length)
        if not self.prunes[layer]:
            if pruning.mode == "soft":
                state.record("soft_masks", None)
            state.record("lengths", ops.sum(ops.cast(state.mask, "float32"), axis=-1))
            return state
        scores = importance(probs, state.mask, state.records["score_length"][0])
        theta = (self.threshold_base[layer] + self.threshold[layer]) * pruning.scale
        mask = ops.cast(state.mask, "float32")
        cls = ops.cast(ops.equal(state.positions, 0), "float32")
        if pruning.mode == "soft":
            soft = ops.sigmoid((scores - theta) / pruning.temperature)
            soft = ops.maximum(soft, cls) * mask
            state.record("soft_masks", soft)
            state.record("lengths", ops.sum(mask, axis=-1))
            return state
        keep = ops.logical_and(mask > 0, ops.logical_or(
            scores >= ops.maximum(MIN_THRESHOLD, theta), cls > 0))
        if pruning.mode == "mask":
            state = state.with_mask(ops.cast(keep, state.mask.dtype))
        else:
            state = compact(state, keep)
            state.record("positions", state.positions)
        state.record("lengths", ops.sum(ops.cast(state.mask, "float32"), axis=-1))
        return state

    def after_block(self, state, layer, training=False):
        pruning = state.options.get(OPTION) or Pruning()
        if pruning.mode != "soft" or not self.prunes[layer]:
            return state
        soft = state.records["soft_masks"][-1]
        return state.replace(hidden=state.hidden * ops.cast(soft, state.hidden.dtype)[:, :, None])

    def regularizer(self, state):
        """Eq. 5's sum over the pruning layers of the soft mask's mean over the batch's
        positions (n per text: `score_length`, or the text's length)."""
        tokens = ops.sum(state.records["score_length"][0])
        means = [ops.sum(soft) / tokens for soft in state.records["soft_masks"]
                 if soft is not None]
        return ops.sum(ops.stack(means)) if means else ops.zeros(())


class LtpClassifier(SeamClassifier):
    """Backbone + `LtpSeam` + pooler + head. `forward(inputs, training, pruning)` returns
    (logits, final state); `call` the logits, pruning hard (`remove`) unless told otherwise."""

    optional_checkpoint_keys = (THRESHOLD_PREFIX,)

    def __init__(self, config, num_labels, final_token_threshold=0.01, score_length=SCORE_LENGTH,
                 classifier_dropout=None, **kwargs):
        kwargs.setdefault("name", "ltp")
        super().__init__(config, num_labels, classifier_dropout, make_seam=lambda c: LtpSeam(
            c.num_hidden_layers, final_token_threshold, score_length, name="ltp_seam"),
            **kwargs)
        self.default_pruning = Pruning()

    def forward(self, inputs, training=False, pruning=None):
        state = self.bert.start(inputs, training)
        state = self.seam.with_pruning(state, pruning or self.default_pruning)
        state = self.bert.run_layers(state, self.seam, training)
        return self.classify(state, training), state

    def call(self, inputs, training=False, pruning=None):
        return self.forward(inputs, training, pruning)[0]

    @property
    def threshold_variables(self):
        return [self.seam.threshold]

    @property
    def main_variables(self):
        return [v for v in self.trainable_variables if v is not self.seam.threshold]

    def thresholds(self):
        return self.seam.thresholds()


# ---------------------------------------------------------------- the method contract

def build_model(config, num_labels, max_length, final_token_threshold=0.01,
                score_length=SCORE_LENGTH):
    """An LtpClassifier of `config`, built (its variables exist), no weights loaded."""
    check_max_length(config, max_length, fix="pass a smaller --max_seq_length")
    model = LtpClassifier(config, num_labels, final_token_threshold, score_length)
    model(dummy_inputs())
    return model


def load_model(source, threshold_scale=1.0):
    """The inference model of an LTP checkpoint (`common.checkpoints.Source`); its calls prune
    physically, thresholds multiplied by `threshold_scale`."""
    if source.sidecar.get("method") != "ltp":
        raise UserError(f"{source.folder} is not an LTP checkpoint")
    if not float(threshold_scale) > 0:
        raise UserError(f"threshold_scale must be > 0, got {threshold_scale}")
    sidecar, state = source.sidecar, source.sidecar.get("method_state", {})
    model = build_model(source.config, sidecar["num_labels"], sidecar["max_length"],
                        state["final_token_threshold"], state.get("score_length", SCORE_LENGTH))
    load_weights(model, source.path)
    model.default_pruning = Pruning(scale=float(threshold_scale))
    return model
