"""bert-speedup-export's command line (tools/export.py): bad input is one `error:` line, exit 2,
nothing written; a collapsed model exports with a warning; the README's REST payload runs
against the exported signature with `saved_model_cli run` (tensorflow-text's ops loaded)."""
import json
import os
import re
import shutil
import subprocess
import sys

import pytest

from conftest import FIXTURES, REPO
from tools.export import main

OLD = FIXTURES / "old_checkpoints"


def _fails(capsys, argv, message):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and re.search(message, err[0]), err


def test_bad_input_is_one_line_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "out"
    _fails(capsys, ["--model", str(tmp_path / "nowhere"), "--output_dir", str(out)],
           "model folder not found")
    _fails(capsys, ["--model", str(OLD / "powerbert" / "retrained"), "--output_dir", str(out),
                    "--patience", "2"], "patience does not apply to a powerbert model")
    _fails(capsys, ["--model", str(OLD / "finetune"), "--output_dir", str(out),
                    "--eta_offset", "0.1"], "eta_offset does not apply to a vanilla model")
    _fails(capsys, ["--model", str(OLD / "pabee"), "--output_dir", str(out),
                    "--patience", "-1"], "patience")
    assert not out.exists() and os.listdir(tmp_path) == []
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    _fails(capsys, ["--model", str(OLD / "finetune"), "--output_dir", str(out)],
           "not empty.*--overwrite_output_dir")
    _fails(capsys, ["--model", str(OLD / "finetune"), "--output_dir", str(out),
                    "--overwrite_output_dir"], "holds no earlier export")
    assert os.listdir(out) == ["notes.txt"] and os.listdir(tmp_path) == ["out"]
    _fails(capsys, ["--model", str(FIXTURES / "tiny_bert"), "--output_dir", str(tmp_path / "x")],
           "not a fine-tuned checkpoint")


def _serving_payload():
    """The REST request body of docs/export.md's TF Serving section."""
    text = (REPO / "docs" / "export.md").read_text(encoding="utf-8")
    return json.loads(re.search(r"-d '(\{.*?\})'", text, re.S).group(1))


def test_collapsed_model_exports_with_a_warning_and_serves_the_serving_payload(tmp_path, capsys):
    checkpoint = tmp_path / "collapsed"
    shutil.copytree(OLD / "finetune", checkpoint)
    sidecar = json.loads((checkpoint / "config.json").read_text())
    sidecar["training"] = {"collapsed": {"prediction": "positive", "examples": 872}}
    (checkpoint / "config.json").write_text(json.dumps(sidecar))
    out = tmp_path / "exported"
    assert main(["--model", str(checkpoint), "--output_dir", str(out)]) == 0
    captured = capsys.readouterr()
    assert "warning:" in captured.err and "one class" in captured.err
    assert "exported vanilla model" in captured.out
    assert sorted(os.listdir(out)) == ["assets", "fingerprint.pb", "saved_model.pb", "variables"]
    assert sorted(os.listdir(tmp_path)) == ["collapsed", "exported"]  # no staging left

    payload = _serving_payload()
    assert payload["signature_name"] == "serving_default"
    texts = payload["inputs"]["text"]
    code = ("import sys, tensorflow_text; from tensorflow.python.tools import saved_model_cli; "
            "sys.argv[0] = 'saved_model_cli'; saved_model_cli.main()")
    done = subprocess.run(
        [sys.executable, "-c", code, "run", "--dir", str(out), "--tag_set", "serve",
         "--signature_def", payload["signature_name"], "--input_exprs",
         f"text={json.dumps(texts)}"], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Result for output key label:" in done.stdout
    assert done.stdout.count("b'positive'") + done.stdout.count("b'negative'") == len(texts)

    # An earlier export is replaced with --overwrite_output_dir, not without.
    _fails(capsys, ["--model", str(checkpoint), "--output_dir", str(out)], "not empty")
    assert main(["--model", str(OLD / "pabee"), "--output_dir", str(out), "--patience", "1",
                 "--bf16", "--overwrite_output_dir"]) == 0
    meta = json.loads((out / "assets" / "bert_speedup.json").read_text())
    assert meta["method"] == "pabee" and meta["setting"]["patience"] == 1
    assert meta["precision"] == "bf16"
    import keras
    assert keras.mixed_precision.global_policy().name == "float32"  # the process's is back
    import tensorflow as tf
    outputs = tf.saved_model.load(str(out)).signatures["serving_default"](
        text=tf.constant(["a good movie", ""]))
    assert outputs["logits"].dtype == tf.float32 and outputs["layers_run"].shape == (2,)


def test_a_tokenizer_the_graph_cannot_run_exports_token_ids(tmp_path, capsys):
    """RoBERTa's byte-level BPE: the export takes ids (serving_default = token_ids), with a
    note, and gives the toolkit's logits on the toolkit's ids; the Python API refuses it."""
    import numpy as np
    import tensorflow as tf

    from common import checkpoints
    from common.api import load
    from common.errors import UserError
    from common.tokenization import encode, load_tokenizer

    folder = FIXTURES / "tiny_roberta"
    model, source, _ = checkpoints.load_classifier(str(folder), 2)
    checkpoint = tmp_path / "roberta"
    tokenizer = load_tokenizer(str(folder))
    checkpoints.save_checkpoint(model, str(checkpoint), {"task": "sst-2", "num_labels": 2,
                                                         "max_length": 16, "method": "vanilla"},
                                tokenizer=tokenizer)
    out = tmp_path / "exported"
    assert main(["--model", str(checkpoint), "--output_dir", str(out)]) == 0
    assert "cannot run in the graph" in capsys.readouterr().err
    meta = json.loads((out / "assets" / "bert_speedup.json").read_text())
    assert meta["signatures"]["serving_default"] == ["input_ids", "attention_mask",
                                                     "token_type_ids"]
    features = encode(tokenizer, ["a good film", "bad"], max_length=16)
    served = tf.saved_model.load(str(out)).signatures["serving_default"](
        **{key: tf.constant(features[key]) for key in meta["signatures"]["serving_default"]})
    np.testing.assert_allclose(served["logits"].numpy(), model(features).numpy(), atol=1e-5)
    with pytest.raises(UserError, match="token ids in only"):
        load(out)
