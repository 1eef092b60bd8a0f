"""AdapLeR and PABEE in one encoder loop (`common.seams.Composite`): AdapLeR's seam before each
block, PABEE's internal classifiers after it. The call's removal mode travels in the state, so
the one AdapLeR seam composes; with thresholds that remove nothing the internal classifiers give
PABEE's own logits, and with removal each classifier reads what AdapLeR left."""
import numpy as np
import pytest
import tensorflow as tf

from adapler.model import AdapLeRClassifier
from adapler.soft_removal import EVAL_SHARPNESS, NO_REMOVAL_ETA
from common import checkpoints
from common.seams import Composite
from conftest import FIXTURES
from pabee.model import LOGITS, PabeeClassifier

pytestmark = pytest.mark.filterwarnings("ignore:You are using a softmax over axis -1")


def inputs(count=5, length=12, seed=0):
    rng = np.random.default_rng(seed)
    ids = rng.integers(5, 35, (count, length)).astype(np.int32)
    ids[:, 0] = 2
    mask = np.ones_like(ids)
    mask[1, 7:] = 0
    mask[3, 4:] = 0
    return {"input_ids": np.where(mask > 0, ids, 0), "token_type_ids": np.zeros_like(ids),
            "attention_mask": mask}


@pytest.fixture(scope="module")
def models():
    """A PABEE model on tiny_bert with random internal classifiers and an AdapLeR model on the
    same backbone weights with random contribution predictors."""
    source = checkpoints.resolve_source(str(FIXTURES / "tiny_bert"))
    pabee = PabeeClassifier(source.config, 2, head_dropout=0.0)
    pabee(inputs(), all_layers=True)
    checkpoints.load_backbone_weights(pabee, source)
    rng = np.random.default_rng(1)
    for head in pabee.classifiers:
        head.kernel.assign(rng.normal(size=head.kernel.shape).astype("float32"))
    adapler = AdapLeRClassifier(source.config, 2)
    adapler(inputs())
    for target, value in zip(adapler.bert.weights, pabee.bert.weights):
        target.assign(value)
    for variable in adapler.seam.trainable_variables:
        if "exp_head" in variable.path:
            variable.assign(rng.normal(scale=0.5, size=variable.shape).astype("float32"))
    return pabee, adapler


def composite_run(pabee, adapler, features, mode, eta, sharpness=None):
    """The PABEE backbone's loop with Composite(AdapLeR, internal classifiers)."""
    seam = Composite(adapler.seam, pabee.exits)
    state = adapler.seam.with_removal(pabee.bert.start(features), mode, eta, sharpness)
    return pabee.bert.run_layers(state, seam)


@pytest.mark.parametrize("mode", ["soft", "hard"])
def test_removing_nothing_gives_pabee_alone(models, mode):
    pabee, adapler = models
    features = inputs()
    state = composite_run(pabee, adapler, features, mode, NO_REMOVAL_ETA, EVAL_SHARPNESS)
    expected = pabee(features, all_layers=True)
    assert len(state.records[LOGITS]) == len(expected) == 3
    for got, want in zip(state.records[LOGITS], expected):
        np.testing.assert_allclose(got.numpy(), want.numpy(), atol=1e-5)
    lengths = features["attention_mask"].sum(axis=1)
    for layer_lengths in state.records["lengths"]:
        np.testing.assert_allclose(layer_lengths.numpy(), lengths, atol=1e-4)


def test_with_removal_each_classifier_reads_what_adapler_left(models):
    pabee, adapler = models
    features = inputs()
    eta = 1.0  # removes every token whose share is below the uniform one
    run = tf.function(lambda f: composite_run(pabee, adapler, f, "hard", eta).records)
    records = run(features)
    reference = adapler(features, lr_mode=True, eta=eta, output_hidden_states=True)
    lengths = [length.numpy() for length in records["lengths"]]
    for got, want in zip(lengths, reference["lengths"]):
        np.testing.assert_array_equal(got, want.numpy())
    assert lengths[-1].sum() < features["attention_mask"].sum()  # something was removed
    # Layer i's classifier reads the [CLS] vector after layer i of AdapLeR's own run.
    after = reference["hidden_states"][1:]
    for index, logits in enumerate(records[LOGITS]):
        expected = pabee.classifiers[index](pabee.bert.pool(after[index]))
        np.testing.assert_allclose(logits.numpy(), expected.numpy(), atol=1e-5)
    alone = pabee(features, all_layers=True)
    assert not np.allclose(records[LOGITS][-1].numpy(), alone[-1].numpy(), atol=1e-3)
