"""Time exported SavedModels against the exported dense model, strings in, the same requests,
on the harness (`common.benchmark`), plus what the in-graph tokenization costs per request.
See docs/export.md.

    python -m tools.benchmark_export --dense exported/dense --model powerbert=exported/powerbert
"""
import functools

from common.benchmark import run_tool
from common.cli import ArgumentParser, command
from common.errors import UserError, parse_int_list
from common.validation import check_numbers


def build_parser():
    parser = ArgumentParser(prog="python -m tools.benchmark_export", description=__doc__)
    parser.add_argument("--dense", required=True,
                        help="the exported dense (fine-tuned) model: the reference")
    parser.add_argument("--model", action="append", default=[], metavar="NAME=FOLDER",
                        help="an exported method's folder to time (repeat the flag)")
    parser.add_argument("--onnx", action="append", default=[], metavar="NAME=FILE",
                        help="a model.onnx to time with ONNX Runtime on the dense export's "
                             "token ids, in a worker process (repeat; default: none)")
    parser.add_argument("--task", default=None,
                        help="the task whose texts are sent (default: the dense export's)")
    parser.add_argument("--data_dir", default=None,
                        help="folder with the task's files (default: the bundled SST-2 sample)")
    parser.add_argument("--split", default="dev", help="the split to read (default dev)")
    parser.add_argument("--examples", type=int, default=None,
                        help="send only the first N texts (default: all)")
    parser.add_argument("--batch_sizes", default="1,32", help="texts per request (default 1,32)")
    parser.add_argument("--repeats", type=int, default=5, help="timed passes (default 5)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed passes (default 1)")
    parser.add_argument("--json", default=None, help="write the JSON record here (without it: the table only)")
    return parser


def _named(values, flag="--model", example="powerbert=exported/powerbert"):
    """{name: path} from NAME=PATH flag values."""
    named = {}
    for value in values:
        name, _, path = value.partition("=")
        if not name or not path:
            raise UserError(f"{flag} {value!r}: write NAME={example.split('=')[1]}-like "
                            f"values, e.g. {example}")
        named[name] = path
    return named


@command
def main(argv=None):
    args = build_parser().parse_args(argv)
    check_numbers(args, counts=("examples", "repeats"), non_negative=("warmup",))
    batch_sizes = parse_int_list(args.batch_sizes, "--batch_sizes", minimum=1)
    models = _named(args.model)
    onnx = _named(args.onnx, "--onnx", "powerbert=exported/powerbert/model.onnx")

    from common.export.speed import COLUMNS, measure
    run_tool("tools/benchmark_export.py", args, argv,
             functools.partial(measure, models=models, onnx=onnx, batch_sizes=batch_sizes),
             COLUMNS, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
