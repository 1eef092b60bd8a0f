"""bf16 and fp16 runs of every pipeline on tiny models: the command lines take the flags, training
finishes with finite losses, and predictions with large margins match float32."""
import json
import pickle
import math
import re

import h5py
import keras
import numpy as np
import pytest

import tests.test_adapler_pipeline as adapler_case
import tests.test_pabee_cli as pabee_case
import tests.test_powerbert_cli as powerbert_case
from common.files import file_digest
from conftest import FIXTURES
from tools import finetune

TINY = str(FIXTURES / "tiny_bert")


@pytest.fixture(autouse=True)
def restore_policy():
    yield
    keras.mixed_precision.set_global_policy("float32")


def losses(text):
    """Every train/update loss the run printed."""
    found = [float(v) for v in re.findall(r"(?:train_loss=|\"loss\": |average loss = )"
                                          r"(-?[\d.e+-]+|nan|inf)", text)]
    assert found, text[-2000:]
    return found


@pytest.mark.parametrize("flag", ["--bf16", "--fp16"])
def test_finetune_and_pabee(flag, tmp_path, capsys):
    data = tmp_path / "SST-2"
    data.mkdir()
    for split in ("train", "dev"):
        (data / f"{split}.tsv").write_text("\n".join(
            ["sentence\tlabel"] + [f"a {w} movie\t{int(w in ('good', 'fun'))}"
                                   for w in ("good", "bad", "fun", "awful")] * 4) + "\n")
    finetune.main(["--model", TINY, "--task", "sst-2", "--data_dir", str(data), "--output_dir",
                   str(tmp_path / "ft"), "--epochs", "1", "--batch_size", "8", "--max_length",
                   "16", flag])
    pabee_case.main(pabee_case.flags(tmp_path, tmp_path / "pabee", "--do_train",
                                     "--per_gpu_train_batch_size", "8", "--max_steps", "2",
                                     "--logging_steps", "1", "--save_steps", "0",
                                     "--gradient_accumulation_steps", "2", "--do_eval",
                                     "--patience", "0,1", flag))
    out = capsys.readouterr().out
    assert all(math.isfinite(v) for v in losses(out))
    assert keras.mixed_precision.global_policy().name == {"--bf16": "mixed_bfloat16",
                                                          "--fp16": "mixed_float16"}[flag]


def test_both_flags_exit_2(tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        finetune.main(["--model", TINY, "--output_dir", str(tmp_path), "--bf16", "--fp16"])
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "exclude each other" in err and "\n" not in err


@pytest.fixture(scope="module")
def powerbert_fp32(tmp_path_factory):
    """A float32 PoWER-BERT run (fine-tuned to large margins) and its test-set probabilities."""
    root = tmp_path_factory.mktemp("precision_powerbert")
    data = root / "MRPC"
    powerbert_case._write_task(data, "mrpc")
    config = powerbert_case._task_config(root / "task_config.json", "mrpc")
    common = ["--TASK", "mrpc", "--VOCAB_PATH", f"{TINY}/vocab.txt", "--DATA_DIR", data,
              "--TASK_CONFIG_PATH", config, "--BATCH_SIZE", 8]
    assert powerbert_case._run(common + ["--CHECKPOINT_PATH", TINY, "--EPOCHS", 1, "--LR_BERT",
                                         1e-3, "--LR_SOFT_EXTRACT", 0.02, "--LAMBDA", 0.01,
                                         "--OUTPUT_DIR", root / "fp32",
                                         "--ALLOW_COLLAPSED"]) == 0
    # Large margins: the tiny run barely moves the head, so scale it up (and record the
    # changed weights file in the sidecar's manifest, which the loader checks).
    retrained = root / "fp32" / "retrained"
    with h5py.File(retrained / "model.weights.h5", "r+") as weights:
        weights["classifier/kernel"][...] = weights["classifier/kernel"][()] * 300
    sidecar = json.loads((retrained / "config.json").read_text())
    sidecar["files"]["model.weights.h5"] = file_digest(retrained / "model.weights.h5")
    (retrained / "config.json").write_text(json.dumps(sidecar))
    return root, common


def _predict(root, common, name, *flags):
    out = root / name
    assert powerbert_case._run(common + ["--CHECKPOINT_PATH", root / "fp32" / "retrained",
                                         "--PREDICT_ONLY", "--OUTPUT_DIR", out, *flags]) == 0
    rows = (out / "prediction.txt").read_text().split("\n")
    return np.array([[float(x) for x in row.strip("[]").split()] for row in rows if row])


@pytest.mark.parametrize("flag", ["--BF16", "--FP16"])
def test_powerbert_stages_and_predictions(flag, powerbert_fp32, tmp_path, capsys):
    root, common = powerbert_fp32
    assert powerbert_case._run(common + ["--CHECKPOINT_PATH", TINY, "--EPOCHS", 1,
                                         "--LR_BERT", 1e-3, "--LR_SOFT_EXTRACT", 0.02,
                                         "--LAMBDA", 0.01, "--OUTPUT_DIR", tmp_path, flag,
                                         "--ALLOW_COLLAPSED"]) == 0
    assert all(math.isfinite(v) for v in losses(capsys.readouterr().out))
    keras.mixed_precision.set_global_policy("float32")
    expected = _predict(root, common, "pred32")
    mixed = _predict(root, common, f"pred{flag}", flag)
    large = np.abs(expected[:, 1] - expected[:, 0]) > 0.2
    assert large.sum() >= len(expected) // 2, expected  # the check below has rows to compare
    assert (mixed.argmax(1) == expected.argmax(1))[large].all()
    assert np.abs(mixed - expected).max() < 0.05


@pytest.mark.parametrize("flag", ["--BF16", "--FP16"])
def test_adapler_stages(flag, tmp_path, monkeypatch, capsys):
    adapler_case.make_workdir(tmp_path)
    monkeypatch.chdir(tmp_path)
    common = adapler_case.COMMON + [flag]
    adapler_case.finetune_main(common + ["--EPOCHS", "1", "--BATCH_SIZE", "8",
                                         "--LEARNING_RATE", "1e-3"])
    adapler_case.saliency_main(common + ["--BATCH_SIZE", "8", "--ALLOW_COLLAPSED"])
    adapler_case.train_main(common + ["--GAMMA", "0.005", "--PHI", "0.0005", "--SAVE_NAME",
                                      "run", "--BATCH_SIZE", "8", "--EPOCHS", "1"])
    out = capsys.readouterr().out
    assert all(math.isfinite(v) for v in losses(out))
    history = adapler_case.TASK_DIR / "logs" / "run_GAMMA0.005_PHI0.0005.pkl"
    steps = pickle.loads(history.read_bytes())
    assert np.isfinite(steps["loss"]).all() and np.isfinite(steps["head_loss"]).all()
    model = adapler_case.TASK_DIR / "models/adaptive_lr/run_GAMMA0.005_PHI0.0005_lr"
    adapler_case.evaluation_main(["--TASK", "sst2", "--MAX_LENGTH", "16", "--SPLIT", "dev",
                                  "--LR_MODEL", "--MODEL_PATH", str(model), flag])
    assert json.loads((model / "config.json").read_text())["method"] == "adapler"
