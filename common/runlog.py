"""The one run-log format: a human-readable text log and, beside it, the same run as JSON lines.

`RunLog(text_path, events_path)` appends to both files (or starts the text log afresh with
`fresh=True`, as PoWER-BERT's reference does with log_file.txt). `line(text)` echoes a line and
writes it to the text log; `event(kind, **values)` appends one JSON object
`{"run": ..., "time": ..., "event": kind, ...}` to the JSON-lines file. The run id (UTC start
time and a short random id) tells apart runs that append to the same file, so results of an
earlier run are never silently replaced: the papers' own files (log_file.txt, AdapLeR's
`<stem>.log`) are written from the same log, and the JSON lines keep every run. The same id
names the run's own copy of each result file (`common.files.write_result`).
"""
import datetime
import json
import os
import secrets


def _now():
    return datetime.datetime.now(datetime.timezone.utc)


def new_run_id():
    """`20261130T231937Z-3f9a1c`: UTC start time + a short random id (sorts by time)."""
    return f"{_now():%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


class RunLog:
    """Text log `text_path` (None: none) + JSON-lines `events_path`; `echo` mirrors lines."""

    def __init__(self, text_path, events_path, fresh=False, echo=print, run_id=None):
        self.text_path, self.events_path, self.echo = text_path, events_path, echo
        self.run_id = run_id or new_run_id()
        for path in (text_path, events_path):
            if path:
                os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        if text_path and fresh:
            open(text_path, "w", encoding="utf-8").close()

    def write(self, text):
        """Raw text to the text log (for the papers' exact layouts)."""
        if self.text_path:
            with open(self.text_path, "a", encoding="utf-8") as out:
                out.write(text)

    def line(self, text):
        if self.echo is not None:
            self.echo(text)
        self.write(text + "\n")

    __call__ = line

    def event(self, kind, **values):
        record = {"run": self.run_id, "time": f"{_now():%Y-%m-%dT%H:%M:%S.%fZ}", "event": kind,
                  **values}
        with open(self.events_path, "a", encoding="utf-8") as out:
            out.write(json.dumps(record, sort_keys=False, default=_plain) + "\n")
        return record


def _plain(value):
    """numpy scalars and arrays as plain JSON values."""
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


def read_events(path, kind=None):
    """Every JSON line of `path` (of one `kind` when given), oldest first."""
    if not os.path.isfile(path):
        return []
    with open(path, encoding="utf-8") as handle:
        events = [json.loads(line) for line in handle if line.strip()]
    return [e for e in events if kind is None or e.get("event") == kind]
