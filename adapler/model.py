"""AdapLeR as seam code: a Contribution Predictor before every block (the original's TFBertEncoder).

`AdapLeR` is the seam layer: it owns the CPs (`exp_head_<l>`), eta, theta and lambda, and fills
`before_block` of the one encoder loop (`BertBackbone.run_layers`). It is the model's one seam;
a call chooses the mode and its eta / lambda by putting a `Removal` into the state
(`AdapLeR.with_removal`, `state.options`), so AdapLeR composes with other seams
(`common.seams.Composite`). The three modes run the same CPs:

* `soft_removal_step` (training and batched evaluation; static shapes, so it compiles): the CP
  scores the tokens, delta = eta_l / n, and S_lambda turns shares below delta into an additive
  log-mask on the attention keys (`state.bias`); the retention is multiplied by exp(S)
  (`adapler.soft_removal.remove_softly`: monotone, [CLS] never masked). `state.mask` holds the
  soft keep factor of each token (1 at [CLS], 0 at pads).
* `hard_removal_step` (`lr_mode` on a padded batch): tokens with share below delta are physically
  dropped before the block. Each row drops its own tokens (pads go first) and the batch is
  compacted to its longest survivor, which gives the same predictions as running the rows one
  by one.
* `single_removal_step` (`lr_mode` on one example, the original's inference mode): the same removal
  with the fewest graph ops, since at batch size 1 a small model's latency is mostly per-op
  cost. Pads are gathered away before the first layer; from then on every token is present, so
  the CP shares are a plain softmax, the attention bias is one (1, 1, 1, 1) zero and a layer's
  removal is a threshold and a gather.

Each records, one entry per layer, in `state.records`: `explanations` (CP shares, before the
removal), `lengths` ((batch,) tokens the block processes, [CLS] included; soft: the summed keep
factors), `predictor_inputs` (the hidden states the CP reads) and, in soft mode, `masks`
(retention after the removal, 0 at [CLS]) and `attention_biases` ((batch, 1, 1, n) key bias), in
hard mode `kept` (original positions the block processes, -1 for padding slots).

State saved with the weights: eta (one threshold ratio per layer, learned), theta (the [CLS]
weight of the saliency target, learned) and lambda (the sharpness, set by the schedule). The
backbone and head keep the `bert` / `classifier` names, so a fine-tuned SequenceClassifier
checkpoint loads by key; the CPs (`exp_head_*`) and the state (`adapler_*`) may be absent then.
"""
import dataclasses
import warnings

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from adapler.predictor import CP_HIDDEN, ContributionPredictor
from adapler.soft_removal import INITIAL_SHARPNESS, remove_softly, threshold
from common.checkpoints import check_max_length, load_weights, resolve_source
from common.errors import UserError
from common.modeling import MASK_VALUE, SeamClassifier, dummy_inputs
from common.seams import SeamLayer, compact

INITIAL_ETA = 0.25

# Once every token but [CLS] is dropped, attention runs over one key; Keras warns about that
# softmax on every eager call although it is exactly what should happen.
warnings.filterwarnings("ignore", message="You are using a softmax over axis -1 of a tensor")


def _cls_one_hot(mask):
    """(batch, length) float mask -> 1 at position 0 ([CLS]), 0 elsewhere."""
    return ops.one_hot(ops.zeros_like(mask[:, 0], dtype="int32"), ops.shape(mask)[1],
                       dtype=mask.dtype)


def rescale_cls(shares, factor, cls):
    """Multiply the [CLS] share by max(0.001, factor) and renormalise; the original's
    THETA_PR is always 1, so this is a numerical no-op whose gradient trains theta."""
    factor = ops.cast(factor, shares.dtype)  # float32 shares; Keras autocasts call arguments
    scaled = shares * (1.0 + cls * (ops.maximum(0.001, factor) - 1.0))
    return scaled / (ops.sum(scaled, axis=-1, keepdims=True) + 1e-15)


@dataclasses.dataclass(frozen=True)
class Removal:
    """A call's removal settings, carried to the seam in `state.options[OPTION]`: `mode` 'soft',
    'hard' or 'single', `eta` (L,), and for soft mode `sharpness` (lambda) and `cls_scale`
    (L - 1,), the original's THETA_PR, given only to train theta."""
    mode: str
    eta: object
    sharpness: object = None
    cls_scale: object = None


OPTION = "adapler"  # the `EncoderState.options` key of a call's `Removal`


def soft_removal_step(predictors, removal, state, layer):
    """Soft removal into the attention bias and the retention mask (training, batched
    evaluation)."""
    state.record("predictor_inputs", state.hidden)
    shares = predictors[layer](state.hidden, state.mask)
    state.record("explanations", shares)
    # The soft removal computes in float32 under mixed precision (so do the shares).
    mask = ops.cast(state.mask, "float32")
    cls = _cls_one_hot(mask)
    retention = mask * (1.0 - cls)
    if removal.cls_scale is not None and layer > 0:
        shares = rescale_cls(shares, removal.cls_scale[layer - 1], cls)
    removal_log, retention = remove_softly(shares, retention, removal.eta[layer],
                                           removal.sharpness)
    bias = ops.maximum(MASK_VALUE,
                       ops.cast(state.bias, "float32") + removal_log[:, None, None, :])
    state.record("lengths", ops.sum(retention, axis=-1) + 1.0)
    state.record("masks", retention)
    state.record("attention_biases", bias)
    return state.replace(mask=retention + cls, bias=bias)


def hard_removal_step(predictors, removal, state, layer):
    """Physical removal on a padded batch, compacted to its longest survivor per block."""
    state.record("predictor_inputs", state.hidden)
    shares = predictors[layer](state.hidden, state.mask)
    state.record("explanations", shares)
    # The keep rule compares in float32 (under mixed precision the compacted mask follows
    # the hidden states' dtype).
    mask = ops.cast(state.mask, "float32")
    shares = ops.cast(shares, "float32")
    cls = _cls_one_hot(mask)
    retention = mask * (1.0 - cls)
    delta = threshold(removal.eta[layer], ops.sum(retention, axis=-1) + 1.0)[:, None]
    # The original's rule: keep when 1 - (1 - p) * m >= delta, which keeps [CLS] (m = 0) for
    # any eta <= 1 (kept here whatever eta); pads go, which the original got wrong.
    keep = ops.logical_and(mask > 0, ops.logical_or(
        1.0 - (1.0 - shares) * retention >= delta, cls > 0))
    state = compact(state, keep)
    state.record("lengths", ops.sum(state.mask, axis=-1))
    state.record("kept", state.positions)
    return state


def single_removal_step(predictors, removal, state, layer):
    """`hard_removal_step` for one example with the fewest graph ops (module docstring)."""
    if layer == 0:
        present = tf.where(state.mask[0] > 0)[:, 0]
        state = state.replace(hidden=tf.gather(state.hidden, present, axis=1),
                              mask=tf.gather(state.mask, present, axis=1),
                              positions=tf.gather(state.positions, present, axis=1),
                              bias=ops.zeros((1, 1, 1, 1), state.hidden.dtype))
    state.record("predictor_inputs", state.hidden)
    shares = ops.softmax(ops.cast(predictors[layer].logits(state.hidden), "float32"), axis=-1)
    state.record("explanations", shares)
    delta = threshold(removal.eta[layer], ops.sum(ops.cast(state.mask, "float32"), axis=-1))
    keep = tf.concat([[True], shares[0, 1:] >= delta], axis=0)  # [CLS] always stays
    order = tf.where(keep)[:, 0]
    state = state.replace(hidden=tf.gather(state.hidden, order, axis=1),
                          mask=tf.gather(state.mask, order, axis=1),
                          positions=tf.gather(state.positions, order, axis=1))
    state.record("lengths", ops.sum(state.mask, axis=-1))
    state.record("kept", state.positions)
    return state


MODES = {"soft": soft_removal_step, "hard": hard_removal_step, "single": single_removal_step}


class AdapLeR(SeamLayer):
    """The CPs and the AdapLeR state; the seam that fills `before_block`. The mode and the
    call's overrides come with the state (`state.options[OPTION]`, a `Removal` made by
    `removal`), so the seam stays one object and composes with others; without them it is soft
    removal with the stored eta and lambda."""

    def __init__(self, config, cp_hidden=CP_HIDDEN, **kwargs):
        super().__init__(**kwargs)
        layers = config.num_hidden_layers
        self.num_layers, self.cp_hidden = layers, cp_hidden
        self.predictors = [ContributionPredictor(config, cp_hidden, name=f"exp_head_{index + 1}")
                           for index in range(layers)]
        # eta and theta are trained by their own optimizer (never by the main one). Not
        # autocast: the soft removal computes in float32 under mixed precision.
        self.eta = self.add_weight(shape=(layers,), name="adapler_eta", autocast=False,
                                   initializer=keras.initializers.Constant(INITIAL_ETA))
        self.theta = self.add_weight(shape=(layers - 1,), name="adapler_theta",
                                     initializer="ones", autocast=False)
        self.sharpness = self.add_weight(shape=(), name="adapler_lambda", trainable=False,
                                         autocast=False,
                                         initializer=keras.initializers.Constant(INITIAL_SHARPNESS))

    def removal(self, mode="soft", eta=None, sharpness=None, cls_scale=None):
        """A call's `Removal`: the stored eta and lambda, or overrides (eta: a scalar or one
        value per layer)."""
        if mode not in MODES:
            raise ValueError(f"AdapLeR mode must be one of {sorted(MODES)}, got {mode!r}")
        if eta is not None:
            eta = ops.broadcast_to(ops.cast(eta, "float32"), (self.num_layers,))
        sharpness = self.sharpness if sharpness is None else ops.cast(sharpness, "float32")
        return Removal(mode, self.eta if eta is None else eta, sharpness, cls_scale)

    def with_removal(self, state, mode="soft", eta=None, sharpness=None, cls_scale=None):
        """`state` carrying a call's removal settings (see `removal`) to this seam."""
        removal = self.removal(mode, eta, sharpness, cls_scale)
        return state.replace(options={**state.options, OPTION: removal})

    def before_block(self, state, layer, training=False):
        removal = state.options.get(OPTION) or self.removal()
        return MODES[removal.mode](self.predictors, removal, state, layer)


class AdapLeRClassifier(SeamClassifier):
    """BERT/ALBERT + the `AdapLeR` seam + pooler + `ClassificationHead`.

    `call(inputs, training, lr_mode, ...)` returns a dict with `logits` and `lengths` (per
    layer, tokens processed, (batch,)) and, on request, `explanations` (per-layer CP shares),
    `masks` / `attention_biases` (soft mode, the bias as (batch, n)), `hidden_states` (each CP's
    input, then the last block's output); in hard mode always `kept` (original positions kept
    before each block, -1 for padding slots). All of them come from the state's records.
    """

    optional_checkpoint_keys = ("exp_head_", "adapler_")

    def __init__(self, config, num_labels, classifier_dropout=None, cp_hidden=CP_HIDDEN, **kwargs):
        # As in the original: the AdapLeR model has no dropout on the attention probabilities.
        config = dataclasses.replace(config, attention_probs_dropout_prob=0.0)
        # The seam is made after the backbone and head so that a seeded random model draws the
        # same initial weights as before AdapLeR was a seam (tools/benchmark_adapler.py).
        super().__init__(config, num_labels, classifier_dropout,
                         make_seam=lambda c: AdapLeR(c, cp_hidden, name="adapler"), **kwargs)

    @property
    def predictors(self):
        return self.seam.predictors

    @property
    def eta(self):
        return self.seam.eta

    @property
    def theta(self):
        return self.seam.theta

    @property
    def sharpness(self):
        return self.seam.sharpness

    @property
    def cp_hidden(self):
        return self.seam.cp_hidden

    @property
    def state_variables(self):
        """eta and theta: the variables of the second (length) objective."""
        return [self.eta, self.theta]

    @property
    def main_variables(self):
        """BERT, pooler, classifier and CPs: the variables of the main objective."""
        state = {id(v) for v in self.state_variables}
        return [v for v in self.trainable_variables if id(v) not in state]

    def call(self, inputs, training=False, lr_mode=False, eta=None, sharpness=None,
             cls_scale=None, output_explanations=False, output_masks=False,
             output_hidden_states=False):
        """`eta` / `sharpness` override the stored values (e.g. 1e-10 / 1e20: remove nothing);
        `cls_scale` (num_layers - 1,) is the original's THETA_PR, given only to train theta."""
        return self.run(self.bert.start(inputs, training), training, lr_mode, eta, sharpness,
                        cls_scale, output_explanations, output_masks, output_hidden_states)

    def run(self, state, training=False, lr_mode=False, eta=None, sharpness=None,
            cls_scale=None, output_explanations=False, output_masks=False,
            output_hidden_states=False):
        """`call` from the state after the embeddings (saliencies differentiate with respect to
        its hidden)."""
        mode = "soft" if not lr_mode else "single" if state.mask.shape[0] == 1 else "hard"
        state = self.bert.run_layers(
            self.seam.with_removal(state, mode, eta, sharpness, cls_scale), self.seam, training)
        records = state.records
        outputs = {"logits": self.classifier(self.bert.pool(state.hidden), training=training),
                   "lengths": records["lengths"]}
        if lr_mode:
            outputs["kept"] = records["kept"]
        elif output_masks:
            outputs["masks"] = records["masks"]
            outputs["attention_biases"] = [bias[:, 0, 0, :]
                                           for bias in records["attention_biases"]]
        if output_explanations:
            outputs["explanations"] = records["explanations"]
        if output_hidden_states:
            outputs["hidden_states"] = records["predictor_inputs"] + [state.hidden]
        return outputs


# ---------------------------------------------------------------- the method contract

def build_model(config, num_labels, max_length):
    """An AdapLeR classifier of `config`, built (its variables exist), no weights loaded."""
    check_max_length(config, max_length, fix="pass a smaller --MAX_LENGTH")
    model = AdapLeRClassifier(config, num_labels)
    model(dummy_inputs())
    return model


def load_checkpoint_into(model, folder, require_adapler=False):
    """Fill `model` from one of our checkpoints; AdapLeR state may be absent unless required."""
    source = resolve_source(folder)  # the complete set (an interrupted save: the previous one)
    sidecar = source.sidecar
    if require_adapler and sidecar.get("method") != "adapler":
        raise UserError(f"{folder} is not an AdapLeR checkpoint (method "
                        f"{sidecar.get('method', 'unknown')}); drop --LR_MODEL to evaluate a "
                        "fine-tuned BERT")
    if sidecar.get("num_labels", model.num_labels) != model.num_labels:
        raise UserError(f"{folder} has {sidecar['num_labels']} labels but the task has "
                        f"{model.num_labels}; pass the checkpoint of this task")
    optional = () if require_adapler else model.optional_checkpoint_keys
    load_weights(model, source.path, optional=optional)
    return sidecar


def load_model(source, eta_offset=0.0):
    """The inference model of an AdapLeR checkpoint (`common.checkpoints.Source`), eta shifted
    by `eta_offset`; call it with `lr_mode=True` to remove tokens physically."""
    model = build_model(source.config, source.sidecar["num_labels"], source.sidecar["max_length"])
    load_checkpoint_into(model, source.folder, require_adapler=True)
    if eta_offset:
        model.eta.assign(np.maximum(model.eta.numpy() + eta_offset, 0.0).astype(np.float32))
    return model
