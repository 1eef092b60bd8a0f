"""The method registry (`common.methods`): every method is found through setup.py's entry
points, provides the contract's modules, and `load_model` builds any checkpoint's inference model
with its knobs (a knob the method does not have is one UserError)."""
import ast
import re

import numpy as np
import pytest

from common import methods
from common.errors import UserError
from conftest import FIXTURES, REPO

OLD = FIXTURES / "old_checkpoints"


def test_the_four_methods_are_registered():
    assert {"powerbert", "adapler", "pabee", "ltp"} <= set(methods.names())


@pytest.mark.parametrize("name", ["powerbert", "adapler", "pabee", "ltp"])
def test_every_method_has_knobs_and_a_loader(name):
    assert callable(methods.module(name, "model").load_model)
    for knob, options in methods.knobs(name).items():
        assert options["help"] and ("type" in options or "action" in options), knob


@pytest.mark.parametrize("name", ["powerbert", "adapler", "pabee", "ltp"])
def test_every_method_package_has_the_contract_s_modules(name):
    for part in methods.MODULES:
        assert methods.module(name, part).__doc__, part
    sweeps = methods.module(name, "sweep").SWEEPS
    assert name in sweeps and all(callable(sweep.groups) for sweep in sweeps.values())


def _code_names(tree):
    """Identifiers and string constants of a module, docstrings left out."""
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef))
                  and node.body and isinstance(node.body[0], ast.Expr)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            if id(node) not in docstrings:
                yield node.value
        elif isinstance(node, ast.Name):
            yield node.id
        elif isinstance(node, ast.Attribute):
            yield node.attr
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            yield node.name
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            yield from [getattr(node, "module", None) or ""] + [a.name for a in node.names]


def test_common_names_no_method_in_its_code():
    named = re.compile(r"power.?bert|adapler|pabee", re.IGNORECASE)
    found = [f"{path.relative_to(REPO)}: {name!r}"
             for path in sorted((REPO / "common").rglob("*.py")) for name in _code_names(ast.parse(path.read_text(encoding="utf-8")))
             if named.search(name)]
    assert not found, found


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
