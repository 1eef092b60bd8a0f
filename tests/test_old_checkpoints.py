"""Old checkpoints written by this toolkit still load: one of each kind (tests/fixtures/
old_checkpoints, written by tools/make_old_checkpoints.py before the shared checkpoint
convention) loads through the loader its pipeline uses today and gives the logits it gave when
it was written."""
import numpy as np
import pytest

from common import checkpoints
from common.tokenization import load_tokenizer
from conftest import FIXTURES

OLD = FIXTURES / "old_checkpoints"


def _expected(folder):
    data = np.load(folder / "expected.npz")
    features = {k: data[k] for k in ("input_ids", "token_type_ids", "attention_mask")}
    return features, data["logits"]


def _check(model, folder, call=None):
    features, logits = _expected(folder)
    out = call(model, features) if call else model(features, training=False)
    np.testing.assert_allclose(np.asarray(out), logits, atol=1e-5)
    assert load_tokenizer(folder)("good movie")["input_ids"][0] == 2


@pytest.mark.parametrize("kind", ["finetune", "adapler/finetuned", "powerbert/finetune"])
def test_plain_classifiers(kind):
    model, source, head_loaded = checkpoints.load_classifier(str(OLD / kind))
    assert head_loaded and source.kind == "own"
    _check(model, OLD / kind)


@pytest.mark.parametrize("stage", ["finetune", "configuration_search_model", "retrained"])
def test_powerbert_stages(stage):
    from powerbert.model import build_powerbert, load_stage
    folder = OLD / "powerbert" / stage
    source = checkpoints.resolve_source(str(folder))
    sidecar = source.sidecar
    state = sidecar["method_state"]
    kwargs = ({"retention": state["retention_config"]} if stage == "retrained" else
              {"search_length": 16} if stage == "configuration_search_model" else
              {"retention": [16, 16]})
    model = build_powerbert(source.config, 2, 16, **kwargs)
    load_stage(model, str(folder))
    _check(model, folder)


def test_adapler_stage_c():
    from adapler.pipeline import load_for_evaluation
    from common.tasks import get_task
    folder = OLD / "adapler" / "adapler"
    model, _ = load_for_evaluation(str(folder), get_task("sst-2"), 16, lr_model=True,
                                   log=lambda line: None)
    _check(model, folder, lambda m, f: m(f, training=False)["logits"])


@pytest.mark.parametrize("kind", ["pabee", "pabee/checkpoint-2"])
def test_pabee(kind):
    from common.tasks import get_task
    from pabee.pipeline import load_for_eval
    folder = OLD / kind
    model = load_for_eval(str(folder), get_task("sst-2"), "bert")
    _check(model, folder, lambda m, f: np.stack(
        [np.asarray(z) for z in m(f, training=False, all_layers=True)]))


@pytest.mark.parametrize("kind, method, weights", [
    ("finetune", "vanilla", "model.weights.h5"),
    ("adapler/finetuned", "vanilla", "model.weights.h5"),
    ("adapler/adapler", "adapler", "model.weights.h5"),
    ("powerbert/retrained", "powerbert", "retrained.weights.h5"),
    ("pabee/checkpoint-2", "pabee", "pabee.weights.h5")])
def test_old_sidecars_read_in_the_one_layout(kind, method, weights):
    sidecar = checkpoints.read_sidecar(str(OLD / kind))
    assert (sidecar["method"], sidecar["weights"]) == (method, weights)
    assert sidecar["task"] == "sst-2" and sidecar["num_labels"] == 2
    assert sidecar["max_length"] == 16 and sidecar["lower_case"] is True
    assert sidecar["training"]["epoch" if method != "pabee" else "global_step"] >= 1
    state = sidecar["method_state"]
    assert {"adapler": "eta", "powerbert": "retention_config", "pabee": "head_dropout"}.get(
        method, "stage") in state or method == "vanilla"
    assert not set(state) & {"epoch", "dev", "cased", "do_lower_case", "weights", "format"}
