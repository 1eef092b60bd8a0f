"""A save killed (SIGKILL, in a subprocess) at each point of the checkpoint commit leaves the
newest complete checkpoint loadable: the new one once its sidecar is in place, the previous one
before. An interrupted first save is one `error:` line; the next save cleans the leftovers and
writes files with the usual permissions; an old (manifest-less) checkpoint is kept the same way."""
import json
import os
import shutil
import signal
import stat
import subprocess
import sys

import numpy as np
import pytest

from common import checkpoints, files
from common.errors import UserError
from common.tokenization import load_tokenizer
from conftest import FIXTURES, REPO

CLS = FIXTURES / "tiny_bert_cls"
WRITE = f"""
import numpy as np
from common import checkpoints
from common.tokenization import load_tokenizer


def write(folder, epoch):
    model, _, _ = checkpoints.load_classifier("{CLS}", 3)
    for variable in model.weights:
        variable.assign(np.full(variable.shape, epoch, np.float32))
    checkpoints.save_checkpoint(model, str(folder), {{
        "task": "mnli", "num_labels": 3, "max_length": 16, "method": "vanilla",
        "epoch": epoch}}, tokenizer=load_tokenizer("{CLS}"))
"""


def save(folder, epoch, crash_at=None):
    """A real save of epoch `epoch` (all weights = epoch); killed at `crash_at` in a subprocess."""
    if crash_at is None:
        namespace = {}
        exec(WRITE, namespace)
        return namespace["write"](folder, epoch)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    env.pop("BERT_SPEEDUP_CRASH_AT", None)
    if crash_at:
        env["BERT_SPEEDUP_CRASH_AT"] = crash_at
    code = WRITE + "\nimport sys\nwrite(sys.argv[1], int(sys.argv[2]))\n"
    done = subprocess.run([sys.executable, "-c", code, str(folder), str(epoch)], cwd=REPO,
                          env=env, capture_output=True, text=True)
    assert done.returncode == -signal.SIGKILL, done.stderr[-2000:]


def loaded_epoch(folder):
    """The epoch of the checkpoint a loader gets from `folder`; checks every weight agrees."""
    model, source, head_loaded = checkpoints.load_classifier(str(folder))
    epoch = source.sidecar["training"]["epoch"]
    assert head_loaded and all(np.all(v.numpy() == epoch) for v in model.weights)
    assert load_tokenizer(source.folder)("good movie")["input_ids"][0] == 2
    return epoch


@pytest.fixture(scope="module")
def first(tmp_path_factory):
    folder = tmp_path_factory.mktemp("first") / "ckpt"
    save(folder, 1)
    return folder


@pytest.mark.parametrize("point, expected", [
    ("staged", 1), ("previous-kept", 1), ("first-replaced", 1), ("all-replaced", 2)])
def test_kill_during_a_save_keeps_the_newest_complete_checkpoint(first, tmp_path, point,
                                                                 expected, capsys):
    folder = tmp_path / "ckpt"
    shutil.copytree(first, folder)
    save(folder, 2, crash_at=point)
    assert loaded_epoch(folder) == expected
    warning = capsys.readouterr().err.strip().splitlines()
    assert len(warning) == (point == "first-replaced")
    if warning:
        assert "incomplete" in warning[0] and "previous complete one" in warning[0]


def test_next_save_cleans_up_and_uses_normal_permissions(first, tmp_path):
    folder = tmp_path / "ckpt"
    shutil.copytree(first, folder)
    save(folder, 2, crash_at="first-replaced")
    (folder / "tmpab12cd.tmp").write_text("left by an older version")
    (folder / ".checkpoint-3.x1y2").mkdir()  # an older PABEE staging folder
    assert {files.STAGING, files.PREVIOUS} <= set(os.listdir(folder))
    save(folder, 3)
    assert loaded_epoch(folder) == 3
    names = set(os.listdir(folder))
    assert not [n for n in names if n.startswith(".") or n.endswith(".tmp")], names
    for name in names:
        assert stat.S_IMODE(os.stat(folder / name).st_mode) & 0o044 == 0o044, name
    sidecar = json.loads((folder / "config.json").read_text())
    assert set(sidecar["files"]) == names - {"config.json"}


def test_interrupted_first_save_is_one_error_line(tmp_path):
    folder = tmp_path / "ckpt"
    save(folder, 1, crash_at="first-replaced")
    with pytest.raises(UserError, match="is incomplete .* no earlier complete one") as error:
        checkpoints.load_classifier(str(folder))
    assert "\n" not in str(error.value)


def test_an_old_checkpoint_is_kept_until_the_new_one_is_complete(tmp_path):
    folder = tmp_path / "ckpt"
    shutil.copytree(FIXTURES / "old_checkpoints" / "finetune", folder)
    os.remove(folder / "expected.npz")
    before = {n: (folder / n).read_bytes() for n in os.listdir(folder)}
    save(folder, 2, crash_at="first-replaced")
    model, source, _ = checkpoints.load_classifier(str(folder))
    assert source.folder.endswith(files.PREVIOUS)
    assert {n: (folder / files.PREVIOUS / n).read_bytes() for n in before} == before
