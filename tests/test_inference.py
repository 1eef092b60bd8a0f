"""`common.inference`: the compiled forward pass every benchmark side and prediction uses, called
through concrete functions (one shape-generic trace, or one per shape where code needs static
shapes), with the same outputs as the Keras call."""
import numpy as np
import tensorflow as tf

from common.checkpoints import resolve_source
from common.inference import Compiled, compile_forward
from common.modeling import SequenceClassifier, dummy_inputs
from conftest import FIXTURES


def features(batch, length, seed=0):
    ids = np.random.default_rng(seed).integers(5, 30, (batch, length)).astype(np.int32)
    return {"input_ids": ids, "token_type_ids": np.zeros_like(ids),
            "attention_mask": np.ones_like(ids)}


def test_one_generic_trace_serves_every_shape_with_the_keras_outputs():
    model = SequenceClassifier(resolve_source(str(FIXTURES / "tiny_bert")).config, 2)
    model(dummy_inputs(8))
    for jit in (False, True):
        forward = compile_forward(model, jit_compile=jit)
        for batch, length in ((1, 5), (3, 9), (2, 16)):
            inputs = features(batch, length)
            expected = model(inputs, training=False)
            np.testing.assert_allclose(np.asarray(forward(inputs)), np.asarray(expected),
                                       atol=1e-5)
        assert len(forward._concrete) == 1


def test_per_shape_traces_see_static_shapes_and_a_signature_fixes_the_trace():
    widths = []

    def width(x):
        widths.append(x.shape[1])  # a Python int only when the trace is per shape
        return x * 2

    per_shape = Compiled(width, per_shape=True)
    for length in (3, 4, 3):
        assert per_shape(np.ones((2, length), np.float32)).shape == (2, length)
    assert widths == [3, 4] and len(per_shape._concrete) == 2
    widths.clear()
    generic = Compiled(width, signature=[tf.TensorSpec([None, None], tf.float32)])
    for length in (3, 4):
        np.testing.assert_array_equal(generic(np.ones((1, length), np.float32)), 2.0)
    assert widths == [None]
