"""The PoWER-BERT model and its training maths on tiny configs
(equivalences with the plain model, Extract shapes, the stage-2 penalty, the
two learning rates on one schedule, and how far a penalty-only retention parameter travels)."""
import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from common import checkpoints
from common.seeding import set_seed
from common.config import BertConfig
from common.modeling import SequenceClassifier, dummy_inputs
from common.tasks import get_task
from common.training import TrainLoop, classification_loss, train
from conftest import FIXTURES
from powerbert import pipeline
from powerbert.model import PowerBertClassifier, load_stage
from powerbert.optimizer import KerasTwoWarmupDecay, stage_steps
from powerbert.retention import derive_retention

N = 12


def _inputs(lengths, n=N, seed=0):
    rng = np.random.default_rng(seed)
    ids = rng.integers(5, 35, (len(lengths), n)).astype(np.int32)
    ids[:, 0] = 2
    mask = np.array([[1] * k + [0] * (n - k) for k in lengths], np.int32)
    ids *= mask
    types = np.where(np.arange(n)[None, :] > np.array(lengths)[:, None] // 2, 1, 0) * mask
    return {"input_ids": ids, "token_type_ids": types.astype(np.int32), "attention_mask": mask}


def _plain(folder="tiny_bert", num_labels=2):
    source = checkpoints.resolve_source(str(FIXTURES / folder))
    model = SequenceClassifier(source.config, num_labels, classifier_dropout=0.0)
    model(dummy_inputs(N))
    checkpoints.load_backbone_weights(model, source)
    # An O(1) head so that output differences are not hidden by a near-zero fresh classifier.
    kernel = model.classifier.kernel
    kernel.assign(np.random.default_rng(3).normal(size=kernel.shape).astype(np.float32))
    return model


def _powerbert(plain, tmp_path, **kwargs):
    """A PowerBertClassifier holding `plain`'s weights, loaded by key from a saved checkpoint."""
    path = str(tmp_path / "plain.weights.h5")
    checkpoints.save_weights(plain, path)
    model = PowerBertClassifier(plain.config, plain.num_labels, **kwargs)
    model(dummy_inputs(N))
    checkpoints.load_weights(model, path, optional=model.optional_checkpoint_keys)
    return model


MIXED = [12, 9, 5, 3, 1, 12]


@pytest.mark.parametrize("folder", ["tiny_bert", "tiny_albert"])
def test_full_retention_equals_the_plain_model(folder, tmp_path):
    plain = _plain(folder)
    model = _powerbert(plain, tmp_path, retention=[N] * 3)
    inputs = _inputs(MIXED)
    np.testing.assert_allclose(np.asarray(model(inputs)), np.asarray(plain(inputs)), atol=1e-6)


def test_soft_extract_with_all_ones_equals_the_plain_model(tmp_path):
    plain = _plain()
    model = _powerbert(plain, tmp_path, search_length=N, lam=0.01)
    assert all(np.all(np.asarray(layer.retention) == 1.0) for layer in model.soft_extracts)
    inputs = _inputs(MIXED)
    np.testing.assert_array_equal(np.asarray(model(inputs)), np.asarray(plain(inputs)))


def test_dropping_only_padding_keeps_the_output(tmp_path):
    plain = _plain()
    model = _powerbert(plain, tmp_path, retention=[8, 7, 6])
    inputs = _inputs([6, 5, 3, 1])  # every real length <= every retention value
    np.testing.assert_allclose(np.asarray(model(inputs)), np.asarray(plain(inputs)), atol=1e-6)
    full = _inputs([12, 10])  # real words are dropped here: the output must change
    assert np.abs(np.asarray(model(full)) - np.asarray(plain(full))).max() > 1e-4


def test_extract_shapes_and_kept_positions(tmp_path):
    model = _powerbert(_plain(), tmp_path, retention=[7, 4, 1])
    seen = []
    feed_forward = type(model.bert.blocks[0].feed_forward)
    original = feed_forward.call

    def spy(self, x, training=False):
        seen.append(tuple(x.shape))
        return original(self, x, training=training)

    feed_forward.call = spy
    try:
        out = model.forward(_inputs(MIXED))[1].records
    finally:
        feed_forward.call = original
    assert seen == [(6, 7, 16), (6, 4, 16), (6, 1, 16)]
    assert out["lengths"] == [7, 4, 1]
    for positions, k in zip(out["positions"], [7, 4, 1]):
        positions = np.asarray(positions)
        assert positions.shape == (6, k) and np.all(positions[:, 0] == 0)
        assert np.all(np.diff(positions, axis=1) > 0)


def test_compiles_with_xla_and_matches_eager(tmp_path):
    model = _powerbert(_plain(), tmp_path, retention=[9, 5, 2])
    inputs = _inputs(MIXED)
    compiled = tf.function(lambda x: model(x, training=False), jit_compile=True)
    np.testing.assert_allclose(np.asarray(compiled(inputs)), np.asarray(model(inputs)), atol=1e-5)


def test_initial_penalty_is_78_lambda_n_for_12_blocks(tmp_path):
    config = dataclasses.replace(BertConfig.from_json(str(FIXTURES / "tiny_bert")),
                                 num_hidden_layers=12, hidden_dropout_prob=0.0)
    plain = SequenceClassifier(config, 2, classifier_dropout=0.0)
    plain(dummy_inputs(N))
    lam = 0.003
    model = _powerbert(plain, tmp_path, search_length=N, lam=lam)
    inputs, labels = _inputs(MIXED), np.array([0, 1, 1, 0, 1, 0])
    task_loss = float(classification_loss(plain(inputs), labels, 2))
    loss = float(pipeline.search_loss(model, inputs, labels, training=False))
    assert loss == pytest.approx(task_loss + 78 * lam * N, rel=1e-6)
    with tf.GradientTape() as tape:
        penalty = tf.add_n(model.losses)
    grads = tape.gradient(penalty, [layer.retention for layer in model.soft_extracts])
    for block, grad in enumerate(grads, 1):
        np.testing.assert_allclose(np.asarray(grad), lam * block, rtol=1e-6)


def test_learning_rate_trace():
    n_train, batch, epochs, peak = 1000, 32, 3, 6e-5
    total, warmup = stage_steps(n_train, batch, epochs)
    assert (total, warmup) == (96, 9)  # T = ceil(1000/32)*3, W = floor(0.1 T)
    schedule = KerasTwoWarmupDecay(peak, total, warmup)
    eta = lambda t: float(schedule(t - 1))  # Keras passes the 0-based update count
    assert eta(1) == pytest.approx(peak / warmup)
    assert eta(warmup) == pytest.approx(peak)
    assert eta(warmup + 1) == pytest.approx(peak * (1 - (warmup + 1) / total))
    assert eta(total) == 0.0
    # sum over the stage ~ 0.455 T peak for large T
    assert KerasTwoWarmupDecay(1.0, 10000, 1000).summed() == pytest.approx(4550, rel=1e-3)


def test_two_learning_rates_share_one_schedule(tmp_path):
    lr_bert, lr_soft = 1e-3, 0.05
    set_seed(0)  # fixed weights: a variable whose every gradient is below Adam's epsilon moves less
    model = _powerbert(_plain(), tmp_path, search_length=N, lam=1.0)
    groups = pipeline.search_groups(model, lr_bert, lr_soft)
    retention = [layer.retention for layer in model.soft_extracts]
    assert [len(g.variables) for g in groups] == [len(model.trainable_variables) - 3, 3]
    assert all(any(v is r for r in retention) for v in groups[1].variables)
    optimizers = [group.build_optimizer(20, 2) for group in groups]  # T = 20, W = 2
    for optimizer in optimizers:
        assert (optimizer.epsilon, optimizer.beta_1, optimizer.beta_2) == (1e-7, 0.9, 0.999)
        assert optimizer.clipnorm is None and optimizer.global_clipnorm is None
        assert optimizer.weight_decay is None
    variables = [v for g in groups for v in g.variables]
    before = [np.asarray(v).copy() for v in variables]
    arrays = _inputs([12, 10, 7, 12])  # repeated tokens: sparse embedding gradients
    arrays["labels"] = np.array([0, 1, 1, 0])
    first = []
    # One step per epoch, 20 epochs: T = 20, W = 2; look at the weights after the first step.
    train(model, arrays, TrainLoop(20, 4, warmup_proportion=0.1), groups, pipeline.search_loss,
          log=lambda _: None, on_epoch_end=lambda epoch, _: first or first.extend(np.asarray(v) for v in variables))
    # Adam's first step moves every parameter by ~eta(1) = peak / W of its group
    steps = [np.abs(a - b) for a, b in zip(first, before)]
    for step in steps[:-3]:
        assert step.max() == pytest.approx(lr_bert / 2, rel=1e-2)
    for step in steps[-3:]:  # the penalty dominates: every retention parameter falls by eta(1)
        np.testing.assert_allclose(step, lr_soft / 2, rtol=1e-3)


def test_penalty_only_parameters_travel_the_summed_learning_rate(tmp_path):
    """Ranks that are padding in every example get no task gradient: they fall by sum_t eta(t),
    whatever LAMBDA is; every parameter stays in [0, 1]."""
    lengths = [6, 5, 4, 6, 3, 5, 6, 4, 2, 5, 6, 3]  # ranks 6..11 are always padding
    arrays = _inputs(lengths)
    arrays["labels"] = np.arange(len(lengths)) % 2
    plain = _plain()
    finetuned = str(tmp_path / "finetune")
    checkpoints.save_checkpoint(plain, finetuned, {"num_labels": 2, "max_length": N})
    run = pipeline.Run(task=get_task("sst-2"), max_length=N, config=plain.config, tokenizer=None,
                       output_dir=str(tmp_path), batch_size=4, epochs=2, echo=lambda _: None)
    lr_soft = 0.1
    _, retention, masses = pipeline.configuration_search_stage(
        run, finetuned, arrays, arrays, lam=0.02, lr_bert=1e-4, lr_soft_extract=lr_soft)
    total, warmup = stage_steps(len(lengths), 4, 2)
    travel = KerasTwoWarmupDecay(lr_soft, total, warmup).summed()
    assert 0.1 < travel < 1
    searched = PowerBertClassifier(plain.config, 2, search_length=N)
    searched(dummy_inputs(N))
    load_stage(searched, str(tmp_path / pipeline.SEARCH))
    for layer in searched.soft_extracts:
        r = np.asarray(layer.retention)
        assert np.all((r >= 0) & (r <= 1))
        np.testing.assert_allclose(r[6:], 1 - travel, atol=1e-4)
    assert masses == pytest.approx(searched.retention_masses(), rel=1e-6)
    sidecar = checkpoints.read_sidecar(str(tmp_path / pipeline.SEARCH))
    assert sidecar["method_state"]["retention_config"] == retention == derive_retention(masses)
