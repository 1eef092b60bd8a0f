"""The shared training loop: schedule, parameter groups, per-group objectives, keep-best."""
import numpy as np
import pytest
import tensorflow as tf

from common import training
from common.config import BertConfig
from common.errors import UserError
from common.modeling import SequenceClassifier, dummy_inputs

CONFIG = BertConfig(vocab_size=30, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                    intermediate_size=32, max_position_embeddings=16)


def _data(rows=24, length=8, seed=0):
    rng = np.random.default_rng(seed)
    ids = rng.integers(5, 30, (rows, length)).astype(np.int32)
    return {"input_ids": ids, "token_type_ids": np.zeros_like(ids),
            "attention_mask": np.ones_like(ids), "labels": (ids[:, 1] > 17).astype(np.int64)}


def _model(num_labels=2):
    model = SequenceClassifier(CONFIG, num_labels)
    model(dummy_inputs())
    return model


def test_warmup_then_linear_decay():
    schedule = training.WarmupLinearDecay(1.0, total_steps=10, warmup_steps=2)
    values = [float(schedule(step)) for step in range(11)]
    assert values[:3] == pytest.approx([0.0, 0.5, 1.0])
    assert values[6] == pytest.approx(0.5) and values[10] == pytest.approx(0.0)


def test_groups_use_their_own_learning_rate_and_objective():
    training.set_seed(0)
    model = _model()
    head = [model.classifier.kernel, model.classifier.bias]
    body = [v for v in model.trainable_variables if all(v is not h for h in head)]
    frozen_before = [v.numpy().copy() for v in body]
    head_before = model.classifier.kernel.numpy().copy()

    def loss_fn(m, features, labels, is_training):
        loss = training.classification_loss(m(features, training=is_training), labels, 2)
        return {"body": loss, "head": loss * 2.0}

    groups = [training.ParamGroup("body", body, 0.0), training.ParamGroup("head", head, 1e-2)]
    history = training.train(model, _data(), training.TrainLoop(1, 8), groups, loss_fn,
                             log=lambda *_: None)
    assert len(history) == 1 and np.isfinite(history[0]["train_loss"])
    for before, variable in zip(frozen_before, body):
        np.testing.assert_array_equal(before, variable.numpy())  # learning rate 0
    assert not np.allclose(head_before, model.classifier.kernel.numpy())


def test_keep_best_calls_on_best_only_on_improvement():
    model = _model()
    scores = iter([0.5, 0.4, 0.7])
    best_epochs = []
    training.train(model, _data(), training.TrainLoop(3, 8),
                   [training.ParamGroup("main", model.trainable_variables, 1e-3)],
                   lambda m, f, y, t: training.classification_loss(m(f, training=t), y, 2),
                   evaluate=lambda m: {"score": next(scores)}, select=lambda r: r["score"],
                   on_best=lambda epoch, record: best_epochs.append(epoch), log=lambda *_: None)
    assert best_epochs == [1, 3]


def test_regression_loss_is_mse():
    logits = tf.constant([[1.0], [3.0]])
    assert float(training.classification_loss(logits, tf.constant([0.0, 1.0]), 1)) == 2.5


def test_predict_pads_the_last_batch_and_keeps_order():
    model = _model()
    data = _data(rows=11)
    full = np.asarray(model({k: v for k, v in data.items() if k != "labels"}))
    np.testing.assert_allclose(training.predict(model, data, batch_size=4), full, atol=1e-5)


def test_empty_training_split():
    model = _model()
    empty = {k: v[:0] for k, v in _data().items()}
    with pytest.raises(UserError, match="empty"):
        training.train(model, empty, training.TrainLoop(1, 4),
                       [training.ParamGroup("main", model.trainable_variables, 1e-3)],
                       lambda m, f, y, t: 0.0)


def _twin_models():
    """Two equal models without dropout."""
    import dataclasses
    config = dataclasses.replace(CONFIG, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    models = []
    for _ in range(2):
        training.set_seed(0)
        model = SequenceClassifier(config, 2)
        model(dummy_inputs())
        models.append(model)
    return models


class _SGDGroup(training.ParamGroup):
    """Plain SGD: its update is proportional to the gradient (Adam's first step is not)."""

    def build_optimizer(self, total_steps, warmup_steps):
        import keras
        return keras.optimizers.SGD(self.learning_rate)


def _fit(model, data, loop):
    loss = lambda m, f, y, t: training.classification_loss(m(f, training=t), y, 2)  # noqa: E731
    trainer = training.Trainer(model, [_SGDGroup("main", model.trainable_variables, 0.5)],
                               loss, loop, -(-len(data["labels"]) // loop.batch_size))
    trainer.fit(data, log=lambda *_: None)
    return trainer


def test_accumulated_update_is_the_mean_of_its_micro_batches():
    """Groups of `accumulation` batches inside an epoch (the last one smaller): each update
    applies the mean gradient of its group, so two batches of 4 give the update of one of 8."""
    data = _data(rows=12)
    accumulated, whole = _twin_models()
    trainer = _fit(accumulated, data, training.TrainLoop(1, 4, shuffle=False, accumulation=2))
    assert trainer.step == 2  # batches 1-2, then batch 3 alone
    reference = _fit(whole, {k: v[:8] for k, v in data.items()},
                     training.TrainLoop(1, 8, shuffle=False))
    assert reference.step == 1
    reference.fit({k: v[8:] for k, v in data.items()}, log=lambda *_: None)
    for a, b in zip(accumulated.trainable_variables, whole.trainable_variables):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=2e-6)
    assert not np.allclose(accumulated.classifier.kernel.numpy(),
                           _twin_models()[0].classifier.kernel.numpy())
