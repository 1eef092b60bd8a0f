"""bert-speedup-predict (tools/predict.py on common.predict, Apache Beam RunInference): rows in =
rows out + rejected rows (empty, blank, missing cell, undecodable bytes), ids kept, the three
output formats, an existing output refused, and the same output from 1 and 2 local workers."""
import json
import os

import pandas as pd
import pytest

from conftest import FIXTURES, REPO
from tools.predict import main

PABEE = str(FIXTURES / "old_checkpoints" / "pabee")
GOOD = ["the movie was good .", "an awful film", "it is fun", "this acting was very bad",
        "good", "a great plot", "boring"]


def run(argv):
    try:
        return main([str(a) for a in argv])
    except SystemExit as stop:
        return stop.code


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("predict")
    lines = ["key,review"] + [f"k{i},{text}" for i, text in enumerate(GOOD)]
    lines += ["e1,", "e2,   ", "e3"]  # empty, blank, missing cell
    (root / "a.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (root / "b.csv").write_bytes(b"key,review\nb0,it was fun\nb1,bad \xff\xfe bytes\n")
    return root


def read(path):
    if str(path).endswith(".parquet"):
        return pd.read_parquet(path)
    if str(path).endswith(".csv"):
        return pd.read_csv(path, dtype={"id": str})
    return pd.read_json(path, lines=True, dtype={"id": str})


@pytest.mark.parametrize("suffix", [".jsonl", ".csv", ".parquet"])
def test_rows_in_equal_rows_out_plus_rejected(inputs, tmp_path, suffix):
    output = tmp_path / f"out{suffix}"
    assert run(["--model", PABEE, "--input", inputs / "*.csv", "--text_column", "review",
                "--id_column", "key", "--output", output, "--knob", "patience=1"]) is None
    predicted = read(output)
    rejected = [json.loads(line) for line in
                (tmp_path / "out.rejected.jsonl").read_text().splitlines()]
    assert len(predicted) + len(rejected) == len(GOOD) + 3 + 2
    assert sorted(predicted["id"]) == sorted([f"k{i}" for i in range(len(GOOD))] + ["b0"])
    reasons = {row["id"]: row["reason"] for row in rejected}
    assert reasons == {"e1": "empty text in column 'review'",
                       "e2": "empty text in column 'review'",
                       "e3": "missing cell in column 'review'",
                       "b1": "undecodable bytes in column 'review' (not UTF-8)"}
    assert set(predicted["label"]) <= {"negative", "positive"}
    assert set(predicted["layers_run"]) <= {1, 2}
    assert (predicted["probability_negative"] + predicted["probability_positive"]).round(6).eq(
        1).all()
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".")]  # no staging left


def test_existing_output_is_refused(inputs, tmp_path, capsys):
    output = tmp_path / "out.jsonl"
    output.write_text("keep\n")
    assert run(["--model", PABEE, "--input", inputs / "a.csv", "--text_column", "review",
                "--output", output]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "already exists; pass --overwrite" in lines[0]
    assert output.read_text() == "keep\n"
    assert run(["--model", PABEE, "--input", inputs / "a.csv", "--text_column", "nope",
                "--output", tmp_path / "other.jsonl"]) == 2
    assert "has no column 'nope'; its columns are key, review" in capsys.readouterr().err


def test_one_and_two_local_workers_give_the_same_output(inputs, tmp_path, monkeypatch):
    # One worker: the DirectRunner in this process; two: new processes, which import this
    # checkout's modules.
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        [str(REPO)] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
    outputs = []
    for workers in ([], ["--runner", "DirectRunner", "--direct_num_workers", 2,
                         "--direct_running_mode", "multi_processing"]):
        output = tmp_path / f"out{len(workers)}.jsonl"
        assert run(["--model", PABEE, "--input", inputs / "*.csv", "--text_column", "review",
                    "--id_column", "key", "--output", output, "--knob", "patience=1",
                    "--batch_size", 3, *workers]) is None
        outputs.append(read(output).sort_values("id").reset_index(drop=True))
    pd.testing.assert_frame_equal(outputs[0], outputs[1], atol=1e-5)


def test_benchmark_command_on_a_tiny_model(tmp_path):
    """The measurement of issue 29 item 4, on the tiny model and 12 rows (the real run: 50,000
    rows of SST-2 dev with MiniLM; see docs/own_data.md)."""
    from tools import benchmark_predict

    output = tmp_path / "predict.json"
    result = benchmark_predict.main(["--dense", str(FIXTURES / "old_checkpoints" / "finetune"),
                                     "--rows", "12", "--workers", "1", "--repeats", "1",
                                     "--warmup", "0", "--output", str(output)])
    rows = {row["side"]: row for row in result["groups"][0]["rows"]}
    assert set(rows) == {"dense-loop", "dense-beam-1"}
    assert rows["dense-beam-1"]["examples"] == 12 and "overhead_ms_per_row" in rows["dense-beam-1"]
    settings = json.loads(output.read_text())["settings"]
    assert settings["rows"] == 12 and settings["warmup"] == 0
