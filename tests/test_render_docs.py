"""tools/render_docs.py: figures and tables rendered from results/*.json between markers, drift
caught by --check (exit 1, naming each figure), exit 0 when every figure matches."""
import json

import pytest

from conftest import REPO
from tools import render_docs

RESULT = {"command": "python tools/benchmark_x.py", "commit": None, "date": "2026-12-01",
          "figures": {"speedup": 1.6543, "label": "1.65 (1.59-1.70)",
                      "table": {"columns": ["side", "speed-up"],
                                "rows": [["dense", "1.00"], ["method", "**1.65**"]]}}}
TABLE = "| side | speed-up |\n|---|---|\n| dense | 1.00 |\n| method | **1.65** |\n"


def _repo(tmp_path, readme, doc="", result=RESULT):
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "run.json").write_text(json.dumps(result))
    (tmp_path / "docs" / "sub").mkdir(parents=True)
    (tmp_path / "README.md").write_text(readme)
    (tmp_path / "docs" / "sub" / "page.md").write_text(doc)
    return tmp_path


def _main(argv, capsys):
    """(exit code, captured output) of the command: its return value, or the code it exits with
    on an error."""
    try:
        code = render_docs.main(argv)
    except SystemExit as stop:
        code = stop.code
    return code, capsys.readouterr()


def test_renders_a_table_and_inline_figures(tmp_path, capsys):
    root = _repo(tmp_path, "x <!--r:run.figures.speedup|.2f-->?<!--/r-->x, "
                           "<!--r:run.figures.label-->old<!--/r-->\n",
                 "intro\n<!-- result: run.figures.table -->\n| stale |\n<!-- /result -->\nend\n")
    code, out = _main(["--root", str(root)], capsys)
    assert code == 0 and "2 document(s)" in out.out
    assert (root / "README.md").read_text() == (
        "x <!--r:run.figures.speedup|.2f-->1.65<!--/r-->x, "
        "<!--r:run.figures.label-->1.65 (1.59-1.70)<!--/r-->\n")
    assert (root / "docs/sub/page.md").read_text() == (
        "intro\n<!-- result: run.figures.table -->\n" + TABLE + "<!-- /result -->\nend\n")
    assert _main(["--root", str(root), "--check"], capsys)[0] == 0


def test_check_names_every_drifted_figure_and_changes_nothing(tmp_path, capsys):
    readme = ("line one\nspeed <!--r:run.figures.label-->1.70 (best)<!--/r-->\n"
              "<!-- result: run.figures.table -->\n" + TABLE.replace("**1.65**", "**1.70**")
              + "<!-- /result -->\n")
    root = _repo(tmp_path, readme, "ok <!--r:run.figures.label-->1.65 (1.59-1.70)<!--/r-->\n")
    code, out = _main(["--root", str(root), "--check"], capsys)
    assert code == 1
    lines = out.out.splitlines()
    assert lines[0].startswith("README.md:2: run.figures.label: the document has '1.70 (best)'")
    assert lines[1] == ("README.md:3: run.figures.table: row 2: the document has "
                        "'| method | **1.70** |', the result file '| method | **1.65** |'")
    assert lines[-1] == "2 figure(s) differ from their result files"
    assert (root / "README.md").read_text() == readme


def test_missing_result_is_reported_and_nothing_is_written(tmp_path, capsys):
    readme = "a <!--r:run.figures.label-->x<!--/r--> b <!--r:run.figures.nothing-->y<!--/r-->\n"
    root = _repo(tmp_path, readme, "<!--r:gone.figures.x-->1<!--/r-->\n")
    code, out = _main(["--root", str(root), "--check"], capsys)
    assert code == 1
    assert "run.figures.nothing: results/run.json has no figures.nothing" in out.out
    assert "results/gone.json" in out.out
    code, out = _main(["--root", str(root)], capsys)
    assert code == 2 and out.err.count("error:") == 1 and "Traceback" not in out.err
    assert (root / "README.md").read_text() == readme


def test_a_marker_that_does_not_parse_is_reported(tmp_path, capsys):
    """A name with a space, or a closing tag on another line, would otherwise render nothing and
    pass the check; a marker shown in inline code is an example, not a figure."""
    readme = ("a <!--r:run.figures.the label-->1.65<!--/r-->\nb <!--r:run.figures.label-->1.65\n"
              "<!--/r-->\nc `<!--r:run.figures.label-->`\n")
    root = _repo(tmp_path, readme)
    code, out = _main(["--root", str(root), "--check"], capsys)
    assert code == 1
    assert [line.split(":")[:2] for line in out.out.splitlines() if "does not parse" in line] == [
        ["README.md", "1"], ["README.md", "2"]]


def test_fenced_code_is_left_alone(tmp_path, capsys):
    doc = "```markdown\nsee <!--r:run.figures.label-->anything<!--/r-->\n```\n"
    root = _repo(tmp_path, "", doc)
    assert _main(["--root", str(root), "--check"], capsys)[0] == 0
    assert _main(["--root", str(root)], capsys)[0] == 0
    assert (root / "docs/sub/page.md").read_text() == doc


def test_this_repository_matches_its_results(capsys):
    code, out = _main(["--root", str(REPO), "--check"], capsys)
    assert code == 0, out.out


def test_every_result_file_says_where_it_comes_from():
    keys = {"title", "command", "commit", "date", "machine", "load", "runs", "statistic",
            "figures"}
    for path in sorted((REPO / "results").glob("*.json")):
        record = json.loads(path.read_text(encoding="utf-8"))
        assert keys <= set(record), (path.name, keys - set(record))
        assert record["commit"] or "provenance" in record, path.name


def test_the_readme_is_a_front_page_without_machine_paths():
    """At most 250 lines (the PyPI page); no absolute path of this machine in it, in docs/ or in
    a result file."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 250
    for path in [REPO / "README.md", *(REPO / "docs").rglob("*.md"),
                 *(REPO / "results").glob("*.json")]:
        text = path.read_text(encoding="utf-8")
        for prefix in ("/work/", "/root/", "/home/", "/tmp/"):
            assert prefix not in text, (path.name, prefix)
