"""`python -m powerbert` end to end on a tiny model and tiny data: the three stages, the log file
(the reference's records), --EVAL_ONLY, --PREDICT_ONLY --PRED_GLUE, a regression task, and every
bad input of the issue (one `error:` line, exit code 2, nothing written)."""
import json
import os
import random
import re
import subprocess
import sys

import numpy as np
import pytest

from common import checkpoints
from common.runlog import read_events
from common.modeling import SequenceClassifier, dummy_inputs
from conftest import FIXTURES, REPO
from powerbert import cli

TINY = str(FIXTURES / "tiny_bert")
N = 16
GOOD, BAD = ["good", "great", "fun"], ["bad", "awful", "boring"]
FILL = ["the", "movie", "film", "was", "is", "very", "plot", "acting", "story", "it", "this",
        "that", "and", ",", "."]


def _sentence(rng, label):
    words = [rng.choice(FILL) for _ in range(rng.randint(2, 6))]
    words.insert(rng.randrange(len(words) + 1), rng.choice(GOOD if label else BAD))
    return " ".join(words)


def _write_task(folder, task, sizes=(("train", 32), ("dev", 16), ("test", 10))):
    """A tiny GLUE-format data folder for 'mrpc' or 'sts-b' in the tiny vocabulary."""
    rng = random.Random(0)
    os.makedirs(folder, exist_ok=True)
    for split, count in sizes:
        rows = []
        for i in range(count):
            a, b = _sentence(rng, i % 2), _sentence(rng, (i // 2) % 2)
            if task == "mrpc":
                first = i if split == "test" else i % 2  # test: index; else: label
                rows.append(f"{first}\t1\t2\t{a}\t{b}")
            else:
                head = f"{i}\tmain\tx\t2012\t{i}\t0\t0\t{a}\t{b}"
                rows.append(head if split == "test" else f"{head}\t{2.5 * (i % 3):.1f}")
        header = ("Quality\t#1 ID\t#2 ID\t#1 String\t#2 String" if task == "mrpc" else
                  "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2"
                  + ("" if split == "test" else "\tscore"))
        with open(os.path.join(folder, f"{split}.tsv"), "w", encoding="utf-8") as out:
            out.write(header + "\n" + "\n".join(rows) + "\n")


def _task_config(path, task, seq_len=N, classes=2):
    with open(path, "w", encoding="utf-8") as out:
        json.dump({task: {"seq_len": seq_len, "num_classes": classes}}, out)
    return str(path)


def _run(argv):
    """cli.main in-process; returns its exit code."""
    try:
        return cli.main([str(a) for a in argv])
    except SystemExit as stop:
        return stop.code


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One full training run on tiny MRPC (3 stages x 2 epochs)."""
    root = tmp_path_factory.mktemp("powerbert")
    data = root / "MRPC"
    _write_task(data, "mrpc")
    config = _task_config(root / "task_config.json", "mrpc")
    out = root / "new" / "out"  # does not exist yet: the CLI creates it
    code = _run(["--TASK", "mrpc", "--CHECKPOINT_PATH", TINY, "--VOCAB_PATH",
                 f"{TINY}/vocab.txt", "--DATA_DIR", data, "--TASK_CONFIG_PATH", config,
                 "--EPOCH", 2, "--BATCH_SIZE", 8, "--LR_BERT", 1e-3, "--LR_SOFT_EXTRACT", 0.02,
                 "--LAMBDA", 0.01, "--OUTPUT_DIR", out,
                 "--ALLOW_COLLAPSED"])  # the tiny model may predict one class after stage 1
    assert code == 0
    return {"root": root, "data": data, "config": config, "out": out}


def test_training_writes_three_checkpoints_and_the_log(trained):
    out = trained["out"]
    for stage in ("finetune", "configuration_search_model", "retrained"):
        assert (out / stage / "model.weights.h5").is_file()
        assert checkpoints.read_sidecar(str(out / stage))["method_state"]["stage"] == stage
    log = (out / "log_file.txt").read_text()
    lines = log.split("\n")
    assert lines[0].startswith("Command-Line arguments :Namespace(EPOCHS=2, ")
    assert lines[1].startswith(" Fine-tuned model accuracies for all epochs on the Dev set:[")
    assert lines[2].startswith(" Fine-tuned model f1 for all epochs on the Dev set:[")
    retention = json.loads(next(l for l in lines if l.startswith(" Retention Configuration :"))
                           .split(":", 1)[1])
    assert len(retention) == 3 and all(isinstance(v, int) for v in retention)
    assert f" RETENTION_CONFIG={','.join(map(str, retention))}" in lines
    assert any(l.startswith(" Re-trained model accuracies for all epochs on the Dev set:[")
               for l in lines)
    assert any(l.startswith(" Re-trained model f1 for all epochs") for l in lines)
    assert lines[-1].startswith(" FLOPs speed-up : ")
    assert not log.endswith("\n")
    retrained = checkpoints.read_sidecar(str(out / "retrained"))
    assert retrained["method_state"]["retention_config"] == retention
    assert retrained["max_length"] == N
    events = read_events(out / "run_log.jsonl", "record")
    assert [e["text"] for e in events] == [line[1:] for line in lines[1:]]
    # The search ran 8 steps at LR_SOFT_EXTRACT 0.02: far too little to move.
    assert any(l.startswith(" Warning: the retention configuration barely moved") and
               "raise --LR_SOFT_EXTRACT" in l for l in lines)


def test_eval_only_appends_to_the_log(trained, capsys):
    out = trained["out"]
    before = (out / "log_file.txt").read_text()
    common = ["--TASK", "mrpc", "--DATA_DIR", trained["data"], "--TASK_CONFIG_PATH",
              trained["config"], "--EVAL_ONLY", "--BATCH_SIZE", 128, "--OUTPUT_DIR", out]
    assert _run(["--CHECKPOINT_PATH", out / "retrained", "--MODEL_FORMAT", "HDF5"] + common) == 0
    log = (out / "log_file.txt").read_text()
    assert log.startswith(before)  # the training log survives
    record = log[len(before):].split("\n")
    assert record[1].startswith("Command-Line arguments :Namespace(")
    assert record[2].startswith("loss : ") and record[3].startswith("accuracy : ")
    assert any(l.startswith("f1 : ") for l in record)
    accuracy = float(record[3].split(" : ")[1])
    sidecar = checkpoints.read_sidecar(str(out / "retrained"))
    assert accuracy == pytest.approx(100 * sidecar["training"]["dev"]["acc"], abs=1e-3)
    retention = sidecar["method_state"]["retention_config"]
    printed = capsys.readouterr().out
    assert f"retention configuration: {','.join(map(str, retention))}" in printed
    # Printed as fractions with 4 decimals, as training prints them (the log keeps percent).
    assert f"acc {accuracy / 100:.4f}" in printed and "accuracy : " not in printed
    # An explicit configuration in the comma form of the log, and the full-length default.
    weights = out / "retrained" / "model.weights.h5"
    assert _run(["--CHECKPOINT_PATH", weights, "--RETENTION_CONFIG", "16,16,16"] + common) == 0
    assert "retention configuration: 16,16,16" in capsys.readouterr().out


def test_length_scaled_retention_on_padded_batches(trained):
    """Evaluation batches padded to N: ceil(k_l * N / N) = k_l, the same metrics."""
    common = ["--TASK", "mrpc", "--DATA_DIR", trained["data"], "--TASK_CONFIG_PATH",
              trained["config"], "--EVAL_ONLY", "--CHECKPOINT_PATH",
              trained["out"] / "retrained", "--OUTPUT_DIR", trained["out"]]
    log = trained["out"] / "log_file.txt"

    def evaluated(argv):  # the metric lines this run appended to the log, in full precision
        before = log.read_text()
        assert _run(argv) == 0
        return [l for l in log.read_text()[len(before):].splitlines() if " : " in l]

    fixed = evaluated(common)
    assert evaluated(common + ["--LENGTH_SCALED_RETENTION"]) == fixed != []


def test_predict_only_writes_glue_files(trained):
    out = trained["out"]
    predict = ["--TASK", "mrpc", "--DATA_DIR", trained["data"], "--TASK_CONFIG_PATH",
               trained["config"], "--PREDICT_ONLY", "--PRED_GLUE", "--OUTPUT_DIR", out]
    # Two predictions, from two checkpoints: prediction.txt holds the latest, and each run's
    # own copy stays under results/<run id>/.
    assert _run(predict + ["--CHECKPOINT_PATH", out / "finetune"]) == 0
    first = (out / "prediction.txt").read_text()
    assert _run(predict + ["--CHECKPOINT_PATH", out / "retrained", "--MODEL_FORMAT", "HDF5"]) == 0
    runs = list((out / "results").iterdir())
    assert len(runs) == 2 and all({"prediction.txt", "MRPC.tsv"} <= set(os.listdir(r))
                                  for r in runs)
    kept = {(r / "prediction.txt").read_text() for r in runs}
    assert kept == {first, (out / "prediction.txt").read_text()} and len(kept) == 2
    rows = (out / "prediction.txt").read_text().splitlines()
    assert len(rows) == 10
    probabilities = np.array([[float(v) for v in row.strip("[]").split()] for row in rows])
    np.testing.assert_allclose(probabilities.sum(1), 1.0, atol=1e-5)
    glue = (out / "MRPC.tsv").read_text().splitlines()
    assert glue[0] == "index\tprediction"
    assert [r.split("\t")[0] for r in glue[1:]] == [str(i) for i in range(10)]
    assert [r.split("\t")[1] for r in glue[1:]] == [str(p) for p in probabilities.argmax(1)]


def test_regression_task_from_a_finetuned_checkpoint(tmp_path):
    """STS-B (the reference crashes evaluating it) through --SKIP_FINETUNE, eval and predict."""
    data = tmp_path / "STS-B"
    _write_task(data, "sts-b")
    config = _task_config(tmp_path / "task_config.json", "sts-b", classes=1)
    model = SequenceClassifier(checkpoints.resolve_source(TINY).config, 1)
    model(dummy_inputs(N))
    checkpoints.save_checkpoint(model, str(tmp_path / "ft"), {"task": "sts-b", "num_labels": 1,
                                                               "max_length": N})
    out = tmp_path / "out"
    common = ["--TASK", "sts-b", "--DATA_DIR", data, "--TASK_CONFIG_PATH", config,
              "--VOCAB_PATH", f"{TINY}/vocab.txt", "--OUTPUT_DIR", out]
    assert _run(common + ["--CHECKPOINT_PATH", tmp_path / "ft", "--SKIP_FINETUNE", "--EPOCHS", 1,
                          "--BATCH_SIZE", 8, "--LR_SOFT_EXTRACT", 0.5, "--LAMBDA", 0.01]) == 0
    log = (out / "log_file.txt").read_text()
    assert " Fine-tuned model (stage 1 skipped: the given checkpoint) accuracies" in log  # dataset-level Pearson
    assert " Re-trained model spearman for all epochs on the Dev set:[" in log
    retrained = ["--CHECKPOINT_PATH", out / "retrained"]
    assert _run(common + retrained + ["--EVAL_ONLY"]) == 0
    assert "\npearson : " in (out / "log_file.txt").read_text()
    assert _run(common + retrained + ["--PREDICT_ONLY", "--PRED_GLUE"]) == 0
    glue = (out / "STS-B.tsv").read_text().splitlines()
    assert glue[0] == "index\tprediction" and len(glue) == 11
    assert all(float(row.split("\t")[1]) == float(row.split("\t")[1]) for row in glue[1:])


@pytest.fixture(scope="module")
def checkpoint16(tmp_path_factory):
    """A tiny SST-2 classifier saved by this toolkit at sequence length 16."""
    folder = tmp_path_factory.mktemp("ckpt16")
    model = SequenceClassifier(checkpoints.resolve_source(TINY).config, 2)
    model(dummy_inputs(N))
    checkpoints.save_checkpoint(model, str(folder), {"task": "sst-2", "num_labels": 2,
                                                     "max_length": N})
    return folder


BAD_INPUTS = [
    (["--EVAL_ONLY", "--RETENTION_CONFIG", "16,x,8"], "item 2 'x' is not an integer"),
    (["--EVAL_ONLY", "--RETENTION_CONFIG", "8,16,4"], "larger than the one before it"),
    (["--EVAL_ONLY", "--RETENTION_CONFIG", "16,8,4,2"], "has 4 values but the model has 3"),
    (["--EVAL_ONLY", "--RETENTION_CONFIG", "16,8"], "has 2 values but the model has 3"),
    (["--EVAL_ONLY", "--RETENTION_CONFIG", "16,8,0"], "keeps at least 1 word-vector"),
    (["--EVAL_ONLY", "--RETENTION_CONFIG", "17,8,4"], "more than the task's sequence length 16"),
    (["--LR_SOFT_EXTRACT", "0.01"], "--LAMBDA is required for training"),
    (["--LAMBDA", "0.01"], "--LR_SOFT_EXTRACT is required for training"),
    (["--EVAL_ONLY", "--MODEL_FORMAT", "H5"], "--MODEL_FORMAT 'H5' is not supported"),
    (["--EVAL_ONLY", "--MODEL_FORMAT", "CKPT"], "pass --MODEL_FORMAT HDF5"),
    (["--EVAL_ONLY", "--BATCH_SIZE", "abc"], "argument --BATCH_SIZE: invalid int value"),
    (["--EVAL_ONLY", "--SEQ", "3"], "unrecognized arguments: --SEQ 3"),
    (["--LENGTH_SCALED_RETENTION", "--LAMBDA", "0.01", "--LR_SOFT_EXTRACT", "0.01"],
     "--LENGTH_SCALED_RETENTION only applies to --EVAL_ONLY / --PREDICT_ONLY"),
]


@pytest.mark.parametrize("extra, message", BAD_INPUTS)
def test_bad_input_is_one_line_and_exit_2(extra, message, checkpoint16, tmp_path, capsys):
    config = _task_config(tmp_path / "task_config.json", "sst-2")
    out = tmp_path / "out"
    argv = ["--TASK", "sst-2", "--CHECKPOINT_PATH", checkpoint16, "--DATA_DIR",
            REPO / "common" / "default_data" / "SST-2", "--VOCAB_PATH",
            f"{TINY}/vocab.txt", "--TASK_CONFIG_PATH", config, "--OUTPUT_DIR", out] + extra
    assert _run(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ")
    assert re.search(message, err[0]), err[0]
    assert not out.exists()


def test_eval_of_a_checkpoint_with_another_sequence_length(checkpoint16, tmp_path, capsys):
    config = _task_config(tmp_path / "task_config.json", "sst-2", seq_len=12)
    code = _run(["--TASK", "sst-2", "--CHECKPOINT_PATH", checkpoint16, "--DATA_DIR",
                 REPO / "common" / "default_data" / "SST-2", "--TASK_CONFIG_PATH", config,
                 "--VOCAB_PATH", f"{TINY}/vocab.txt", "--EVAL_ONLY", "--OUTPUT_DIR",
                 tmp_path / "out"])
    assert code == 2
    assert "was trained with sequence length 16 but SST-2 runs at 12" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_unwritable_output_dir_and_headless_checkpoint(checkpoint16, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    common = ["--TASK", "sst-2", "--DATA_DIR", REPO / "common" / "default_data" / "SST-2",
              "--TASK_CONFIG_PATH", _task_config(tmp_path / "task_config.json", "sst-2"),
              "--VOCAB_PATH", f"{TINY}/vocab.txt", "--EVAL_ONLY"]
    assert _run(common + ["--CHECKPOINT_PATH", checkpoint16, "--OUTPUT_DIR", blocker]) == 2
    assert "exists and is not a folder" in capsys.readouterr().err
    assert _run(common + ["--CHECKPOINT_PATH", checkpoint16, "--OUTPUT_DIR",
                          blocker / "sub"]) == 2
    assert "cannot write to --OUTPUT_DIR" in capsys.readouterr().err
    assert _run(common + ["--CHECKPOINT_PATH", TINY, "--OUTPUT_DIR", tmp_path / "out"]) == 2
    assert "has no SST-2 classification head" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_module_entry_point_exits_2(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "powerbert", "--TASK", "mrpc", "--CHECKPOINT_PATH", TINY,
         "--DATA_DIR", str(tmp_path), "--OUTPUT_DIR", str(tmp_path / "out"), "--LAMBDA", "0.1"],
        cwd=REPO, capture_output=True, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        "error: --LR_SOFT_EXTRACT is required for training (e.g. the README's MRPC values "
        "--LR_SOFT_EXTRACT 0.003 --LAMBDA 0.003); or pass --EVAL_ONLY / --PREDICT_ONLY")
    assert not (tmp_path / "out").exists()


# The speed benchmark's tiny runs are in tests/test_benchmark_harness.py.


@pytest.mark.parametrize("argv, message", [
    (["--batch_sizes", "32,x"], "--batch_sizes must be comma-separated integers"),
    (["--batch_sizes", "0"], "--batch_sizes must be >= 1"),
    (["--retention", "12,6"], "--retention has 2 values but the model has 3 blocks"),
])
def test_speed_benchmark_bad_input(argv, message, capsys):
    from tools import benchmark_powerbert

    with pytest.raises(SystemExit) as exit_info:
        benchmark_powerbert.main(["--config", f"{TINY}/config.json", "--max_length", "16",
                                  "--retention", "12,6,2", *argv])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and "\n" not in err
