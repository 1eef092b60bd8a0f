"""End to end on a tiny model and tiny SST-2-format data, through the command lines as the seed
README runs them: folders, fine-tuning, saliencies, AdapLeR training (and its GLUE variant),
evaluation, GLUE prediction, lr_mode inference, the rationale and benchmark tools, and the
bad-input errors (one line, exit code 2, nothing half-written)."""
import json
import os
import pickle
import random
import shutil
import subprocess
from pathlib import Path

import pytest

from adapler.cli import (evaluation_main, finetune_main, glue_prediction_main, glue_train_main,
                         saliency_main, train_main)
from adapler.inference import main as infer_main
from common.runlog import read_events
from tests.test_adapler_data import eraser_fixture

REPO = Path(__file__).resolve().parents[1]
MODEL = "tiny_bert_2_layers"  # made by the fixture below, inside the work folder
WORDS = ("the a movie film was is good bad great awful not very fun boring , . ! i it and but "
         "this that plot acting story").split()
COMMON = ["--TASK", "sst2", "--MAX_LENGTH", "16", "--DATA_SEED", "22",
          "--MODEL_NAME_OR_PATH", MODEL]
TASK_DIR = Path("directory/bert/22/sst2")
STEM = "run_1_sst2_GAMMA0.005_PHI0.0005"


def sentence(rng):
    label = rng.randint(0, 1)
    words = [rng.choice(WORDS) for _ in range(rng.randint(2, 9))]
    words.insert(rng.randint(0, len(words)), rng.choice(["good", "great", "fun"] if label
                                                        else ["bad", "awful", "boring"]))
    return " ".join(words), label


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    root = make_workdir(tmp_path_factory.mktemp("adapler"))
    previous = os.getcwd()
    os.chdir(root)
    yield root
    os.chdir(previous)


def make_workdir(root):
    """Tiny SST-2 data and a 2-layer tiny BERT in `root`."""
    rng = random.Random(0)
    data = root / "data" / "SST-2"
    data.mkdir(parents=True)
    for split, count in (("train", 40), ("dev", 16)):
        rows = [sentence(rng) for _ in range(count)]
        (data / f"{split}.tsv").write_text(
            "sentence\tlabel\n" + "".join(f"{s}\t{l}\n" for s, l in rows))
    (data / "test.tsv").write_text(
        "index\tsentence\n" + "".join(f"{i}\t{sentence(rng)[0]}\n" for i in range(6)))
    model = root / MODEL  # tiny_bert cut to 2 layers: the stages trace faster
    shutil.copytree(REPO / "tests" / "fixtures" / "tiny_bert", model)
    config = json.loads((model / "config.json").read_text())
    (model / "config.json").write_text(json.dumps({**config, "num_hidden_layers": 2}))
    return root


def fails(main, argv, capsys, message):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and "\n" not in err
    return err


def test_build_task_dirs(tmp_path):
    script = REPO / "directory" / "build_task_dirs.sh"
    copy = tmp_path / "directory" / "build_task_dirs.sh"
    copy.parent.mkdir()
    copy.write_text(script.read_text())
    for _ in range(2):  # idempotent
        subprocess.run(["bash", str(copy), "bert", "sst2", "22"], cwd=copy.parent, check=True,
                       capture_output=True)
    base = tmp_path / "directory" / "bert" / "22" / "sst2"
    for sub in ("models/adaptive_lr", "logs", "data/sals/train", "data/sals/val",
                "data/attn/test"):
        assert (base / sub).is_dir()
    bad = subprocess.run(["bash", str(copy), "roberta", "sst2", "22"], cwd=copy.parent,
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "only backbone is 'bert'" in bad.stderr


def test_stages_run_as_in_the_readme(workdir, capsys):
    fails(saliency_main, COMMON, capsys, "run_classification_bert.py --TASK sst2")
    finetune_main(COMMON + ["--EPOCHS", "1", "--BATCH_SIZE", "8", "--LEARNING_RATE", "1e-3"])
    logs = json.loads((TASK_DIR / "logs/ft_logs.json").read_text())
    assert len(logs) == 1 and list(logs[0]["validation"])[0] == "acc"
    assert (TASK_DIR / "models/bert_sst2_1/model.weights.h5").is_file()

    # The tiny model may predict one class after one epoch: let stage B go on from it.
    saliency_main(COMMON + ["--BATCH_SIZE", "4", "--ALLOW_COLLAPSED"])
    sals = TASK_DIR / "data/sals/train"
    assert sorted(p.name for p in sals.glob("*")) == [
        "sal_mat_wCLSSEPnoZ_1.ids.json", "sal_mat_wCLSSEPnoZ_1.npy"]

    train = COMMON + ["--GAMMA", "0.005", "--PHI", "0.0005", "--SAVE_NAME", "run_1_sst2",
                      "--BATCH_SIZE", "8", "--EPOCHS", "1", "--LEARNING_RATE", "3e-5"]
    fails(train_main, train[:-6] + ["--MAX_LENGTH", "12"], capsys, "MAX_LENGTH is 12")
    train_main(train)
    model = TASK_DIR / f"models/adaptive_lr/{STEM}_lr"
    sidecar = json.loads((model / "config.json").read_text())
    assert sidecar["method"] == "adapler" and len(sidecar["method_state"]["eta"]) == 2
    log = (TASK_DIR / f"logs/{STEM}.log").read_text()
    events = read_events(TASK_DIR / f"logs/{STEM}.jsonl", "validation")
    assert [e["epoch"] for e in events] == [1] and "speedup" in events[0]
    assert "SPEEDUP (TOTAL)" in log and "Confidence Ratios" in log and "completed!" in log
    history = pickle.loads((TASK_DIR / f"logs/{STEM}.pkl").read_bytes())
    assert set(history) == {"loss", "head_loss", "lambda", "gamma"}
    assert len(history["loss"]) == 5 and history["lambda"][:2] == [1000.0, 10.0]

    evaluation_main(["--TASK", "sst2", "--MAX_LENGTH", "16", "--MODEL_PATH", f"{model}.h5",
                     "--LR_MODEL", "--SPLIT", "dev"])
    assert "SPEEDUP (TOTAL)" in capsys.readouterr().out
    flops = pickle.loads((TASK_DIR / "logs/flops_per_example.pickle").read_bytes())
    assert len(flops["bert"]) == len(flops["adapler"]) == 16
    fails(evaluation_main, ["--TASK", "sst2", "--MAX_LENGTH", "16", "--MODEL_PATH", str(model)],
          capsys, "SST-2 test split has no labels")
    fails(evaluation_main, ["--TASK", "sst2", "--MAX_LENGTH", "16", "--MODEL_PATH",
                            str(TASK_DIR / "models/bert_sst2_1"), "--LR_MODEL", "--SPLIT", "dev"],
          capsys, "not an AdapLeR checkpoint")
    evaluation_main(["--TASK", "sst2", "--MAX_LENGTH", "16", "--SPLIT", "dev",
                     "--MODEL_PATH", str(TASK_DIR / "models/bert_sst2_1")])  # BERT baseline

    glue_prediction_main(["--TASK", "sst2", "--MAX_LENGTH", "16", "--LR_MODEL", "--MODEL_PATH",
                          str(model), "--LR_MODEL"])
    tsv = (TASK_DIR / f"logs/glue_prediction_{STEM}_lr_test.tsv").read_text().splitlines()
    assert tsv[0] == "index\tprediction" and len(tsv) == 7
    assert all(line.split("\t")[1] in ("0", "1") for line in tsv[1:])

    capsys.readouterr()
    infer_main(["--MODEL_PATH", str(model), "--TEXT", "the movie was very good"])
    out = capsys.readouterr().out
    assert out.startswith(("prediction: negative (0)", "prediction: positive (1)"))
    assert "layer  1" in out and "[CLS]" in out
    fails(infer_main, ["--MODEL_PATH", str(model), "--TEXT", " ".join(["good"] * 20)], capsys,
          "more than MAX_LENGTH 16")


def test_glue_variant_and_checkpoint_fallback(workdir, capsys):
    """run_glue_w_lr.py runs (JS loss, separate CP learning rate); when no epoch meets the rule
    the final model is still saved and the log says so."""
    logs = TASK_DIR / "logs/ft_logs.json"
    logs.write_text(json.dumps([{"validation": {"acc": 2.0}}]))
    glue_train_main(COMMON + ["--SAVE_NAME", "glue", "--EPOCHS", "1", "--JS_BASED_RATIO",
                              "--HEAD_LEARNING_RATE", "1e-4"])
    stem = "glue_GAMMA0.001_PHI0.002"
    sidecar = json.loads((TASK_DIR / f"models/adaptive_lr/{stem}_lr/config.json").read_text())
    assert sidecar["training"]["checkpoint_rule_met"] is False
    assert sidecar["method_state"]["eta_learning_rate"] == 5e-4  # the original's rate unless --ETA_LEARNING_RATE
    log = (TASK_DIR / f"logs/{stem}.log").read_text()
    assert "WARNING: no epoch reached" in log and "(lambda 10)" in log
    fails(glue_train_main, COMMON + ["--SOFT_EXTRACT_TYPE", "tanh"], capsys, "does not exist")
    fails(glue_train_main, COMMON + ["--ETA_LEARNING_RATE", "0"], capsys,
          "--ETA_LEARNING_RATE must be a finite number > 0")


def test_bad_inputs(workdir, capsys):
    fails(finetune_main, ["--TASK", "nope", "--MODEL_NAME_OR_PATH", MODEL], capsys,
          "unknown task 'nope'")
    fails(finetune_main, COMMON[:2] + ["--MAX_LENGTH", "64", "--MODEL_NAME_OR_PATH", MODEL],
          capsys, "over the model's position table")
    fails(train_main, COMMON[:-4] + ["--DATA_SEED", "7", "--MODEL_NAME_OR_PATH", MODEL], capsys,
          "ft_logs.json not found")
    seven = Path("directory/bert/7/sst2/logs")
    seven.mkdir(parents=True)
    (seven / "ft_logs.json").write_text(json.dumps([{"validation": {"acc": 0.5}}]))
    fails(saliency_main, COMMON[:-4] + ["--DATA_SEED", "7", "--MODEL_NAME_OR_PATH", MODEL],
          capsys, "fine-tuned checkpoint directory/bert/7/sst2/models/bert_sst2_1 not found")
    fails(evaluation_main, ["--TASK", "sst2", "--MODEL_PATH", "missing/x_lr.h5", "--LR_MODEL"],
          capsys, "checkpoint missing/x_lr.h5 not found")


def test_rationale_and_benchmark_tools(workdir, capsys):
    from tools import benchmark_adapler, rationale_eval

    model = str(TASK_DIR / f"models/adaptive_lr/{STEM}_lr")
    eraser_fixture(Path("eraser"))
    rationale_eval.main(["--TASK", "movie_rationales", "--DATA_DIR", "eraser", "--MODEL_PATH",
                         model, "--BASELINE_MODEL_PATH", str(TASK_DIR / "models/bert_sst2_1")])
    out = capsys.readouterr().out
    for row in ("AdapLeR (kept tokens)", "top-k saliency", "top-k attention rollout",
                "top-k random"):
        assert row in out
    benchmark_adapler.main(["--MODEL_PATH", model, "--DATA_DIR", "data/SST-2",
                            "--NUM_EXAMPLES", "6", "--REPEATS", "1", "--BATCH_SIZE", "4",
                            "--OUTPUT", "bench.json"])
    record = json.loads(Path("bench.json").read_text())
    assert [g["batch_size"] for g in record["groups"]] == [1, 4]
    single, batched = ({r["side"]: r for r in g["rows"]} for g in record["groups"])
    assert set(single) == {"dense-padded", "dense-unpadded", "dense-unpadded-xla",
                           "adapler-unpadded"}
    assert set(batched) == {"dense-padded", "dense-dynamic-graph", "dense-dynamic-xla",
                            "adapler-dynamic"}
    for row in list(single.values()) + list(batched.values()):
        assert row["median_ms"] > 0 and 0 <= row["metric"] <= 1
    assert single["adapler-unpadded"]["same_predictions"] == "6/6"
    assert batched["adapler-dynamic"]["same_predictions"] == "6/6"
    assert single["adapler-unpadded"]["flops_speedup"] > 0
    assert batched["adapler-dynamic"]["reference_dynamic"].startswith("dense-dynamic-")
    assert "| 4 | adapler-dynamic |" in capsys.readouterr().out


def test_stage_c_refuses_saliencies_of_an_earlier_stage_a_run(tmp_path, monkeypatch, capsys):
    """Stage A, stage B, stage A again (another learning rate, --OVERWRITE_OUTPUT_DIR): stage C
    stops with one line instead of training on the first run's saliencies; once stage B has
    recomputed them, stage C's check passes."""
    from adapler.saliency import check_saliency_sources

    monkeypatch.chdir(make_workdir(tmp_path))
    stage_a = COMMON + ["--EPOCHS", "1", "--BATCH_SIZE", "8", "--LEARNING_RATE"]
    finetune_main(stage_a + ["1e-3"])
    saliency_main(COMMON + ["--BATCH_SIZE", "8", "--ALLOW_COLLAPSED"])
    finetune_main(stage_a + ["5e-4", "--OVERWRITE_OUTPUT_DIR"])
    capsys.readouterr()
    fails(train_main, COMMON + ["--EPOCHS", "1", "--BATCH_SIZE", "8", "--ALLOW_COLLAPSED"],
          capsys, "was computed from an earlier stage-A run")
    assert not (TASK_DIR / "models" / "adaptive_lr").exists()  # nothing trained or written
    saliency_main(COMMON + ["--BATCH_SIZE", "8", "--ALLOW_COLLAPSED", "--OVERWRITE_OUTPUT_DIR"])
    check_saliency_sources([str(TASK_DIR / "data/sals/train/sal_mat_wCLSSEPnoZ_1.npy")])
