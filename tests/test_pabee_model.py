"""The PABEE model (the original's pabee/modeling_bert.py): heads, shared pooler, layer loop
parity, ALBERT sharing, dropout, initialisation, the weighted loss, gradients, HF head loading."""
import json
import shutil

import numpy as np
import pytest
import tensorflow as tf

from common import checkpoints
from common.errors import UserError
from common.training import classification_loss
from conftest import FIXTURES
from pabee.model import build_model, load_weights, loss_fn, weighted_loss


def load(name, num_labels=2):
    source = checkpoints.resolve_source(str(FIXTURES / name))
    model = build_model(source, num_labels)
    load_weights(model, source)
    return model, source


def sample_inputs(count=6, length=10, seed=0):
    rng = np.random.default_rng(seed)
    ids = rng.integers(5, 35, (count, length)).astype(np.int32)
    ids[:, 0] = 2
    mask = np.ones_like(ids)
    mask[0, 6:] = 0
    return {"input_ids": ids, "token_type_ids": np.zeros_like(ids), "attention_mask": mask}


@pytest.fixture(scope="module")
def bert():
    return load("tiny_bert")


@pytest.fixture(scope="module")
def albert():
    return load("tiny_albert")


def test_heads_and_parameter_counts(bert):
    model, _ = bert
    config = model.config
    assert len(model.classifiers) == config.num_hidden_layers
    assert len({id(h) for h in model.classifiers}) == config.num_hidden_layers
    for index, head in enumerate(model.classifiers):
        assert head.name == f"classifiers_{index}"
        assert tuple(head.kernel.shape) == (config.hidden_size, 2)
        assert tuple(head.bias.shape) == (2,)
    heads, added = model.head_parameters()
    one = config.hidden_size * 2 + 2
    assert heads == 3 * one == sum(int(np.prod(v.shape)) for h in model.classifiers
                                   for v in h.weights)
    assert added == 2 * one
    pooler_keys = [v.path for v in model.weights if "pooler" in v.path]
    assert len(pooler_keys) == 2  # one pooler (kernel + bias) serves every exit


def test_layer_loop_equals_backbone_and_hand_computed_heads():
    for name in ("tiny_bert", "tiny_albert"):
        model, _ = load(name)
        features = sample_inputs()
        reference = model.bert(features, output_hidden_states=True)["hidden_states"]
        state = model.bert.start(features)
        np.testing.assert_allclose(state.hidden, reference[0], atol=1e-6)
        kernel, offset = model.bert.pooler.kernel.numpy(), model.bert.pooler.bias.numpy()
        logits = model(features, all_layers=True)
        for index in range(model.num_layers):
            state = model.bert.run_layer(state, index)
            np.testing.assert_allclose(state.hidden, reference[index + 1], atol=1e-5)
            head = model.classifiers[index]
            pooled = np.tanh(np.asarray(reference[index + 1])[:, 0] @ kernel + offset)
            expected = pooled @ head.kernel.numpy() + head.bias.numpy()
            np.testing.assert_allclose(logits[index], expected, atol=1e-5)
        np.testing.assert_allclose(model(features), logits[-1], atol=1e-5)  # patience 0 path


def test_pooler_is_shared_by_every_exit(bert):
    model, _ = bert
    features = sample_inputs()
    before = [np.asarray(z) for z in model(features, all_layers=True)]
    saved = model.bert.pooler.bias.numpy()
    model.bert.pooler.bias.assign(saved + 0.5)
    after = [np.asarray(z) for z in model(features, all_layers=True)]
    model.bert.pooler.bias.assign(saved)
    assert all(np.abs(a - b).max() > 1e-4 for a, b in zip(before, after))


def test_albert_one_block_applied_every_layer(albert):
    model, _ = albert
    assert len(model.bert.layer_groups) == 1
    assert all(block is model.bert.layer_groups[0] for block in model.bert.blocks)
    assert len(model.bert.blocks) == model.num_layers == len(model.classifiers)
    block_vars = [v for v in model.weights if "/block_" in v.path]
    assert {v.path.split("/")[2] for v in block_vars} == {"block_0"}
    # Embedding projection happens once, inside start(), before layer 1.
    x = model.bert.start(sample_inputs()).hidden
    assert x.shape[-1] == model.config.hidden_size != model.config.embedding_size


def test_dropout_rates_and_masks(bert, albert):
    assert bert[0].head_dropout == bert[0].config.hidden_dropout_prob == 0.1
    raw = json.loads((FIXTURES / "tiny_albert" / "config.json").read_text())
    assert albert[0].config.hidden_dropout_prob == 0.0
    assert albert[0].head_dropout == raw["classifier_dropout_prob"] == 0.1
    model = albert[0]  # no encoder dropout: the head dropout is the only randomness
    features = sample_inputs()
    eval_a = [np.asarray(z) for z in model(features, all_layers=True)]
    eval_b = [np.asarray(z) for z in model(features, all_layers=True)]
    for a, b in zip(eval_a, eval_b):
        np.testing.assert_array_equal(a, b)
    ones = tf.ones((64, model.config.hidden_size))
    dropout = model.classifiers[0].dropout
    masks = [np.asarray(dropout(ones, training=True)) == 0 for _ in range(2)]
    assert 0.03 < masks[0].mean() < 0.2 and (masks[0] != masks[1]).any()
    train = model(features, training=True, all_layers=True)
    assert any(np.abs(np.asarray(t) - e).max() > 0 for t, e in zip(train, eval_a))


def test_fresh_heads_init_and_pretrained_pooler(bert):
    model, source = bert
    tensors = source.tensors()
    np.testing.assert_allclose(model.bert.pooler.kernel.numpy(),
                               tensors["pooler.dense.weight"].T, atol=0)
    big = checkpoints.resolve_source(str(FIXTURES / "tiny_bert"))
    big.config.hidden_size, big.config.num_attention_heads = 256, 4
    big.config.intermediate_size = 32
    kernels = np.concatenate([h.kernel.numpy().ravel()
                              for h in build_model(big, 8).classifiers])
    assert abs(kernels.std() - 0.02) < 0.002 and abs(kernels.mean()) < 0.002
    assert all((h.bias.numpy() == 0).all() for h in model.classifiers)


def test_weighted_loss_formula(bert):
    model, _ = bert
    features, labels = sample_inputs(), np.array([0, 1, 1, 0, 1, 0])
    logits = model(features, all_layers=True)
    per_layer = [float(classification_loss(z, labels, 2)) for z in logits]
    expected = sum((i + 1) * loss for i, loss in enumerate(per_layer)) / 6
    assert float(weighted_loss(logits, labels, 2)) == pytest.approx(expected, abs=1e-6)
    assert float(loss_fn(model, features, labels, training=False)) == pytest.approx(expected,
                                                                                   abs=1e-6)
    # Regression: MSE of each flattened output against raw float scores.
    outputs = [tf.constant(np.random.default_rng(i).normal(size=(6, 1)), tf.float32)
               for i in range(12)]
    scores = np.linspace(0, 5, 6).astype(np.float32)
    mse = [np.mean((np.asarray(z)[:, 0] - scores) ** 2) for z in outputs]
    expected = sum((i + 1) * m for i, m in enumerate(mse)) / 78  # L = 12: weights i/78
    assert float(weighted_loss(outputs, scores, 1)) == pytest.approx(expected, abs=1e-5)
    # One element (the eval path): the plain loss of those logits.
    assert float(weighted_loss(logits[-1:], labels, 2)) == pytest.approx(per_layer[-1], abs=1e-6)


def test_gradients_reach_every_variable(bert):
    model, _ = bert
    features, labels = sample_inputs(), np.array([0, 1, 1, 0, 1, 0])
    with tf.GradientTape() as tape:
        loss = loss_fn(model, features, labels, training=True)
    grads = tape.gradient(loss, model.trainable_variables)
    for variable, grad in zip(model.trainable_variables, grads):
        assert grad is not None and float(tf.reduce_max(tf.abs(grad))) > 0, variable.path


def test_own_checkpoints_and_hf_pabee_heads(bert, tmp_path):
    model, _ = bert
    # A plain fine-tuned checkpoint (SequenceClassifier) loads: backbone yes, heads fresh.
    plain, _, _ = checkpoints.load_classifier(str(FIXTURES / "tiny_bert"), 2)
    checkpoints.save_checkpoint(plain, str(tmp_path / "plain"), {"task": "sst-2"})
    source = checkpoints.resolve_source(str(tmp_path / "plain"))
    fresh = build_model(source, 2)
    assert load_weights(fresh, source) == 0
    with pytest.raises(UserError, match="not a PABEE model"):
        load_weights(fresh, source, require_heads=True)
    # Our PABEE checkpoint round-trips with every head.
    checkpoints.save_checkpoint(model, str(tmp_path / "pabee"), {"head_dropout": 0.1})
    source = checkpoints.resolve_source(str(tmp_path / "pabee"))
    again = build_model(source, 2)
    assert load_weights(again, source, require_heads=True) == 3
    for a, b in zip(model.weights, again.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    # An HF PABEE folder: classifiers.{i}.weight is (num_labels, hidden) and gets transposed.
    from safetensors.numpy import load_file, save_file
    folder = tmp_path / "hf_pabee"
    shutil.copytree(FIXTURES / "tiny_bert", folder)
    tensors = load_file(str(folder / "model.safetensors"))
    rng = np.random.default_rng(0)
    for i in range(3):
        tensors[f"classifiers.{i}.weight"] = rng.normal(size=(2, 16)).astype(np.float32)
        tensors[f"classifiers.{i}.bias"] = rng.normal(size=(2,)).astype(np.float32)
    save_file(tensors, str(folder / "model.safetensors"))
    source = checkpoints.resolve_source(str(folder))
    hf = build_model(source, 2)
    assert load_weights(hf, source, require_heads=True) == 3
    np.testing.assert_array_equal(hf.classifiers[1].kernel.numpy(),
                                  tensors["classifiers.1.weight"].T)
    with pytest.raises(UserError, match="classifiers.0.weight"):
        load_weights(build_model(source, 3), source)
