"""The two objectives of AdapLeR training (the original's `train_phase_1`).

* `contribution_loss`: the CPs imitate the saliency. At layer l the target is the saliency
  restricted to the tokens still (softly) present and renormalised ([CLS] scaled by
  theta_{l-1} for l >= 1); the loss is KL(target || CP share) with Keras' [1e-7, 1] clipping,
  weighted by 0 for examples that have lost every non-[CLS] token, averaged over the batch, and
  summed over layers with weights L, L-1, ..., 1. The "present" mask mu follows its own
  recurrence on the raw CP shares (`adapler.soft_removal.remove_softly`, the encoder's step) and
  is not stopped: the loss also
  reaches earlier CPs and BERT through it.
* `length_loss`: the batch mean of the summed soft token counts processed by each layer.

Main parameters descend CE + GAMMA * contribution loss; eta and theta descend CE + PHI * length.
"""
from keras import ops

from adapler.soft_removal import remove_softly, threshold

EPSILON = 1e-7  # keras.losses.kl_divergence clipping


def kl_divergence(target, prediction):
    target = ops.clip(target, EPSILON, 1.0)
    prediction = ops.clip(prediction, EPSILON, 1.0)
    return ops.sum(target * ops.log(target / prediction), axis=-1)


def js_divergence(target, prediction):
    """Jensen-Shannon divergence (run_glue_w_lr.py's --JS_BASED_RATIO)."""
    middle = (ops.clip(target, EPSILON, 1.0) + ops.clip(prediction, EPSILON, 1.0)) / 2.0
    return 0.5 * kl_divergence(target, middle) + 0.5 * kl_divergence(prediction, middle)


def saliency_targets(saliency, present, theta, index, cls):
    """The layer-`index` target: saliency over the present tokens, [CLS] scaled by theta."""
    target = saliency * present
    target = target / (ops.sum(target, axis=-1, keepdims=True) + 1e-15)
    if index > 0:
        target = target * (1.0 + cls * (theta[index - 1] - 1.0))
        target = target / (ops.sum(target, axis=-1, keepdims=True) + 1e-15)
    return target


def contribution_loss(explanations, saliency, attention_mask, eta, sharpness, theta,
                      divergence=kl_divergence):
    """Returns (weighted sum over layers, list of the per-layer batch-mean divergences)."""
    mask = ops.cast(attention_mask, "float32")
    saliency = ops.cast(saliency, "float32")
    cls = ops.one_hot(ops.zeros_like(mask[:, 0], dtype="int32"), ops.shape(mask)[1],
                      dtype=mask.dtype)
    retention = mask * (1.0 - cls)
    layers = len(explanations)
    total, per_layer = 0.0, []
    for index, shares in enumerate(explanations):
        target = saliency_targets(saliency, retention + cls, theta, index, cls)
        alive = ops.stop_gradient(ops.max(retention, axis=-1))
        layer_loss = ops.mean(alive * divergence(target, shares))
        per_layer.append(layer_loss)
        total = total + (layers - index) * layer_loss
        retention = remove_softly(shares, retention, eta[index], sharpness)[1]
    return total, per_layer


def length_loss(lengths):
    """Batch mean of sum_l n^(l+1): the soft number of tokens each layer processes."""
    return ops.mean(ops.sum(ops.stack(lengths, axis=-1), axis=-1))


def count_drops(explanations, attention_mask, eta, lengths):
    """Logging only: non-[CLS] real tokens whose share is below delta, summed over layers,
    averaged over the batch (the original's "drops")."""
    real = ops.cast(attention_mask, "float32")
    real = real * (1.0 - ops.one_hot(ops.zeros_like(real[:, 0], dtype="int32"),
                                     ops.shape(real)[1], dtype=real.dtype))
    before = [ops.sum(real, axis=-1) + 1.0] + list(lengths[:-1])
    total = 0.0
    for index, (shares, length) in enumerate(zip(explanations, before)):
        below = ops.cast(shares < threshold(eta[index], length)[:, None], "float32")
        total = total + ops.sum(below * real * ops.cast(shares > 0, "float32"), axis=-1)
    return ops.mean(total)
