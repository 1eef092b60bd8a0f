"""The reference's optimizer (`utils/Adam_mult.py`): Adam (Keras-2 formulation, eps 1e-7, no
weight decay, no clipping) on a linear warm-up / linear decay schedule counted from update 1.

    eta(t) = peak * t / W              for t <= W
    eta(t) = peak * (1 - min(t, T)/T)  after,  T = ceil(n_train / batch) * epochs, W = floor(0.1 T)

Stage 2 trains two groups on the same schedule and step count: the BERT weights at peak LR_BERT
and the retention parameters at peak LR_SOFT_EXTRACT (the reference's per-layer multiplier);
`common.training.train` gives each `AdamGroup` its own Adam, and all of them step together.
"""
import dataclasses

import keras
import numpy as np
import tensorflow as tf

from common.training import ParamGroup

WARMUP_PROPORTION = 0.1


class KerasTwoWarmupDecay(keras.optimizers.schedules.LearningRateSchedule):
    """eta(t) above; Keras passes the 0-based update count, so t = step + 1."""

    def __init__(self, peak, total_steps, warmup_steps):
        self.peak, self.total_steps, self.warmup_steps = (
            float(peak), int(total_steps), int(warmup_steps))

    def __call__(self, step):
        t = tf.cast(step, tf.float32) + 1.0
        warmup = self.peak * t / max(self.warmup_steps, 1)
        decay = self.peak * (1.0 - tf.minimum(t, float(self.total_steps)) / self.total_steps)
        return tf.where(t <= self.warmup_steps, warmup, decay)

    def get_config(self):
        return {"peak": self.peak, "total_steps": self.total_steps,
                "warmup_steps": self.warmup_steps}

    def summed(self):
        """sum_t eta(t) over the whole stage: how far Adam can move a parameter at most."""
        return float(np.sum(self(tf.range(self.total_steps))))


@dataclasses.dataclass
class AdamGroup(ParamGroup):
    """A ParamGroup trained by the reference's Adam on the Keras-2 schedule."""
    optimizer: str = "adam"
    epsilon: float = 1e-7

    def build_optimizer(self, total_steps, warmup_steps):
        schedule = KerasTwoWarmupDecay(self.learning_rate, total_steps, warmup_steps)
        return keras.optimizers.Adam(schedule, beta_1=self.beta_1, beta_2=self.beta_2,
                                     epsilon=self.epsilon)


def stage_steps(num_examples, batch_size, epochs):
    """(T, W) of one stage."""
    total = -(-num_examples // batch_size) * epochs
    return total, int(total * WARMUP_PROPORTION)
