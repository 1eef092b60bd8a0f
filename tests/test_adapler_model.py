"""AdapLeR model mechanics on a tiny config (soft removal, lr_mode,
[CLS] kept, [SEP] droppable, pads ignored, monotone masks, CP shares, thresholds, batched vs one
by one, CP placement, attention dropout off)."""
import numpy as np
import pytest
import tensorflow as tf
from keras import ops

from adapler.model import AdapLeRClassifier
from adapler.soft_removal import BETA, EVAL_SHARPNESS, soft_removal
from common.checkpoints import load_backbone_weights, load_classifier, resolve_source
from common.config import BertConfig
from common.modeling import SequenceClassifier, dummy_inputs

TINY = "tests/fixtures/tiny_bert_cls"
# Eager calls that leave one token: Keras warns (once per process, in whichever test gets there
# first) that a softmax over one key is always 1, which is exactly the case under test.
pytestmark = pytest.mark.filterwarnings("ignore:You are using a softmax over axis -1")


def random_batch(rng, batch=6, length=12, vocab=35, pad_to=None):
    """Right-padded random inputs with [CLS] first and [SEP] last; lengths 3..length."""
    lengths = rng.integers(3, length + 1, size=batch)
    lengths[0] = length
    width = pad_to or length
    ids = rng.integers(5, vocab, size=(batch, width))
    ids[:, 0] = 2
    mask = (np.arange(width)[None] < lengths[:, None]).astype(np.int32)
    ids[np.arange(batch), lengths - 1] = 3
    ids = np.where(mask > 0, ids, 0).astype(np.int32)
    segments = np.zeros_like(ids)
    return {"input_ids": ids, "token_type_ids": segments, "attention_mask": mask}


def one(features, row):
    n = int(features["attention_mask"][row].sum())
    return {k: v[row:row + 1, :n] for k, v in features.items()}


@pytest.fixture(scope="module")
def model():
    """tiny_bert_cls weights (3 labels) with CP output kernels widened so shares differ."""
    source = resolve_source(TINY)
    m = AdapLeRClassifier(source.config, 3)
    m(dummy_inputs())
    load_backbone_weights(m, source)
    rng = np.random.default_rng(0)
    for predictor in m.predictors:
        predictor.out.kernel.assign(rng.normal(0, 2.0, predictor.out.kernel.shape))
    return m


@pytest.fixture(scope="module")
def plain():
    return load_classifier(TINY, 3)[0]


def test_no_removal_equals_plain_bert(model, plain):
    """Eta 1e-10 and lambda 1e20 remove nothing: the logits of plain BERT."""
    pristine = AdapLeRClassifier(model.config, 3)
    pristine(dummy_inputs())
    pristine.set_weights(model.get_weights())
    for predictor in pristine.predictors:  # stock CP init: shares never fall below 1e-10 / n
        predictor.out.kernel.assign(np.zeros(predictor.out.kernel.shape))
    features = random_batch(np.random.default_rng(1))
    expected = plain(features).numpy()
    soft = pristine(features, eta=1e-10, sharpness=EVAL_SHARPNESS)["logits"].numpy()
    np.testing.assert_allclose(soft, expected, atol=1e-4)
    hard = pristine(features, lr_mode=True, eta=1e-10)["logits"].numpy()
    np.testing.assert_allclose(hard, expected, atol=1e-4)
    for row in range(3):
        single = pristine(one(features, row), lr_mode=True, eta=1e-10)["logits"].numpy()
        np.testing.assert_allclose(single[0], expected[row], atol=1e-4)


def test_finite_lambda_leaks(model):
    """At lambda 10 every kept token is scaled by exp(-(1-p) 0.1 / (10 (1-delta)))."""
    features = random_batch(np.random.default_rng(2))
    out = model(features, eta=1e-10, sharpness=10.0, output_explanations=True, output_masks=True)
    real = features["attention_mask"].astype(bool)
    real[:, 0] = False
    p = out["explanations"][0].numpy()
    n = features["attention_mask"].sum(1, keepdims=True)
    delta = 1e-10 / n
    expected = np.exp(-(1 - p) * BETA / (10.0 * (1 - delta + 1e-7)))
    mask0 = out["masks"][0].numpy()
    np.testing.assert_allclose(mask0[real], expected[real], rtol=1e-5)
    assert (mask0[real] < 1).all()
    # later layers: m <- m * exp(m * S(p; eta / n))
    p1 = out["explanations"][1].numpy()
    length = mask0.sum(1, keepdims=True) + 1
    removal = soft_removal(p1, 1e-10 / length, 10.0).numpy() * mask0
    np.testing.assert_allclose(out["masks"][1].numpy()[real],
                               (mask0 * np.exp(removal))[real], rtol=1e-5)


@pytest.mark.parametrize("eta", [0.01, 0.5, 1.0])
@pytest.mark.parametrize("sharpness", [10.0, EVAL_SHARPNESS])
def test_cls_never_dropped(model, eta, sharpness):
    """[CLS] keeps attention offset 0 in soft mode and stays first in lr_mode."""
    features = random_batch(np.random.default_rng(3))
    out = model(features, eta=eta, sharpness=sharpness, output_masks=True)
    for bias in out["attention_biases"]:
        assert (bias.numpy()[:, 0] == 0).all()
    hard = model(features, lr_mode=True, eta=eta)
    for kept in hard["kept"]:
        assert (kept.numpy()[:, 0] == 0).all()


def uniform_except(model, layer, position, logit):
    """Make CP `layer` output logit 0 everywhere except `logit` at `position`."""
    def logits(hidden):
        length = ops.shape(hidden)[1]
        return ops.one_hot(ops.full((ops.shape(hidden)[0],), position), length) * logit
    model.predictors[layer].logits = logits


def test_sep_is_droppable_and_ties_are_kept():
    """A [SEP] with a tiny share goes; a share exactly delta stays."""
    m = AdapLeRClassifier(resolve_source(TINY).config, 3)
    m(dummy_inputs())
    features = random_batch(np.random.default_rng(4), batch=1, length=8)  # n = 8: exact 1/8
    uniform_except(m, 0, 7, 0.0)
    for predictor in m.predictors[1:]:
        predictor.logits = lambda hidden: ops.zeros(ops.shape(hidden)[:2])
    # uniform shares 1/8 and eta 1: every share equals delta exactly -> all kept
    out = m(features, eta=1.0, sharpness=EVAL_SHARPNESS)
    assert [float(n[0]) for n in out["lengths"]] == [8.0, 8.0, 8.0]
    assert [k.numpy().shape[1] for k in m(features, lr_mode=True, eta=1.0)["kept"]] == [8, 8, 8]
    # a slightly larger eta drops every token but [CLS]
    hard = m(features, lr_mode=True, eta=1.0001)
    assert hard["kept"][0].numpy().tolist() == [[0]]
    # a tiny share for [SEP] (position 7) removes it, nothing else
    uniform_except(m, 0, 7, -30.0)
    out = m(features, eta=0.5, sharpness=EVAL_SHARPNESS, output_masks=True)
    assert out["masks"][0].numpy()[0].tolist() == [0, 1, 1, 1, 1, 1, 1, 0]
    assert m(features, lr_mode=True, eta=0.5)["kept"][0].numpy().tolist() == [[0, 1, 2, 3, 4, 5, 6]]


def test_pads_never_count(model):
    """Pads get share 0 and never enter the lengths."""
    rng = np.random.default_rng(5)
    features = random_batch(rng, pad_to=16)
    out = model(features, eta=1e-10, sharpness=EVAL_SHARPNESS, output_explanations=True)
    pads = features["attention_mask"] == 0
    for shares in out["explanations"]:
        assert (shares.numpy()[pads] == 0).all()
    n = features["attention_mask"].sum(1)
    for length in out["lengths"]:
        np.testing.assert_array_equal(length.numpy(), n)


def test_monotone_masks_and_kept_sets(model):
    """Masks never grow; lr_mode kept sets shrink; lengths non-increasing."""
    features = random_batch(np.random.default_rng(6))
    for sharpness in (10.0, EVAL_SHARPNESS):
        out = model(features, eta=0.7, sharpness=sharpness, output_masks=True)
        masks = [m.numpy() for m in out["masks"]]
        for before, after in zip(masks, masks[1:]):
            assert (after <= before + 1e-7).all()
        lengths = [n.numpy() for n in out["lengths"]]
        for before, after in zip(lengths, lengths[1:]):
            assert (after <= before + 1e-5).all()
    for row in range(len(features["input_ids"])):
        kept = [set(k.numpy()[0].tolist()) for k in
                model(one(features, row), lr_mode=True, eta=0.7)["kept"]]
        for before, after in zip(kept, kept[1:]):
            assert after <= before


def test_cp_distribution(model):
    """Shares sum to 1 over [CLS] + survivors, 0 elsewhere, = masked softmax."""
    features = random_batch(np.random.default_rng(7), pad_to=14)
    out = model(features, eta=0.6, sharpness=10.0, output_explanations=True,
                output_masks=True, output_hidden_states=True)
    mask = features["attention_mask"].astype(np.float32)
    retention = [mask * (np.arange(14) > 0)] + [m.numpy() for m in out["masks"][:-1]]
    for layer, shares in enumerate(out["explanations"]):
        shares = shares.numpy()
        weights = retention[layer].copy()
        weights[:, 0] = 1.0
        logits = model.predictors[layer].logits(out["hidden_states"][layer]).numpy()
        expected = np.exp(logits - logits.max(1, keepdims=True)) * weights
        expected /= expected.sum(1, keepdims=True)
        np.testing.assert_allclose(shares, expected, atol=1e-6)
        np.testing.assert_allclose(shares.sum(1), 1.0, atol=1e-6)
        assert (shares[mask == 0] == 0).all()


def test_soft_removal_function():
    """Kink at delta, S(1) = 0, bounds, slopes, values at lambda 10, delta 0.05."""
    lam, delta = 10.0, 0.05
    s = lambda x, d=delta, l=lam: float(soft_removal(  # noqa: E731
        tf.constant(x, tf.float32), tf.constant(d, tf.float32), tf.constant(l, tf.float32)))
    assert s(0.0) == pytest.approx(-10.01, rel=1e-5)
    assert s(delta) == pytest.approx(-0.01, rel=1e-5)
    assert s(0.5) == pytest.approx(-0.005263, rel=1e-3)
    assert s(1.0) == 0.0
    assert s(delta - 1e-4) == pytest.approx(-BETA / lam - lam / delta * 1e-4, rel=1e-3)
    assert (s(0.6) - s(0.5)) / 0.1 == pytest.approx(BETA / (lam * (1 - delta)), rel=1e-3)
    assert (s(0.04) - s(0.03)) / 0.01 == pytest.approx(lam / delta, rel=1e-3)
    grid = np.linspace(0, 1, 101, dtype=np.float32)
    values = soft_removal(grid, np.float32(0.3), np.float32(1e5)).numpy()
    assert (values <= 0).all() and (values >= -10000).all()
    hard = np.exp(soft_removal(grid, np.float32(0.3), np.float32(EVAL_SHARPNESS)).numpy())
    np.testing.assert_array_equal(hard, (grid >= np.float32(0.3)).astype(np.float32))


def test_attention_bias_is_log_mask(model):
    """For real tokens the key offset is max(-10000, log m) at every layer."""
    features = random_batch(np.random.default_rng(8))
    out = model(features, eta=0.8, sharpness=10.0, output_masks=True)
    real = features["attention_mask"].astype(bool)
    real[:, 0] = False  # [CLS]: retention 0 by construction, offset 0 (test_cls_never_dropped)
    for mask, bias in zip(out["masks"], out["attention_biases"]):
        expected = np.maximum(-10000.0, np.log(np.maximum(mask.numpy(), 1e-38)))
        np.testing.assert_allclose(bias.numpy()[real], expected[real], atol=2e-4)


def test_batched_equals_one_by_one(model):
    """Batched soft mode at lambda 1e20, batched compaction and lr_mode one by one
    agree on argmax and per-layer kept counts for 200 random examples."""
    features = random_batch(np.random.default_rng(9), batch=200, length=14, pad_to=16)
    soft = model(features, eta=0.75, sharpness=EVAL_SHARPNESS)
    model.eta.assign(np.full(3, 0.75, np.float32))
    compact = model(features, lr_mode=True)
    spec = {k: tf.TensorSpec((1, None), tf.int32) for k in features}

    @tf.function(input_signature=[spec])
    def single(example):
        out = model(example, lr_mode=True)
        return out["logits"][0], tf.stack(out["lengths"], 1)[0]

    predictions, counts, single_logits = [], [], []
    for row in range(200):
        logits, lengths = single(one(features, row))
        predictions.append(int(np.argmax(logits)))
        counts.append(lengths.numpy().astype(int).tolist())
        single_logits.append(logits.numpy())
    model.eta.assign(np.full(3, 0.25, np.float32))
    soft_counts = np.rint(np.stack([n.numpy() for n in soft["lengths"]], 1)).astype(int)
    np.testing.assert_array_equal(soft_counts, counts)
    np.testing.assert_array_equal(np.stack([n.numpy() for n in compact["lengths"]], 1), counts)
    np.testing.assert_array_equal(np.argmax(soft["logits"].numpy(), 1), predictions)
    np.testing.assert_array_equal(np.argmax(compact["logits"].numpy(), 1), predictions)
    np.testing.assert_allclose(compact["logits"].numpy(), np.stack(single_logits), atol=1e-5)
    assert np.mean(counts, 0)[-1] < 0.8 * features["attention_mask"].sum(1).mean()


def test_cp_placement(model):
    """CP_0 reads the embedding output, CP_l the output of block l-1."""
    features = random_batch(np.random.default_rng(10))
    seen = []
    for predictor in model.predictors:
        original = type(predictor).logits.__get__(predictor)
        predictor.logits = (lambda f: lambda hidden: (seen.append(hidden.numpy()), f(hidden))[1])(
            original)
    try:
        out = model(features, eta=1e-10, sharpness=EVAL_SHARPNESS, output_hidden_states=True)
    finally:
        for predictor in model.predictors:
            del predictor.logits
    for layer in range(3):
        np.testing.assert_array_equal(seen[layer], out["hidden_states"][layer].numpy())


def test_attention_dropout_off_in_adapler_only():
    """AdapLeR's blocks have no attention-probability dropout, stage A's do."""
    config = BertConfig.from_json(TINY)
    config.hidden_dropout_prob = 0.0
    adapler = AdapLeRClassifier(config, 3, classifier_dropout=0.0)
    stock = SequenceClassifier(config, 3, classifier_dropout=0.0)
    features = random_batch(np.random.default_rng(11))
    adapler(features), stock(features)
    assert all(b.attention.probs_dropout.rate == 0 for b in adapler.bert.blocks)
    assert all(b.attention.probs_dropout.rate > 0 for b in stock.bert.blocks)
    a1 = adapler(features, training=True, eta=1e-10)["logits"].numpy()
    a2 = adapler(features, training=True, eta=1e-10)["logits"].numpy()
    np.testing.assert_array_equal(a1, a2)
    assert not np.allclose(stock(features, training=True).numpy(),
                           stock(features, training=True).numpy())


def test_single_example_with_pads_equals_unpadded(model):
    """The batch-1 path drops a padded example's pads first: same tokens and logits as the
    unpadded text."""
    features = random_batch(np.random.default_rng(11), batch=3, length=10, pad_to=16)
    for row in range(3):
        padded = {k: v[row:row + 1] for k, v in features.items()}
        a, b = model(padded, lr_mode=True, eta=0.8), model(one(features, row), lr_mode=True, eta=0.8)
        np.testing.assert_allclose(a["logits"].numpy(), b["logits"].numpy(), atol=1e-6)
        assert [k.numpy().tolist() for k in a["kept"]] == [k.numpy().tolist() for k in b["kept"]]


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_lr_mode_under_mixed_precision(policy):
    """lr_mode (batched compaction and one example alone) runs under a mixed policy, where the
    compacted mask follows the half-precision hidden states, and keeps the tokens float32
    keeps on a model whose shares are far from the threshold."""
    import keras

    source = resolve_source(TINY)
    features = random_batch(np.random.default_rng(3), batch=4, length=10)
    kept = {}
    try:
        for name in ("float32", policy):
            keras.mixed_precision.set_global_policy(name)
            m = AdapLeRClassifier(source.config, 3)
            m(dummy_inputs())
            load_backbone_weights(m, source)
            batched = m(features, lr_mode=True, eta=0.5)
            alone = m(one(features, 1), lr_mode=True, eta=0.5)
            assert np.isfinite(batched["logits"].numpy()).all()
            assert np.isfinite(alone["logits"].numpy()).all()
            kept[name] = [k.numpy().shape[1] for k in batched["kept"]]
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert kept[policy] == kept["float32"]
