"""The vanilla fine-tuning CLI: a tiny end-to-end run, and its bad-input errors."""
import json
import shutil

import pytest

from tools import finetune
from conftest import FIXTURES

SST2_ROWS = ["sentence\tlabel"] + [
    f"{text}\t{label}" for text, label in [
        ("a good movie", 1), ("a bad film", 0), ("very fun , great acting", 1),
        ("boring plot", 0), ("not good", 0), ("i was fun", 1), ("awful story", 0),
        ("great film !", 1)] * 3]


@pytest.fixture
def sst2_dir(tmp_path):
    folder = tmp_path / "SST-2"
    folder.mkdir()
    for split in ("train", "dev"):
        (folder / f"{split}.tsv").write_text("\n".join(SST2_ROWS) + "\n")
    return folder


def test_finetune_then_eval_only(tmp_path, sst2_dir):
    out = tmp_path / "out"
    finetune.main(["--model", str(FIXTURES / "tiny_bert"), "--task", "sst2", "--data_dir",
                   str(sst2_dir), "--output_dir", str(out), "--epochs", "2", "--batch_size", "8",
                   "--max_length", "16", "--learning_rate", "1e-3"])
    trained = json.loads((out / "eval_results.json").read_text())
    assert 0.0 <= trained["acc"] <= 1.0
    assert (out / "model.weights.h5").is_file() and (out / "config.json").is_file()
    finetune.main(["--model", str(out), "--task", "sst-2", "--data_dir", str(sst2_dir),
                   "--eval_only", "--output_dir", str(tmp_path / "eval"), "--max_length", "16"])
    evaluated = json.loads((tmp_path / "eval" / "eval_results.json").read_text())
    assert evaluated["acc"] == pytest.approx(trained["acc"])
    # A second evaluation into the same folder (allowed by the flag) keeps the first one's copy.
    finetune.main(["--model", str(out), "--task", "sst-2", "--data_dir", str(sst2_dir),
                   "--eval_only", "--output_dir", str(tmp_path / "eval"), "--max_length", "16",
                   "--overwrite_output_dir"])
    runs = list((tmp_path / "eval" / "results").iterdir())
    assert len(runs) == 2
    assert all(json.loads((r / "eval_results.json").read_text()) == evaluated for r in runs)


@pytest.mark.parametrize("argv, message", [
    (["--task", "nope"], "unknown task"),
    (["--epochs", "0"], "--epochs must be at least 1"),
    (["--data_dir", "/no/such/dir", "--max_length", "16"], "not found"),
    (["--max_length", "4096"], "position table"),
])
def test_bad_input_is_one_line_exit_2(tmp_path, sst2_dir, capsys, argv, message):
    base = ["--model", str(FIXTURES / "tiny_bert"), "--data_dir", str(sst2_dir),
            "--output_dir", str(tmp_path / "out")]
    with pytest.raises(SystemExit) as exit_info:
        finetune.main(base + argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0].lower()
    assert not (tmp_path / "out" / "model.weights.h5").exists()


def test_eval_only_needs_a_head(tmp_path, sst2_dir, capsys):
    with pytest.raises(SystemExit):
        finetune.main(["--model", str(FIXTURES / "tiny_bert"), "--data_dir", str(sst2_dir),
                       "--eval_only", "--max_length", "16"])
    assert "fine-tune it first" in capsys.readouterr().err


def test_label_outside_task_list(tmp_path, sst2_dir, capsys):
    bad = tmp_path / "bad"
    shutil.copytree(sst2_dir, bad)
    (bad / "train.tsv").write_text("sentence\tlabel\na good movie\t7\n")
    with pytest.raises(SystemExit):
        finetune.main(["--model", str(FIXTURES / "tiny_bert"), "--data_dir", str(bad),
                       "--output_dir", str(tmp_path / "o"), "--max_length", "16"])
    assert "label '7'" in capsys.readouterr().err


def test_a_collapsed_fine_tuning_is_recorded_and_refused_downstream(tmp_path, sst2_dir, capsys):
    """Trained only on negative sentences, the classifier predicts class 0 for every dev
    sentence: a warning says so, the sidecar records it, and PABEE refuses to start from it."""
    from common import checkpoints
    from pabee import cli as pabee_cli

    data = tmp_path / "one-class"
    data.mkdir()
    (data / "train.tsv").write_text(
        "\n".join(["sentence\tlabel"] + [r for r in SST2_ROWS[1:] if r.endswith("\t0")]) + "\n")
    shutil.copy(sst2_dir / "dev.tsv", data / "dev.tsv")
    out = tmp_path / "out"
    finetune.main(["--model", str(FIXTURES / "tiny_bert"), "--task", "sst-2", "--data_dir",
                   str(data), "--output_dir", str(out), "--epochs", "1", "--batch_size", "4",
                   "--max_length", "16", "--learning_rate", "1e-3"])
    assert "warning: the classifier predicts class 0 for all 24 SST-2 examples" in (
        capsys.readouterr().out)
    assert checkpoints.read_sidecar(str(out))["training"]["collapsed"]["prediction"] == "class 0"
    with pytest.raises(SystemExit) as stop:
        pabee_cli.main(["--model_type", "bert", "--model_name_or_path", str(out), "--task_name",
                        "SST-2", "--do_train", "--data_dir", str(sst2_dir), "--max_seq_length",
                        "16", "--output_dir", str(tmp_path / "pabee")])
    assert stop.value.code == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "its dev predictions are all class 0" in error[0]
    assert "--allow_collapsed" in error[0]


def test_mean_pooling_is_recorded_used_and_refused_by_cls_methods(tmp_path, sst2_dir, capsys):
    """--pooling mean: the sidecar records it, evaluation uses it (a contradicting --pooling is
    refused), and PoWER-BERT, which reads [CLS], refuses to start from the checkpoint."""
    from common import checkpoints
    from powerbert import cli as powerbert_cli

    out = tmp_path / "mean"
    finetune.main(["--model", str(FIXTURES / "tiny_bert"), "--task", "sst-2", "--data_dir",
                   str(sst2_dir), "--output_dir", str(out), "--epochs", "1", "--batch_size", "8",
                   "--max_length", "16", "--learning_rate", "1e-3", "--pooling", "mean"])
    assert checkpoints.read_sidecar(str(out))["pooling"] == "mean"
    model, _, _ = checkpoints.load_classifier(str(out), 2)
    assert model.bert.pooling == "mean"
    trained = json.loads((out / "eval_results.json").read_text())
    task_config = tmp_path / "task_config.json"
    task_config.write_text('{"sst-2": {"seq_len": 16, "num_classes": 2}}')
    evaluate = ["--model", str(out), "--task", "sst-2", "--data_dir", str(sst2_dir),
                "--eval_only", "--max_length", "16"]
    finetune.main(evaluate)
    assert f"acc={trained['acc']:.4f}" in capsys.readouterr().out
    for main, argv, message in [
            (finetune.main, evaluate + ["--pooling", "cls"], "was trained with --pooling mean"),
            (powerbert_cli.main, ["--TASK", "SST-2", "--DATA_DIR", str(sst2_dir),
                                  "--CHECKPOINT_PATH", str(out), "--SKIP_FINETUNE",
                                  "--TASK_CONFIG_PATH", str(task_config), "--LAMBDA", "0.001",
                                  "--LR_SOFT_EXTRACT", "0.01",
                                  "--OUTPUT_DIR", str(tmp_path / "pb")],
             "PoWER-BERT pools the [CLS] vector")]:
        with pytest.raises(SystemExit) as stop:
            main(argv)
        assert stop.value.code == 2
        error = capsys.readouterr().err.strip().splitlines()
        assert len(error) == 1 and message in error[0], error
    assert not (tmp_path / "pb").exists()
