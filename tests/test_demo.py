"""The README's main job (`tools/demo.py`) end to end: fine-tuning, then every method's demo row,
on a tiny random model and a tiny SST-2 folder (the real run uses MiniLM and the bundled sample)."""
import dataclasses
import json
import os

import pytest

from common.checkpoints import resolve_source, save_checkpoint
from common.data import default_data_dir
from common.modeling import SequenceClassifier, dummy_inputs
from common.tokenization import load_tokenizer
from conftest import FIXTURES
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


def test_demo_writes_one_row_per_method(tiny_base, tiny_sst2, tmp_path, capsys):
    work = tmp_path / "demo"
    demo.main(["--model", tiny_base, "--data_dir", tiny_sst2, "--work_dir", str(work),
               "--epochs", "1", "--skip_compare"])  # tests/test_compare.py runs compare
    rows = json.loads((work / "results.json").read_text())
    assert [row["method"] for row in rows[:3]] == ["vanilla (fine-tuned model)", "PoWER-BERT",
                                                  "AdapLeR"]
    assert rows[3]["method"].startswith("PABEE (patience ")
    assert rows[0]["notes"] == "3 layers, length 64"
    for row in rows:
        assert 0.0 <= row["dev_metric"] <= 1.0
        assert row["flops_speedup"] > 0.0 and row["measured_speedup"] > 0.0
    assert all(row["speedup_vs_padded"] > 0.0 for row in rows[1:])
    # PoWER-BERT never adds work; AdapLeR's predictors may cost more than they save on a
    # 16-wide model, and PABEE's internal classifiers likewise.
    assert rows[1]["flops_speedup"] >= 1.0
    table = (work / "results.md").read_text()
    assert table.count("\n") == 2 + len(rows)
    out = capsys.readouterr().out
    assert out.count("| PoWER-BERT |") == 1  # the table once, at the end
    stages = [line for line in out.splitlines() if line.startswith("stage ")]
    assert stages == ["stage 1/4: fine-tuning the backbone on SST-2",
                      "stage 2/4: PoWER-BERT from the fine-tuned model",
                      "stage 3/4: AdapLeR from the fine-tuned model",
                      "stage 4/4: PABEE from the fine-tuned model"]
    assert "arguments: {}" not in out and "given, not trained" not in out
    assert "\r" not in out and "scoring every internal classifier: example 24/24" in out


def test_demo_rejects_unknown_method(capsys):
    with pytest.raises(SystemExit) as exit_info:
        demo.main(["--methods", "powerbert,distilbert"])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.strip() == ("error: unknown method(s) distilbert; choose from "
                                               "powerbert, adapler, pabee")
