"""The soft-removal function S_lambda and the per-layer removal threshold (the original's
`TFBertEncoder`).

    first(x)  = (lambda / (delta + 1e-30)) * (x - delta) - beta / lambda
    second(x) = (x - 1) * (beta / lambda) / (1 - delta + 1e-7)
    S(x)      = max(-10000, min(0, first(x), second(x)))          beta = 0.1

S is piecewise linear with its kink at x = delta (both pieces equal -beta/lambda there), S(1) = 0.
exp(S) is the multiplicative keep factor of a token; as lambda grows it becomes a hard threshold
(evaluation uses lambda = 1e20: mask exactly 0 below delta, exactly 1 from delta up).
Always computed in float32: 1e20 / delta overflows float16.

`remove_softly` is one layer of the recurrence (the original's `TFBertEncoder`): the encoder's
soft mode (`adapler.model.soft_removal_step`) and the contribution loss's "present" mask
(`adapler.losses`) both run it.
"""
from keras import ops

from common.modeling import MASK_VALUE

BETA = 0.1
INITIAL_SHARPNESS = 1000.0  # lambda of the very first training step
EVAL_SHARPNESS = 1e20  # lambda during every evaluation
NO_REMOVAL_ETA = 1e-10  # eta that removes nothing (saliency extraction, BERT baselines)


def soft_removal(x, delta, sharpness):
    """S_lambda(x; delta) element-wise; `delta` broadcasts against `x`."""
    first = (sharpness / (delta + 1e-30)) * (x - delta) - BETA / sharpness
    second = (x - 1.0) * (BETA / sharpness) / (1.0 - delta + 1e-7)
    return ops.maximum(MASK_VALUE, ops.minimum(0.0, ops.minimum(first, second)))


def threshold(eta, length):
    """delta = eta_l / n: a token is removed when its share is below eta times the uniform share
    1/n, n counting the tokens present before this layer's removal, [CLS] included."""
    return eta / length


def remove_softly(shares, retention, eta, sharpness):
    """One layer of soft removal. `retention` (batch, n): the keep factor of every token but
    [CLS] (0 at [CLS] and at pads), `shares` the layer's CP shares, `eta` the layer's ratio.
    Returns (S, the retention after the layer): S masks the attention keys additively and the
    retention is multiplied by exp(S), so it only falls (a token at 0 stays at 0)."""
    delta = threshold(eta, ops.sum(retention, axis=-1, keepdims=True) + 1.0)
    removal = soft_removal(shares, delta, sharpness) * retention
    return removal, ops.where(retention > 1e-6, retention * ops.exp(removal), retention)
