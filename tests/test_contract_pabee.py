"""The method contract (issue 12 item 5): each method at its no-op setting gives the logits of a
plain `SequenceClassifier` on the same weights, and its checkpoint round-trips.

PABEE: at patience >= L no example exits early, so the batched per-example exit and the batch-1
exit loop answer with the last internal classifier after all L layers. The fixture
`pabee_before_seams` is a PABEE checkpoint written before the internal classifiers became a seam
(commit 7a496d2), with the per-layer logits that code computed on its own inputs."""
import json

import h5py
import numpy as np
import pytest

from common import checkpoints
from common.errors import UserError
from common.modeling import SequenceClassifier, dummy_inputs
from common.tasks import get_task
from conftest import FIXTURES
from pabee.model import build_model, load_weights
from pabee.patience import EarlyExitEngine, ExitRule
from pabee.pipeline import load_for_eval

OLD_PABEE = FIXTURES / "pabee_before_seams"


def inputs(count=6, length=11, seed=0):
    rng = np.random.default_rng(seed)
    ids = rng.integers(5, 35, (count, length)).astype(np.int32)
    ids[:, 0] = 2
    mask = np.ones_like(ids)
    mask[1, 6:] = 0
    mask[4, 3:] = 0
    return {"input_ids": ids, "token_type_ids": np.zeros_like(ids), "attention_mask": mask}


def pabee_model(fixture, num_labels, pooling, seed=0):
    """A PABEE model on a fixture backbone with distinct, non-trivial heads."""
    source = checkpoints.resolve_source(str(FIXTURES / fixture))
    model = build_model(source, num_labels, pooling=pooling)
    load_weights(model, source)
    rng = np.random.default_rng(seed)
    for head in model.classifiers:
        head.kernel.assign(rng.normal(scale=0.5, size=head.kernel.shape).astype(np.float32))
        head.bias.assign(rng.normal(scale=0.1, size=head.bias.shape).astype(np.float32))
    return model


def plain_twin(model):
    """A SequenceClassifier with the PABEE model's backbone and its last classifier as head."""
    plain = SequenceClassifier(model.config, model.num_labels, pooling=model.bert.pooling)
    plain(dummy_inputs())
    for target, value in zip(plain.bert.weights, model.bert.weights):
        assert checkpoints.variable_key(target) == checkpoints.variable_key(value)
        target.assign(value)
    plain.classifier.kernel.assign(model.classifiers[-1].kernel)
    plain.classifier.bias.assign(model.classifiers[-1].bias)
    return plain


@pytest.mark.parametrize("fixture,num_labels,pooling", [
    ("tiny_bert", 2, "cls"), ("tiny_albert", 3, "cls"), ("tiny_bert", 3, "mean"),
    ("tiny_bert", 1, "cls"), ("tiny_roberta", 3, "cls"), ("tiny_xlm_roberta", 2, "cls"),
    ("tiny_distilbert", 3, "cls"), ("tiny_electra", 3, "mean")])
def test_pabee_no_op_patience_equals_sequence_classifier(fixture, num_labels, pooling):
    model = pabee_model(fixture, num_labels, pooling)
    features = inputs()
    expected = np.asarray(plain_twin(model)(features))
    np.testing.assert_allclose(np.asarray(model(features)), expected, atol=1e-5)  # patience 0
    engine = EarlyExitEngine(model)
    layers = model.num_layers
    # Regression: even a threshold every step passes gives only L - 1 agreeing steps.
    threshold = 1e9 if num_labels == 1 else 0.0
    for patience in (layers, layers + 2):
        rule = ExitRule(patience, threshold, is_regression=num_labels == 1)
        for result in (engine.run(features, rule),  # batched per-example exit
                       engine.run_all(features, rule, batch_size=1)):  # batch-1 exit loop
            assert (result.exit_layers == layers).all()
            assert np.abs(result.logits - expected).max() <= 1e-5


def test_pabee_checkpoint_round_trips(tmp_path):
    task = get_task("sst-2")
    model = pabee_model("tiny_bert", 2, "mean", seed=3)
    meta = {"method": "pabee", "task": task.name, "num_labels": 2, "max_length": 16}
    checkpoints.save_checkpoint(model, str(tmp_path / "a"), meta)
    sidecar = json.loads((tmp_path / "a" / "config.json").read_text())
    assert {"format", "backbone", "task", "num_labels", "max_length", "method"} <= set(sidecar)
    assert sidecar["pooling"] == "mean"
    again = load_for_eval(str(tmp_path / "a"), task, log=lambda *_: None)
    assert again.bert.pooling == "mean"
    assert [v.path.split("/", 1)[1] for v in again.weights] == [
        v.path.split("/", 1)[1] for v in model.weights]
    for a, b in zip(model.weights, again.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    features = inputs()
    for a, b in zip(model(features, all_layers=True), again(features, all_layers=True)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    with pytest.raises(UserError, match="trained with --pooling mean"):
        load_for_eval(str(tmp_path / "a"), task, pooling="cls")


def test_pabee_checkpoint_from_before_the_seams_loads_and_computes_the_same(tmp_path):
    with h5py.File(OLD_PABEE / "pabee.weights.h5", "r") as stored:
        head_keys = sorted(k for k in stored if k.startswith("classifiers_"))
        assert "classifier" not in stored  # the last internal classifier is the head
    assert head_keys == ["classifiers_0", "classifiers_1", "classifiers_2"]
    model = load_for_eval(str(OLD_PABEE), get_task("sst-2"))
    assert model.bert.pooling == "cls"  # no pooling key: written when cls was the only one
    reference = np.load(OLD_PABEE / "reference.npz")
    features = {"input_ids": reference["input_ids"], "attention_mask": reference["attention_mask"],
                "token_type_ids": np.zeros_like(reference["input_ids"])}
    layer_logits = np.stack([np.asarray(z) for z in model(features, all_layers=True)])
    np.testing.assert_allclose(layer_logits, reference["layer_logits"], atol=1e-5)
    # Saved again by today's code, it keeps the same keys and records its pooling.
    checkpoints.save_checkpoint(model, str(tmp_path / "new"), {"task": "sst-2"})
    assert stored_keys(tmp_path / "new" / checkpoints.WEIGHTS_NAME) == stored_keys(
        OLD_PABEE / "pabee.weights.h5")
    assert json.loads((tmp_path / "new" / "config.json").read_text())["pooling"] == "cls"


def stored_keys(path):
    keys = []
    with h5py.File(path, "r") as stored:
        stored.visit(keys.append)
    return sorted(keys)
