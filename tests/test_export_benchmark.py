"""The export benchmark (tools/benchmark_export.py, common.export.speed) on tiny exports: every
side runs the same requests, the dense export is the reference, the tokenization sides are
there, and the JSON record is written."""
import json
import subprocess
import sys

from export_cases import make_checkpoint
from common.export import export
from tools.benchmark_export import main


def test_benchmark_times_exports_against_the_dense_export(tmp_path):
    folders = {}
    for kind in ("vanilla", "pabee"):
        folders[kind] = str(tmp_path / kind)
        export(make_checkpoint(kind, tmp_path / f"{kind}_ckpt"), folders[kind])
    out = tmp_path / "bench.json"
    # A fresh process, as a user runs it: loading an export needs tensorflow-text's ops there.
    done = subprocess.run([sys.executable, "-m", "tools.benchmark_export", "--dense",
                           folders["vanilla"], "--model", f"pabee={folders['pabee']}",
                           "--examples", "8", "--batch_sizes", "1,4", "--repeats", "1",
                           "--json", str(out)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    record = json.loads(out.read_text())
    assert [group["batch_size"] for group in record["groups"]] == [1, 4]
    for group in record["groups"]:
        sides = {row["side"]: row for row in group["rows"]}
        assert set(sides) == {"dense", "pabee", "dense-tokenize-only", "dense-ids-in"}
        assert all(row["examples"] == 8 for row in sides.values())
        assert sides["dense"]["speedup_vs_dense"] == 1.0 and sides["pabee"]["speedup_vs_dense"] > 0
        assert any("in-graph tokenization" in note for note in group["notes"])
    assert "vs dense export" in done.stdout


def test_bad_model_flag_is_one_error(tmp_path, capsys):
    import pytest
    with pytest.raises(SystemExit):
        main(["--dense", str(tmp_path), "--model", "nofolder"])
    assert "e.g. powerbert=exported/powerbert" in capsys.readouterr().err
