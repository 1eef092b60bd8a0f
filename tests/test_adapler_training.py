"""AdapLeR training (gradient routing, KL target, length loss, eta
clipping and initial state, lambda schedule, optimizer settings, checkpoint rule)."""
import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from adapler.losses import contribution_loss, length_loss
from adapler.model import AdapLeRClassifier
from adapler.settings import TrainSettings
from adapler.soft_removal import soft_removal
from adapler.training import AdapLeRTrainer, CheckpointRule, lambda_schedule
from common.checkpoints import load_backbone_weights, resolve_source
from common.modeling import dummy_inputs
from tests.test_adapler_model import TINY, random_batch


def fresh_model(seed=0):
    tf.keras.utils.set_random_seed(seed)
    model = AdapLeRClassifier(resolve_source(TINY).config, 3, classifier_dropout=0.0)
    model(dummy_inputs())
    load_backbone_weights(model, resolve_source(TINY))
    return model


def batch(rows=8, seed=0):
    rng = np.random.default_rng(seed)
    features = random_batch(rng, batch=rows, length=10)
    labels = rng.integers(0, 3, rows)
    saliency = rng.random(features["input_ids"].shape).astype(np.float32)
    return features, labels, saliency * features["attention_mask"]


@pytest.fixture(scope="module")
def trainer():
    """One trainer (2 epochs x 2 steps) shared by the tests below: its step is traced once."""
    model = fresh_model()
    model.bert.embeddings.dropout.rate = 0.0
    for block in model.bert.blocks:
        block.attention.dropout.rate = block.feed_forward.dropout.rate = 0.0
    return AdapLeRTrainer(model, TrainSettings(task="sst2", epochs=2, learning_rate=1e-4,
                                               gamma=1.0, phi=1.0),
                          batch_size=4, steps_per_epoch=2)


def step_gradients(trainer, gamma, phi):
    """Gradients of one step: main variables first, then eta and theta."""
    trainer.gamma.assign(gamma)
    trainer.phi.assign(phi)
    features, labels, saliency = batch()
    _, _, grads = trainer.engine._gradients({k: tf.constant(v) for k, v in features.items()},
                                            tf.constant(labels), tf.constant(saliency))
    return [g.numpy() for group in grads[:-1] for g in group], [g.numpy() for g in grads[-1]]


def test_gradient_routing(trainer):
    """Phi never reaches the network, gamma never reaches eta/theta; CE reaches eta
    at finite lambda and the CP loss reaches BERT (through the CP inputs)."""
    model = trainer.model
    model.sharpness.assign(10.0)
    model.eta.assign(np.full(3, 0.8, np.float32))
    main_00, state_00 = step_gradients(trainer, 0.0, 0.0)
    main_01, state_01 = step_gradients(trainer, 0.0, 1.0)
    main_10, state_10 = step_gradients(trainer, 1.0, 0.0)
    for a, b in zip(main_00, main_01):  # phi: not in the network's update
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-9)
    for a, b in zip(state_00, state_10):  # gamma: not in eta's / theta's update
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-9)
    assert np.abs(state_00[0]).sum() > 0  # d CE / d eta != 0 at finite lambda
    assert not np.allclose(state_00[0], state_01[0])  # phi reaches eta
    assert not np.allclose(state_00[1], state_01[1])  # ... and theta (via THETA_PR)
    embeddings = [i for i, v in enumerate(trainer.main_variables)
                  if v is model.bert.embeddings.word_embeddings.embeddings][0]
    cp_part = main_10[embeddings] - main_00[embeddings]  # gamma * d CP / d embeddings
    assert np.abs(cp_part).sum() > 0


def reference_cp_loss(shares, saliency, mask, eta, sharpness, theta):
    """numpy version of the original's `compute_head_lossV5` (KL target || CP, clipped to
    [1e-7, 1], weights L..1)."""
    present = mask.astype(np.float64)
    layers, total = len(shares), 0.0
    for layer, p in enumerate(shares):
        target = saliency * present
        target = target / (target.sum(1, keepdims=True) + 1e-15)
        if layer:
            target[:, 0] *= theta[layer - 1]
            target = target / (target.sum(1, keepdims=True) + 1e-15)
        t, q = np.clip(target, 1e-7, 1), np.clip(p, 1e-7, 1)
        kl = (t * np.log(t / q)).sum(1)
        alive = present[:, 1:].max(1)
        total += (layers - layer) * np.mean(alive * kl)
        delta = eta[layer] / (present.sum(1, keepdims=True) + 1e-15)
        removal = soft_removal(p.astype(np.float32), delta.astype(np.float32),
                               np.float32(sharpness)).numpy() * present
        present = np.where(present > 1e-6, present * np.exp(removal), present)
        present[:, 0] = 1.0
    return total


def test_kl_target_and_weights():
    """The target at layer 0 is saliency / sum over real tokens incl. [CLS], [SEP];
    later layers renormalise over soft survivors with [CLS] scaled by theta; weights L..1."""
    rng = np.random.default_rng(1)
    features, _, saliency = batch(seed=1)
    mask = features["attention_mask"]
    shares = []
    for _ in range(3):
        p = rng.random(mask.shape) * mask
        shares.append((p / p.sum(1, keepdims=True)).astype(np.float32))
    eta, theta = np.array([0.3, 0.6, 0.9], np.float32), np.array([1.7, 0.4], np.float32)
    total, per_layer = contribution_loss([tf.constant(p) for p in shares], saliency, mask,
                                         eta, 10.0, theta)
    assert float(total) == pytest.approx(reference_cp_loss(shares, saliency, mask, eta, 10.0,
                                                           theta), rel=1e-4)
    np.testing.assert_allclose(float(total), sum((3 - i) * float(k)
                                                 for i, k in enumerate(per_layer)), rtol=1e-6)
    # layer 0: KL(saliency / sum || p) exactly
    t = saliency / saliency.sum(1, keepdims=True)
    t, q = np.clip(t, 1e-7, 1), np.clip(shares[0], 1e-7, 1)
    assert float(per_layer[0]) == pytest.approx(np.mean((t * np.log(t / q)).sum(1)), rel=1e-4)
    # an example whose non-[CLS] tokens are all gone weighs 0
    gone = [np.eye(1, mask.shape[1], 0, dtype=np.float32).repeat(len(mask), 0)] * 3
    _, per_layer = contribution_loss([tf.constant(p) for p in gone], saliency, mask,
                                     np.ones(3, np.float32), 1e20, theta)
    assert float(per_layer[0]) > 0 and float(per_layer[1]) == 0.0


def test_length_loss_is_batch_mean_of_summed_lengths():
    """The length loss is the batch mean of the summed per-layer lengths."""
    model = fresh_model()
    features, _, _ = batch()
    out = model(features, sharpness=10.0, eta=0.8, output_masks=True)
    expected = np.mean(sum(m.numpy().sum(1) + 1 for m in out["masks"]))
    assert float(length_loss(out["lengths"])) == pytest.approx(expected, rel=1e-6)


def test_initial_state_and_eta_clipping(trainer):
    """Eta 0.25, theta 1, lambda 1000 at start; eta in [0.01, 1] after every step."""
    model = fresh_model()
    np.testing.assert_array_equal(model.eta.numpy(), 0.25)
    np.testing.assert_array_equal(model.theta.numpy(), 1.0)
    assert float(model.sharpness.numpy()) == 1000.0
    model = trainer.model
    model.eta.assign(np.array([0.0101, 0.5, 0.9999], np.float32))
    # one update whose eta gradient pushes eta_0 below 0.01 and eta_2 above 1 (Adam moves each
    # coordinate by about the learning rate, 5e-4)
    grads = [[tf.zeros_like(v) for v in trainer.main_variables],
             [tf.constant([1.0, 0.0, -1.0]), tf.zeros_like(model.theta)]]
    trainer.engine._apply(grads)
    np.testing.assert_allclose(model.eta.numpy(), [0.01, 0.5, 1.0], rtol=1e-6)


def test_lambda_schedule(trainer):
    """Per-epoch values; set after every step (the first step uses 1000)."""
    assert [lambda_schedule(5, e) for e in range(5)] == [10, 100, 1e3, 1e4, 1e5]
    assert [lambda_schedule(10, e) for e in range(3)] == [10, 30, 90]
    assert [lambda_schedule(3, e) for e in range(3)] == [50, 2500, 125000]
    model = trainer.model
    model.sharpness.assign(1000.0)
    features, labels, saliency = batch()
    seen = []
    history = trainer.fit({**features, "labels": labels}, saliency,
                          on_epoch_end=lambda e: seen.append(float(model.sharpness.numpy())),
                          log=lambda *a: None)
    assert history["lambda"] == [1000.0, 10.0, 10.0, 100.0]
    assert seen == [10.0, 100.0]


def test_optimizer_settings():
    """AdamW eps 1e-12, decay 0.01 except LayerNorm/bias, 6 % warm-up, linear decay;
    eta/theta on Adam with peak 5e-4."""
    model = fresh_model()
    settings = TrainSettings(task="sst2", epochs=5, learning_rate=3e-5, gamma=1.0, phi=1.0)
    trainer = AdapLeRTrainer(model, settings, batch_size=4, steps_per_epoch=20)
    main, eta = trainer.optimizers
    assert type(main).__name__ == "AdamW" and type(eta).__name__ == "Adam"
    assert main.epsilon == eta.epsilon == 1e-12 and main.weight_decay == 0.01
    norm = model.bert.embeddings.layer_norm.gamma
    bias = model.classifier.bias
    kernel = model.predictors[0].pre.kernel
    assert not main._use_weight_decay(norm) and not main._use_weight_decay(bias)
    assert main._use_weight_decay(kernel)
    schedule = main.learning_rate if callable(main.learning_rate) else main._learning_rate
    assert float(schedule(6)) == pytest.approx(3e-5) and float(schedule(3)) == pytest.approx(1.5e-5)
    assert float(schedule(100)) == 0.0
    assert float(eta._learning_rate(6)) == pytest.approx(5e-4)
    assert [v.path for v in trainer.groups[-1].variables] == [model.eta.path, model.theta.path]
    faster = AdapLeRTrainer(model, dataclasses.replace(settings, eta_learning_rate=5e-3),
                            batch_size=4, steps_per_epoch=20)  # --ETA_LEARNING_RATE
    assert float(faster.optimizers[-1]._learning_rate(6)) == pytest.approx(5e-3)


def test_checkpoint_rule():
    """Save iff the speed-up improves and the score beats best - 0.01."""
    rule = CheckpointRule(0.90)
    assert rule(0.895, 1.5)        # within one point, first speed-up
    assert not rule(0.89, 3.0)     # not above 0.89
    assert not rule(0.95, 1.4)     # better score, worse speed-up
    assert rule(0.893, 2.0)
    assert rule.best_speedup == 2.0
