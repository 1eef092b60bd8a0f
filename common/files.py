"""Crash-safe file writing: the one atomic writer and the commit of a set of files.

`atomic_write(path, write)` writes a temporary file beside `path`, fsyncs it and renames it into
place, so a reader sees the old file or the new one, never half of one. Files get the usual
permissions (umask), not mkstemp's 0600.

`commit_files(folder, staging, names)` moves a complete, fsynced set of files from `staging`
into `folder` so that at every moment one complete set is readable: the set in place is first
hard-linked into `folder/.previous/`, then the staged files replace it one by one, the last one
(the manifest naming the set) last; `.previous` is removed at the end. A reader checks the set
against its manifest and falls back to `.previous` when a save was interrupted halfway. Stale
staging folders and temporary files are removed at the next save (`remove_stale`).

`write_result(path, write, run_id)` writes a result file (metrics, predictions) under the name
the papers give it, holding the latest run's, and keeps every run's own copy as
`<folder>/results/<run id>/<name>`, so no run's results are lost to a later one.

`BERT_SPEEDUP_CRASH_AT=<point>[:<n>]` kills the process with SIGKILL the n-th time (default
1st) a save reaches `<point>` (CRASH_POINTS): the hook the crash-safety tests use.
"""
import hashlib
import json
import os
import pickle
import secrets
import shutil
import signal

STAGING = ".staging"
PREVIOUS = ".previous"
CRASH_POINTS = ("staged", "previous-kept", "first-replaced", "all-replaced")
_crash_counts = {}


def crash_point(name):
    """SIGKILL this process here when BERT_SPEEDUP_CRASH_AT names `name` (tests only)."""
    wanted = os.environ.get("BERT_SPEEDUP_CRASH_AT", "")
    point, _, count = wanted.partition(":")
    if point != name:
        return
    _crash_counts[name] = _crash_counts.get(name, 0) + 1
    if _crash_counts[name] == int(count or 1):
        os.kill(os.getpid(), signal.SIGKILL)


def fsync_path(path):
    """Flush a file or a folder entry to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def temporary_name(path):
    folder, name = os.path.split(os.path.abspath(path))
    return os.path.join(folder, f".{name}.{secrets.token_hex(4)}.tmp")


def atomic_write(path, write):
    """Call `write(temporary path)`, fsync, then rename the file to `path` in one step."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = temporary_name(path)
    try:
        write(tmp)
        fsync_path(tmp)
        os.replace(tmp, path)
        fsync_path(folder)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _text_writer(text):
    def write(tmp):
        with open(tmp, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
    return write


def write_text(path, text):
    atomic_write(path, _text_writer(text))


def write_json(path, value, indent=1):
    """`value` as JSON, numpy scalars and arrays as plain numbers and lists."""
    write_text(path, json.dumps(value, indent=indent, default=_plain))


def _plain(value):
    if hasattr(value, "tolist"):  # numpy scalars and arrays
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _pickle_writer(value):
    def write(tmp):
        with open(tmp, "wb") as handle:
            pickle.dump(value, handle)
    return write


def write_pickle(path, value):
    atomic_write(path, _pickle_writer(value))


RESULTS = "results"


def result_copy(path, run_id):
    """Where `write_result` keeps run `run_id`'s copy of the result file `path`."""
    folder, name = os.path.split(os.path.abspath(path))
    return os.path.join(folder, RESULTS, run_id, name)


def write_result(path, write, run_id):
    """`atomic_write(path, write)` (the latest result, under the paper's name) after writing
    the same file as this run's own copy (`result_copy`), which later runs leave alone."""
    atomic_write(result_copy(path, run_id), write)
    atomic_write(path, write)
    return path


def write_result_text(path, text, run_id):
    return write_result(path, _text_writer(text), run_id)


def write_result_pickle(path, value, run_id):
    return write_result(path, _pickle_writer(value), run_id)


# ---------------------------------------------------------------- sets of files

def file_digest(path):
    """{"bytes", "sha256"} of a file: what a manifest records to recognise it."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return {"bytes": os.path.getsize(path), "sha256": digest.hexdigest()}


def set_problem(folder, manifest):
    """None when every file the manifest lists is in `folder` as recorded, else what is wrong."""
    for name, expected in manifest.items():
        path = os.path.join(folder, name)
        if not os.path.isfile(path):
            return f"{name} is missing"
        if os.path.getsize(path) != expected["bytes"] or file_digest(path) != expected:
            return f"{name} does not match its config.json"
    return None


def remove_stale(folder):
    """Remove what an interrupted save left in `folder`: the staging folder and temporary files
    of this module, and what earlier versions of the toolkit left (`tmp*.tmp` files, PABEE's
    `.checkpoint-<step>.<random>` staging folders)."""
    if not os.path.isdir(folder):
        return
    shutil.rmtree(os.path.join(folder, STAGING), ignore_errors=True)
    for name in os.listdir(folder):
        path = os.path.join(folder, name)
        if name.endswith(".tmp") and name.startswith((".", "tmp")) and os.path.isfile(path):
            os.remove(path)
        elif name.startswith(".checkpoint-") and os.path.isdir(path):
            shutil.rmtree(path, ignore_errors=True)


def staging_folder(folder):
    """An empty `folder/.staging/` to write the next set into."""
    staging = os.path.join(folder, STAGING)
    shutil.rmtree(staging, ignore_errors=True)
    os.makedirs(staging)
    return staging


def _keep_previous(folder, names):
    """Hard-link the complete set in place into `folder/.previous/` (copy where links fail)."""
    previous = os.path.join(folder, PREVIOUS)
    shutil.rmtree(previous, ignore_errors=True)
    os.makedirs(previous)
    for name in names:
        try:
            os.link(os.path.join(folder, name), os.path.join(previous, name))
        except OSError:
            shutil.copy2(os.path.join(folder, name), os.path.join(previous, name))
    fsync_path(previous)
    fsync_path(folder)


def commit_files(folder, staging, names, current_complete):
    """Move the fsynced files `names` (the manifest last) from `staging` into `folder`.

    `current_complete`: the names of the complete set now in `folder` (kept in `.previous`
    until the commit is done), or None when there is none (then an existing `.previous`, the
    last complete set, stays until the new set is in place)."""
    for name in names:
        fsync_path(os.path.join(staging, name))
    fsync_path(staging)
    crash_point("staged")
    if current_complete is not None:
        _keep_previous(folder, current_complete)
    crash_point("previous-kept")
    for index, name in enumerate(names):
        os.replace(os.path.join(staging, name), os.path.join(folder, name))
        if index == 0:
            crash_point("first-replaced")
    fsync_path(folder)
    crash_point("all-replaced")
    shutil.rmtree(os.path.join(folder, PREVIOUS), ignore_errors=True)
    shutil.rmtree(staging, ignore_errors=True)
