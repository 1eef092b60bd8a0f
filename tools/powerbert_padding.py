"""Compare PoWER-BERT on length-sorted, dynamically padded batches with the run padded to N.

    python tools/powerbert_padding.py --task sst-2 --data_dir $GLUE_DIR/SST-2 --max_length 64 \\
        --retention 41,33,26,18,17,9
    python tools/powerbert_padding.py --task mrpc --data_dir $GLUE_DIR/MRPC --max_length 128 \\
        --retention 90,70,52,36,28,16 --padding_queries real

Both runs see the same dev rows in the same length-sorted batches; the padded run pads every
batch to --max_length, the dynamic run only to the batch's longest row. Without --checkpoint the
bundled MiniLM gets a random classifier seeded by --seed (an equality check needs no training);
with a PoWER-BERT checkpoint of this toolkit (its retention unless --retention is given) the dev
accuracy of both runs is printed too. Prints one JSON object: rows, predictions that differ,
(row, block) pairs whose kept real tokens differ, the largest logit difference, the mean batch
length. No timing: speed goes through the benchmark tools.
"""
import json

from common.cli import ArgumentParser, command
from common.errors import UserError


def build_parser():
    p = ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--task", required=True, help="the task whose dev texts are run")
    p.add_argument("--data_dir", required=True, help="folder with the task's dev file")
    p.add_argument("--checkpoint", help="a PoWER-BERT checkpoint (default: MiniLM, random head)")
    p.add_argument("--max_length", type=int, help="N (default: the checkpoint's, else the task's)")
    p.add_argument("--retention", help="comma-separated word-vectors kept per block (default: "
                                       "the checkpoint's)")
    p.add_argument("--padding_queries", choices=("all", "real"), default="all",
                   help="query rows the significance sums: all (the reference) or real tokens'")
    p.add_argument("--length_scaled", action="store_true",
                   help="keep ceil(k_l * n / N) word-vectors of a batch of length n")
    p.add_argument("--batch_size", type=int, default=32, help="examples per batch")
    p.add_argument("--rows", type=int, help="only the first ROWS dev rows (default: all)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random head")
    return p


@command
def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.batch_size < 1 or (args.rows is not None and args.rows < 1):
        raise UserError("--batch_size and --rows must be >= 1")
    from powerbert.speed import padding_comparison

    print(json.dumps(padding_comparison(args)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
