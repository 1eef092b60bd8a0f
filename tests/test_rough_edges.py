"""Bad input found by a re-run of the bad-input catalogue: a really full disk during a
checkpoint save, the position-table error in each command's own terms, PABEE's inputs checked
before the first training step and its evaluation saying how many texts it cuts, AdapLeR's
saliencies of a larger training subset."""
import os
import subprocess
import sys
import uuid

import pytest

from conftest import FIXTURES, REPO
from test_bad_input import _main, _sst2_rows, _write, run_bad

TINY = str(FIXTURES / "tiny_bert")  # 32 positions


@pytest.fixture
def sst2(tmp_path):
    header = ["sentence\tlabel"]
    return _write(tmp_path / "SST-2", {"train.tsv": header + _sst2_rows(),
                                        "dev.tsv": header + _sst2_rows()})


@pytest.fixture
def small_disk(tmp_path):
    """A 40 KB tmpfs (root only): smaller than the tiny model's weights."""
    disk = tmp_path / "disk"
    disk.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=40k", "tmpfs", str(disk)],
                          capture_output=True)
    if made.returncode:
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    yield disk
    subprocess.run(["umount", str(disk)], check=True)


def test_full_disk_is_one_error_line_and_nothing_left(small_disk, sst2):
    """h5py used to crash the process (SIGSEGV after dozens of ignored exceptions) on ENOSPC."""
    out = small_disk / "out"
    done = subprocess.run(
        [sys.executable, "-m", "tools.finetune", "--model", TINY, "--data_dir", sst2,
         "--output_dir", str(out), "--max_length", "16", "--epochs", "1", "--batch_size", "8"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert done.returncode == 2, done.stderr[-2000:]
    assert len(errors) == 1 and "not enough free space" in errors[0], done.stderr[-2000:]
    assert "Traceback" not in done.stderr and "Exception ignored" not in done.stderr
    assert not os.path.exists(out / ".staging")


def test_a_failed_write_leaves_no_staging(small_disk, monkeypatch):
    """Past the free-space check (margin 0), the write itself fails: a plain OSError, no crash,
    the staging folder removed."""
    from common import checkpoints

    monkeypatch.setattr(checkpoints, "check_free_space", lambda folder, model: None)
    model, _, _ = checkpoints.load_classifier(TINY, 2)
    folder = small_disk / "ckpt"
    with pytest.raises(OSError, match="No space left"):
        checkpoints.save_checkpoint(model, str(folder), {"task": "sst-2", "num_labels": 2,
                                                         "max_length": 16, "method": "vanilla"})
    assert os.listdir(folder) == []


@pytest.mark.parametrize("command, argv, fix", [
    ("pabee", ["--model_type", "bert", "--model_name_or_path", TINY, "--task_name", "SST-2",
               "--do_train", "--data_dir", "{sst2}", "--max_seq_length", "64",
               "--output_dir", "{out}"], "pass a smaller --max_seq_length"),
    ("adapler_finetune", ["--TASK", "sst2", "--MAX_LENGTH", "64", "--DATA_SEED", "22",
                          "--MODEL_NAME_OR_PATH", TINY, "--DATA_DIR", "{sst2}"],
     "pass a smaller --MAX_LENGTH"),
    ("powerbert", ["--TASK", "sst-2", "--CHECKPOINT_PATH", TINY, "--DATA_DIR", "{sst2}",
                   "--TASK_CONFIG_PATH", "{config}", "--OUTPUT_DIR", "{out}",
                   "--LR_SOFT_EXTRACT", "0.01", "--LAMBDA", "0.01"],
     "set a smaller seq_len for sst-2 in the --TASK_CONFIG_PATH file"),
    ("finetune", ["--model", TINY, "--data_dir", "{sst2}", "--output_dir", "{out}",
                  "--max_length", "64"], "pass a smaller --max_length"),
])
def test_position_table_error_names_the_commands_own_flag(command, argv, fix, sst2, tmp_path,
                                                          monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    config = tmp_path / "task_config.json"
    config.write_text('{"sst-2": {"seq_len": 64, "num_classes": 2}}')
    paths = {"sst2": sst2, "out": str(tmp_path / f"out-{uuid.uuid4().hex}"),
             "config": str(config)}
    line = run_bad(_main(command), [arg.format(**paths) for arg in argv], capsys,
                   [str(tmp_path)], allowed={str(tmp_path / "directory")})
    assert "over the model's position table (32)" in line and line.endswith(fix)


@pytest.mark.parametrize("flag", ["--do_eval", "--evaluate_during_training"])
def test_pabee_checks_dev_before_training(flag, tmp_path, capsys):
    data = _write(tmp_path / "SST-2", {"train.tsv": ["sentence\tlabel"] + _sst2_rows()})
    out = tmp_path / "out"
    argv = ["--model_type", "bert", "--model_name_or_path", TINY, "--task_name", "SST-2",
            "--do_train", flag, "--do_lower_case", "--data_dir", data, "--max_seq_length", "16",
            "--output_dir", str(out)]
    line = run_bad(_main("pabee"), argv, capsys, [str(tmp_path)])
    assert "SST-2 dev file not found" in line
    assert not out.exists()


def test_pabee_evaluation_says_how_many_texts_it_cuts(sst2, tmp_path, capsys):
    out = str(tmp_path / "pabee")
    common = ["--model_type", "bert", "--task_name", "SST-2", "--do_lower_case",
              "--data_dir", sst2, "--output_dir", out, "--seed", "1"]
    _main("pabee")(common + ["--model_name_or_path", TINY, "--do_train", "--max_seq_length",
                             "16", "--max_steps", "1", "--save_steps", "0",
                             "--logging_steps", "0"])
    capsys.readouterr()
    _main("pabee")(common + ["--model_name_or_path", out, "--do_eval", "--max_seq_length", "4"])
    notes = [line for line in capsys.readouterr().out.splitlines() if line.startswith("note:")]
    assert any("8 of 8 SST-2 dev texts are longer than the max length 4" in n for n in notes)


@pytest.mark.parametrize("argv, message", [
    (["--max_length", "1024"], r"max length 1024 is over the model's position table \(512\); "
                               "pass a smaller --max_length"),
    (["--lengths", "100,120,90,80,70,60,50,40,30,20,10,5"],
     "grows from one layer to the next; .* so give non-increasing lengths"),
    (["--method", "adapler", "--lengths", "100,120,90,80,70,60,50,40,30,20,10,5"],
     "grow from one layer to the next; .* so give non-increasing lengths"),
    (["--lengths", "200,90,80,70,60,50,40,30,20,10,5,5"],
     "exceeds the input length 128; give at most 128 per layer"),
])
def test_flops_calculator_refuses_what_the_model_cannot_run(argv, message, tmp_path, capsys):
    import re

    line = run_bad(_main("flops"), argv, capsys, [str(tmp_path)])
    assert re.search(message, line), line


def test_compare_fine_tuning_recipe_and_the_way_out_of_a_collapse(tmp_path, sst2):
    from common.compare import engine
    from common.tasks import get_task

    args, settings = engine.parse_args(["--model", TINY, "--data_dir", sst2, "--output_dir",
                                        str(tmp_path / "out"), "--max_length", "16",
                                        "--finetune_epochs", "5",
                                        "--finetune_learning_rate", "3e-5"])
    assert engine.finetune_recipe(settings) == (5, 3e-5)
    argv = engine.finetune_command(settings, get_task("sst-2"), sst2, str(tmp_path / "out")).argv
    assert argv[argv.index("--epochs") + 1] == "5"
    assert argv[argv.index("--learning_rate") + 1] == "3e-05"
    _, default = engine.parse_args(["--model", TINY, "--data_dir", sst2, "--output_dir",
                                    str(tmp_path / "out2"), "--max_length", "16"])
    assert engine.finetune_recipe(default) == (2, 2e-4)  # the quick budget's
    way_out = engine.collapse_way_out(default, finetuned_here=True)
    assert "--finetune_epochs 3 --finetune_learning_rate 0.0001" in way_out
    assert "bert-speedup-finetune --task sst-2" in way_out and "as --model" in way_out
    assert "--output_dir" in engine.collapse_way_out(None, finetuned_here=False)


def test_compare_refuses_a_bad_recipe(tmp_path, sst2, capsys):
    from tools import compare

    line = run_bad(compare.main, ["--model", TINY, "--data_dir", sst2, "--output_dir",
                                      str(tmp_path / "out"), "--finetune_epochs", "0"],
                   capsys, [str(tmp_path)])
    assert "--finetune_epochs must be at least 1" in line


def test_the_demo_names_its_own_length(tmp_path, capsys):
    line = run_bad(_main("demo"), ["--model", TINY, "--work_dir", str(tmp_path / "demo")],
                   capsys, [str(tmp_path)])
    assert line.endswith("the demo runs at 64 word pieces; run bert-speedup-compare --model "
                         f"{TINY} --max_length <shorter> instead")


def tensorflow_sides():
    """A worker's factory that imports TensorFlow (for the test below)."""
    import tensorflow as tf

    from common.benchmark import Side

    return [Side("tf", lambda item: tf.constant(item).numpy(), [1.0])]


def test_benchmark_workers_import_tensorflow_quietly(capfd):
    """A spawned worker starts without the parent's quiet import: TensorFlow's C++ start-up
    lines (oneDNN, cudart_stub) must not reach the terminal from it either."""
    from common.benchmark import Remote, Workers

    with Workers() as workers:
        sides = workers.start(Remote("test_rough_edges:tensorflow_sides", {}))
        assert sides[0].name == "tf" and sides[0].timed(0) >= 0
    err = capfd.readouterr().err
    assert "oneDNN" not in err and "cudart_stub" not in err and "I0000" not in err, err
