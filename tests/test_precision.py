"""Mixed precision: policies from the flags, float32 islands, same predictions as float32."""
import keras
import numpy as np
import pytest

from common import checkpoints, precision
from common.errors import UserError
from common.modeling import SequenceClassifier, dummy_inputs
from conftest import FIXTURES


@pytest.fixture
def restore_policy():
    yield
    keras.mixed_precision.set_global_policy("float32")


def _classifier(folder):
    source = checkpoints.resolve_source(str(folder))
    model = SequenceClassifier(source.config, 2, classifier_dropout=0.0)
    model(dummy_inputs())
    checkpoints.assign_hf_tensors(model.bert, source.tensors())
    return model


def test_both_flags_refused():
    with pytest.raises(UserError, match="exclude each other"):
        precision.precision_name(bf16=True, fp16=True)
    assert precision.precision_name() == "fp32"


def test_native_bf16_from_flags(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor : 0\nflags : fpu sse avx512f avx512_bf16\n")
    assert precision.native_bf16(precision.cpu_flags(str(cpuinfo)))
    assert not precision.native_bf16({"avx512f"})
    assert precision.cpu_flags(str(tmp_path / "missing")) == set()


@pytest.mark.parametrize("name", ["bf16", "fp16"])
def test_mixed_forward_matches_float32(name, restore_policy):
    rng = np.random.default_rng(0)
    ids = rng.integers(5, 30, size=(4, 12)).astype(np.int32)
    mask = np.ones_like(ids)
    mask[1, 7:] = 0
    inputs = {"input_ids": ids, "token_type_ids": np.zeros_like(ids), "attention_mask": mask}
    reference = _classifier(FIXTURES / "tiny_bert")
    # Large margins: a head that maps the pooled vector to well separated logits.
    pooled = reference.bert(inputs)["pooled_output"].numpy()
    reference.classifier.kernel.assign(np.stack([pooled[0] * 50, -pooled[0] * 50], 1))
    expected = reference(inputs).numpy()

    precision.set_precision(name)
    model = _classifier(FIXTURES / "tiny_bert")
    model.set_weights(reference.get_weights())
    out = model.forward(inputs)
    logits = out[0].numpy()
    assert model.bert.blocks[0].attention.qkv.compute_dtype == precision.POLICIES[name][6:]
    assert logits.dtype == np.float32 and np.isfinite(logits).all()
    assert (logits.argmax(-1) == expected.argmax(-1)).all()
    assert np.abs(logits - expected).max() < 0.05 * np.abs(expected).max()
    probs = model.bert(inputs, output_attentions=True)["attentions"][0]
    assert probs.dtype == "float32"
