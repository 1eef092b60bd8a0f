"""Command line of `run_glue_with_pabee.py`: the HF-style flags of the original PABEE script.

    python run_files/run_glue_with_pabee.py --model_type bert --model_name_or_path <model folder>
        --task_name SST-2 --do_train --do_eval --do_lower_case --data_dir <GLUE>/SST-2
        --output_dir <out> --patience 2,3,4

Every flag of the original parses. --fp16 trains and evaluates under Keras' mixed_float16 policy
with loss scaling (added: --bf16, mixed_bfloat16; --strategy, tf.distribute). Flags this toolkit
has no use for (--fp16_opt_level: Keras has no apex opt levels; --local_rank, --server_ip,
--server_port) and --cache_dir / --overwrite_cache (features are never cached) are accepted and
ignored with a one-line notice.
"""
import dataclasses
import sys

from common import distribute, precision
from common.cli import ArgumentParser, command
from common.config import MODEL_TYPES
from common.errors import UserError, parse_int_list
from common.owndata import add_data_flags, apply_data_flags
from common.tasks import get_task
from common.validation import (check_model_files, check_numbers, check_output_dir,
                               check_source_not_collapsed)
from pabee.settings import PabeeSettings

IGNORED = {"fp16_opt_level": "O1", "local_rank": -1, "server_ip": "",
           "server_port": "", "cache_dir": "", "overwrite_cache": False}


def build_parser():
    p = ArgumentParser(
        prog="run_glue_with_pabee.py", description="PABEE: train BERT/ALBERT with an internal classifier per layer and "
                    "evaluate with patience-based early exit (GLUE tasks).")
    required = p.add_argument_group("required")
    required.add_argument("--data_dir",
                          help="folder with the task's TSV files (train.tsv, dev.tsv); required "
                               "without --train_file / --validation_file, not with them")
    required.add_argument("--model_type", required=True,
                          help=f"the model's family: {', '.join(MODEL_TYPES)} (the original: bert "
                               "or albert)")
    required.add_argument("--model_name_or_path", required=True,
                          help="HF model folder, Google bert_model.ckpt, our *.weights.h5 "
                               "checkpoint (folder), or a hub id when online")
    required.add_argument("--task_name",
                          help="GLUE task: cola, mnli, mrpc, sst-2, sts-b, qqp, qnli, rte, wnli; "
                               "required without --train_file / --validation_file, not with "
                               "them")
    required.add_argument("--output_dir", required=True,
                          help="checkpoints, final model and eval results; evaluation loads the "
                               "model from here")
    p.add_argument("--patience", default="0",
                   help="comma-separated patience values, e.g. 3,4,5; 0 = full model (default)")
    p.add_argument("--regression_threshold", type=float, default=None,
                   help="regression (STS-B): outputs closer than this count as unchanged "
                        "(default 0, which never exits early; the README suggests 0.1)")
    p.add_argument("--pooling", choices=("cls", "mean"), default=None,
                   help="what the shared pooler reads: the [CLS] vector (cls, the paper's) or the "
                        "mean of the real tokens' vectors (mean); default: mean when the model "
                        "folder's sentence-transformers pooling config says mean, else cls; "
                        "evaluation uses the pooling the checkpoint was trained with")
    p.add_argument("--config_name", default="", help="config to use instead of the model's own (default: the "
                   "model's own)")
    p.add_argument("--tokenizer_name", default="",
                   help="vocab.txt or folder to use instead of the model's own at start-up "
                        "(default: the model's own)")
    p.add_argument("--max_seq_length", type=int, default=128,
                   help="every example is truncated / padded to this many tokens")
    p.add_argument("--do_train", action="store_true", help="fine-tune backbone and all heads")
    p.add_argument("--do_eval", action="store_true", help="evaluate on dev for every patience")
    p.add_argument("--evaluate_during_training", action="store_true",
                   help="evaluate (patience 0) at every logging step")
    p.add_argument("--do_lower_case", action="store_true", help="lower-case text (uncased models)")
    p.add_argument("--eval_each_layer", action="store_true",
                   help="extension: also score every internal classifier alone and simulate "
                        "the patience list offline from the stored per-layer logits")
    p.add_argument("--per_gpu_train_batch_size", type=int, default=8,
                   help="training examples per batch")
    p.add_argument("--per_gpu_eval_batch_size", type=int, default=1,
                   help="1 = the original per-example loop; larger batches use per-example "
                        "batched early exit (same predictions)")
    p.add_argument("--gradient_accumulation_steps", type=int, default=1,
                   help="batches whose gradients add up to one update")
    p.add_argument("--learning_rate", type=float, default=5e-5,
                   help="peak AdamW learning rate")
    p.add_argument("--weight_decay", type=float, default=0.0,
                   help="AdamW weight decay (not on biases and LayerNorm weights)")
    p.add_argument("--adam_epsilon", type=float, default=1e-8, help="Adam's epsilon")
    p.add_argument("--max_grad_norm", type=float, default=1.0,
                   help="clip the gradients' global norm to this (0: no clipping)")
    p.add_argument("--num_train_epochs", type=float, default=3.0,
                   help="passes over the training data (a fraction ends mid-epoch)")
    p.add_argument("--max_steps", type=int, default=-1,
                   help="if > 0: total updates (overrides --num_train_epochs)")
    p.add_argument("--warmup_steps", type=int, default=0,
                   help="updates with a linearly rising learning rate")
    p.add_argument("--logging_steps", type=int, default=500, help="<= 0 disables")
    p.add_argument("--save_steps", type=int, default=500,
                   help="write output_dir/checkpoint-<step>/ every N updates; <= 0 disables")
    p.add_argument("--eval_all_checkpoints", action="store_true",
                   help="evaluate output_dir and every checkpoint-<step> folder under it")
    p.add_argument("--no_cuda", action="store_true", help="run on CPU even if a GPU is visible")
    p.add_argument("--overwrite_output_dir", action="store_true",
                   help="allow training into a non-empty output_dir")
    p.add_argument("--allow_other_task", action="store_true",
                   help="evaluate a checkpoint trained on another task with the same labels")
    p.add_argument("--allow_collapsed", action="store_true",
                   help="train from a fine-tuned checkpoint whose dev predictions were all one "
                        "class (refused otherwise)")
    p.add_argument("--seed", type=int, default=42,
                   help="seed of the new heads, dropout and shuffling")
    p.add_argument("--jit_compile", action="store_true",
                   help="compile the per-layer inference steps with XLA")
    p.add_argument("--overwrite_cache", action="store_true", help="accepted; nothing is cached")
    p.add_argument("--cache_dir", default="", help="accepted; ignored")
    add_data_flags(p)
    precision.add_flags(p)
    distribute.add_flag(p)
    p.add_argument("--fp16_opt_level", default="O1",
                   help="accepted; ignored (apex's opt levels have no Keras counterpart: --fp16 "
                        "is the mixed_float16 policy with dynamic loss scaling)")
    p.add_argument("--local_rank", type=int, default=-1, help="accepted; ignored")
    p.add_argument("--server_ip", default="", help="accepted; ignored")
    p.add_argument("--server_port", default="", help="accepted; ignored")
    return p


def validate(args, task, warn=None):
    """Check the flags that argparse cannot; returns the parsed patience list. Warnings go
    to `warn` (default: stderr)."""
    warn = warn or (lambda text: print(text, file=sys.stderr))
    args.model_type = args.model_type.lower()
    if args.model_type not in MODEL_TYPES:
        raise UserError(f"--model_type {args.model_type} is not supported by PABEE; use one of "
                        f"{', '.join(MODEL_TYPES)}")
    patience = parse_int_list(args.patience, "--patience", minimum=0)
    precision.precision_name(args.bf16, args.fp16)  # both given: UserError
    if not (args.do_train or args.do_eval):
        raise UserError("nothing to do: pass --do_train and/or --do_eval")
    check_numbers(args, counts=("per_gpu_train_batch_size", "per_gpu_eval_batch_size",
                                "gradient_accumulation_steps", "max_seq_length"),
                  rates=("learning_rate", "adam_epsilon"),
                  non_negative=("weight_decay", "max_grad_norm", "warmup_steps"),
                  seeds=("seed",))
    if args.do_train and args.max_steps <= 0:
        check_numbers(args, rates=("num_train_epochs",))
    if args.do_train:
        check_output_dir(args.output_dir, overwrite=args.overwrite_output_dir)
        check_model_files(args.model_name_or_path, args.config_name or None)
        check_source_not_collapsed(args.model_name_or_path, args.allow_collapsed, warn=warn)
    if task.is_regression:
        if args.regression_threshold is None:
            args.regression_threshold = 0.0
            if any(patience):
                warn("warning: --regression_threshold not given for regression task "
                    f"{task.glue_name}: using 0, so no example exits early (the original's "
                    "default); pass e.g. --regression_threshold 0.1")
        elif args.regression_threshold < 0:
            raise UserError("--regression_threshold must be >= 0")
    elif args.regression_threshold is not None:
        warn(f"warning: --regression_threshold is ignored for classification task "
            f"{task.glue_name}")
    for name, default in IGNORED.items():
        if getattr(args, name) != default:
            warn(f"notice: --{name} is accepted for compatibility and ignored")
    return patience


def settings(argv, warn=None):
    """Parse and check the flags: the PabeeSettings the pipeline runs with."""
    args = build_parser().parse_args(argv)
    apply_data_flags(args, "task_name", "data_dir",
                     checkpoint=None if args.do_train else args.output_dir)
    if not (args.task_name and args.data_dir):
        raise UserError("--data_dir and --task_name are required (or pass --train_file / "
                        "--validation_file)")
    patience_list = validate(args, get_task(args.task_name), warn)
    return PabeeSettings(**vars(args), patience_list=tuple(patience_list))


@command
def main(argv=None):
    run_settings = settings(argv)
    from pabee import pipeline

    with distribute.scope(run_settings.strategy):
        precision.apply_flags(run_settings)
        if run_settings.do_train:  # other workers train into a throwaway folder
            run_settings = dataclasses.replace(
                run_settings, output_dir=distribute.chief_folder(run_settings.output_dir))
        pipeline.run(run_settings)
    return 0
