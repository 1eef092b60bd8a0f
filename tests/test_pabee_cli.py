"""run_glue_with_pabee end to end on tiny models and data:
train with checkpoints, evaluate a patience list over all checkpoints, reload, batched engine,
per-layer table, ALBERT, STS-B, MNLI m/mm, and every bad input of the issue."""
import json
import os
import random
import shutil
import subprocess
import sys

import pandas as pd
import pytest

from common import checkpoints
from common.runlog import read_events
from conftest import FIXTURES, REPO
from pabee.cli import main

POSITIVE, NEGATIVE = ("good", "great", "fun"), ("bad", "awful", "boring")
SUBJECTS = ("the movie", "a film", "this plot", "the acting", "it", "that story")


def sentence(rng, label):
    word = rng.choice(POSITIVE if label else NEGATIVE)
    return f"{rng.choice(SUBJECTS)} was {'very ' if rng.random() < 0.5 else ''}{word} ."


def write_tsv(path, header, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(["\t".join(header)] + ["\t".join(map(str, r)) for r in rows]) + "\n")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("glue")
    rng = random.Random(0)
    for split, count in (("train", 48), ("dev", 24)):
        write_tsv(root / "SST-2" / f"{split}.tsv", ["sentence", "label"],
                  [(sentence(rng, i % 2), i % 2) for i in range(count)])
        write_tsv(root / "STS-B" / f"{split}.tsv",
                  ["index", "genre", "filename", "year", "old_index", "source1", "source2",
                   "sentence1", "sentence2", "score"],
                  [(i, "g", "f", "y", i, "s", "s", sentence(rng, 1), sentence(rng, i % 2),
                    f"{(i % 5) + 0.5:.2f}") for i in range(count // 2)])
    nli = ("contradiction", "entailment", "neutral")
    header = ["index", "promptID", "pairID", "genre", "b1", "b2", "p1", "p2", "sentence1",
              "sentence2", "label1", "gold_label"]
    for name, count in (("train", 24), ("dev_matched", 9), ("dev_mismatched", 9)):
        write_tsv(root / "MNLI" / f"{name}.tsv", header,
                  [(i, 0, 0, "g", "", "", "", "", sentence(rng, 1), sentence(rng, i % 2),
                    nli[i % 3], nli[i % 3]) for i in range(count)])
    return root


def flags(data_dir, output_dir, *extra, task="SST-2", model="tiny_bert", model_type="bert"):
    return ["--model_type", model_type, "--model_name_or_path", str(FIXTURES / model),
            "--task_name", task, "--do_lower_case", "--data_dir", str(data_dir / task),
            "--max_seq_length", "16", "--output_dir", str(output_dir), *extra]


TRAIN = ["--do_train", "--per_gpu_train_batch_size", "16", "--learning_rate", "1e-2",
         "--num_train_epochs", "2", "--logging_steps", "3", "--save_steps", "3", "--seed", "7"]
QUICK = ["--do_train", "--per_gpu_train_batch_size", "16", "--max_steps", "1",
         "--logging_steps", "0", "--save_steps", "0"]


def fails(argv, capsys, message):
    """The run exits with code 2 and one `error:` line naming `message`."""
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], lines


@pytest.fixture(scope="module")
def trained(data, tmp_path_factory):
    """A tiny BERT PABEE run: 6 updates, checkpoints at 3 and 6, eval of patience 0,1,2."""
    out = tmp_path_factory.mktemp("run") / "out"
    argv = flags(data, out, *TRAIN, "--do_eval", "--evaluate_during_training",
                 "--eval_all_checkpoints", "--patience", "0,1,2")
    from pabee import cli, pipeline
    printed = []
    results = pipeline.run(cli.settings(argv), log=printed.append)
    return out, results, printed


def test_training_writes_checkpoints_and_final_model(trained):
    out, _, _ = trained
    for folder in (out, out / "checkpoint-3", out / "checkpoint-6"):
        names = set(os.listdir(folder))
        assert {"model.weights.h5", "config.json", "tokenizer.json",
                "training_args.json"} <= names, folder
        sidecar = checkpoints.read_sidecar(str(folder))
        assert sidecar["method"] == "pabee" and sidecar["method_state"]["num_layers"] == 3
    assert "optimizer.weights.h5" in os.listdir(out / "checkpoint-3")
    assert checkpoints.read_sidecar(str(out))["training"]["global_step"] == 6
    assert not [n for n in os.listdir(out) if n.startswith(".")]  # no staging leftovers
    history = read_events(out / "log_history.jsonl", "log")
    assert len(history) == 2 and "eval_acc" in history[0] and history[0]["step"] == 3


def test_printed_lines_say_what_they_are(trained):
    """--evaluate_during_training results are printed too; the original's 'Speed Up' (the share
    of layers skipped) is followed by a line saying so; the final model is named."""
    _, _, printed = trained
    assert [line for line in printed if line.startswith("step 3: eval_acc ")]
    faithful = [i for i, line in enumerate(printed) if line.startswith("*** Patience = 1 Avg.")]
    assert faithful and printed[faithful[0] + 1].startswith("layers skipped ")
    assert "layer ratio L/X = " in printed[faithful[0] + 1]
    assert [line for line in printed if line.startswith("Evaluation of the final model in ")]


def test_patience_list_over_all_checkpoints(trained):
    out, results, _ = trained
    table = pd.read_csv(out / "eval_results_patience.tsv", sep="\t")
    assert list(table["checkpoint"].unique()) == ["final", "checkpoint-3", "checkpoint-6"]
    assert len(table) == 9 and list(table["patience"][:3]) == [0, 1, 2]
    full, late = table[table.patience == 0], table[table.patience == 2]
    assert list(full["acc"]) == list(late["acc"])  # t >= L-1 equals the full model
    assert (late["avg_exit_layer"] == 3).all()
    early = table[table.patience == 1]
    assert ((early["avg_exit_layer"] >= 2) & (early["avg_exit_layer"] <= 3)).all()
    assert (early["layer_ratio"] == 3 / early["avg_exit_layer"]).all()
    # Faithful files: eval_results.txt holds the last patience; one file per patience too.
    for prefix in ("", "checkpoint-3"):
        folder = out / prefix
        assert (folder / "eval_results.txt").read_text().startswith("acc = ")
        assert {f"eval_results_patience{t}.txt" for t in range(3)} <= set(os.listdir(folder))
    assert "avg_exit_layer = " in (out / "eval_results_patience1.txt").read_text()
    assert {"acc_3", "acc_6"} <= set(results)


def test_reload_reproduces_metrics_and_batched_exit_matches(trained, data, tmp_path, capsys):
    out, _, _ = trained
    reference = pd.read_csv(out / "eval_results_patience.tsv", sep="\t")
    reference = reference[reference.checkpoint == "checkpoint-3"].set_index("patience")
    for batch in ("1", "5"):
        target = tmp_path / f"eval{batch}"
        target.mkdir()
        for name in os.listdir(out / "checkpoint-3"):
            if (out / "checkpoint-3" / name).is_file():  # not results/ of earlier evaluations
                os.link(out / "checkpoint-3" / name, target / name)
        assert main(flags(data, target, "--do_eval", "--patience", "1,2", "--eval_each_layer",
                          "--per_gpu_eval_batch_size", batch, "--regression_threshold",
                          "0.1")) == 0
        captured = capsys.readouterr()
        assert "--regression_threshold is ignored" in captured.err
        assert "*** Patience = 1 Avg. Inference Layers = " in captured.out
        table = pd.read_csv(target / "eval_results_patience.tsv", sep="\t").set_index("patience")
        for t in (1, 2):
            assert table.loc[t, "acc"] == reference.loc[t, "acc"]
            assert table.loc[t, "avg_exit_layer"] == reference.loc[t, "avg_exit_layer"]
        layers = pd.read_csv(target / "eval_results_layers.tsv", sep="\t").set_index("row")
        assert layers.loc["layer 3", "acc"] == reference.loc[2, "acc"]
        assert layers.loc["patience 1 (simulated)", "avg_exit_layer"] == reference.loc[
            1, "avg_exit_layer"]


def test_every_evaluation_keeps_its_own_results(trained, data, tmp_path):
    """A second evaluation replaces the paper-named files but keeps the first one's copies."""
    out = trained[0]
    target = tmp_path / "eval"
    shutil.copytree(out / "checkpoint-6", target, ignore=shutil.ignore_patterns("results"))
    for patience in ("1", "2"):
        assert main(flags(data, target, "--do_eval", "--patience", patience)) == 0
    runs = sorted((target / "results").iterdir())
    assert len(runs) == 2
    tables = [pd.read_csv(run / "eval_results_patience.tsv", sep="\t") for run in runs]
    assert sorted(int(t["patience"][0]) for t in tables) == [1, 2]
    for run in runs:
        assert (run / "eval_results.txt").read_text().startswith("acc = ")
    latest = pd.read_csv(target / "eval_results_patience.tsv", sep="\t")
    assert list(latest["patience"]) == [2]
    assert {f"eval_results_patience{t}.txt" for t in (1, 2)} <= set(os.listdir(target))


def test_albert_regression_and_mnli(data, tmp_path, capsys):
    out = tmp_path / "albert"
    main(flags(data, out, *QUICK, "--do_eval", "--patience", "1", model="tiny_albert",
               model_type="albert"))
    assert checkpoints.read_sidecar(str(out))["method_state"]["model_type"] == "albert"
    out = tmp_path / "stsb"
    main(flags(data, out, *QUICK, "--do_eval", "--patience", "1", task="STS-B"))
    assert "regression_threshold not given" in capsys.readouterr().err
    table = pd.read_csv(out / "eval_results_patience.tsv", sep="\t")
    assert {"pearson", "spearman"} <= set(table.columns) and table.avg_exit_layer[0] == 3
    main(flags(data, out, "--do_eval", "--patience", "1", "--regression_threshold", "1e9",
               task="STS-B"))
    table = pd.read_csv(out / "eval_results_patience.tsv", sep="\t")
    assert table.avg_exit_layer[0] == 2  # everything "unchanged": exit at t + 1
    out = tmp_path / "mnli"
    main(flags(data, out, *QUICK, "--save_steps", "1", "--do_eval", "--eval_all_checkpoints",
               "--patience", "1", task="MNLI"))
    for folder in (out, out / "checkpoint-1", tmp_path / "mnli-MM", tmp_path / "mnli-MM" /
                   "checkpoint-1", out / "checkpoint-2"):
        assert (folder / "eval_results.txt").is_file(), folder
    assert "Avg. Inference Layers" in capsys.readouterr().out


def test_bad_inputs(trained, data, tmp_path, capsys):
    out, _, _ = trained
    for patience in ("3.5", "-1", "a,2"):
        fails(flags(data, tmp_path / "x", "--do_eval", "--patience", patience), capsys,
              "--patience")
    fails(flags(data, tmp_path / "x", "--do_train", model_type="xlnet"), capsys,
          "--model_type xlnet")
    fails(flags(data, tmp_path / "x", "--do_train", model_type="albert"), capsys,
          "--model_type")  # a BERT checkpoint with --model_type albert
    fails(flags(data, tmp_path / "x", "--do_train", model_type="roberta"), capsys,
          "is a BERT model but --model_type is roberta")
    before = sorted(os.listdir(out))
    fails(flags(data, out, *TRAIN), capsys, "--overwrite_output_dir")
    assert sorted(os.listdir(out)) == before
    plain = tmp_path / "plain"
    model, _, _ = checkpoints.load_classifier(str(FIXTURES / "tiny_bert"), 2)
    from common.tokenization import load_tokenizer
    checkpoints.save_checkpoint(model, str(plain), {"task": "sst-2", "num_labels": 2},
                                tokenizer=load_tokenizer(str(FIXTURES / "tiny_bert")))
    fails(flags(data, plain, "--do_eval", "--patience", "2"), capsys,
          "internal classifiers")
    empty = tmp_path / "empty"
    empty.mkdir()
    fails(flags(data, empty, "--do_eval"), capsys, "no model in")
    fails(flags(data, out, "--do_eval", task="STS-B"), capsys, "whose labels differ from STS-B")
    assert not (tmp_path / "x").exists()


def test_script_runs_as_a_file(data, tmp_path):
    script = REPO / "run_files" / "run_glue_with_pabee.py"
    result = subprocess.run(
        [sys.executable, str(script), *flags(data, tmp_path / "o", "--do_eval",
                                             model_type="xlnet")],
        cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        "error: --model_type xlnet is not supported by PABEE; use one of bert, albert, roberta, "
        "xlm-roberta, distilbert, electra")


def test_speed_benchmark_tool(trained, data, tmp_path):
    from tools import benchmark_pabee

    out, _, _ = trained
    output = tmp_path / "bench" / "record.json"
    assert benchmark_pabee.main(
        ["--model_dir", str(out), "--task_name", "SST-2", "--data_dir", str(data / "SST-2"),
         "--patience", "1,2", "--batch_sizes", "1,4", "--examples", "10", "--repeats", "2",
         "--output", str(output)]) == 0
    record = json.loads(output.read_text())
    assert [g["batch_size"] for g in record["groups"]] == [1, 4]
    single, batched = ({r["side"]: r for r in g["rows"]} for g in record["groups"])
    assert set(single) == {"dense-padded", "dense-unpadded", "dense-unpadded-xla",
                           "pabee-unpadded-t1", "pabee-unpadded-t2"}
    assert set(batched) == {"dense-padded", "dense-dynamic-graph", "dense-dynamic-xla",
                            "pabee-dynamic-t1", "pabee-dynamic-t2"}
    for rows in (single, batched):
        for name, row in rows.items():
            assert row["examples"] == 10 and row["median_ms"] > 0 and 0 <= row["metric"] <= 1
            if name.startswith("pabee"):
                assert 1.0 <= row["layer_ratio"] <= 3.0 and row["flops_speedup"] > 0
                assert row["measured_over_layer"] == row["speedup"] / row["layer_ratio"]
    for patience in (1, 2):
        row = batched[f"pabee-dynamic-t{patience}"]
        assert row["prediction_mismatches"] == 0 and row["exit_layer_mismatches"] == 0
        assert row["reference_dynamic"] in ("dense-dynamic-graph", "dense-dynamic-xla")
    assert single["pabee-unpadded-t2"]["avg_exit_layer"] == 3
    assert record["settings"]["metric"] == "acc" and record["machine"]["cpu_flags"] is not None


@pytest.mark.parametrize("argv, message", [
    (["--batch_sizes", "1,x"], "--batch_sizes must be comma-separated integers"),
    (["--batch_sizes", "0"], "--batch_sizes must be >= 1"),
    (["--repeats", "0"], "--repeats must be >= 1"),
    (["--data_dir", "/no/such/folder"], "data folder not found"),
    (["--patience", "0,1"], "--patience 0 is the vanilla model itself"),
    (["--patience", "a"], "patience"),
])
def test_speed_benchmark_bad_input(trained, data, argv, message, capsys):
    from tools import benchmark_pabee

    out, _, _ = trained
    with pytest.raises(SystemExit) as exit_info:
        benchmark_pabee.main(["--model_dir", str(out), "--task_name", "SST-2",
                              "--data_dir", str(data / "SST-2"), *argv])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and "\n" not in err
