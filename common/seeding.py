"""One seed for a whole run, set before anything random is created.

`set_seed(seed)` seeds Python's `random`, NumPy's global generator, TensorFlow's global seed and
Keras' global SeedGenerator (`keras.utils.set_random_seed`). It must run before the model is
built: Keras draws a layer's initializer seed and each Dropout layer's SeedGenerator state from
Python's `random` when the layer is created, so a model built first gets fresh dropout masks and
head weights on every run whatever seed is set afterwards. With that order, the same command and
seed on the same machine gives bit-identical weights and metrics on CPU (tests/
test_reproducibility.py); in bf16 only with one inter-op thread, which one-device training
sets (common.distribute; docs/reliability.md, "Reproducible runs"). TensorFlow's op-determinism switch is
not needed for that and stays off: it picks other kernels (results move by float rounding, up
to 6e-8 on a tiny run) for no gain.
"""
import keras

from common.errors import UserError

MAX_SEED = 2**32 - 1  # what NumPy's legacy seeding accepts


def set_seed(seed):
    """Seed Python, NumPy, TensorFlow and Keras (initializers, dropout) in one call."""
    seed = int(seed)
    if not 0 <= seed <= MAX_SEED:
        raise UserError(f"seed {seed} is out of range; use an integer from 0 to {MAX_SEED}")
    keras.utils.set_random_seed(seed)
