"""Build the bundled SST-2 sample in common/default_data/SST-2: 2,000 training rows drawn with
numpy default_rng(13) (kept in file order) and the full dev.tsv, both with the GLUE header.

    python tools/make_default_data.py [/path/to/glue/SST-2/train.tsv] [--out FOLDER]

Rows are copied byte for byte; dev.tsv is taken from the folder of the given train.tsv.
"""
import os
import shutil

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

from common.cli import ArgumentParser, command
from common.errors import UserError, require_file
from common.files import write_text

DEFAULT_SOURCE = "/work/shared/data/glue/SST-2/train.tsv"
DEFAULT_OUT = os.path.join(REPO, "common", "default_data", "SST-2")
HEADER = "sentence\tlabel\n"
SAMPLE_SIZE = 2000
SEED = 13


@command
def main(argv=None):
    parser = ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("train", nargs="?", default=DEFAULT_SOURCE, help="GLUE SST-2 train.tsv")
    parser.add_argument("--out", default=DEFAULT_OUT, help="output folder")
    args = parser.parse_args(argv)
    fix = "pass the path of GLUE SST-2 train.tsv"
    require_file(args.train, "SST-2 train.tsv", fix)
    dev = require_file(os.path.join(os.path.dirname(args.train), "dev.tsv"), "SST-2 dev.tsv", fix)
    with open(args.train, encoding="utf-8", newline="") as handle:
        lines = handle.readlines()
    if not lines or lines[0] != HEADER or len(lines) <= SAMPLE_SIZE:
        raise UserError(f"{args.train} is not the GLUE SST-2 train.tsv (expected the header "
                        f"'sentence<TAB>label' and over {SAMPLE_SIZE} rows); {fix}")
    rows = [row if row.endswith("\n") else row + "\n" for row in lines[1:]]
    picked = np.sort(np.random.default_rng(SEED).choice(len(rows), SAMPLE_SIZE, replace=False))
    os.makedirs(args.out, exist_ok=True)
    write_text(os.path.join(args.out, "train.tsv"), "".join([HEADER] + [rows[i] for i in picked]))
    shutil.copyfile(dev, os.path.join(args.out, "dev.tsv"))
    print(f"wrote {SAMPLE_SIZE} train rows and the full dev.tsv to {args.out}")


if __name__ == "__main__":
    main()
