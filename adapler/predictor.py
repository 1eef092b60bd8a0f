"""The Contribution Predictor (CP) run before each block (the original's `TFbertLRExpHead`).

Per token: Dense(hidden -> 32) -> the config's GELU -> Dense(32 -> 1) gives a logit z_j. The
layer's predicted contribution is a softmax of z restricted to the tokens still present:

    p_j = softmax(z)_j * u_j / (sum_k softmax(z)_k * u_k + 1e-15),   u = retention mask, u_0 = 1

so [CLS] always takes part, pads and removed tokens get exactly 0, and in soft mode a partly
removed token takes part with its soft weight. The encoder state's mask is exactly u (its keep
factor, 1 at [CLS]), so the CP reads it as it is.
"""
import keras
from keras import ops

from adapler.flops import CP_HIDDEN
from common.modeling import activation_fn, initializer, to_rows


class ContributionPredictor(keras.layers.Layer):
    """One layer's CP: `call(hidden_states, present)` -> shares p (batch, length)."""

    def __init__(self, config, hidden=CP_HIDDEN, **kwargs):
        super().__init__(**kwargs)
        self.pre = keras.layers.Dense(hidden, activation=activation_fn(config.hidden_act),
                                      kernel_initializer=initializer(config), name="exp_head_pre")
        self.out = keras.layers.Dense(1, kernel_initializer=initializer(config), name="exp_head")

    def logits(self, hidden_states):
        # On 2-D rows each Dense is one fused matmul; on 3-D inputs Keras adds a dozen shape ops
        # per Dense, which cost more than the matmuls at lr_mode's batch size 1.
        rows = self.out(self.pre(to_rows(hidden_states)))
        return ops.reshape(rows, ops.shape(hidden_states)[:2])

    def call(self, hidden_states, present):
        """`present` (batch, length): u, the (soft) mask of the tokens still present, 1 at [CLS]
        and 0 at pads."""
        # Softmax and shares in float32 under mixed precision: they feed the soft removal.
        logits = ops.cast(self.logits(hidden_states), "float32")
        weights = ops.softmax(logits, axis=-1) * ops.cast(present, "float32")
        return weights / (ops.sum(weights, axis=-1, keepdims=True) + 1e-15)
