"""The AdapLeR classifier: BertBackbone + a Contribution Predictor before every block.

The seam is before each block (spec §2.5, §2.7):

* soft mode (training and batched evaluation; static shapes, so it compiles): the CP scores the
  tokens, delta = eta_l / n, and S_lambda turns shares below delta into an additive log-mask on
  the attention keys; the retention mask is multiplied by exp(S) (monotone, [CLS] never masked);
* hard mode (`lr_mode=True`): tokens with share below delta are physically dropped (gathered
  away) before the block. With one example this is the original's inference mode (its own short
  path: pads gathered away once, then a softmax, a threshold and a gather per layer). A padded
  batch is also accepted: each row drops its own tokens (pads go first) and the batch is
  compacted to its longest survivor before each block, which gives the same predictions as
  running the rows one by one.

State saved with the weights: eta (one threshold ratio per layer, learned), theta (the [CLS]
weight of the saliency target, learned) and lambda (the sharpness, set by the schedule). The
backbone and head keep the `bert` / `classifier` names, so a fine-tuned SequenceClassifier
checkpoint loads by key; the CPs (`exp_head_*`) and the state (`adapler_*`) may be absent then.
"""
import dataclasses
import warnings

import keras
import tensorflow as tf
from keras import ops

from adapler.predictor import CP_HIDDEN, ContributionPredictor
from adapler.soft_removal import INITIAL_SHARPNESS, soft_removal, threshold
from common.modeling import MASK_VALUE, BertBackbone, attention_bias, dummy_inputs, initializer

INITIAL_ETA = 0.25

# Once every token but [CLS] is dropped, attention runs over one key; Keras warns about that
# softmax on every eager call although it is exactly what should happen.
warnings.filterwarnings("ignore", message="You are using a softmax over axis -1 of a tensor")


def _cls_one_hot(mask):
    """(batch, length) float mask -> 1 at position 0 ([CLS]), 0 elsewhere."""
    return ops.one_hot(ops.zeros_like(mask[:, 0], dtype="int32"), ops.shape(mask)[1],
                       dtype=mask.dtype)


def rescale_cls(shares, factor, cls):
    """Multiply the [CLS] share by max(0.001, factor) and renormalise (spec §2.4); the original's
    THETA_PR is always 1, so this is a numerical no-op whose gradient trains theta."""
    factor = ops.cast(factor, shares.dtype)  # float32 shares; Keras autocasts call arguments
    scaled = shares * (1.0 + cls * (ops.maximum(0.001, factor) - 1.0))
    return scaled / (ops.sum(scaled, axis=-1, keepdims=True) + 1e-15)


def compact(keep, hidden, retention, positions):
    """Move each row's kept tokens to the front (original order) and cut the batch to its
    longest survivor. Returns hidden, retention, valid (1 = real token) and the original
    positions (-1 = pad)."""
    length = tf.shape(keep)[1]
    index = tf.range(length)[None, :]
    order = tf.argsort(tf.where(keep, index, length + index), axis=-1, stable=True)
    order = order[:, :tf.reduce_max(tf.reduce_sum(tf.cast(keep, tf.int32), axis=-1))]
    valid = tf.gather(tf.cast(keep, hidden.dtype), order, batch_dims=1)
    hidden = tf.gather(hidden, order, batch_dims=1)
    retention = tf.gather(retention, order, batch_dims=1) * valid
    positions = tf.where(valid > 0, tf.gather(positions, order, batch_dims=1), -1)
    return hidden, retention, valid, positions


class AdapLeRClassifier(keras.Model):
    """BERT/ALBERT + CPs + pooler + dropout + Dense(num_labels).

    `call(inputs, training, lr_mode, ...)` returns a dict with `logits` and, on request,
    `explanations` (per-layer CP shares), `lengths` (per-layer tokens processed, (batch,)),
    `masks` / `attention_biases` (soft mode), `kept` (hard mode: original positions kept before
    each block, -1 for padding slots) and `hidden_states`.
    """

    optional_checkpoint_keys = ("exp_head_", "adapler_")

    def __init__(self, config, num_labels, classifier_dropout=None, cp_hidden=CP_HIDDEN, **kwargs):
        super().__init__(**kwargs)
        # Spec §2.1: the AdapLeR model has no dropout on the attention probabilities.
        config = dataclasses.replace(config, attention_probs_dropout_prob=0.0)
        self.config = config
        self.num_labels = num_labels
        self.cp_hidden = cp_hidden
        layers = config.num_hidden_layers
        self.bert = BertBackbone(config, name="bert")
        rate = config.hidden_dropout_prob if classifier_dropout is None else classifier_dropout
        self.classifier_dropout = keras.layers.Dropout(rate)
        # float32 under mixed precision: the logits feed the losses.
        self.classifier = keras.layers.Dense(num_labels, kernel_initializer=initializer(config),
                                             dtype="float32", name="classifier")
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

    def build(self, input_shape=None):
        # Build the backbone through its own call so its variables get `bert/...` paths (the
        # loop below calls its sub-layers directly); the other sub-layers build on first use.
        self.bert(dummy_inputs())
        self.built = True

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
        mask = ops.cast(inputs["attention_mask"], "float32")
        hidden = self.bert.embeddings(ops.cast(inputs["input_ids"], "int32"),
                                      ops.cast(inputs["token_type_ids"], "int32"),
                                      training=training)
        return self.encode(hidden, mask, training=training, lr_mode=lr_mode, eta=eta,
                           sharpness=sharpness, cls_scale=cls_scale,
                           output_explanations=output_explanations, output_masks=output_masks,
                           output_hidden_states=output_hidden_states)

    def encode(self, hidden, mask, training=False, lr_mode=False, eta=None, sharpness=None,
               cls_scale=None, output_explanations=False, output_masks=False,
               output_hidden_states=False):
        """Everything after the embeddings (saliencies differentiate with respect to `hidden`)."""
        layers = self.config.num_hidden_layers
        eta = self.eta if eta is None else ops.broadcast_to(ops.cast(eta, "float32"), (layers,))
        if lr_mode:
            outputs = self._hard_layers(hidden, mask, eta, output_explanations)
        else:
            sharpness = self.sharpness if sharpness is None else ops.cast(sharpness, "float32")
            outputs = self._soft_layers(hidden, mask, eta, sharpness, cls_scale, training,
                                        output_masks)
            if not output_explanations:
                del outputs["explanations"]
        if not output_hidden_states:
            del outputs["hidden_states"]
        pooled = self.bert.pool(outputs.pop("sequence_output"))
        outputs["logits"] = self.classifier(self.classifier_dropout(pooled, training=training))
        return outputs

    def _soft_layers(self, hidden, mask, eta, sharpness, cls_scale, training, output_masks):
        cls = _cls_one_hot(mask)
        retention = mask * (1.0 - cls)
        bias = attention_bias(mask)
        length = ops.sum(retention, axis=-1) + 1.0
        outputs = {"explanations": [], "lengths": [], "hidden_states": [hidden]}
        masks, biases = [], []
        for index, (block, predictor) in enumerate(zip(self.bert.blocks, self.predictors)):
            shares = predictor(hidden, retention)
            outputs["explanations"].append(shares)
            if cls_scale is not None and index > 0:
                shares = rescale_cls(shares, cls_scale[index - 1], cls)
            removal = soft_removal(shares, threshold(eta[index], length)[:, None],
                                   sharpness) * retention
            retention = ops.where(retention > 1e-6, retention * ops.exp(removal), retention)
            bias = ops.maximum(MASK_VALUE, bias + removal[:, None, None, :])
            length = ops.sum(retention, axis=-1) + 1.0
            outputs["lengths"].append(length)
            masks.append(retention)
            biases.append(bias[:, 0, 0, :])
            hidden, _ = block(hidden, bias, training=training)
            outputs["hidden_states"].append(hidden)
        if output_masks:
            outputs["masks"], outputs["attention_biases"] = masks, biases
        outputs["sequence_output"] = hidden
        return outputs

    def _hard_layers(self, hidden, mask, eta, output_explanations):
        if mask.shape[0] == 1:
            return self._single_layers(hidden, mask, eta, output_explanations)
        batch, length = ops.shape(mask)[0], ops.shape(mask)[1]
        valid = mask
        cls = _cls_one_hot(mask)
        retention = mask * (1.0 - cls)
        positions = ops.broadcast_to(ops.arange(length)[None, :], (batch, length))
        outputs = {"lengths": [], "kept": [], "hidden_states": [hidden]}
        explanations = []
        for index, (block, predictor) in enumerate(zip(self.bert.blocks, self.predictors)):
            shares = predictor(hidden, retention)
            explanations.append(shares)
            delta = threshold(eta[index], ops.sum(retention, axis=-1) + 1.0)[:, None]
            # Spec §2.7: keep when 1 - (1 - p) * m >= delta, which keeps [CLS] (m = 0) for any
            # eta <= 1 (kept here whatever eta); pads go, which the original got wrong.
            keep = ops.logical_and(valid > 0, ops.logical_or(
                1.0 - (1.0 - shares) * retention >= delta, cls > 0))
            hidden, retention, valid, positions = compact(keep, hidden, retention, positions)
            cls = cls[:, :ops.shape(hidden)[1]]
            outputs["lengths"].append(ops.sum(valid, axis=-1))
            outputs["kept"].append(positions)
            hidden, _ = block(hidden, attention_bias(valid), training=False)
            outputs["hidden_states"].append(hidden)
        if output_explanations:
            outputs["explanations"] = explanations
        outputs["sequence_output"] = hidden
        return outputs

    def _single_layers(self, hidden, mask, eta, output_explanations):
        """`_hard_layers` for one example, with the fewest graph ops (at batch size 1 a small
        model's latency is mostly per-op cost). Pads are gathered away first; from then on
        every token is present, so the CP shares are a plain softmax, the retention mask is 1
        everywhere but [CLS] and the attention bias is 0."""
        positions = tf.cast(tf.where(mask[0] > 0)[:, 0], "int32")  # int32 as in `compact`
        hidden = tf.gather(hidden, positions, axis=1)
        positions = positions[None, :]
        no_bias = ops.zeros((1, 1, 1, 1))
        outputs = {"lengths": [], "kept": [], "hidden_states": [hidden]}
        explanations = []
        for index, (block, predictor) in enumerate(zip(self.bert.blocks, self.predictors)):
            shares = ops.softmax(predictor.logits(hidden), axis=-1)
            explanations.append(shares)
            delta = threshold(eta[index], ops.cast(ops.shape(hidden)[1], "float32"))
            keep = tf.concat([[True], shares[0, 1:] >= delta], axis=0)  # [CLS] always stays
            order = tf.where(keep)[:, 0]
            hidden = tf.gather(hidden, order, axis=1)
            positions = tf.gather(positions, order, axis=1)
            outputs["lengths"].append(ops.cast(ops.shape(order)[:1], "float32"))
            outputs["kept"].append(positions)
            hidden, _ = block(hidden, no_bias, training=False)
            outputs["hidden_states"].append(hidden)
        if output_explanations:
            outputs["explanations"] = explanations
        outputs["sequence_output"] = hidden
        return outputs
