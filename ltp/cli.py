"""`python -m ltp` / `ltp`: the original LTP `run.py` command line.

    python -m ltp --arch ltp-base --task SST2 --restore <fine-tuned> --data_dir <GLUE>/SST-2 \
        --lr 2e-5 --temperature 1e-3 --lambda_threshold 0.1 --bs 64 --masking_mode soft \
        --epoch 1 --no_load                                   # 1. soft threshold
    python -m ltp --arch ltp-base --task SST2 --restore <soft folder> --data_dir <GLUE>/SST-2 \
        --lr 1e-5 --bs 64 --masking_mode hard --epoch 5       # 2. hard threshold
    python -m ltp --task SST2 --restore <hard folder> --data_dir <GLUE>/SST-2 --eval

Every flag of `run.py` parses under its name (`--lambda` and `--save_step`, the README's
spellings, are argparse abbreviations of `--lambda_threshold` and `--save_steps`). What the
original reads from the checkpoint's config.json is a flag here: `--final_token_threshold`
(`prune_mode` is always `absolute_threshold`, LTP's). Added: `--data_dir` (the original reads
HF datasets), `--max_seq_length` and `--score_length` (both 128 there), own-data files,
`--overwrite_output_dir`, `--allow_other_task`, `--allow_collapsed`, `--fp16` / `--bf16`.
`--cuda`, `--save_all` and `--eval_steps` (which the original parses and never uses) are accepted
and ignored. A bad input ends with one `error: ...` line and exit code 2.
"""
import dataclasses
import os

from common import precision
from common.cli import ArgumentParser, command
from common.errors import UserError
from common.owndata import add_data_flags, apply_data_flags
from common.validation import check_numbers
from ltp.settings import LtpSettings

ORIGINAL_TASKS = {"RTE": "rte", "SST2": "sst-2", "MNLI": "mnli", "QNLI": "qnli", "QQP": "qqp",
                  "MRPC": "mrpc", "STSB": "sts-b", "COLA": "cola"}
# run.py's per-task learning rates (task_specs), used when --lr is not given.
TASK_LR = {"rte": 4e-5, "mrpc": 2e-5, "cola": 4e-5, "sts-b": 4e-5, "sst-2": 4e-5, "qnli": 4e-5,
           "qqp": 4e-5, "mnli": 4e-5}
DEFAULT_LR = 4e-5
DEFAULT_OUTPUT_ROOT = "checkpoints"
IGNORED = ("cuda", "save_all", "eval_steps")
FIELDS = {field.name for field in dataclasses.fields(LtpSettings)}


def build_parser():
    p = ArgumentParser(prog="ltp", description="LTP: learn per-layer token-pruning thresholds "
                       "(soft), fine-tune with them fixed (hard), or evaluate (--eval).")
    p.add_argument("--lr", type=float, default=None,
                   help="peak learning rate (default: run.py's per task: 2e-5 for MRPC, 4e-5 "
                        "for the others)")
    p.add_argument("--arch", choices=("ltp-base", "ltp-large"), default="ltp-base",
                   help="names the default output folder (checkpoints/base or /large); the "
                        "model itself is --restore's")
    p.add_argument("--task", help="RTE, SST2, MNLI, QNLI, QQP, MRPC, STSB (the original's names) "
                                  "or any task name of the toolkit; required without "
                                  "--train_file / --validation_file")
    p.add_argument("--eval", action="store_true", help="evaluate --restore on the dev split")
    p.add_argument("--eval_steps", type=int, default=None, help="accepted and ignored (unused "
                                                                "by the original too)")
    p.add_argument("--bs", type=int, default=32, help="batch size of training and evaluation")
    p.add_argument("--epoch", type=float, default=10, help="training epochs (the README: 10 "
                   "for small tasks, 1 for large ones in the soft stage; 5 in the hard stage)")
    p.add_argument("--restore", help="the model to start from: a fine-tuned classifier of the "
                                     "task (soft stage), the soft stage's folder (hard stage), "
                                     "or the model to evaluate (required)")
    p.add_argument("--output_dir", default=None,
                   help="where the checkpoint goes (default: the original's layout, "
                        "checkpoints/<base|large>/<TASK>/absolute_threshold/rate_<r>/"
                        "temperature_<T>/lambda_<lambda>/lr_<lr> for soft, <restore>/hard/"
                        "lr_<lr> for hard); --eval: writes eval_results.json there if given")
    p.add_argument("--cuda", default="0", help="accepted and ignored (the device is "
                                               "TensorFlow's choice)")
    p.add_argument("--save_steps", type=int, default=None,
                   help="evaluate (and keep the best) every N updates (default: every epoch)")
    p.add_argument("--lambda_threshold", type=float, default=None,
                   help="soft: weight of the mask regularizer; higher prunes more (required for "
                        "soft; the README: 0.01 to 0.2)")
    p.add_argument("--weight_decay_threshold", type=float, default=0.0,
                   help="weight decay of the thresholds")
    p.add_argument("--lr_threshold", type=float, default=None,
                   help="peak learning rate of the thresholds (default: --lr)")
    p.add_argument("--masking_mode", default="hard", choices=("hard", "soft", "mixed"),
                   help="soft: learn thresholds with sigmoid masks; hard: fine-tune with the "
                        "thresholds fixed ('mixed' parses, as in the original, and is refused)")
    p.add_argument("--temperature", type=float, default=1e-3,
                   help="soft: temperature T of the sigmoid masks (the paper searched 1e-4 to "
                        "2e-3)")
    p.add_argument("--save_all", action="store_true", help="accepted and ignored (one "
                                                           "checkpoint is kept)")
    p.add_argument("--no_load", action="store_true",
                   help="keep the model of the last step instead of the best evaluated one (the "
                        "README's soft stage)")
    p.add_argument("--seed", type=int, default=0, help="seed of shuffling and dropout")
    added = p.add_argument_group("added to the original")
    added.add_argument("--data_dir", help="folder with the task's train.tsv and dev.tsv "
                                          "(required without own-data files)")
    added.add_argument("--final_token_threshold", type=float, default=None,
                       help="starting threshold of the last layer; layer l starts at l/L of it "
                            "(the original's config.json key; default: the --restore "
                            "checkpoint's, else 0.01, the README's)")
    added.add_argument("--max_seq_length", type=int, default=128,
                       help="texts are truncated to this many tokens (the original: 128)")
    added.add_argument("--score_length", type=int, default=None,
                       help="n of the importance (Eq. 2) and of the regularizer's mean: 128 as "
                            "the original, which pads every text to 128 (its thresholds and "
                            "temperatures are on that scale); 0: each text's own length "
                            "(default: the --restore checkpoint's, else 128)")
    added.add_argument("--overwrite_output_dir", action="store_true",
                       help="replace a non-empty output folder")
    added.add_argument("--allow_other_task", action="store_true",
                       help="start from a checkpoint fine-tuned on another task with the same "
                            "labels")
    added.add_argument("--allow_collapsed", action="store_true",
                       help="start from a model whose dev predictions are all one class")
    add_data_flags(p)
    precision.add_flags(p)
    return p


@command
def main(argv=None):
    args = build_parser().parse_args(argv)
    precision.apply_flags(args)
    run(args)
    return 0


def run(args, echo=print):
    """Check the flags, fill the settings and run the pipeline. Returns its summary dict."""
    from ltp import pipeline

    apply_data_flags(args, checkpoint=args.restore if args.eval else None)
    return pipeline.run(settings(args), echo=echo)


def task_name(text):
    """The toolkit's task name of --task: the original's spellings (SST2, STSB...) or ours."""
    return ORIGINAL_TASKS.get(text.upper().replace("-", ""), text) if text else text


def default_output_dir(args, task):
    """The original run.py's folder for a stage's checkpoint."""
    lr = f"{args.lr:g}"
    if args.masking_mode == "hard":
        return os.path.join(args.restore, "hard", f"lr_{lr}")
    size = "large" if "large" in args.arch else "base"
    rate = args.final_token_threshold if args.final_token_threshold is not None else 0.01
    return os.path.join(DEFAULT_OUTPUT_ROOT, size, task, "absolute_threshold", f"rate_{rate:g}",
                        f"temperature_{args.temperature:g}",
                        f"lambda_{args.lambda_threshold:g}", f"lr_{lr}")


def settings(args):
    """The LtpSettings of parsed flags (checked)."""
    for flag in ("task", "data_dir", "restore"):
        if not getattr(args, flag):
            raise UserError(f"--{flag} is required")
    if args.masking_mode == "mixed":
        raise UserError("--masking_mode mixed is not implemented (the original raises "
                        "NotImplementedError for it too); use soft, then hard")
    check_numbers(args, counts=("bs", "max_seq_length"), seeds=("seed",),
                  rates=("lr", "lr_threshold", "temperature"),
                  non_negative=("weight_decay_threshold", "lambda_threshold",
                                "final_token_threshold", "score_length"))
    if args.epoch <= 0:
        raise UserError(f"--epoch must be > 0, got {args.epoch:g}")
    if args.save_steps is not None and args.save_steps < 1:
        raise UserError(f"--save_steps must be >= 1, got {args.save_steps}")
    if args.max_seq_length < 3:
        raise UserError("--max_seq_length must be at least 3 ([CLS], a token, [SEP])")
    training = not args.eval
    if training and args.masking_mode == "soft" and args.lambda_threshold is None:
        raise UserError("--masking_mode soft needs --lambda_threshold (the README: 0.01 to 0.2, "
                        "e.g. 0.1)")
    task = task_name(args.task)
    if args.lr is None:
        args.lr = TASK_LR.get(task, DEFAULT_LR)
    output_dir = args.output_dir
    if training and output_dir is None:
        output_dir = default_output_dir(args, args.task.upper())
    values = {name: value for name, value in vars(args).items()
              if name in FIELDS and name not in ("task", "output_dir")}
    return LtpSettings(task=task, output_dir=output_dir, command_line=str(args), **values)
