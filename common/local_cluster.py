"""One command run as a multi-worker tf.distribute cluster on this machine (`tools/run_workers.py`):
free 127.0.0.1 ports, one process per worker with its TF_CONFIG, the others' logs kept, every
worker stopped when one fails or the time is up (`common.distribute` is what each worker runs
inside)."""
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

TIMED_OUT = 124


def free_ports(count):
    """`count` distinct ports the OS reports free on 127.0.0.1 (bound together, then released)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def tf_configs(ports):
    cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
    return [json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}})
            for i in range(len(ports))]


def _signal(process, number):
    try:
        os.killpg(process.pid, number)  # the worker's own session: it and its children
    except ProcessLookupError:
        pass


def stop(processes):
    """Stop the workers still running: SIGTERM, then SIGKILL after 10 s."""
    for process in processes:
        if process.poll() is None:
            _signal(process, signal.SIGTERM)
    for process in processes:
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            _signal(process, signal.SIGKILL)
            process.wait()


def run(command, workers=2, timeout=600, workdir=None, log=print):
    """Run `command` (a script path and its arguments) on `workers` local workers; returns the
    exit code."""
    workdir = workdir or tempfile.mkdtemp(prefix="workers-")
    os.makedirs(workdir, exist_ok=True)
    processes, logs = [], []
    try:
        for index, config in enumerate(tf_configs(free_ports(workers))):
            env = dict(os.environ, TF_CONFIG=config)
            out = None if index == 0 else open(
                os.path.join(workdir, f"worker{index}.log"), "w", encoding="utf-8")
            logs.append(out)
            processes.append(subprocess.Popen([sys.executable, *command], env=env, stdout=out,
                                              stderr=out, start_new_session=True))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            codes = [p.poll() for p in processes]
            failed = [c for c in codes if c not in (None, 0)]
            if failed:
                log(f"error: a worker exited with code {failed[0]}; stopping the others "
                    f"(logs in {workdir})")
                return failed[0]
            if all(c == 0 for c in codes):
                return 0
            time.sleep(0.2)
        log(f"error: the workers did not finish within {timeout} s; stopped them "
            f"(logs in {workdir})")
        return TIMED_OUT
    finally:
        stop(processes)
        for out in logs:
            if out is not None:
                out.close()
