"""Command lines of the AdapLeR stages, with the original scripts' flags and defaults.

Added to every stage: --MODEL_NAME_OR_PATH (default bert-base-uncased: an HF folder, a hub id or
a Google checkpoint folder) and --DATA_DIR (local task files; default ./data, for SST-2 the
bundled sample when ./data/SST-2 is absent). --GPU and --MULTI_GPU are accepted for
compatibility; this build runs on TensorFlow's default device. Extra: --MAX_TRAIN_EXAMPLES (a
fixed training subset: the first rows of the seeded shuffle; give the same value to stages A-C),
--PAPER_FLOPS (count FLOPs as the original did, bugs included), --SPLIT for the evaluation,
--FP16 / --BF16 (Keras mixed precision) on every stage and --STRATEGY (tf.distribute) on the
training stages A and C.
"""
from adapler import paths
from adapler.settings import (DEFAULT_MODEL, EvaluationSettings, FinetuneSettings,
                              GlueTrainSettings, SaliencySettings, TrainSettings)
from common import distribute, precision
from common.cli import ArgumentParser, command
from common.errors import UserError
from common.tasks import get_task
from common.validation import (check_model_files, check_new_files, check_numbers,
                               check_output_dir)


def _parser(description, max_length=128, batch_size=32, seed=True):
    parser = ArgumentParser(description=description)
    parser.add_argument("--TASK", required=True, help="task key, e.g. sst2, mrpc, ag_news")
    parser.add_argument("--MAX_LENGTH", type=int, default=max_length,
                        help="tokens per example, [CLS] and [SEP] included")
    parser.add_argument("--BATCH_SIZE", type=int, default=batch_size, help="examples per batch")
    parser.add_argument("--MULTI_GPU", action="store_true", help="accepted; no effect on CPU")
    parser.add_argument("--GPU", type=int, default=0, help="accepted; no effect on CPU")
    if seed:
        parser.add_argument("--DATA_SEED", type=int, default=42,
                            help="shuffle + RNG seed and folder name (same in every stage)")
    parser.add_argument("--MODEL_NAME_OR_PATH", default=DEFAULT_MODEL,
                        help="base model: HF folder, hub id or Google checkpoint folder")
    parser.add_argument("--DATA_DIR", default=None,
                        help="folder with the task files (default ./data; SST-2: bundled sample)")
    precision.add_flags(parser, upper=True)
    return parser


def _train_subset(parser):
    parser.add_argument("--MAX_TRAIN_EXAMPLES", type=int, default=None,
                        help="train on the first N examples of the seeded shuffle (default: "
                             "every example)")


def _allow_collapsed(parser):
    parser.add_argument("--ALLOW_COLLAPSED", action="store_true",
                        help="start from a fine-tuned checkpoint whose dev predictions were all "
                             "one class (refused otherwise)")


def _overwrite(parser, what):
    parser.add_argument("--OVERWRITE_OUTPUT_DIR", action="store_true",
                        help=f"replace {what} of an earlier run with the same settings")


def _check(args):
    """The numeric flags every stage shares (optional ones only when the stage has them)."""
    names = vars(args)
    check_numbers(args, counts=[n for n in ("BATCH_SIZE", "EPOCHS", "EVAL_BATCH_SIZE",
                                            "ACC_STEPS", "MAX_TRAIN_EXAMPLES") if n in names],
                  rates=[n for n in ("LEARNING_RATE", "ETA_LEARNING_RATE") if n in names],
                  non_negative=[n for n in ("GAMMA", "PHI", "HEAD_LEARNING_RATE") if n in names],
                  fractions=[n for n in ("WARMUP_RATIO",) if n in names],
                  seeds=[n for n in ("DATA_SEED",) if n in names])


def _parse(parser, argv):
    args = parser.parse_args(argv)
    from adapler.data import default_data_dir_for  # registers AdapLeR's tasks; imports TF

    task = get_task(args.TASK)  # unknown task: one clear error line
    args.data_dir = args.DATA_DIR or default_data_dir_for(task)
    if args.MAX_LENGTH < 3:
        raise UserError(f"--MAX_LENGTH {args.MAX_LENGTH} is too small; use at least 3")
    _check(args)
    check_model_files(args.MODEL_NAME_OR_PATH)
    if getattr(args, "MODEL_PATH", None):
        check_model_files(paths.checkpoint_folder(args.MODEL_PATH))
    precision.apply_flags(args)
    return args


def _settings(cls, args):
    """The stage's settings: flag --FOO fills field `foo`; DATA_DIR is the folder resolved."""
    values = {key.lower(): value for key, value in vars(args).items() if key.isupper()}
    return cls(**{**values, "data_dir": args.data_dir})


def _dirs(settings):
    return paths.TaskDirs(settings.task, settings.data_seed)


# ---------------------------------------------------------------- stage A

def finetune_parser(description="Fine-tune BERT on a task, saving every epoch (stage A)."):
    parser = _parser(description)
    parser.add_argument("--LEARNING_RATE", type=float, default=2e-5,
                        help="peak AdamW learning rate")
    parser.add_argument("--WARMUP_RATIO", type=float, default=0.06,
                        help="share of the updates with a rising learning rate")
    parser.add_argument("--EPOCHS", type=int, default=5, help="epochs; each one is saved")
    _train_subset(parser)
    _overwrite(parser, "the fine-tuned checkpoints and ft_logs.json")
    distribute.add_flag(parser, "--STRATEGY")
    return parser


@command
def finetune_main(argv=None):
    settings = _settings(FinetuneSettings, _parse(finetune_parser(), argv))
    dirs = _dirs(settings)
    check_new_files([dirs.ft_logs] + [dirs.finetuned(e) for e in range(1, settings.epochs + 1)],
                    settings.overwrite_output_dir, flag="--OVERWRITE_OUTPUT_DIR")
    from adapler import pipeline

    with distribute.scope(settings.strategy):
        print(f"arguments: {settings.flags()}")
        pipeline.run_finetune(settings, dirs)


# ---------------------------------------------------------------- stage B

def saliency_parser():
    parser = _parser("Store gradient x input saliencies of the 3 best fine-tuned epochs "
                     "(stage B).", batch_size=4)
    parser.add_argument("--SPLIT", default="train", choices=("train", "dev", "val", "test"),
                        help="the split whose saliencies are stored (val = dev)")
    _train_subset(parser)
    _overwrite(parser, "the saliency files")
    _allow_collapsed(parser)
    return parser


@command
def saliency_main(argv=None):
    args = _parse(saliency_parser(), argv)
    if args.SPLIT == "val":
        args.SPLIT = "dev"  # the original's name of the dev split
    settings = _settings(SaliencySettings, args)
    dirs = _dirs(settings)
    check_output_dir(dirs.saliency_dir(settings.split), settings.overwrite_output_dir,
                     flag="--OVERWRITE_OUTPUT_DIR", what="saliency folder")
    print(f"arguments: {settings.flags()}")
    from adapler import pipeline

    pipeline.run_saliencies(settings, dirs)


# ---------------------------------------------------------------- stage C

def train_parser(glue=False):
    parser = _parser("Train AdapLeR: BERT + contribution predictors with length reduction "
                     "(stage C).", batch_size=16 if glue else 32)
    parser.add_argument("--GAMMA", type=float, default=1e-3 if glue else 1.0,
                        help="weight of the saliency (KL) loss of the network and CPs")
    parser.add_argument("--PHI", type=float, default=0.002 if glue else 10.0,
                        help="weight of the length loss of eta")
    parser.add_argument("--EPOCHS", type=int, default=5, help="also selects the lambda schedule")
    parser.add_argument("--INITIAL_MODEL_PATH", default="pretrain",
                        help='"pretrain" (base model), "" (best fine-tuned epoch) or a checkpoint')
    parser.add_argument("--SAVE_NAME", default="znorm_l2",
                        help="first part of the run's checkpoint and log names")
    parser.add_argument("--WARMUP_RATIO", type=float, default=0.06,
                        help="share of the updates with a rising learning rate")
    parser.add_argument("--LEARNING_RATE", type=float, default=3e-5,
                        help="peak AdamW learning rate of BERT and the classifier")
    if glue:
        parser.add_argument("--JS_BASED_RATIO", action="store_true",
                            help="Jensen-Shannon instead of KL for the CP loss")
        parser.add_argument("--SOFT_EXTRACT_TYPE", default="relu",
                            help='soft-removal function; only "relu" (S_lambda) exists')
        parser.add_argument("--HEAD_LEARNING_RATE", type=float, default=0.0,
                            help="separate CP learning rate (0: same as --LEARNING_RATE)")
    else:
        parser.add_argument("--EVAL_BATCH_SIZE", type=int, default=32,
                            help="examples per batch when evaluating")
        parser.add_argument("--ACC_STEPS", type=int, default=1,
                            help="gradient accumulation micro-batches per update")
    parser.add_argument("--ETA_LEARNING_RATE", type=float, default=None,
                        help="peak Adam rate of eta and theta (default: the original's "
                             "hard-coded 5e-4, which bounds how far eta moves in a short run)")
    parser.add_argument("--PAPER_FLOPS", action="store_true",
                        help="count FLOPs as the original (fitted BERT-base formula, its bugs)")
    _train_subset(parser)
    _overwrite(parser, "the AdapLeR checkpoint and logs")
    _allow_collapsed(parser)
    distribute.add_flag(parser, "--STRATEGY")
    return parser


def _train(argv, glue):
    settings = _settings(GlueTrainSettings if glue else TrainSettings,
                         _parse(train_parser(glue), argv))
    if settings.soft_extract_type != "relu":
        raise UserError(f"--SOFT_EXTRACT_TYPE {settings.soft_extract_type} does not exist; the "
                        "only soft-removal function is 'relu' (S_lambda)")
    dirs, stem = _dirs(settings), paths.stem(settings.save_name, settings.gamma, settings.phi)
    check_new_files([dirs.adapler_model(stem), dirs.log_file(stem), dirs.log_file(stem, ".pkl")],
                    settings.overwrite_output_dir, flag="--OVERWRITE_OUTPUT_DIR")
    from adapler import pipeline

    with distribute.scope(settings.strategy):
        pipeline.run_adapler(settings, dirs)


@command
def train_main(argv=None):
    _train(argv, glue=False)


@command
def glue_train_main(argv=None):
    _train(argv, glue=True)


# ---------------------------------------------------------------- stage D

def evaluation_parser(glue=False):
    parser = _parser("Predict the GLUE test split (TSV) with COUNT and SPEEDUP." if glue else
                     "Evaluate a labelled split: metrics, COUNT, SPEEDUP, per-example FLOPs.",
                     batch_size=48, seed=False)
    parser.add_argument("--LR_MODEL", action="store_true",
                        help="an AdapLeR checkpoint (else a fine-tuned BERT, nothing removed)")
    parser.add_argument("--MODEL_PATH", required=True, help="checkpoint folder (or its X.h5)")
    parser.add_argument("--ALLOW_OTHER_TASK", action="store_true",
                        help="run a checkpoint trained on another task with the same labels")
    parser.add_argument("--PAPER_FLOPS", action="store_true",
                        help="count FLOPs as the original (fitted BERT-base formula, its bugs)")
    if not glue:
        parser.add_argument("--SPLIT", default="test", choices=("test", "dev", "train"),
                            help="the labelled split to evaluate")
    return parser


@command
def evaluation_main(argv=None):
    settings = _settings(EvaluationSettings, _parse(evaluation_parser(), argv))
    from adapler import pipeline

    pipeline.run_evaluation(settings)


@command
def glue_prediction_main(argv=None):
    settings = _settings(EvaluationSettings, _parse(evaluation_parser(glue=True), argv))
    from adapler import pipeline

    pipeline.run_glue_prediction(settings)
