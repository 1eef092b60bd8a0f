"""Compare the tokens AdapLeR keeps with human rationales: false positive rate,
recall and precision of AdapLeR's kept tokens vs the top-k tokens by saliency, by attention and
at random (k = the number AdapLeR keeps in each window).

    python tools/rationale_eval.py --TASK movie_rationales --DATA_DIR /path/to/eraser/data \
        --MODEL_PATH <AdapLeR checkpoint> --BASELINE_MODEL_PATH <fine-tuned checkpoint>
"""

from common.cli import ArgumentParser, command
from common.errors import UserError
from common.validation import check_model_files, check_new_files, check_numbers


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
    from adapler.paths import checkpoint_folder

    for path in filter(None, (args.MODEL_PATH, args.BASELINE_MODEL_PATH)):
        check_model_files(checkpoint_folder(path))
    from adapler.data import default_data_dir_for
    from adapler.inference import load_model
    from adapler.rationale_evaluation import evaluate_rationales, read_documents
    from adapler.model import build_model, load_checkpoint_into
    from common.checkpoints import resolve_source
    from common.tasks import get_task

    task = get_task(args.TASK)
    model, tokenizer, sidecar = load_model(args.MODEL_PATH)
    layers = model.config.num_hidden_layers
    layer = args.LAYER or layers
    if not 1 <= layer <= layers:
        raise UserError(f"--LAYER must be in 1..{layers}")
    max_length = args.MAX_LENGTH or sidecar.get("max_length") or 128
    if args.BASELINE_MODEL_PATH:
        folder = checkpoint_folder(args.BASELINE_MODEL_PATH)
        baseline = build_model(resolve_source(folder).config, model.num_labels, max_length)
        load_checkpoint_into(baseline, folder)
    else:
        baseline = model
    split = "dev" if args.SPLIT == "val" else args.SPLIT
    documents = read_documents(task, args.DATA_DIR or default_data_dir_for(task), split)
    table, windows = evaluate_rationales(model, baseline, documents, tokenizer, max_length,
                                         layer - 1, args.BATCH_SIZE)
    print(f"{task.glue_name} {split}: {len(documents)} documents, {windows} windows, tokens kept "
          f"before layer {layer}")
    print(table.to_string(float_format=lambda v: f"{v:.4f}"))
    if args.OUTPUT:
        table.to_csv(args.OUTPUT)


if __name__ == "__main__":
    main()
