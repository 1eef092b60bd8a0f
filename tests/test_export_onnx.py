"""`--format onnx` (common.export.onnx; the optional `onnx` extra, skipped without it): a model
whose graph tf2onnx converts gets a model.onnx that ONNX Runtime runs with the SavedModel's
logits; one it cannot convert (exact GELU's Erfc) is one error line naming the op and pointing
to the SavedModel, which is written and loads."""
import json
import os

import numpy as np
import pytest
import tensorflow as tf

from common.tokenization import encode, load_tokenizer
from conftest import FIXTURES
from export_cases import MAX_LENGTH, make_checkpoint
from tools.export import main

pytest.importorskip("tf2onnx")
onnxruntime = pytest.importorskip("onnxruntime")


def test_unsupported_op_is_one_line_and_keeps_the_savedmodel(tmp_path, capsys):
    out = tmp_path / "exported"
    with pytest.raises(SystemExit) as exit_info:
        main(["--model", str(FIXTURES / "old_checkpoints" / "finetune"), "--output_dir",
              str(out), "--format", "onnx"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Erfc" in err[0] and "the SavedModel" in err[0]
    assert str(out) in err[0] and not (out / "model.onnx").exists()
    assert "token_ids" in tf.saved_model.load(str(out)).signatures


def test_converted_model_runs_in_onnx_runtime(tmp_path):
    """AdapLeR (data-dependent shapes, a batch-1 conditional) with the tanh GELU converts."""
    checkpoint = make_checkpoint("adapler", tmp_path / "ckpt")
    sidecar = json.loads((tmp_path / "ckpt" / "config.json").read_text())
    sidecar["backbone"]["hidden_act"] = "gelu_new"
    (tmp_path / "ckpt" / "config.json").write_text(json.dumps(sidecar))
    out = tmp_path / "exported"
    assert main(["--model", checkpoint, "--output_dir", str(out), "--format", "onnx"]) == 0
    session = onnxruntime.InferenceSession(str(out / "model.onnx"),
                                           providers=["CPUExecutionProvider"])
    texts = ["a good movie", "not a very fun film , but the acting is great !", ""]
    features = encode(load_tokenizer(checkpoint), texts, None, MAX_LENGTH)
    width = int(features["attention_mask"].sum(1).max())
    features = {key: value[:, :width] for key, value in features.items()}
    names = [output.name for output in session.get_outputs()]
    onnx_out = dict(zip(names, session.run(None, features)))
    saved = tf.saved_model.load(str(out)).signatures["token_ids"](
        **{key: tf.constant(value) for key, value in features.items()})
    np.testing.assert_allclose(onnx_out["logits"], saved["logits"].numpy(), atol=1e-5)
    np.testing.assert_array_equal(onnx_out["tokens_kept"], saved["tokens_kept"].numpy())
    assert os.path.isfile(out / "assets" / "bert_speedup.json")

    # The benchmark times model.onnx (ONNX Runtime, a worker process) beside the SavedModel.
    from tools.benchmark_export import main as benchmark
    record = tmp_path / "bench.json"
    assert benchmark(["--dense", str(out), "--onnx", f"onnx={out / 'model.onnx'}",
                      "--examples", "6", "--batch_sizes", "1,3", "--repeats", "1",
                      "--json", str(record)]) == 0
    groups = json.loads(record.read_text())["groups"]
    assert all({"onnx", "dense", "dense-ids-in"} <= {row["side"] for row in group["rows"]}
               for group in groups)
