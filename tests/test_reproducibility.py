"""Same command, same seed, same machine -> bit-identical weights and metrics, for every training
pipeline on a tiny model: tools/finetune.py (two separate processes), PoWER-BERT's three stages,
AdapLeR stages A and C, PABEE. Each run writes its own folder; every weight of every checkpoint
is compared exactly."""
import json
import os
import random
import subprocess
import sys

import h5py
import numpy as np
import pytest

from conftest import FIXTURES, REPO

TINY = FIXTURES / "tiny_bert"
WORDS = "the a movie film was is very plot acting story it this that and , .".split()


def _sentence(rng, label):
    words = [rng.choice(WORDS) for _ in range(rng.randint(2, 6))]
    words.insert(rng.randint(0, len(words)),
                 rng.choice(("good", "great", "fun") if label else ("bad", "awful", "boring")))
    return " ".join(words)


@pytest.fixture(scope="module")
def sst2(tmp_path_factory):
    folder = tmp_path_factory.mktemp("data") / "SST-2"
    folder.mkdir()
    rng = random.Random(0)
    for split, count in (("train", 24), ("dev", 8)):
        rows = [f"{_sentence(rng, i % 2)}\t{i % 2}" for i in range(count)]
        (folder / f"{split}.tsv").write_text("sentence\tlabel\n" + "\n".join(rows) + "\n")
    return folder


def weights(folder):
    """{file/key: array} of every *.weights.h5 under `folder`."""
    found = {}
    for root, _, files in os.walk(folder):
        for name in files:
            if name.endswith(".weights.h5"):
                path = os.path.join(root, name)
                with h5py.File(path, "r") as data:
                    data.visititems(lambda key, obj: found.__setitem__(
                        f"{os.path.relpath(path, folder)}:{key}", obj[()])
                        if isinstance(obj, h5py.Dataset) else None)
    return found


def assert_identical(first, second):
    a, b = weights(first), weights(second)
    assert a and sorted(a) == sorted(b)
    differ = [key for key in a if not np.array_equal(a[key], b[key])]
    assert not differ, f"{len(differ)} of {len(a)} tensors differ, e.g. {differ[:3]}"


def test_finetune_cli_two_processes(sst2, tmp_path):
    outs = [tmp_path / f"run{i}" for i in range(2)]
    for out in outs:
        subprocess.run([sys.executable, "tools/finetune.py", "--model", str(TINY), "--data_dir",
                        str(sst2), "--output_dir", str(out), "--epochs", "2", "--batch_size",
                        "8", "--max_length", "16", "--learning_rate", "1e-3", "--seed", "3"],
                       cwd=REPO, check=True, capture_output=True)
    assert_identical(*outs)
    results = [json.loads((out / "eval_results.json").read_text()) for out in outs]
    assert results[0] == results[1]


def test_powerbert_three_stages(sst2, tmp_path):
    from powerbert import cli
    config = tmp_path / "task_config.json"
    config.write_text(json.dumps({"sst-2": {"seq_len": 16, "num_classes": 2}}))
    outs = [tmp_path / f"run{i}" for i in range(2)]
    for out in outs:
        assert cli.main(["--TASK", "sst-2", "--CHECKPOINT_PATH", str(TINY), "--DATA_DIR",
                         str(sst2), "--TASK_CONFIG_PATH", str(config), "--EPOCHS", "1",
                         "--BATCH_SIZE", "8", "--LR_BERT", "1e-3", "--LR_SOFT_EXTRACT", "0.05",
                         "--LAMBDA", "0.01", "--OUTPUT_DIR", str(out), "--SEED", "3",
                         "--ALLOW_COLLAPSED"]) == 0
    assert_identical(*outs)
    logs = [(out / "log_file.txt").read_text().split("\n", 1)[1] for out in outs]
    assert logs[0] == logs[1]


def test_adapler_stages_a_and_c(sst2, tmp_path):
    from adapler.cli import finetune_main, saliency_main, train_main
    previous = os.getcwd()
    sidecars = []
    try:
        for index in range(2):
            work = tmp_path / f"run{index}"
            work.mkdir()
            os.chdir(work)
            common = ["--TASK", "sst2", "--MAX_LENGTH", "16", "--DATA_SEED", "3",
                      "--MODEL_NAME_OR_PATH", str(TINY), "--DATA_DIR", str(sst2)]
            finetune_main(common + ["--EPOCHS", "1", "--BATCH_SIZE", "8", "--LEARNING_RATE",
                                    "1e-3"])
            saliency_main(common + ["--BATCH_SIZE", "8", "--ALLOW_COLLAPSED"])
            train_main(common + ["--GAMMA", "0.005", "--PHI", "0.0005", "--SAVE_NAME", "r",
                                 "--BATCH_SIZE", "8", "--EPOCHS", "1", "--LEARNING_RATE",
                                 "1e-3"])
            model = work / "directory/bert/3/sst2/models/adaptive_lr/r_GAMMA0.005_PHI0.0005_lr"
            sidecar = json.loads((model / "config.json").read_text())
            sidecars.append({k: v for k, v in sidecar.items() if k != "written"})
    finally:
        os.chdir(previous)
    assert_identical(tmp_path / "run0" / "directory", tmp_path / "run1" / "directory")
    assert sidecars[0] == sidecars[1]


def test_pabee(sst2, tmp_path):
    from pabee import cli, pipeline
    outs = [tmp_path / f"run{i}" for i in range(2)]
    results = []
    for out in outs:
        argv = ["--model_type", "bert", "--model_name_or_path", str(TINY), "--task_name",
                "SST-2", "--do_lower_case", "--data_dir", str(sst2), "--max_seq_length", "16",
                "--output_dir", str(out), "--do_train", "--do_eval", "--patience", "1",
                "--per_gpu_train_batch_size", "8", "--learning_rate", "1e-3",
                "--num_train_epochs", "1", "--logging_steps", "0", "--save_steps", "0",
                "--seed", "3"]
        results.append(pipeline.run(cli.settings(argv), log=lambda line: None))
    assert_identical(*outs)
    assert results[0] == results[1]


def test_seed_out_of_range_is_a_user_error():
    from common.errors import UserError
    from common.seeding import set_seed
    with pytest.raises(UserError, match="seed -1 is out of range"):
        set_seed(-1)
