"""Scale-out on CPU: two logical devices under MirroredStrategy and two localhost workers under
MultiWorkerMirroredStrategy train every stage like one device with the same global batch; and
the bad inputs of --strategy / TF_CONFIG / the batch split (one `error:` line, exit code 2)."""
import json
import subprocess
import sys
import time

import numpy as np
import pytest

from common import distribute
from common.errors import UserError
from conftest import REPO
from tools import finetune

CASE = ["tests/strategy_case.py"]
STAGES = ("finetune", "powerbert_search", "adapler", "pabee", "finetune_fp16")


def _start(argv):
    return subprocess.Popen([sys.executable, *argv], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _result(process, timeout=900):
    out, err = process.communicate(timeout=timeout)
    assert process.returncode == 0, err[-3000:]
    return json.loads(out.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def runs():
    """One device and two mirrored logical devices (one process), and two workers, started
    together."""
    local = _start(CASE + ["2", "none,mirrored"])
    workers = _start(["tools/run_workers.py", "--workers", "2", "--timeout", "600", "--", *CASE,
                      "1", "multi_worker"])
    runs = _result(local)
    return {"one": runs["none"], "mirrored": runs["mirrored"],
            "workers": _result(workers)["multi_worker"]}


@pytest.mark.parametrize("strategy", ["mirrored", "workers"])
@pytest.mark.parametrize("stage", STAGES)
def test_same_loss_trajectory_as_one_device(runs, strategy, stage):
    assert runs["one"]["replicas"] == 1 and runs[strategy]["replicas"] == 2
    expected, got = np.array(runs["one"][stage]), np.array(runs[strategy][stage])
    assert len(expected) >= 3 and np.isfinite(expected).all()
    assert len(set(np.round(expected[:3], 6))) > 1  # the model trains: the losses move
    np.testing.assert_allclose(got, expected, rtol=1e-4)


@pytest.mark.parametrize("text, message", [
    ("{not json", "does not parse as JSON"),
    ('{"cluster": {"worker": ["127.0.0.1:1"]}, "task": {"type": "worker", "index": 3}}',
     "is not one of its cluster's tasks"),
    ('{"cluster": {"worker": ["127.0.0.1:1", "127.0.0.1:1"]}, '
     '"task": {"type": "worker", "index": 1}}', "names 127.0.0.1:1 more than once"),
    ('{"task": {"type": "worker", "index": 0}}', "needs a 'cluster'"),
])
def test_bad_tf_config(text, message, monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("TF_CONFIG", text)
    with pytest.raises(SystemExit) as stop:
        finetune.main(["--output_dir", str(tmp_path), "--epochs", "1"])
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and "\n" not in err


def test_multi_worker_needs_tf_config(monkeypatch, tmp_path, capsys):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(SystemExit) as stop:
        finetune.main(["--output_dir", str(tmp_path), "--strategy", "multi_worker"])
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip()
    assert "needs TF_CONFIG" in err and "\n" not in err


def test_chief_and_folders(monkeypatch, tmp_path):
    config = {"cluster": {"worker": ["127.0.0.1:1", "127.0.0.1:2"]},
              "task": {"type": "worker", "index": 0}}
    monkeypatch.setenv("TF_CONFIG", json.dumps(config))
    assert distribute.is_chief() and distribute.chief_folder(str(tmp_path)) == str(tmp_path)
    config["task"]["index"] = 1
    monkeypatch.setenv("TF_CONFIG", json.dumps(config))
    assert not distribute.is_chief()
    assert not distribute.chief_folder(str(tmp_path / "out")).startswith(str(tmp_path))
    monkeypatch.delenv("TF_CONFIG")
    assert distribute.is_chief() and distribute.make_strategy("auto").num_replicas_in_sync == 1


@pytest.mark.parametrize("strategy, inter_op", [("none", 1), ("mirrored", 0)])
def test_one_device_runs_one_inter_op_thread(strategy, inter_op):
    """One device: one inter-op thread (bf16 training repeats bit for bit only then); the
    strategies keep TensorFlow's default (0: one per core), which their collectives need."""
    code = ("import tensorflow as tf; from common import distribute\n"
            f"with distribute.scope({strategy!r}):\n"
            "    print(tf.config.threading.get_inter_op_parallelism_threads())")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == [str(inter_op)]


def test_batch_split_rule(monkeypatch):
    monkeypatch.setattr(distribute, "replicas", lambda: 2)
    assert distribute.global_batch(8) == 16
    distribute.check_batches(40, 16)  # last batch of 8: 4 per replica
    with pytest.raises(UserError, match="last batch of 5 of the 37 training examples does not "
                                        "split evenly over 2 replicas"):
        distribute.check_batches(37, 16)


def test_run_workers_bounds_its_time_and_stops_on_failure(tmp_path):
    from common import local_cluster
    started = time.monotonic()
    assert local_cluster.run(["-c", "import time; time.sleep(120)"], timeout=2,
                             workdir=str(tmp_path),
                             log=lambda line: None) == local_cluster.TIMED_OUT
    assert local_cluster.run(["-c", "import os, sys, time\n"
                                    "if os.environ['TF_CONFIG'].endswith('1}}'): sys.exit(3)\n"
                                    "time.sleep(120)"],
                             timeout=60, workdir=str(tmp_path), log=lambda line: None) == 3
    assert time.monotonic() - started < 40  # both runs ended early, their sleepers stopped
    assert len(set(local_cluster.free_ports(2))) == 2
