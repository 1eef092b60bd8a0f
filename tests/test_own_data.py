"""Own data (common.owndata): a CSV and a JSON-lines file with string labels and their own column
names through fine-tuning, PoWER-BERT, PABEE and AdapLeR; the label set in the checkpoint; the
kinds and their metrics; parquet; and the bad inputs (exit code 2, one `error:` line)."""
import json
import random

import numpy as np
import pandas as pd
import pytest

from conftest import FIXTURES

TINY = str(FIXTURES / "tiny_bert")
N = 16
POSITIVE, NEGATIVE = ("good", "great", "fun"), ("bad", "awful", "boring")
SUBJECTS = ("the movie", "a film", "this plot", "it")


def sentence(rng, label):
    return f"{rng.choice(SUBJECTS)} was {rng.choice(POSITIVE if label else NEGATIVE)} ."


def rows(count, seed):
    rng = random.Random(seed)
    return [{"id": f"r{i}", "review": sentence(rng, i % 2),
             "sentiment": "positive" if i % 2 else "negative"} for i in range(count)]


def write(path, records):
    frame = pd.DataFrame(records)
    if str(path).endswith(".csv"):
        frame.to_csv(path, index=False)
    elif str(path).endswith(".parquet"):
        frame.to_parquet(path)
    else:
        frame.to_json(path, orient="records", lines=True)
    return str(path)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("own_data") / "reviews"
    root.mkdir()
    return {"root": root, "train": write(root / "train.csv", rows(16, 0)),
            "dev": write(root / "dev.jsonl", rows(8, 1)),
            "test": write(root / "test.csv", [{k: v for k, v in r.items() if k != "sentiment"}
                                              for r in rows(6, 2)])}


def own_flags(files, upper=False, splits=("train", "dev")):
    names = {"train": "train_file", "dev": "validation_file", "test": "test_file"}
    flag = (lambda n: "--" + n.upper()) if upper else (lambda n: "--" + n)
    argv = []
    for split in splits:
        argv += [flag(names[split]), files[split]]
    return argv + [flag("text_column"), "review", flag("label_column"), "sentiment"]


def run(main, argv):
    try:
        return main([str(a) for a in argv])
    except SystemExit as stop:
        return stop.code


def fails(main, argv, capsys, message):
    capsys.readouterr()
    assert run(main, argv) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], lines


@pytest.fixture(scope="module")
def finetuned(files):
    from tools import finetune

    out = files["root"] / "ft"
    assert run(finetune.main, ["--model", TINY, "--max_length", N, "--epochs", 2,
                               "--learning_rate", 1e-3, "--batch_size", 8, "--output_dir", out,
                               *own_flags(files)]) is None
    return out


def test_finetune_records_the_label_names(finetuned, files, capsys):
    from common.finetune import run
    from tools import finetune

    sidecar = json.loads((finetuned / "config.json").read_text())
    assert sidecar["task"] == "own-reviews" and sidecar["num_labels"] == 2
    assert sidecar["labels"] == {"0": "negative", "1": "positive"}
    assert sidecar["own_data"]["text_column"] == "review"
    assert sidecar["own_data"]["label_column"] == "sentiment"
    results = json.loads((finetuned / "eval_results.json").read_text())
    assert {"acc", "f1"} <= set(results)
    # Evaluation with the validation file alone: labels and columns come from the checkpoint.
    capsys.readouterr()
    metrics = run(finetune.parse_args(["--model", str(finetuned), "--eval_only",
                                       "--max_length", str(N), "--validation_file",
                                       files["dev"]]), log=lambda line: None)
    assert metrics["acc"] == pytest.approx(results["acc"])


def test_powerbert_on_own_files(finetuned, files, tmp_path):
    from powerbert import cli

    config = tmp_path / "task_config.json"
    config.write_text(json.dumps({"own-reviews": {"seq_len": N, "num_classes": 2}}))
    out = tmp_path / "out"
    common = ["--TASK_CONFIG_PATH", config, "--VOCAB_PATH", f"{TINY}/vocab.txt",
              "--OUTPUT_DIR", out]
    assert run(cli.main, common + own_flags(files, upper=True) + [
        "--CHECKPOINT_PATH", finetuned, "--SKIP_FINETUNE", "--EPOCHS", 1, "--BATCH_SIZE", 8,
        "--LR_SOFT_EXTRACT", 0.5, "--LAMBDA", 0.01, "--ALLOW_COLLAPSED"]) == 0
    assert json.loads((out / "retrained" / "config.json").read_text())["labels"] == {
        "0": "negative", "1": "positive"}
    assert run(cli.main, common + own_flags(files, upper=True, splits=("test",)) + [
        "--CHECKPOINT_PATH", out / "retrained", "--PREDICT_ONLY", "--PRED_GLUE"]) == 0
    lines = (out / "predictions.tsv").read_text().splitlines()
    assert lines[0] == "index\tprediction" and [line.split("\t")[0] for line in lines[1:]] == [
        f"r{i}" for i in range(6)]
    assert {line.split("\t")[1] for line in lines[1:]} <= {"negative", "positive"}


def test_pabee_on_own_files(files, tmp_path):
    from pabee.cli import main

    out = tmp_path / "pabee"
    assert run(main, ["--model_type", "bert", "--model_name_or_path", TINY, "--do_lower_case",
                      "--max_seq_length", N, "--output_dir", out, "--do_train", "--do_eval",
                      "--per_gpu_train_batch_size", 8, "--max_steps", 1, "--logging_steps", 0,
                      "--save_steps", 0, "--patience", "1", *own_flags(files)]) == 0
    assert json.loads((out / "config.json").read_text())["labels"]["1"] == "positive"
    table = pd.read_csv(out / "eval_results_patience.tsv", sep="\t")
    assert {"acc", "f1"} <= set(table.columns) and len(table) == 1


def test_adapler_stage_a_on_own_files(files, tmp_path, monkeypatch):
    from adapler.cli import finetune_main

    monkeypatch.chdir(tmp_path)
    finetune_main(["--MODEL_NAME_OR_PATH", TINY, "--MAX_LENGTH", str(N), "--EPOCHS", "1",
                   "--BATCH_SIZE", "8", *own_flags(files, upper=True)])
    found = list(tmp_path.rglob("bert_own-reviews_1/config.json"))
    assert len(found) == 1
    sidecar = json.loads(found[0].read_text())
    assert sidecar["labels"] == {"0": "negative", "1": "positive"}


def test_kinds_metrics_and_parquet(tmp_path):
    from common.metrics import compute_metrics
    from common.owndata import own_task

    three = [{"text": f"t{i}", "label": ("a", "b", "c")[i % 3]} for i in range(9)]
    task = own_task({"train": write(tmp_path / "three.parquet", three)})
    assert task.labels == ("a", "b", "c") and task.text_column == "text"
    assert set(compute_metrics(task, np.array([0, 1, 2]), np.array([0, 1, 1]))) >= {
        "acc", "macro_f1"}
    scores = [{"sentence1": "a", "sentence2": "b", "label": i / 4} for i in range(20)]
    task = own_task({"train": write(tmp_path / "scores.jsonl", scores)})
    assert task.is_regression and task.is_pair and task.metric == "spearman"
    assert {"pearson", "spearman"} <= set(compute_metrics(task, np.arange(4.0), np.arange(4.0)))
    numbers = [{"sentence": "x", "label": i % 3} for i in range(9)]
    task = own_task({"train": write(tmp_path / "numbers.csv", numbers)})
    assert task.labels == ("0", "1", "2") and task.metric == "acc"
    task = own_task({"train": write(tmp_path / "numbers.csv", numbers)}, task_type="regression",
                    metric="pearson")
    assert task.is_regression and task.metric == "pearson"


@pytest.mark.parametrize("case, message", [
    ("unseen", "label 'neutral' never occurs in the training file"),
    ("column", "has no column 'review'; its columns are id, text, sentiment"),
    ("empty", "is empty"),
    ("no_rows", "has no data rows"),
    ("text_flag_alone", "--text_column need(s) --train_file"),
    ("task_and_file", "--task mrpc and --train_file / --validation_file exclude each other"),
])
def test_bad_own_data(case, message, files, tmp_path, capsys):
    from tools import finetune

    argv = own_flags(files)
    if case == "unseen":
        argv[3] = write(tmp_path / "dev.jsonl", rows(4, 3) + [
            {"id": "x", "review": "it was fun .", "sentiment": "neutral"}])
    elif case == "column":
        argv[1] = write(tmp_path / "other.csv", [{"id": 1, "text": "a", "sentiment": "b"}])
    elif case == "empty":
        (tmp_path / "empty.csv").write_text("")
        argv[1] = str(tmp_path / "empty.csv")
    elif case == "no_rows":
        (tmp_path / "header.csv").write_text("id,review,sentiment\n")
        argv[1] = str(tmp_path / "header.csv")
    elif case == "task_and_file":
        argv = ["--task", "mrpc"] + argv
    else:
        argv = ["--text_column", "review"]
    out = tmp_path / "out"
    fails(finetune.main, ["--model", TINY, "--max_length", N, "--output_dir", out, *argv],
          capsys, message)
    assert not out.exists()


def test_regression_from_a_numeric_label_column(tmp_path):
    """More than 10 distinct numbers: regression, scored by Pearson and Spearman, and the API
    answers with the score."""
    from common.api import load
    from tools import finetune

    rng = random.Random(4)
    scores = [{"text": sentence(rng, i % 2), "score": round(i * 0.37, 2)} for i in range(14)]
    train = write(tmp_path / "scores.csv", scores)
    out = tmp_path / "model"
    assert run(finetune.main, ["--model", TINY, "--max_length", N, "--epochs", 1,
                               "--output_dir", out, "--train_file", train, "--validation_file",
                               train, "--label_column", "score"]) is None
    sidecar = json.loads((out / "config.json").read_text())
    assert sidecar["num_labels"] == 1 and "labels" not in sidecar
    assert sidecar["own_data"]["kind"] == "regression"
    assert {"pearson", "spearman"} <= set(json.loads((out / "eval_results.json").read_text()))
    assert isinstance(load(out).predict(["it was fun ."])[0]["label"], float)
