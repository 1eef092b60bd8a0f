"""Render the measured figures of README.md and docs/ from the result files in results/.

A figure in a markdown file sits between two markers that name where it comes from: a JSON file
of results/ and a path into it (keys and list indexes joined by dots):

    <!-- result: demo_sst2.table -->          a table (an object with "columns" and "rows")
    | ... the rendered table ... |
    <!-- /result -->

    ... is <!--r:demo_sst2.points.powerbert.speedup-->1.70<!--/r-->x faster ...   one figure

A path may end with `|FORMAT`, a Python format spec for a number (`|.2f`); strings are written
as they are. `--check` renders nothing: it names every figure whose text differs from its file
(or whose file or path is missing) and exits 1, or exits 0 when all match.
"""
import os

from common.cli import ArgumentParser, command
from common.figures import render_documents

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def build_parser():
    parser = ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true",
                        help="change nothing; exit 1 naming every figure that differs from its "
                             "result file (without it: rewrite the figures in place)")
    parser.add_argument("--root", default=REPO,
                        help="the repository whose README.md, docs/ and results/ are read "
                             "(default: this one)")
    return parser


@command
def main(argv=None):
    args = build_parser().parse_args(argv)
    return render_documents(args.root, args.check)


if __name__ == "__main__":
    raise SystemExit(main())
