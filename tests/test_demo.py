"""The README's main job (`tools/demo.py`) end to end: `bert-speedup-compare --budget quick` and
the table of each method's best point, on a tiny random model and a tiny SST-2 folder (the real
run uses MiniLM and the bundled sample)."""
import dataclasses
import json
import os

import pytest

from common.checkpoints import resolve_source, save_checkpoint
from common.data import default_data_dir
from common.modeling import SequenceClassifier, dummy_inputs
from common.tokenization import load_tokenizer
from conftest import FIXTURES
from common.compare import sweep
from tools import demo

TINY = str(FIXTURES / "tiny_bert")


@pytest.fixture
def tiny_sst2(tmp_path):
    """The first rows of the bundled sample: 48 training and 24 dev sentences."""
    folder = tmp_path / "SST-2"
    folder.mkdir()
    for split, rows in (("train", 48), ("dev", 24)):
        with open(os.path.join(default_data_dir(), f"{split}.tsv"), encoding="utf-8") as handle:
            head = [next(handle) for _ in range(rows + 1)]
        (folder / f"{split}.tsv").write_text("".join(head), encoding="utf-8")
    return str(folder)


@pytest.fixture
def tiny_base(tmp_path):
    """A random 3-layer model whose position table covers the demo's length 64."""
    config = dataclasses.replace(resolve_source(TINY).config, max_position_embeddings=64)
    model = SequenceClassifier(config, 2)
    model(dummy_inputs(8))
    folder = str(tmp_path / "base")
    save_checkpoint(model, folder, {"num_labels": 2}, tokenizer=load_tokenizer(TINY))
    return folder


def test_demo_is_compare_quick_with_a_table_of_best_points(tiny_base, tiny_sst2, tmp_path,
                                                           capsys, monkeypatch):
    quick = sweep.BUDGETS["quick"]  # one timed pass: the flow is tested, not speeds
    monkeypatch.setitem(sweep.BUDGETS, "quick", dataclasses.replace(quick, repeats=1))
    work = tmp_path / "demo"
    argv = ["--model", tiny_base, "--data_dir", tiny_sst2, "--work_dir", str(work),
            "--methods", "pabee"]  # tests/test_compare.py covers the other methods
    demo.main(argv)
    out = capsys.readouterr().out
    assert out.splitlines()[0].startswith("bert-speedup-compare --task sst-2 --output_dir ")
    assert "--budget quick --max_length 64 --methods pabee --allow_collapsed" in out
    assert "[1/5] fine-tuning: start" in out and "[5/5] pabee model: points: done" in out
    rows = json.loads((work / "results.json").read_text())
    assert [row["method"] for row in rows] == ["fine-tuned (dense)", "PABEE"]
    assert rows[0]["setting"] in ("dense-dynamic-graph, batch 32", "dense-dynamic-xla, batch 32")
    assert rows[0]["measured_speedup"] == 1.0 and rows[0]["flops_speedup"] == 1.0
    assert rows[1]["setting"] in ("patience=1", "patience=2")
    assert rows[1]["within_1_point"] in ("yes", "no")
    for row in rows:
        assert 0.0 <= row["dev_metric"] <= 1.0 and row["speedup_vs_padded"] > 0.0
    assert rows[1]["measured_speedup"] > 0.0 and rows[1]["flops_speedup"] > 0.0
    table = (work / "results.md").read_text()
    assert table.count("\n") == 2 + len(rows)
    assert out.count("| PABEE |") == 1  # the table once, at the end
    assert f"the accuracy-vs-speed plot is {work / 'pareto.png'}" in out
    assert (work / "pareto.png").read_bytes()[:4] == b"\x89PNG"
    assert "\r" not in out

    # The same command resumes: nothing is trained again, the table is written again.
    demo.main(argv)
    out = capsys.readouterr().out
    assert "fine-tuning: skipped" in out and "[4/5] pabee: skipped" in out
    assert json.loads((work / "results.json").read_text()) == rows


def test_demo_rejects_unknown_method(capsys):
    with pytest.raises(SystemExit) as exit_info:
        demo.main(["--methods", "powerbert,distilbert"])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.strip() == ("error: unknown method(s) distilbert; choose from "
                                               "adapler, ltp, pabee, powerbert, powerbert+pabee")


def test_own_files_go_to_compare_as_given(tmp_path):
    """The demo hands the own-data flags to compare unchanged (compare hands them on to each
    method in its style; tests/test_compare.py); it has no --test_file: nothing is predicted."""
    from common.compare.demo import compare_argv, parse_args
    from common.errors import UserError

    argv = ["--train_file", "reviews/train.csv", "--validation_file", "reviews/dev.jsonl",
            "--text_column", "review", "--label_column", "sentiment", "--work_dir",
            str(tmp_path / "demo")]
    passed = compare_argv(parse_args(argv))
    for flag, value in zip(argv[:8:2], argv[1:8:2]):
        assert passed[passed.index(flag) + 1] == value
    assert "--text_pair_column" not in passed and "--metric" not in passed
    with pytest.raises(UserError, match="unrecognized arguments: --test_file"):
        parse_args(["--test_file", "reviews/test.csv"])
