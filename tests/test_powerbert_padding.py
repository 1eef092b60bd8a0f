"""PoWER-BERT on length-sorted, dynamically padded batches (issue 17): block l keeps
min(k_l, n) word-vectors of a batch of length n (or ceil(k_l * n / N) with `length_scaled`), in
eager mode, in a graph traced for any length and under XLA; with `padding_queries=False` the
predictions equal those of the run padded to N, on a tiny model and on real GLUE dev rows."""
import os

import numpy as np
import pytest
import tensorflow as tf

from common import checkpoints
from common.modeling import dummy_inputs
from conftest import FIXTURES
from test_powerbert_model import N, _inputs, _plain, _powerbert

RETENTION = [8, 5, 2]
GLUE = "/work/shared/data/glue"


def _trim(inputs, n):
    return {key: value[:, :n] for key, value in inputs.items()}


def _sorted_batches(inputs, batch_size):
    """Length-sorted batches, each padded to its longest row: (rows, padded, trimmed)."""
    lengths = inputs["attention_mask"].sum(1)
    order = np.argsort(-lengths, kind="stable")
    for start in range(0, len(order), batch_size):
        rows = order[start:start + batch_size]
        padded = {key: value[rows] for key, value in inputs.items()}
        yield rows, padded, _trim(padded, int(lengths[rows].max()))


def _kept_real(records, lengths):
    """Per layer, per row: the set of real positions kept."""
    return [[set(p[p < length].tolist()) for p, length in zip(np.asarray(kept), lengths)]
            for kept in records["positions"]]


def test_a_short_batch_keeps_min_k_n(tmp_path):
    plain = _plain()
    inputs = _trim(_inputs([7, 6, 3]), 7)
    fixed = _powerbert(plain, tmp_path, retention=RETENTION)
    records = fixed.forward(inputs)[1].records
    assert records["lengths"] == [7, 5, 2]
    assert all(np.asarray(p).max() < 7 for p in records["positions"])
    scaled = _powerbert(plain, tmp_path, retention=RETENTION, length_scaled=True, max_length=N)
    assert scaled.forward(inputs)[1].records["lengths"] == [5, 3, 2]  # ceil(k * 7 / 12)
    full = _inputs([12, 7])
    assert scaled.forward(full)[1].records["lengths"] == RETENTION  # n = N: the fixed k_l
    np.testing.assert_array_equal(np.asarray(scaled(full)), np.asarray(fixed(full)))


@pytest.mark.parametrize("length_scaled", [False, True])
def test_graph_with_a_dynamic_length_and_xla_match_eager(length_scaled, tmp_path):
    model = _powerbert(_plain(), tmp_path, retention=RETENTION, length_scaled=length_scaled,
                       max_length=N)
    spec = tf.TensorSpec((None, None), tf.int32)
    signature = [{"input_ids": spec, "token_type_ids": spec, "attention_mask": spec}]
    graph = tf.function(lambda x: model(x, training=False), input_signature=signature)
    xla = tf.function(lambda x: model(x, training=False), jit_compile=True)
    inputs = _inputs([12, 9, 9, 5, 3, 1])
    for n in (12, 9, 5):
        batch = _trim(inputs, n)
        eager = np.asarray(model(batch))
        np.testing.assert_allclose(np.asarray(graph(batch)), eager, atol=1e-5)
        if n != 12:
            np.testing.assert_allclose(np.asarray(xla(batch)), eager, atol=1e-5)
    assert graph.experimental_get_tracing_count() == 1  # one graph for every length


def test_predictions_identical_to_the_padded_run(tmp_path):
    plain = _plain()
    exact = _powerbert(plain, tmp_path, retention=RETENTION, padding_queries=False)
    faithful = _powerbert(plain, tmp_path, retention=RETENTION)
    rng = np.random.default_rng(5)
    lengths = rng.integers(1, N + 1, 24).tolist()
    inputs = _inputs(lengths, seed=5)
    for rows, padded, trimmed in _sorted_batches(inputs, 6):
        real = inputs["attention_mask"][rows].sum(1)
        full, full_state = exact.forward(padded)
        short, short_state = exact.forward(trimmed)
        np.testing.assert_allclose(np.asarray(short), np.asarray(full), atol=1e-5)
        assert (_kept_real(short_state.records, real) == _kept_real(full_state.records, real))
        # The reference's significance also counts padded query rows, so only rows that lose
        # nothing but padding are sure to match there.
        only_padding = real <= min(RETENTION)
        np.testing.assert_allclose(np.asarray(faithful(trimmed))[only_padding],
                                   np.asarray(faithful(padded))[only_padding], atol=1e-5)


@pytest.mark.parametrize("task, max_length, retention, rows", [
    ("sst-2", 64, [41, 33, 26, 18, 17, 9], 96),
    ("mrpc", 128, [90, 70, 52, 36, 28, 16], 48)])
def test_real_dev_rows_predict_as_the_padded_run(task, max_length, retention, rows):
    from common.data import default_model_dir, encode_examples, read_split
    from common.errors import UserError
    from common.tasks import get_task
    from common.tokenization import load_tokenizer
    from powerbert.model import PowerBertClassifier

    folder = os.path.join(GLUE, get_task(task).folder)
    if not os.path.isfile(os.path.join(folder, "dev.tsv")):
        pytest.skip(f"no {folder}/dev.tsv")
    try:
        model_dir = default_model_dir()
    except UserError as err:
        pytest.skip(str(err))
    examples = read_split(task, folder, "dev")
    inputs = encode_examples(load_tokenizer(model_dir), examples, max_length)
    inputs = {key: value[:rows] for key, value in inputs.items() if key != "labels"}
    source = checkpoints.resolve_source(model_dir)
    model = PowerBertClassifier(source.config, 2, retention=retention, padding_queries=False)
    model(dummy_inputs(max_length))
    checkpoints.load_backbone_weights(model, source)
    kernel = model.classifier.kernel  # a random, seeded head: an equality test needs no training
    kernel.assign(np.random.default_rng(0).normal(size=kernel.shape).astype(np.float32))
    removed = 0
    for _, padded, trimmed in _sorted_batches(inputs, 16):
        full, short = np.asarray(model(padded)), np.asarray(model(trimmed))
        np.testing.assert_array_equal(short.argmax(-1), full.argmax(-1))
        np.testing.assert_allclose(short, full, atol=1e-4)
        removed += max_length - trimmed["input_ids"].shape[1]
    assert removed > 0  # the batches really were shorter than N
