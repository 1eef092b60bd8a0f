"""The method registry (`common.methods`): every method is found through setup.py's entry
points, provides the contract's modules, and `load_model` builds any checkpoint's inference model
with its knobs (a knob the method does not have is one UserError)."""
import numpy as np
import pytest

from common import methods
from common.errors import UserError
from conftest import FIXTURES

OLD = FIXTURES / "old_checkpoints"


def test_the_three_methods_are_registered():
    assert {"powerbert", "adapler", "pabee"} <= set(methods.names())


@pytest.mark.parametrize("name", ["powerbert", "adapler", "pabee"])
def test_every_method_has_knobs_and_a_loader(name):
    model_module = methods.module(name, "model")
    assert callable(model_module.load_model) and model_module.knobs()


def test_unknown_method_is_one_user_error():
    with pytest.raises(UserError, match="unknown method 'nope'"):
        methods.module("nope", "model")


@pytest.mark.parametrize("folder, method, cls", [
    ("finetune", "vanilla", "SequenceClassifier"),
    ("powerbert/retrained", "powerbert", "PowerBertClassifier"),
    ("adapler/adapler", "adapler", "AdapLeRClassifier"),
    ("pabee", "pabee", "PabeeClassifier")])
def test_load_model_picks_the_recorded_method(folder, method, cls):
    model, source = methods.load_model(str(OLD / folder))
    assert methods.method_of(source.sidecar) == method
    assert type(model).__name__ == cls


def test_knobs_are_applied_and_checked():
    model, _ = methods.load_model(str(OLD / "pabee"), patience=2)
    assert model.patience == 2
    base, _ = methods.load_model(str(OLD / "adapler/adapler"))
    shifted, _ = methods.load_model(str(OLD / "adapler/adapler"), eta_offset=0.1)
    np.testing.assert_allclose(shifted.eta.numpy(), np.maximum(base.eta.numpy() + 0.1, 0),
                               rtol=1e-6)
    with pytest.raises(UserError, match="patience does not apply to a powerbert model"):
        methods.load_model(str(OLD / "powerbert/retrained"), patience=2)
    with pytest.raises(UserError, match="does not apply to a vanilla model"):
        methods.load_model(str(OLD / "finetune"), eta_offset=0.1)
