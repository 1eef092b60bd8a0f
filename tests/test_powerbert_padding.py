"""PoWER-BERT on length-sorted, dynamically padded batches (issue 17): block l keeps
min(k_l, n) word-vectors of a batch of length n (or ceil(k_l * n / N) with `length_scaled`), in
eager mode, in a graph traced for any length and under XLA; with `padding_queries=False` the
predictions equal those of the run padded to N, on a tiny model and on real GLUE dev rows
(`powerbert.speed.compare_padding` compares the two runs, `tools/powerbert_padding.py` prints it)."""
import os

import numpy as np
import pytest
import tensorflow as tf

from common import checkpoints
from common.modeling import dummy_inputs
from conftest import FIXTURES
from test_powerbert_model import N, _inputs, _plain, _powerbert
from powerbert.speed import compare_padding
from conftest import SHARED_DATA

RETENTION = [8, 5, 2]
GLUE = str(SHARED_DATA / "glue")


def _trim(inputs, n):
    return {key: value[:, :n] for key, value in inputs.items()}


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


def test_flops_count_the_rows_as_run():
    from common import flops
    from powerbert.flops import powerbert_flops
    from common.config import BertConfig
    from powerbert.speed import clipped, items_flops

    config = BertConfig.from_json(str(FIXTURES / "tiny_bert" / "config.json"))
    assert clipped(RETENTION, 7) == [7, 5, 2]
    assert clipped(RETENTION, 7, scaled_from=N) == [5, 3, 2]  # ceil(k * 7 / 12)
    mask = np.array([[1] * 7, [1] * 4 + [0] * 3])
    item = {"input_ids": np.ones_like(mask), "attention_mask": mask}
    vanilla, method = items_flops(config, RETENTION, [item], 2, scaled_from=N)
    assert vanilla == flops.vanilla_flops(config, 7, 2) + flops.vanilla_flops(config, 4, 2)
    # The 4-token row sits in a batch of width 7: it keeps min(ceil(k * 7 / 12), 4) per block.
    assert method == (powerbert_flops(config, 7, [5, 3, 2], 2)
                      + powerbert_flops(config, 4, [4, 3, 2], 2))


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
    lengths = np.random.default_rng(5).integers(1, N + 1, 24)
    inputs = _inputs(lengths.tolist(), seed=5)
    result = compare_padding(exact, inputs, 6)
    assert result["mean_batch_length"] < N  # the batches really were shorter than N
    assert result["row_blocks_keeping_other_tokens"] == 0 < result["row_blocks"]
    assert result["predictions_differ"] == 0 and result["max_logit_diff"] < 1e-5
    # The reference's significance also counts padded query rows, so there only the rows that
    # lose nothing but padding are sure to match.
    faithful = _powerbert(plain, tmp_path, retention=RETENTION)
    result = compare_padding(faithful, inputs, 6)
    only_padding = lengths <= min(RETENTION)
    np.testing.assert_allclose(result["dynamic_logits"][only_padding],
                               result["padded_logits"][only_padding], atol=1e-5)


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
    inputs = {key: value[:rows] for key, value in inputs.items()}
    source = checkpoints.resolve_source(model_dir)
    model = PowerBertClassifier(source.config, 2, retention=retention, padding_queries=False)
    model(dummy_inputs(max_length))
    checkpoints.load_backbone_weights(model, source)
    kernel = model.classifier.kernel  # a random, seeded head: an equality test needs no training
    kernel.assign(np.random.default_rng(0).normal(size=kernel.shape).astype(np.float32))
    result = compare_padding(model, inputs, 16)
    assert result["mean_batch_length"] < max_length
    np.testing.assert_array_equal(result["dynamic_logits"].argmax(-1),
                                  result["padded_logits"].argmax(-1))
    assert result["row_blocks_keeping_other_tokens"] == 0
    assert result["max_logit_diff"] < 1e-4


def test_padding_tool_bad_input_is_one_line(capsys):
    from tools import powerbert_padding
    with pytest.raises(SystemExit) as stop:
        powerbert_padding.main(["--task", "sst-2", "--data_dir", str(FIXTURES), "--batch_size",
                                "0"])
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: --batch_size and --rows must be >= 1"]
