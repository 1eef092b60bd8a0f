"""The shared run log: text lines and JSON lines; runs appending to one file stay apart."""
from common.runlog import RunLog, read_events


def test_two_runs_append_without_replacing(tmp_path):
    text, events = tmp_path / "run.log", tmp_path / "run.jsonl"
    lines = []
    first = RunLog(str(text), str(events), fresh=True, echo=lines.append, run_id="a")
    first("epoch 1")
    first.event("evaluation", acc=0.5)
    second = RunLog(str(text), str(events), echo=None, run_id="b")
    second.event("evaluation", acc=0.75)
    assert lines == ["epoch 1"] and text.read_text() == "epoch 1\n"
    rows = read_events(str(events), "evaluation")
    assert [(r["run"], r["acc"]) for r in rows] == [("a", 0.5), ("b", 0.75)]
    RunLog(str(text), str(events), fresh=True, echo=None)
    assert text.read_text() == "" and len(read_events(str(events))) == 2
