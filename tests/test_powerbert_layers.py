"""PoWER-BERT building blocks against the reference's: significance, Extract and Soft-Extract
(model/model.py), retention derivation (training.py) and the --RETENTION_CONFIG parser
(utils/retention_parser.py)."""
import numpy as np
import pytest
import tensorflow as tf

from common.errors import UserError
from powerbert.extract import SoftExtract, extract, extract_positions, significance_ranks
from powerbert.retention import (derive_retention, format_retention, movement_warning,
                                 parse_retention)
from powerbert.significance import significance


def _softmax_probs(rng, mask, heads=3):
    """Attention probabilities as the backbone makes them: padded keys exactly 0, padded query
    rows ordinary distributions over the real keys."""
    batch, n = mask.shape
    scores = rng.normal(size=(batch, heads, n, n)).astype(np.float32)
    bias = (1.0 - mask[:, None, None, :]) * -10000.0
    return tf.nn.softmax(scores + bias, axis=-1).numpy()


def test_significance_is_column_sum_minus_diagonal_mean_over_heads():
    rng = np.random.default_rng(0)
    mask = np.array([[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1]], np.float32)
    probs = _softmax_probs(rng, mask)
    expected = np.mean([probs[:, h].sum(axis=1) - np.diagonal(probs[:, h], axis1=1, axis2=2)
                        for h in range(probs.shape[1])], axis=0)
    sig = np.asarray(significance(probs))
    np.testing.assert_allclose(sig, expected, rtol=1e-6, atol=1e-7)
    assert np.all(sig[0, 4:] == 0.0)  # padding receives exactly nothing
    assert np.all(sig[0, :4] > 0) and np.all(sig[1] > 0)
    assert np.all(probs[0, :, :, 4:] == 0.0)  # also from padded query rows
    np.testing.assert_allclose(probs.sum(-1), 1.0, rtol=1e-6)


def test_extract_worked_example():
    # [CLS] a b [SEP] PAD PAD, sig [0.9, 2.0, 0.5, 3.0, 0, 0], k=3 -> positions [0, 1, 3]
    x = np.arange(6, dtype=np.float32).reshape(1, 6, 1) * np.ones((1, 1, 2), np.float32)
    mask = np.array([[1, 1, 1, 1, 0, 0]], np.float32)
    sig = np.array([[0.9, 2.0, 0.5, 3.0, 0.0, 0.0]], np.float32)
    kept, kept_mask, positions = extract(x, mask, sig, 3)
    assert np.asarray(positions).tolist() == [[0, 1, 3]]
    assert np.asarray(kept)[0, :, 0].tolist() == [0.0, 1.0, 3.0]
    assert np.asarray(kept_mask).tolist() == [[1, 1, 1]]


def test_extract_never_ranks_cls_and_breaks_ties_to_lower_positions():
    sig = np.array([[-5.0, 1.0, 2.0, 2.0, 2.0, 0.0]], np.float32)  # [CLS] scores lowest
    assert np.asarray(extract_positions(sig, 3)).tolist() == [[0, 2, 3]]
    assert np.asarray(extract_positions(sig, 1)).tolist() == [[0]]  # k = 1: [CLS] only
    assert np.asarray(extract_positions(sig, 6)).tolist() == [[0, 1, 2, 3, 4, 5]]  # identity
    x = np.ones((1, 6, 4), np.float32)
    assert extract(x, np.ones((1, 6)), sig, 6)[0] is x  # k = n needs no gather


def test_extracted_mask_equals_prefix_of_mask_for_mixed_lengths():
    rng = np.random.default_rng(1)
    lengths = [9, 7, 4, 2, 1, 9]
    mask = np.array([[1] * n + [0] * (9 - n) for n in lengths], np.float32)
    sig = np.asarray(significance(_softmax_probs(rng, mask)))
    x = rng.normal(size=(len(lengths), 9, 5)).astype(np.float32)
    for k in range(1, 9):
        kept, kept_mask, positions = extract(x, mask, sig, k)
        positions = np.asarray(positions)
        np.testing.assert_array_equal(np.asarray(kept_mask), mask[:, :k])
        assert np.all(positions[:, 0] == 0) and np.all(np.diff(positions, axis=1) > 0)
        np.testing.assert_array_equal(np.asarray(kept),
                                      np.take_along_axis(x, positions[:, :, None], axis=1))


def test_significance_ranks_are_the_inverse_permutation():
    sig = np.array([[0.3, 0.9, 0.3, 0.0, 0.5]], np.float32)
    # descending: 1 (0.9), 4 (0.5), 0 (0.3), 2 (0.3, tie -> later), 3 (0.0)
    assert np.asarray(significance_ranks(sig, 5)).tolist() == [[2, 0, 3, 4, 1]]


def test_soft_extract_scales_each_vector_by_its_rank_parameter():
    layer = SoftExtract(5, penalty=0.1)
    x = np.arange(1, 11, dtype=np.float32).reshape(1, 5, 2)
    sig = np.array([[0.3, 0.9, 0.3, 0.0, 0.5]], np.float32)  # ranks [2, 0, 3, 4, 1]
    np.testing.assert_array_equal(np.asarray(layer(x, sig)), x)  # r = 1: identity
    r = np.array([1.0, 0.8, 0.6, 0.4, 0.2], np.float32)
    layer.retention.assign(r)
    expected = x * r[[2, 0, 3, 4, 1]][None, :, None]
    np.testing.assert_allclose(np.asarray(layer(x, sig)), expected, rtol=1e-6)
    assert layer.mass() == pytest.approx(3.0)
    assert float(layer.losses[0]) == pytest.approx(0.1 * 3.0)  # L1 with coefficient LAMBDA*l
    layer.retention.assign(layer.retention.constraint(np.array([-1, 0.5, 2, 1, 0], np.float32)))
    assert np.asarray(layer.retention).tolist() == [0.0, 0.5, 1.0, 1.0, 0.0]


def test_derive_retention():
    masses = [128.0, 127.9, 100.2, 100.7, 64.5, 0.3, 12.0, 3.99, 2.0, 0.0, 5.0, 1.0]
    assert derive_retention(masses) == [128, 127, 100, 100, 64, 1, 1, 1, 1, 1, 1, 1]
    rng = np.random.default_rng(2)
    for _ in range(20):
        config = derive_retention(rng.uniform(0, 64, size=6))
        assert len(config) == 6 and all(1 <= v <= 64 for v in config)
        assert all(a >= b for a, b in zip(config, config[1:]))


def test_parse_retention_accepts_valid_strings():
    assert parse_retention("128,128,64", 3, 128) == [128, 128, 64]
    assert parse_retention(" 64, 32 ,8", 3, 64) == [64, 32, 8]
    assert parse_retention("60,60,1", 3, 64) == [60, 60, 1]  # first value need not be N
    assert format_retention([64, 32, 8]) == "64,32,8"


@pytest.mark.parametrize("text, message", [
    ("64,a,8", "item 2 'a' is not an integer"),
    ("64,32.5,8", "item 2 '32.5' is not an integer"),
    ("[64,32,8]", "item 1 '\\[64' is not an integer"),
    ("64,32,0", "item 3 is 0; every block keeps at least 1"),
    ("64,-1,-1", "item 2 is -1"),
    ("65,32,8", "item 1 is 65, more than the task's sequence length 64"),
    ("64,32,48", "item 3 \\(48\\) is larger than the one before it \\(32\\)"),
    ("64,32", "has 2 values but the model has 3 blocks"),
    ("64,32,16,8", "has 4 values but the model has 3 blocks"),
    ("", "item 1 '' is not an integer"),
])
def test_parse_retention_rejects_bad_strings(text, message):
    with pytest.raises(UserError, match=message):
        parse_retention(text, 3, 64)


def test_movement_warning_names_the_flag_to_raise():
    assert movement_warning([40.5, 30.2, 20.9], 64, travel=0.4, lr_soft_extract=0.003) is None
    short = movement_warning([64, 62.9, 61.5], 64, travel=0.4, lr_soft_extract=0.003)
    assert "--LR_SOFT_EXTRACT to at least 0.0075" in short and "at most 0.40" in short
    assert "--LAMBDA" in movement_warning([64, 63, 62], 64, travel=1.5, lr_soft_extract=0.003)
