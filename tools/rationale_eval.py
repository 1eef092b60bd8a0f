"""Compare the tokens AdapLeR keeps with human rationales: false positive rate,
recall and precision of AdapLeR's kept tokens vs the top-k tokens by saliency, by attention and
at random (k = the number AdapLeR keeps in each window).

    python tools/rationale_eval.py --TASK movie_rationales --DATA_DIR /path/to/eraser/data \
        --MODEL_PATH <AdapLeR checkpoint> --BASELINE_MODEL_PATH <fine-tuned checkpoint>
"""

from common.cli import ArgumentParser, command
from common.validation import check_new_files, check_numbers


def build_parser():
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--TASK", required=True, help="movie_rationales or hatexplain")
    parser.add_argument("--DATA_DIR", default=None,
                        help="the task's folder (default: ./data/<task folder>)")
    parser.add_argument("--SPLIT", default="test", choices=("train", "dev", "val", "test"),
                        help="the split whose rationales are compared")
    parser.add_argument("--MODEL_PATH", required=True, help="AdapLeR checkpoint folder")
    parser.add_argument("--BASELINE_MODEL_PATH", default=None,
                        help="fine-tuned checkpoint for the saliency/attention baselines "
                             "(default: the AdapLeR checkpoint with nothing removed)")
    parser.add_argument("--MAX_LENGTH", type=int, default=None, help="default: the checkpoint's")
    parser.add_argument("--LAYER", type=int, default=None,
                        help="compare the tokens entering this layer (1-based; default: last)")
    parser.add_argument("--BATCH_SIZE", type=int, default=16, help="examples per batch")
    parser.add_argument("--OUTPUT", default=None,
                        help="also write the table as CSV (default: printed only)")
    return parser


@command
def main(argv=None):
    args = build_parser().parse_args(argv)
    check_numbers(args, counts=("MAX_LENGTH", "LAYER", "BATCH_SIZE"))
    if args.OUTPUT:
        check_new_files([args.OUTPUT], overwrite=True)
    from adapler.rationale_evaluation import run

    run(args)


if __name__ == "__main__":
    main()
