"""`python -m powerbert` / `powerbert`: the reference `main.py` command line.

Without --EVAL_ONLY / --PREDICT_ONLY it runs the three stages; --EVAL_ONLY evaluates
--CHECKPOINT_PATH on dev.tsv, --PREDICT_ONLY predicts test.tsv (--PRED_GLUE: GLUE server file).
Every flag of the reference works (`--EPOCH` too); added: --SEED, --SKIP_FINETUNE, --FP16 / --BF16
(Keras mixed precision), --STRATEGY (tf.distribute for the training stages) and
--ALLOW_COLLAPSED (search from a fine-tuned model whose dev predictions are all one class).
Every input is checked before anything is written; a bad one ends with one `error: ...` line
and exit code 2.
"""
import dataclasses

from common import distribute, precision
from common.cli import ArgumentParser, command
from common.errors import UserError
from common.validation import check_numbers
from powerbert.settings import DEFAULT_TASK_CONFIG, PowerBertSettings

MODEL_FORMATS = ("CKPT", "HDF5")
FIELDS = {field.name for field in dataclasses.fields(PowerBertSettings)}


def build_parser():
    p = ArgumentParser(prog="powerbert", description="PoWER-BERT: fine-tune, search the retention "
                "configuration and re-train with word-vector elimination; or evaluate/predict.")
    p.add_argument("--EPOCHS", "--EPOCH", dest="EPOCHS", type=int, default=5,
                   help="epochs of each of the three stages (default 5)")
    p.add_argument("--BATCH_SIZE", type=int, default=32,
                   help="batch size for training, evaluation and prediction (default 32)")
    p.add_argument("--LR_BERT", type=float, default=3e-5,
                   help="peak learning rate of the BERT and classifier weights (default 3e-5)")
    p.add_argument("--LR_SOFT_EXTRACT", type=float,
                   help="peak learning rate of the retention parameters (training: required)")
    p.add_argument("--LAMBDA", type=float,
                   help="L1 strength on the retention parameters; block l pays LAMBDA*l "
                        "(training: required)")
    p.add_argument("--CHECKPOINT_PATH",
                   help="training: the starting model (Google bert_model.ckpt, HF folder or "
                        "our checkpoint); eval/predict: the model to run (required)")
    p.add_argument("--DATA_DIR", help="folder with train.tsv, dev.tsv, test.tsv (required)")
    p.add_argument("--TASK", help="cola, sst-2, mrpc, qqp, sts-b, mnli-m, mnli-mm, qnli, rte "
                                  "(required)")
    p.add_argument("--VOCAB_PATH", help="vocab.txt (default: the one beside the checkpoint)")
    p.add_argument("--CASED", action="store_true", help="keep case and accents")
    p.add_argument("--BERT_CONFIG_PATH",
                   help="bert_config.json / config.json (default: beside the checkpoint)")
    p.add_argument("--OUTPUT_DIR", help="where checkpoints, log and predictions go (created; "
                                        "required)")
    p.add_argument("--TASK_CONFIG_PATH", default=DEFAULT_TASK_CONFIG,
                   help="JSON {task: {seq_len, num_classes}}; without the file the built-in "
                        "values are used (PoWER-BERT's task_config.json)")
    p.add_argument("--EVAL_ONLY", action="store_true", help="evaluate on dev.tsv")
    p.add_argument("--PREDICT_ONLY", action="store_true", help="predict test.tsv")
    p.add_argument("--RETENTION_CONFIG",
                   help="eval/predict: comma-separated word-vectors kept per block, "
                        "non-increasing (default: the checkpoint's own, else N everywhere)")
    p.add_argument("--LENGTH_SCALED_RETENTION", action="store_true",
                   help="eval/predict: on a batch padded to its longest text (n tokens), block l "
                        "keeps ceil(k_l * n / N) word-vectors instead of min(k_l, n) (default: "
                        "fixed k_l, the reference's behaviour)")
    p.add_argument("--MODEL_FORMAT", help="eval/predict: CKPT (Google TF checkpoint or HF "
                   "folder) or HDF5 (*.weights.h5 of this toolkit); default: detected")
    p.add_argument("--PRED_GLUE", action="store_true",
                   help="with --PREDICT_ONLY: also write the GLUE server file (e.g. MRPC.tsv)")
    p.add_argument("--SEED", type=int, default=0, help="seed of shuffling, dropout and init")
    p.add_argument("--SKIP_FINETUNE", action="store_true",
                   help="training: --CHECKPOINT_PATH is already fine-tuned on the task; use it "
                        "as the stage-1 result")
    p.add_argument("--OVERWRITE_OUTPUT_DIR", action="store_true",
                   help="training: allow a non-empty --OUTPUT_DIR (its stage folders and "
                        "log_file.txt are replaced); evaluation and prediction always append")
    p.add_argument("--ALLOW_OTHER_TASK", action="store_true",
                   help="run a checkpoint trained on another task with the same labels")
    p.add_argument("--ALLOW_COLLAPSED", action="store_true",
                   help="search from a fine-tuned model whose dev predictions are all one class "
                        "(refused otherwise: the stage-1 result or the --SKIP_FINETUNE checkpoint)")
    precision.add_flags(p, upper=True)
    distribute.add_flag(p, "--STRATEGY")
    return p


@command
def main(argv=None):
    args = build_parser().parse_args(argv)
    with distribute.scope(args.STRATEGY):
        precision.apply_flags(args)
        args.OUTPUT_DIR = distribute.chief_folder(args.OUTPUT_DIR)
        run(args)
    return 0


def run(args, echo=print):
    """Check the flags, fill the settings and run the pipeline. Returns its summary dict."""
    from powerbert import pipeline

    _check_flags(args, not (args.EVAL_ONLY or args.PREDICT_ONLY))
    return pipeline.run(settings(args), echo=echo)


def settings(args):
    """The PowerBertSettings of parsed flags (flag --FOO fills field `foo`, --LAMBDA `lam`)."""
    values = {name.lower(): value for name, value in vars(args).items()
              if name.lower() in FIELDS}
    return PowerBertSettings(lam=args.LAMBDA, command_line=str(args), **values)


def _check_flags(args, training):
    for flag in ("TASK", "DATA_DIR", "CHECKPOINT_PATH", "OUTPUT_DIR"):
        if not getattr(args, flag):
            raise UserError(f"--{flag} is required")
    check_numbers(args, counts=("EPOCHS", "BATCH_SIZE"), seeds=("SEED",))
    if args.MODEL_FORMAT is not None and args.MODEL_FORMAT.upper() not in MODEL_FORMATS:
        raise UserError(f"--MODEL_FORMAT '{args.MODEL_FORMAT}' is not supported; use CKPT (Google "
                        "TF checkpoint or HF folder) or HDF5 (*.weights.h5 of this toolkit)")
    if args.PRED_GLUE and not args.PREDICT_ONLY:
        raise UserError("--PRED_GLUE only applies to --PREDICT_ONLY; add --PREDICT_ONLY")
    if args.LENGTH_SCALED_RETENTION and training:
        raise UserError("--LENGTH_SCALED_RETENTION only applies to --EVAL_ONLY / --PREDICT_ONLY")
    if not training:
        return
    for flag in ("LAMBDA", "LR_SOFT_EXTRACT"):
        if getattr(args, flag) is None:
            raise UserError(f"--{flag} is required for training (e.g. the README's MRPC values "
                            "--LR_SOFT_EXTRACT 0.003 --LAMBDA 0.003); or pass --EVAL_ONLY / "
                            "--PREDICT_ONLY")
    check_numbers(args, rates=("LR_BERT", "LR_SOFT_EXTRACT"), non_negative=("LAMBDA",))


