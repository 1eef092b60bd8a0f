"""Run one command as a multi-worker cluster on this machine (tf.distribute, localhost).

    python tools/run_workers.py --workers 2 --timeout 600 -- tools/finetune.py --task sst-2 \
        --output_dir runs/two-workers --strategy multi_worker

Picks free 127.0.0.1 ports, starts one `python <command>` per worker with TF_CONFIG naming the
cluster and that worker's index, passes worker 0's (the chief's) output through and keeps the
others' in <workdir>/worker<i>.log, and stops every worker when one fails or --timeout seconds
pass. Exit code: 0 when all workers succeed, else the first failure's (124 on time-out).
"""
import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

from common.cli import ArgumentParser, command
from common.errors import UserError

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


@command
def main(argv=None):
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2,
                        help="processes started, each one a TF_CONFIG worker")
    parser.add_argument("--timeout", type=float, default=600, help="seconds before all stop")
    parser.add_argument("--workdir", help="where the other workers' logs go (default: a temp "
                                          "folder)")
    parser.add_argument("command", nargs=argparse.REMAINDER,
                        help="-- then the script and its arguments")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        raise UserError("no command given; e.g. -- tools/finetune.py --strategy multi_worker ...")
    if args.workers < 2 or args.timeout <= 0:
        raise UserError("--workers must be at least 2 and --timeout positive")
    return run(command, args.workers, args.timeout, args.workdir,
               log=lambda line: print(line, file=sys.stderr))


if __name__ == "__main__":
    sys.exit(main())
