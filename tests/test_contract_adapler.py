"""The method contract (issue 12, item 5): at its no-op setting each method's logits equal the
plain `SequenceClassifier` on the same weights, and its checkpoints round-trip."""
import json

import numpy as np
import pytest

from adapler.soft_removal import EVAL_SHARPNESS, NO_REMOVAL_ETA
from adapler.model import build_model, load_checkpoint_into
from common.checkpoints import (load_backbone_weights, load_classifier, resolve_source,
                                save_checkpoint, variable_key)
from conftest import BACKBONES, FIXTURES

TINY = str(FIXTURES / "tiny_bert_cls")
ADAPLER_V1 = FIXTURES / "adapler_checkpoint_v1"
TOLERANCE = 1e-5


def padded_batch(seed, batch=6, length=12, width=16, vocab=35):
    """Right-padded inputs: [CLS] first, [SEP] last, lengths 3..length (row 0 the longest)."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(3, length + 1, size=batch)
    lengths[0] = length
    mask = (np.arange(width)[None] < lengths[:, None]).astype(np.int32)
    ids = rng.integers(5, vocab, size=(batch, width))
    ids[:, 0] = 2
    ids[np.arange(batch), lengths - 1] = 3
    ids = np.where(mask > 0, ids, 0).astype(np.int32)
    return {"input_ids": ids, "token_type_ids": np.zeros_like(ids), "attention_mask": mask}


def unpadded(features, row):
    n = int(features["attention_mask"][row].sum())
    return {key: value[row:row + 1, :n] for key, value in features.items()}


@pytest.fixture(scope="module", params=[TINY] + [str(FIXTURES / name) for name in BACKBONES[1:]],
                ids=["tiny_bert_cls"] + BACKBONES[1:])
def adapler_and_plain(request):
    plain = load_classifier(request.param, 3)[0]
    source = resolve_source(request.param)
    model = build_model(source.config, 3, 16)
    if not load_backbone_weights(model, source):  # a folder without a head (ALBERT's): share one
        model.classifier.set_weights(plain.classifier.get_weights())
    return model, plain


def test_adapler_removing_nothing_equals_plain_classifier(adapler_and_plain):
    """eta 1e-10 (and lambda 1e20 in soft mode) keeps every token: soft mode, batched hard mode
    and lr_mode one by one give the plain classifier's logits."""
    model, plain = adapler_and_plain
    features = padded_batch(0)
    expected = plain(features).numpy()
    tokens = features["attention_mask"].sum(axis=1)
    soft = model(features, eta=NO_REMOVAL_ETA, sharpness=EVAL_SHARPNESS)
    hard = model(features, lr_mode=True, eta=NO_REMOVAL_ETA)
    for outputs in (soft, hard):
        assert np.abs(outputs["logits"].numpy() - expected).max() <= TOLERANCE
        for length in outputs["lengths"]:
            np.testing.assert_array_equal(np.rint(length.numpy()), tokens)
    for row in range(len(tokens)):
        single = model(unpadded(features, row), lr_mode=True, eta=NO_REMOVAL_ETA)
        assert np.abs(single["logits"].numpy()[0] - expected[row]).max() <= TOLERANCE
        assert [int(k.shape[1]) for k in single["kept"]] == [tokens[row]] * 3


def test_adapler_checkpoint_round_trips(tmp_path, adapler_and_plain):
    """Every variable (backbone, head, CPs, eta, theta, lambda) comes back under its key."""
    model, _ = adapler_and_plain
    rng = np.random.default_rng(1)
    for predictor in model.predictors:
        predictor.out.kernel.assign(rng.normal(0, 2.0, predictor.out.kernel.shape))
    model.eta.assign([0.5, 0.7, 0.9])
    model.theta.assign([1.2, 0.8])
    model.sharpness.assign(123.0)
    folder = tmp_path / "adapler"
    save_checkpoint(model, str(folder), {"method": "adapler", "num_labels": 3, "max_length": 16,
                                         "eta": model.eta.numpy().tolist()})
    keys = {variable_key(v) for v in model.weights}
    assert {"adapler_eta", "adapler_theta", "adapler_lambda", "classifier/kernel",
            "exp_head_1/exp_head_pre/kernel", "exp_head_3/exp_head/bias"} <= keys
    assert all(key.startswith(("bert/", "classifier/", "exp_head_", "adapler_")) for key in keys)
    assert json.loads((folder / "config.json").read_text())["method"] == "adapler"

    loaded = build_model(resolve_source(str(folder)).config, 3, 16)
    load_checkpoint_into(loaded, str(folder), require_adapler=True)
    for before, after in zip(model.weights, loaded.weights):
        assert variable_key(before) == variable_key(after)
        np.testing.assert_array_equal(before.numpy(), after.numpy())
    features = padded_batch(2)
    for lr_mode in (False, True):
        np.testing.assert_array_equal(model(features, lr_mode=lr_mode)["logits"].numpy(),
                                      loaded(features, lr_mode=lr_mode)["logits"].numpy())


def test_adapler_checkpoint_of_the_loop_version_loads():
    """A checkpoint written before AdapLeR was a seam (its own three loops) loads by key and
    gives the outputs it gave then, in soft mode, batched hard mode and lr_mode."""
    reference = np.load(ADAPLER_V1 / "outputs.npz")
    features = {key: reference[key] for key in ("input_ids", "token_type_ids", "attention_mask")}
    model = build_model(resolve_source(str(ADAPLER_V1)).config, 3, 32)
    load_checkpoint_into(model, str(ADAPLER_V1), require_adapler=True)
    soft, hard = model(features), model(features, lr_mode=True)
    singles = [model(unpadded(features, row), lr_mode=True) for row in range(5)]
    outputs = {"soft": (soft["logits"], soft["lengths"]), "hard": (hard["logits"], hard["lengths"]),
               "single": (np.concatenate([s["logits"] for s in singles]),
                          [np.concatenate([s["lengths"][layer] for s in singles])
                           for layer in range(3)])}
    for mode, (logits, lengths) in outputs.items():
        np.testing.assert_allclose(np.asarray(logits), reference[f"{mode}_logits"],
                                   atol=TOLERANCE)
        np.testing.assert_allclose(np.stack(lengths, axis=1), reference[f"{mode}_lengths"],
                                   atol=1e-5)
    assert len(set(map(tuple, reference["single_lengths"].tolist()))) > 1  # tokens were removed
