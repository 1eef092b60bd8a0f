"""`python -m powerbert` / `powerbert`: the reference `main.py` command line (IBM/PoWER-BERT).

Without --EVAL_ONLY / --PREDICT_ONLY it runs the three stages; --EVAL_ONLY evaluates
--CHECKPOINT_PATH on dev.tsv, --PREDICT_ONLY predicts test.tsv (--PRED_GLUE: GLUE server file).
Every flag of the reference works (`--EPOCH` too); added: --SEED, --SKIP_FINETUNE, --FP16 / --BF16
(Keras mixed precision), --STRATEGY (tf.distribute for the training stages) and
--ALLOW_COLLAPSED (search from a fine-tuned model whose dev predictions are all one class).
Every input is checked before anything is written; a bad one ends with one `error: ...` line
and exit code 2.
"""
import json
import os
import tempfile

from common import distribute, precision
from common.checkpoints import (check_max_length, load_backbone_weights, read_sidecar,
                                resolve_source)
from common.cli import ArgumentParser, command
from common.data import load_split
from common.errors import UserError
from common.tasks import get_task
from common.tokenization import load_tokenizer
from common.validation import (check_checkpoint_task, check_cls_pooling, check_model_files,
                               check_not_collapsed, check_numbers, check_output_dir)
from powerbert.retention import format_retention, parse_retention

MODEL_FORMATS = ("CKPT", "HDF5")


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
    p.add_argument("--TASK_CONFIG_PATH", default="./task_config.json",
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
    """Check every input, then train, evaluate or predict. Returns a summary dict."""
    from powerbert import pipeline

    training = not (args.EVAL_ONLY or args.PREDICT_ONLY)
    _check_flags(args, training)
    task = get_task(args.TASK)
    max_length, num_classes = _task_settings(args, task)
    if num_classes != task.num_labels:
        raise UserError(f"{args.TASK_CONFIG_PATH} gives {task.glue_name} {num_classes} classes but "
                        f"the task has {task.num_labels}; fix num_classes there")
    # Training starts OUTPUT_DIR afresh; evaluation and prediction append to its log.
    check_output_dir(args.OUTPUT_DIR, overwrite=args.OVERWRITE_OUTPUT_DIR or not training,
                     flag="--OVERWRITE_OUTPUT_DIR", what="--OUTPUT_DIR")
    source = resolve_source(args.CHECKPOINT_PATH, args.BERT_CONFIG_PATH)
    check_checkpoint_task(source.sidecar, task, args.CHECKPOINT_PATH, args.ALLOW_OTHER_TASK,
                          flag="--ALLOW_OTHER_TASK")
    check_cls_pooling(source.sidecar, args.CHECKPOINT_PATH, "PoWER-BERT")
    check_max_length(source.config, max_length,
                     fix=f"set a smaller seq_len for {args.TASK.lower()} in the "
                         "--TASK_CONFIG_PATH file")
    check_model_files(args.CHECKPOINT_PATH, args.BERT_CONFIG_PATH)
    if training and args.SKIP_FINETUNE:  # refused before anything is written (warned later)
        check_not_collapsed(source.sidecar, args.CHECKPOINT_PATH, args.ALLOW_COLLAPSED,
                            flag="--ALLOW_COLLAPSED", warn=lambda line: None)
    retention = None if training else _inference_retention(args, source, task, max_length)
    tokenizer = _tokenizer(args, source)
    splits = ("train", "dev") if training else ("dev",) if args.EVAL_ONLY else ("test",)
    data = {split: load_split(task, args.DATA_DIR, split, tokenizer, max_length, log=echo)
            for split in splits}
    model = None
    if not training:
        model = pipeline.build_powerbert(source.config, task.num_labels, max_length,
                                         retention=retention,
                                         length_scaled=args.LENGTH_SCALED_RETENTION)
    elif args.SKIP_FINETUNE:
        model = pipeline.build_plain(source.config, task.num_labels, max_length)
    if model is not None and not load_backbone_weights(model, source):
        raise UserError(f"{args.CHECKPOINT_PATH} has no {task.glue_name} classification head, so "
                        "it is not fine-tuned on the task; pass a fine-tuned checkpoint"
                        + (" or drop --SKIP_FINETUNE" if training else ""))
    _prepare_output_dir(args.OUTPUT_DIR)
    run_ = pipeline.Run(task=task, max_length=max_length, config=source.config,
                        tokenizer=tokenizer, output_dir=args.OUTPUT_DIR,
                        batch_size=args.BATCH_SIZE, epochs=args.EPOCHS, seed=args.SEED,
                        cased=args.CASED, echo=echo,
                        log=pipeline.RunLog(args.OUTPUT_DIR, str(args),
                                            append=not training))
    if training:
        return _train(args, run_, source, data, finetuned_model=model)
    echo(f"retention configuration: {format_retention(retention)}")
    if args.EVAL_ONLY:
        return {"retention": retention, **pipeline.evaluate_stage(run_, model, data["dev"][0])}
    outputs = pipeline.predict_stage(run_, model, *data["test"], glue=args.PRED_GLUE)
    return {"retention": retention, "outputs": outputs}


def _train(args, run_, source, data, finetuned_model=None):
    from powerbert import pipeline

    (train, _), (dev, _) = data["train"], data["dev"]
    run_.echo(f"PoWER-BERT on {run_.task.glue_name}: {len(train['input_ids'])} train / "
              f"{len(dev['input_ids'])} dev rows, sequence length {run_.max_length}")
    if finetuned_model is not None:
        finetuned = pipeline.adopt_finetuned(run_, finetuned_model, dev, source.path)
    else:
        run_.echo("stage 1/3: fine-tuning")
        finetuned = pipeline.fine_tune_stage(run_, source, train, dev, args.LR_BERT)
    # A stage-1 model that predicts one class for all of dev gives the search nothing to keep.
    check_not_collapsed(read_sidecar(finetuned), os.path.dirname(finetuned),
                        args.ALLOW_COLLAPSED, flag="--ALLOW_COLLAPSED", warn=run_.echo)
    run_.echo("stage 2/3: configuration search (Soft-Extract)")
    searched, retention, _ = pipeline.configuration_search_stage(
        run_, finetuned, train, dev, lam=args.LAMBDA, lr_bert=args.LR_BERT,
        lr_soft_extract=args.LR_SOFT_EXTRACT)
    run_.echo("stage 3/3: re-training with Extract")
    retrained, metrics = pipeline.retrain_stage(run_, searched, retention, train, dev,
                                                args.LR_BERT)
    return {"finetune": finetuned, "configuration_search_model": searched,
            "retrained": retrained, "retention": retention, "dev": metrics}


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


def _task_settings(args, task):
    """(sequence length N, number of classes) from --TASK_CONFIG_PATH, or the built-in values
    when the default ./task_config.json does not exist."""
    path = args.TASK_CONFIG_PATH
    if not os.path.isfile(path):
        if path != build_parser().get_default("TASK_CONFIG_PATH"):
            raise UserError(f"task config not found: {path}; pass an existing JSON file or drop "
                            "--TASK_CONFIG_PATH to use the built-in values")
        return task.max_length, task.num_labels
    try:
        with open(path, encoding="utf-8") as handle:
            settings = json.load(handle)
    except (OSError, json.JSONDecodeError) as err:
        raise UserError(f"cannot read task config {path}: {err}") from None
    entry = settings.get(args.TASK.lower()) if isinstance(settings, dict) else None
    if not isinstance(entry, dict) or not {"seq_len", "num_classes"} <= entry.keys():
        raise UserError(f"{path} has no '{args.TASK.lower()}' entry with seq_len and num_classes; "
                        f"add one, e.g. {{\"{args.TASK.lower()}\": {{\"seq_len\": "
                        f"{task.max_length}, \"num_classes\": {task.num_labels}}}}}")
    if not isinstance(entry["seq_len"], int) or entry["seq_len"] < 3:
        raise UserError(f"{path}: seq_len of {args.TASK} must be an integer >= 3")
    return entry["seq_len"], entry["num_classes"]


def _inference_retention(args, source, task, max_length):
    """Check the checkpoint fits the run and pick the retention configuration to evaluate with."""
    kind = "HDF5" if source.kind == "own" else "CKPT"
    if args.MODEL_FORMAT and args.MODEL_FORMAT.upper() != kind:
        what = ("a *.weights.h5 checkpoint of this toolkit" if kind == "HDF5"
                else "a Google TF checkpoint or HF model folder")
        raise UserError(f"--MODEL_FORMAT {args.MODEL_FORMAT.upper()} but {args.CHECKPOINT_PATH} "
                        f"is {what}; pass --MODEL_FORMAT {kind}")
    sidecar = source.sidecar or {}
    trained_length = sidecar.get("max_length")
    if trained_length is not None and trained_length != max_length:
        raise UserError(f"{args.CHECKPOINT_PATH} was trained with sequence length "
                        f"{trained_length} but {task.glue_name} runs at {max_length} here; use "
                        f"seq_len {trained_length} in --TASK_CONFIG_PATH or a matching checkpoint")
    if sidecar.get("num_labels", task.num_labels) != task.num_labels:
        raise UserError(f"{args.CHECKPOINT_PATH} has {sidecar['num_labels']} outputs but "
                        f"{task.glue_name} needs {task.num_labels}; pass a checkpoint of this task")
    layers = source.config.num_hidden_layers
    if args.RETENTION_CONFIG is not None:
        return parse_retention(args.RETENTION_CONFIG, layers, max_length)
    return sidecar.get("method_state", {}).get("retention_config") or [max_length] * layers


def _tokenizer(args, source):
    if args.VOCAB_PATH:
        return load_tokenizer(args.VOCAB_PATH, cased=args.CASED)
    if not any(os.path.isfile(os.path.join(source.folder, name))
               for name in ("vocab.txt", "tokenizer.json")):
        raise UserError(f"no vocab.txt beside {args.CHECKPOINT_PATH}; pass --VOCAB_PATH")
    return load_tokenizer(source.folder, cased=args.CASED)


def _prepare_output_dir(path):
    """Create OUTPUT_DIR if needed and make sure files can be written there."""
    if os.path.exists(path) and not os.path.isdir(path):
        raise UserError(f"--OUTPUT_DIR {path} exists and is not a folder; pass a folder path")
    try:
        os.makedirs(path, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as err:
        raise UserError(f"cannot write to --OUTPUT_DIR {path} ({err.strerror}); pass a writable "
                        "folder") from None
