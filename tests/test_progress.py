"""Progress output (common.progress): plain periodic lines when the output is not a terminal,
and a real training run redirected to a file holds no carriage returns or colour codes."""
import io
import re
import subprocess
import sys

from common import progress
from common.progress import Progress
from conftest import FIXTURES, REPO

LINE = re.compile(r"^epoch 1/2: step (\d+)/3 \((\d+)%\), loss \d+\.\d{4}, \d+:\d\d elapsed")


def test_plain_lines_at_most_every_interval_plus_the_last():
    out = io.StringIO()
    shown = Progress(4, "epoch 1/2", stream=out, interval=3600)
    for loss in (1.0, 2.0, 3.0, 4.0):
        shown.add(1, loss=loss)
    lines = out.getvalue().splitlines()
    assert lines == [lines[0]] and lines[0].startswith("epoch 1/2: step 4/4 (100%), loss 2.5000,")
    assert "left" not in lines[0]


def test_every_step_when_the_interval_is_zero_with_time_left():
    out = io.StringIO()
    shown = Progress(3, "scoring", unit="example", stream=out, interval=0)
    shown.add(1)
    shown.add(2)
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("scoring: example 1/3 (33%), ") and lines[0].endswith(" left")
    assert lines[1].startswith("scoring: example 3/3 (100%), ")


def test_a_loop_that_stops_early_ends_with_one_line(monkeypatch):
    monkeypatch.setenv(progress.INTERVAL_VARIABLE, "3600")
    out = io.StringIO()
    with Progress(10, "epoch 2/2", stream=out) as shown:
        shown.add(1, loss=0.5)
        shown.add(1)
    shown.add(1)  # after the end: nothing more
    assert out.getvalue().splitlines() == [
        out.getvalue().splitlines()[0]]
    assert out.getvalue().startswith("epoch 2/2: step 2/10 (20%), loss 0.5000, 0:00 elapsed")


def test_clock():
    assert [progress.clock(s) for s in (0, 41, 725, 3729)] == ["0:00", "0:41", "12:05",
                                                               "1:02:09"]


def test_redirected_training_log_has_no_terminal_codes(tmp_path):
    data = tmp_path / "SST-2"
    data.mkdir()
    rows = [("a good movie", 1), ("a bad film", 0), ("very fun", 1), ("boring plot", 0)] * 5
    for split in ("train", "dev"):
        (data / f"{split}.tsv").write_text(
            "sentence\tlabel\n" + "".join(f"{t}\t{label}\n" for t, label in rows))
    log = tmp_path / "log.txt"
    with open(log, "w") as handle:
        subprocess.run([sys.executable, "-m", "tools.finetune", "--model",
                        str(FIXTURES / "tiny_bert"), "--task", "sst2", "--data_dir", str(data),
                        "--output_dir", str(tmp_path / "out"), "--epochs", "2",
                        "--batch_size", "8", "--max_length", "16"],
                       cwd=REPO, stdout=handle, stderr=subprocess.STDOUT, check=True)
    text = log.read_text()
    assert "\r" not in text and "\x1b[" not in text and "\b" not in text
    steps = [LINE.match(line) for line in text.splitlines() if LINE.match(line)]
    assert steps and steps[-1].groups() == ("3", "100")
    assert re.search(r"^evaluating: example 20/20 \(100%\)", text, re.M)
