"""Run one command as a multi-worker cluster on this machine (tf.distribute, localhost).

    python tools/run_workers.py --workers 2 --timeout 600 -- tools/finetune.py --task sst-2 \
        --output_dir runs/two-workers --strategy multi_worker

Picks free 127.0.0.1 ports, starts one `python <command>` per worker with TF_CONFIG naming the
cluster and that worker's index, passes worker 0's (the chief's) output through and keeps the
others' in <workdir>/worker<i>.log, and stops every worker when one fails or --timeout seconds
pass. Exit code: 0 when all workers succeed, else the first failure's (124 on time-out).
"""
import argparse
import sys

from common.cli import ArgumentParser, command
from common.errors import UserError
from common.local_cluster import run

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
