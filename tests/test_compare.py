"""`bert-speedup-compare` (common/compare/engine.py) end to end on the tiny model and a tiny
SST-2 folder: every output file and column, resuming without retraining, and bad input."""
import csv
import dataclasses
import json
import os
import shlex

import pytest

from common.checkpoints import resolve_source, save_checkpoint
from common.data import default_data_dir
from common.modeling import SequenceClassifier, dummy_inputs
from common.tasks import get_task
from common.tokenization import load_tokenizer
from conftest import FIXTURES
from common.compare import engine as compare
from common.compare import sweep
from common.compare.report import COLUMNS

TINY = str(FIXTURES / "tiny_bert")
DENSE_SIDES = {1: {"dense-unpadded", "dense-unpadded-xla", "dense-padded"},
               4: {"dense-padded", "dense-dynamic-graph", "dense-dynamic-xla"}}


@pytest.fixture
def tiny_sst2(tmp_path):
    """The first rows of the bundled sample: 64 training and 12 dev sentences."""
    folder = tmp_path / "SST-2"
    folder.mkdir()
    for split, rows in (("train", 64), ("dev", 12)):
        with open(os.path.join(default_data_dir(), f"{split}.tsv"), encoding="utf-8") as handle:
            head = [next(handle) for _ in range(rows + 1)]
        (folder / f"{split}.tsv").write_text("".join(head), encoding="utf-8")
    return str(folder)


def read_csv(path):
    with open(path, encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        return reader.fieldnames, list(reader)


def stage_events(output_dir):
    with open(os.path.join(output_dir, "stages.log"), encoding="utf-8") as handle:
        return [tuple(line.rstrip("\n").split("\t")[1:]) for line in handle]


def check_rows(rows, methods):
    """Every column filled and plausible; the dense reference row is exactly 1x itself."""
    for row in rows:
        assert row["task"] == "sst-2" and row["metric_name"] == "acc"
        assert 0.0 <= float(row["metric"]) <= 1.0
        for key in ("flops_speedup", "speedup_vs_padded", "speedup_vs_dynamic",
                    "ms_per_example", "seconds"):
            assert float(row[key]) > 0.0, (key, row)
        size = int(row["batch_size"])
        if size == 1:
            assert row["reference"].startswith("dense-unpadded")
        assert row["reference"] in DENSE_SIDES[size]
        assert row["method"] in {"dense", *methods}
        assert (row["detail"] == "") == (row["method"] == "dense")
        if row["method"] == "dense" and row["setting"] == row["reference"]:
            assert float(row["speedup_vs_dynamic"]) == pytest.approx(1.0)
    for size, sides in DENSE_SIDES.items():
        assert {r["setting"] for r in rows
                if r["method"] == "dense" and int(r["batch_size"]) == size} == sides


@pytest.fixture
def one_repeat(monkeypatch):
    """Quick's timing with one timed pass: the tests check the flow, not the speeds."""
    quick = sweep.BUDGETS["quick"]
    monkeypatch.setitem(sweep.BUDGETS, "quick", dataclasses.replace(quick, repeats=1))


def test_compare_fine_tunes_sweeps_pabee_and_resumes(tiny_sst2, tmp_path, capsys, one_repeat):
    out = str(tmp_path / "compare")
    argv = ["--model", TINY, "--task", "sst-2", "--data_dir", tiny_sst2, "--output_dir", out,
            "--max_length", "16", "--methods", "pabee", "--batch_sizes", "1,4",
            "--allow_collapsed"]  # the tiny model may predict one class; passed on to PABEE
    compare.main(argv)
    printed = capsys.readouterr().out
    assert "[5/5] pabee model: points: done" in printed
    assert sorted(os.listdir(out)) == ["finetune", "logs", "pareto.png", "report.md",
                                       "result_file.json", "results.csv", "runs", "settings.json",
                                       "stages.log"]
    header, rows = read_csv(os.path.join(out, "results.csv"))
    assert tuple(header) == COLUMNS
    check_rows(rows, {"pabee"})
    pabee = [(r["setting"], int(r["batch_size"])) for r in rows if r["method"] == "pabee"]
    assert pabee == [("patience=1", 1), ("patience=2", 1), ("patience=1", 4), ("patience=2", 4)]
    assert all(r["detail"].startswith("avg exit layer ") for r in rows if r["method"] == "pabee")
    with open(os.path.join(out, "pareto.png"), "rb") as handle:
        assert handle.read(8) == b"\x89PNG\r\n\x1a\n"
    text = open(os.path.join(out, "report.md"), encoding="utf-8").read()
    for needle in ("![Pareto fronts](pareto.png)", "- **pabee**: ",
                   "tools/finetune.py", "run_glue_with_pabee.py --model_type bert",
                   "64 training rows"):
        assert needle in text
    assert text.count("\n| pabee | ") == 4
    assert "\nAim (2x measured within 1 point, batch 4) " in text or "\nNo point of any" in text
    assert json.load(open(os.path.join(out, "settings.json")))["batch_sizes"] == [1, 4]

    # A run killed while timing PABEE at batch 4: the rerun retrains nothing and adds the rows.
    with open(os.path.join(out, "results.csv"), encoding="utf-8") as handle:
        lines = handle.readlines()
    with open(os.path.join(out, "results.csv"), "w", encoding="utf-8") as handle:
        handle.writelines(lines[:-2])
    before = stage_events(out)
    compare.main(argv)
    again = stage_events(out)[len(before):]
    assert ("fine-tuning", "skipped") in again and ("pabee", "skipped") in again
    assert not [event for event in again if event[0] in ("fine-tuning", "pabee")
                and event[1] != "skipped"]
    assert ("pabee model: points", "start") in again
    keys = [(r["method"], r["setting"], r["batch_size"]) for r in rows]
    assert [(r["method"], r["setting"], r["batch_size"])
            for r in read_csv(os.path.join(out, "results.csv"))[1]] == keys
    before = stage_events(out)
    compare.main(argv)  # nothing left: every stage skipped
    assert all(event[1] == "skipped" or event[0] in ("fine-tuned model on dev", "dense baselines")
               for event in stage_events(out)[len(before):])


@pytest.fixture
def finetuned(tmp_path):
    """A checkpoint of this toolkit fine-tuned (here: saved) on SST-2 at length 16."""
    source = resolve_source(TINY)
    model = SequenceClassifier(source.config, 2)
    model(dummy_inputs(8))
    folder = str(tmp_path / "finetuned")
    save_checkpoint(model, folder, {"task": "sst-2", "num_labels": 2, "max_length": 16,
                                    "cased": False, "method": "vanilla"},
                    tokenizer=load_tokenizer(TINY))
    return folder


def test_compare_reuses_a_finetuned_model_for_powerbert_adapler_and_the_combination(
        finetuned, tiny_sst2, tmp_path, capsys, monkeypatch):
    # One PoWER-BERT training and two eta offsets keep the test short; the flow is the same.
    from adapler import sweep as adapler_sweep
    from powerbert import sweep as powerbert_sweep

    quick = sweep.BUDGETS["quick"]
    monkeypatch.setitem(sweep.BUDGETS, "quick", dataclasses.replace(quick, repeats=1))
    monkeypatch.setitem(powerbert_sweep.LAMBDAS, "quick", powerbert_sweep.LAMBDAS["quick"][-1:])
    monkeypatch.setitem(adapler_sweep.ETA_OFFSETS, "quick",
                        adapler_sweep.ETA_OFFSETS["quick"][1:])
    out = str(tmp_path / "compare")
    compare.main(["--model", finetuned, "--task", "sst2", "--data_dir", tiny_sst2,
                  "--output_dir", out, "--methods", "powerbert,adapler,powerbert+pabee",
                  "--batch_sizes", "4",
                  "--train_limit", "40", "--allow_collapsed"])
    assert f"reusing {finetuned}" in capsys.readouterr().out
    assert not os.path.exists(os.path.join(out, "finetune"))
    header, rows = read_csv(os.path.join(out, "results.csv"))
    assert tuple(header) == COLUMNS
    points = [(r["method"], r["setting"]) for r in rows if r["method"] != "dense"]
    assert points == [("powerbert", "LAMBDA=0.0002"), ("powerbert", "LAMBDA=0.0002 length-scaled"),
                      ("adapler", "PHI=0.05 eta+0"),
                      ("adapler", "PHI=0.05 eta+0.1"), ("powerbert+pabee", "patience=1"),
                      ("powerbert+pabee", "patience=2")]
    # PABEE on PoWER-BERT trains from the PoWER-BERT model of the same LAMBDA (trained once).
    trained = [event for event in stage_events(out) if event[1] == "done"]
    assert sum(1 for event in trained if event[0].startswith("powerbert LAMBDA")) == 1
    assert all(r["detail"].startswith("avg exit layer ") for r in rows
               if r["method"] == "powerbert+pabee")
    for row in rows:
        assert float(row["speedup_vs_dynamic"]) > 0 and float(row["flops_speedup"]) > 0
        assert int(row["batch_size"]) == 4
    assert all(r["detail"].startswith("retention ") for r in rows if r["method"] == "powerbert")
    fixed, scaled = (r for r in rows if r["method"] == "powerbert")
    assert "scaled by batch length / " in scaled["detail"] and "scaled" not in fixed["detail"]
    # A length-scaled retention keeps at most the fixed k_l, so it never does more work.
    assert float(scaled["flops_speedup"]) >= float(fixed["flops_speedup"])
    etas = [[float(v) for v in r["detail"][4:].split(";")[0].split(",")] for r in rows
            if r["method"] == "adapler"]
    assert {r["detail"].split("; timed as ")[1] for r in rows if r["method"] == "powerbert"} <= {
        "powerbert-dynamic", "powerbert-dynamic-graph"}
    assert etas[1] == pytest.approx([v + 0.1 for v in etas[0]], abs=2e-3)
    with open(os.path.join(out, "data", "SST-2", "train.tsv"), encoding="utf-8") as handle:
        assert len(handle.readlines()) == 41  # header + the 40-row subset


@pytest.mark.parametrize("extra, message", [
    (["--methods", "powerbert,distilbert"], "unknown method(s) distilbert"),
    (["--budget", "medium"], "--budget must be quick or full"),
    (["--task", "ax"], "no labelled dev split"),
    (["--batch_sizes", "1,0"], "--batch_sizes must be positive"),
    (["--batch_sizes", "1,x"], "--batch_sizes must be comma-separated integers"),
    (["--max_length", "64"], "over the model's position table"),
    (["--bf16", "--fp16"], "--bf16 and --fp16 exclude each other"),
])
def test_bad_input_is_one_error_line_and_writes_nothing(extra, message, tiny_sst2, tmp_path,
                                                        capsys):
    out = tmp_path / "compare"
    with pytest.raises(SystemExit) as exit_info:
        compare.main(["--model", TINY, "--data_dir", tiny_sst2, "--output_dir", str(out),
                      "--max_length", "16", *extra])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0]
    assert not out.exists()


def test_an_output_folder_of_another_task_or_command_is_refused(tiny_sst2, tmp_path, capsys):
    out = tmp_path / "compare"
    out.mkdir()
    settings = {"task": "mrpc", "model": TINY, "data_dir": tiny_sst2, "methods": ["pabee"],
                "budget": "quick", "max_length": 16, "train_limit": 1000, "batch_sizes": [1, 32]}
    (out / "settings.json").write_text(json.dumps(settings))
    argv = ["--model", TINY, "--data_dir", tiny_sst2, "--output_dir", str(out), "--max_length",
            "16", "--methods", "pabee"]
    for task, message in (("mrpc", "holds results of task mrpc, not sst-2"),
                          ("sst-2", "was made by another command (budget quick, not full")):
        settings["task"] = task
        (out / "settings.json").write_text(json.dumps(settings))
        with pytest.raises(SystemExit):
            compare.main(argv + ["--budget", "full"])
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], err
    assert sorted(os.listdir(out)) == ["settings.json"]


def test_precision_and_mean_pooling_reach_every_command_line(tiny_sst2, tmp_path):
    """--bf16 goes to every training (in each command line's spelling); a backbone whose
    sentence-transformers pooling config says mean gets PABEE --pooling mean. Nothing runs."""
    import shutil

    model = tmp_path / "mean_model"
    shutil.copytree(TINY, model)
    (model / "1_Pooling").mkdir()
    (model / "1_Pooling" / "config.json").write_text('{"pooling_mode_mean_tokens": true}')
    out = str(tmp_path / "compare")
    args, settings = compare.parse_args(["--model", str(model), "--data_dir", tiny_sst2,
                                         "--output_dir", out, "--max_length", "16", "--bf16",
                                         "--methods", "powerbert,adapler,pabee"])
    assert settings["precision"] == "bf16" and settings["pooling"] == "mean"
    assert settings["batch_sizes"] == [32]  # quick's default
    assert compare.finetune_command(settings, get_task("sst-2"), tiny_sst2,
                                    out).argv[-1] == "--bf16"
    context = sweep.Context(
        task=get_task("sst-2"), finetuned=out, cased=False,
        config=resolve_source(TINY).config, max_length=16, train_dir=tiny_sst2, runs=out,
        budget=sweep.BUDGETS["quick"], dev=None, finetuned_scores=None, timing=None,
        precision=settings["precision"], pooling=settings["pooling"])
    argvs = {command.label: command.argv for method in ("powerbert", "adapler", "pabee")
             for group in sweep.groups(method, context) for command in group.commands}
    for label, argv in argvs.items():
        assert ("--bf16" if label == "pabee" else "--BF16") in argv, label
    pabee = argvs["pabee"]
    assert pabee[pabee.index("--pooling") + 1] == "mean"
    assert not any("--pooling" in argv for label, argv in argvs.items() if label != "pabee")
    assert not os.path.exists(out)


def test_a_relative_output_dir_is_made_absolute(tiny_sst2, tmp_path, monkeypatch):
    """AdapLeR's commands run inside the output folder: the paths they get must not be relative
    to the caller's working directory (the demo's default is runs/demo)."""
    monkeypatch.chdir(tmp_path)
    args, settings = compare.parse_args(["--model", TINY, "--data_dir", tiny_sst2, "--output_dir",
                                         os.path.join("runs", "demo"), "--max_length", "16"])
    assert args.output_dir == str(tmp_path / "runs" / "demo")
    assert compare.training_data(settings, args.output_dir).startswith(str(tmp_path))


def test_the_report_says_whether_the_aim_is_reached_and_what_faster_points_cost():
    from common.compare.report import aim_line

    def row(method, setting, metric, speedup):
        return {"method": method, "setting": setting, "metric": metric, "batch_size": 32,
                "speedup_vs_dynamic": speedup}

    rows = [row("dense", "dense-dynamic-xla", 0.84, 1.0), row("pabee", "patience=3", 0.835, 1.2),
            row("powerbert", "LAMBDA=0.001", 0.832, 1.7), row("adapler", "PHI=0.2", 0.80, 2.6),
            row("adapler", "PHI=0.05", 0.815, 2.2)]
    assert aim_line(rows, 0.84) == (
        "Aim (2x measured within 1 point, batch 32) not reached; closest: powerbert "
        "LAMBDA=0.001 (1.70x); the most accurate faster point, adapler PHI=0.05 (2.20x), "
        "loses 2.5 points.")
    rows.append(row("powerbert", "LAMBDA=0.002", 0.8305, 2.1))
    assert aim_line(rows, 0.84) == ("Aim (2x measured within 1 point, batch 32) reached: "
                                    "powerbert LAMBDA=0.002 (2.10x).")
    assert aim_line(rows[:1] + rows[3:5], 0.84).startswith("No point of any method is within")


def test_a_point_at_the_one_class_level_is_never_a_best_point(tmp_path):
    """On MRPC a classifier answering "paraphrase" everywhere scores F1 0.81, within one point of
    a weak fine-tuning: it must not count as reaching the aim, and the plot and report show it."""
    from common.compare.report import aim_line, best_points, write_plot, write_report

    def row(method, setting, metric, speedup):
        return {"method": method, "setting": setting, "metric_name": "f1", "metric": metric,
                "batch_size": 32, "speedup_vs_dynamic": speedup, "flops_speedup": speedup,
                "speedup_vs_padded": 2 * speedup, "background_load": 0.0}

    rows = [row("dense", "dense-dynamic-xla", 0.818, 1.0),
            row("powerbert", "LAMBDA=0.0005", 0.815, 1.5),
            row("powerbert", "LAMBDA=0.005", 0.8122, 9.0)]
    assert aim_line(rows, 0.818).startswith("Aim (2x measured within 1 point, batch 32) reached")
    assert aim_line(rows, 0.818, one_class=0.8122) == (
        "Aim (2x measured within 1 point, batch 32) not reached; closest: powerbert "
        "LAMBDA=0.0005 (1.50x); every faster point is at or below the one-class level.")
    stronger = [dict(rows[0], metric=0.83), dict(rows[1], metric=0.825), rows[2],
                row("adapler", "PHI=0.05", 0.815, 2.5)]
    assert aim_line(stronger, 0.83, one_class=0.8122).endswith(
        "the most accurate faster point, adapler PHI=0.05 (2.50x), loses 1.5 points.")
    assert best_points(rows, 0.818, one_class=0.8122)["powerbert"][0]["setting"] == "LAMBDA=0.0005"
    report = tmp_path / "report.md"
    settings = {"task": "mrpc", "model": "m", "data_dir": "d", "budget": "quick",
                "max_length": 128, "train_rows": 10, "batch_sizes": [32]}
    write_report(str(report), rows, settings, 0.818, ["compare"], one_class=0.8122)
    assert "One class for every dev example scores f1 0.8122" in report.read_text()
    write_plot(str(tmp_path / "pareto.png"), rows, 0.818, "f1", one_class=0.8122)
    assert (tmp_path / "pareto.png").stat().st_size > 0


def test_a_process_short_of_memory_maps_starts_the_same_command_afresh(monkeypatch):
    """XLA keeps every compiled shape's code; compare restarts itself (and so resumes) before the
    kernel's memory-map limit kills it, and leaves a process with room alone."""
    import sys

    from common import inference

    started, lines = [], []
    monkeypatch.setattr(os, "execv", lambda path, argv: started.append((path, argv)))
    monkeypatch.setattr(inference, "memory_maps", lambda: (16000, 65530))
    compare.restart_if_maps_run_low(lines.append)
    assert started == []
    monkeypatch.setattr(inference, "memory_maps", lambda: (17000, 65530))
    compare.restart_if_maps_run_low(lines.append)
    assert started == [(sys.executable, sys.orig_argv)]
    assert lines == ["restarting in a fresh process to free XLA's compiled code (17000 of the "
                     "kernel's 65530 memory maps in use); the run resumes"]
    used, limit = inference.memory_maps()
    assert 0 < used < limit


def test_only_compare_s_own_command_line_may_restart_itself(monkeypatch, tmp_path):
    """The restart re-runs the process's command line: from the command line yes, from
    Python (the demo, the tests) no."""
    import sys

    seen = []
    monkeypatch.setattr(compare, "parse_args", lambda argv: (argv, {}))
    monkeypatch.setattr(compare, "run", lambda args, settings, restartable: seen.append(
        restartable))
    argv = ["--output_dir", str(tmp_path)]
    monkeypatch.setattr(sys, "argv", ["bert-speedup-compare", *argv])
    compare.main()
    compare.main(["--output_dir", str(tmp_path / "other")])
    assert seen == [True, False]


@pytest.fixture
def reviews(tmp_path):
    """The tiny SST-2 sample as a user's own files: a CSV (`id,review,sentiment` with the labels
    negative/positive) and a JSON lines dev file."""
    import pandas as pd

    from common.data import read_split

    folder = tmp_path / "reviews"
    folder.mkdir()
    names = ("negative", "positive")
    paths = {}
    for split, rows in (("train", 64), ("dev", 12)):
        examples = read_split(get_task("sst-2"), default_data_dir(), split)
        frame = pd.DataFrame({"id": [f"{split}{i}" for i in range(rows)],
                              "review": examples.text_a[:rows],
                              "sentiment": [names[int(y)] for y in examples.labels[:rows]]})
        paths[split] = str(folder / (f"{split}.csv" if split == "train" else f"{split}.jsonl"))
        if split == "train":
            frame.to_csv(paths[split], index=False)
        else:
            frame.to_json(paths[split], orient="records", lines=True)
    return paths


def test_own_files_reach_every_method_in_its_flag_style(reviews, tmp_path, one_repeat):
    """compare on a CSV with its own columns and string labels: the fine-tuning and each method's
    command line get the files (a seeded subset of the training file) and the columns in their
    own style, and every point is scored on the JSON lines dev file. PoWER-BERT (upper-case
    flags) and PABEE (lower-case) run; AdapLeR's and LTP's command lines are checked as built."""
    out = tmp_path / "compare"
    compare.main(["--model", TINY, "--train_file", reviews["train"], "--validation_file",
                  reviews["dev"], "--text_column", "review", "--label_column", "sentiment",
                  "--output_dir", str(out), "--max_length", "16", "--train_limit", "40",
                  "--batch_sizes", "4", "--methods", "powerbert,pabee", "--allow_collapsed"])
    header, rows = read_csv(out / "results.csv")
    assert {r["task"] for r in rows} == {"own-reviews"}
    assert {r["method"] for r in rows} == {"dense", "powerbert", "pabee"}
    subset = out / "data" / "reviews" / "train.jsonl"
    assert len(subset.read_text(encoding="utf-8").splitlines()) == 40
    commands = {log.name: log.read_text(encoding="utf-8").splitlines()[0]
                for log in (out / "logs").iterdir()}
    assert len(commands) == 3  # the fine-tuning, PoWER-BERT, PABEE
    sidecar = json.load(open(out / "finetune" / "config.json", encoding="utf-8"))
    assert sidecar["task"] == "own-reviews"
    assert sidecar["labels"] in ({"0": "negative", "1": "positive"}, ["negative", "positive"])
    assert json.load(open(out / "settings.json"))["data_files"]["label_column"] == "sentiment"

    context = sweep.Context(
        task=get_task("own-reviews").with_files(train=str(subset), dev=reviews["dev"]),
        finetuned=str(out / "finetune"), cased=False, config=resolve_source(TINY).config,
        max_length=16, train_dir=str(subset.parent), runs=str(tmp_path / "runs"),
        budget=sweep.BUDGETS["quick"], dev=None, finetuned_scores=None, timing=None)
    commands.update({command.label: shlex.join(command.argv) for method in ("adapler", "ltp")
                     for group in sweep.groups(method, context) for command in group.commands})
    for name, command in commands.items():
        upper = "powerbert" in name or "adapler" in name
        style = str.upper if upper else str
        for flag, value in (("train_file", subset), ("validation_file", reviews["dev"]),
                            ("text_column", "review"), ("label_column", "sentiment"),
                            ("task_type", "classification")):
            assert f"--{style(flag)} {value}" in command, (name, flag, command)
        assert "--task " not in command.lower() and "--data_dir" not in command.lower()


def test_own_files_that_compare_cannot_use_are_one_error_line(reviews, tmp_path, capsys):
    out = tmp_path / "compare"
    base = ["--model", TINY, "--output_dir", str(out), "--max_length", "16",
            "--text_column", "review", "--label_column", "sentiment"]
    for extra, message in (
            (["--train_file", reviews["train"]], "pass both"),
            (["--train_file", reviews["train"], "--validation_file", reviews["dev"],
              "--train_limit", "1"], "lack the label(s)"),
            (["--train_file", reviews["train"], "--validation_file", reviews["dev"],
              "--task", "mrpc"], "exclude each other")):
        with pytest.raises(SystemExit) as exit_info:
            compare.main(base + extra)
        assert exit_info.value.code == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error: ") and message in err[0], err
        assert not out.exists()


def test_a_result_file_names_no_machine_path(monkeypatch, tmp_path):
    """result_file.json's commands: the Python, the bundled MiniLM, $GLUE_DIR's folder and the
    working folder become `python`, `$M`, `$GLUE_DIR` and relative paths."""
    import sys

    from common.compare.report import portable
    from common.data import default_model_dir

    monkeypatch.setenv("GLUE_DIR", str(tmp_path / "glue"))
    monkeypatch.chdir(tmp_path)
    command = (f"{sys.executable} tools/compare.py --data_dir {tmp_path}/glue/SST-2 --model "
               f"{default_model_dir()} --output_dir {tmp_path}/runs/x")
    assert portable(command) == ("python tools/compare.py --data_dir $GLUE_DIR/SST-2 --model $M "
                                 "--output_dir runs/x")
