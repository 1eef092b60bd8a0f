"""The three PoWER-BERT stages (the reference's training.py), evaluation and prediction, and the
run's log file; `run(settings)` (a `powerbert.settings.PowerBertSettings`) checks the inputs and
runs them.

    stage 1  fine-tune the plain classifier                     -> OUTPUT_DIR/finetune/
    stage 2  configuration search with Soft-Extract from the best stage-1 epoch; the retention
             configuration comes from its final epoch   -> OUTPUT_DIR/configuration_search_model/
    stage 3  re-train with Extract, from the stage-2 weights    -> OUTPUT_DIR/retrained/

Each checkpoint is `<stage>/model.weights.h5` + `config.json` (task, max length, retention
configuration...) + tokenizer files, committed as one set; the next stage loads it from disk by variable key, like the
reference's by-name HDF5 loading. Every stage trains with the reference's Adam (powerbert.optimizer)
for the same number of epochs; stages 1 and 3 keep their best dev epoch by the task's metric.
`log_file.txt` gets the reference's records (main.py, training.py) plus the task metric per epoch,
the configuration in `--RETENTION_CONFIG` form and its FLOPs speed-up.
"""
import dataclasses
import json
import os
import tempfile

import keras
import numpy as np
from keras import ops

from common import checkpoints, distribute, flops, runlog
from common.checkpoints import (check_max_length, load_backbone_weights, read_sidecar,
                                resolve_source)
from common.data import load_split
from common.errors import UserError
from common.files import result_copy, write_result_text
from common.seeding import set_seed
from common.tasks import get_task
from common.tokenization import TOKENIZER_FILES, load_tokenizer
from common.training import (TrainLoop, classification_loss, evaluate_classifier, fine_tune,
                             predict, train)
from common.validation import (check_checkpoint_task, check_cls_pooling, check_model_files,
                               check_not_collapsed, check_output_dir)
from powerbert.flops import powerbert_flops
from powerbert.model import build_plain, build_powerbert, load_stage
from powerbert.optimizer import WARMUP_PROPORTION, AdamGroup, KerasTwoWarmupDecay, stage_steps
from powerbert.retention import (derive_retention, format_retention, movement_warning,
                                 parse_retention)
from powerbert.settings import DEFAULT_TASK_CONFIG

LOG_FILE = "log_file.txt"
EVENTS_FILE = "run_log.jsonl"
PREDICTION_FILE = "prediction.txt"
FINETUNE, SEARCH, RETRAINED = "finetune", "configuration_search_model", "retrained"


class RunLog(runlog.RunLog):
    """`OUTPUT_DIR/log_file.txt`: the command line, then one record per result (as the reference),
    written from the shared run log (common.runlog) whose JSON lines go to `run_log.jsonl`.

    A training run starts log_file.txt afresh, as the reference does; evaluation and prediction
    runs append to it instead of wiping the training log (the reference truncates it in every
    mode). run_log.jsonl keeps every run."""

    def __init__(self, output_dir, args, append=False):
        path = os.path.join(output_dir, LOG_FILE)
        start = "\n" if append and os.path.isfile(path) else ""
        super().__init__(path, os.path.join(output_dir, EVENTS_FILE), fresh=not append,
                         echo=None)
        self.write(f"{start}Command-Line arguments :{args}")
        self.event("start", arguments=str(args))

    def record(self, text, **values):
        """A training record: a new line starting with one space (+ its JSON line)."""
        self.write("\n " + text)
        self.event("record", text=text, **values)


@dataclasses.dataclass
class Run:
    """What every stage needs: the task, its sequence length, batch size, output folder..."""
    task: object  # common.tasks.Task
    max_length: int
    config: object  # common.config.BertConfig of the backbone
    tokenizer: object
    output_dir: str
    batch_size: int = 32
    epochs: int = 5
    seed: int = 0
    cased: bool = False
    log: RunLog | None = None
    echo: object = print

    def record(self, text, **values):
        self.echo(text)
        if self.log is not None:
            self.log.record(text, **values)

    def loop(self):
        """Every stage's training loop: the reference's warm-up share, no clipping."""
        return TrainLoop(self.epochs, self.batch_size, self.seed,
                         warmup_proportion=WARMUP_PROPORTION)

    def save(self, model, stage, training=None, **state):
        """`stage`'s checkpoint: `training` says how it was made (epoch, dev, source), `state`
        is the stage's method state (retention configuration...)."""
        meta = checkpoints.checkpoint_meta("powerbert", self.task, self.max_length,
                                           lower_case=not self.cased,
                                           method_state={"stage": stage, **state},
                                           training=training)
        return checkpoints.save_checkpoint(model, os.path.join(self.output_dir, stage), meta,
                                           tokenizer=self.tokenizer)

    def monitored(self, history, stage_title):
        """Log the reference's per-epoch dev monitor (accuracy; Pearson for regression) and the
        task's own metric when it differs (MCC, F1, Spearman)."""
        monitor = "pearson" if self.task.is_regression else "acc"
        self.record(f"{stage_title} accuracies for all epochs on the Dev set:"
                    f"{[round(r[monitor], 4) for r in history]}", stage=stage_title,
                    epochs=history)
        if self.task.metric != monitor:
            self.record(f"{stage_title} {self.task.metric} for all epochs on the Dev set:"
                        f"{[round(r[self.task.metric], 4) for r in history]}")


def fine_tune_stage(run, source, train_arrays, dev_arrays, lr_bert):
    """Stage 1. Returns the checkpoint path of the best dev epoch."""
    set_seed(run.seed)
    model = build_plain(source.config, run.task.num_labels, run.max_length)
    if not checkpoints.load_backbone_weights(model, source):
        # The reference's fresh classifier: Keras Dense defaults.
        head = model.classifier
        head.kernel.assign(keras.initializers.GlorotUniform(run.seed)(head.kernel.shape))
        head.bias.assign(ops.zeros_like(head.bias))
    saved = {}

    def save_best(epoch, record):
        saved["path"] = run.save(model, FINETUNE, {"epoch": epoch, "dev": _dev_metrics(record)})

    history = _fine_tune(run, model, train_arrays, dev_arrays, lr_bert, save_best)
    run.monitored(history, "Fine-tuned model")
    return saved["path"]


def adopt_finetuned(run, model, dev_arrays, source_path,
                    title="Fine-tuned model (stage 1 skipped: the given checkpoint)"):
    """Use an already fine-tuned classifier as the stage-1 result (--SKIP_FINETUNE): evaluate
    it on dev and save it as the `finetune` checkpoint; `title` names it in the log."""
    record = evaluate_classifier(model, run.task, dev_arrays, run.batch_size, log=run.echo)
    run.monitored([record], title)
    return run.save(model, FINETUNE, {"epoch": 0, "dev": _dev_metrics(record),
                                      "source": source_path})


def configuration_search_stage(run, finetune_path, train_arrays, dev_arrays, *, lam, lr_bert,
                               lr_soft_extract):
    """Stage 2. Returns (checkpoint path, retention configuration, per-block masses)."""
    set_seed(run.seed)
    model = build_powerbert(run.config, run.task.num_labels, run.max_length,
                            search_length=run.max_length, lam=lam)
    load_stage(model, finetune_path)

    def evaluate(m):
        record = evaluate_classifier(m, run.task, dev_arrays, run.batch_size, log=run.echo)
        masses = m.retention_masses()
        record["retained"] = sum(derive_retention(masses))
        run.echo("  retention masses: " + ", ".join(f"{mass:.1f}" for mass in masses))
        return record

    history = train(model, train_arrays, run.loop(), search_groups(model, lr_bert,
                    lr_soft_extract), search_loss, evaluate=evaluate, log=run.echo)
    masses = model.retention_masses()
    retention = derive_retention(masses)
    path = run.save(model, SEARCH, {"epoch": run.epochs, "dev": _dev_metrics(history[-1])},
                    lam=lam, lr_soft_extract=lr_soft_extract, retention_masses=masses,
                    retention_config=retention)
    run.echo(f"Retention Configuration : {retention} {sum(retention)}")
    run.monitored(history, "Configuration-search model")
    run.record(f"Retention Configuration :{retention}")
    run.record(f"RETENTION_CONFIG={format_retention(retention)}")
    run.record("Retention masses :" + str([round(mass, 2) for mass in masses]))
    total, warmup = stage_steps(len(train_arrays["input_ids"]),
                                distribute.global_batch(run.batch_size), run.epochs)
    travel = KerasTwoWarmupDecay(lr_soft_extract, total, warmup).summed()
    warning = movement_warning(masses, run.max_length, travel, lr_soft_extract)
    if warning:
        run.record(warning)
    return path, retention, masses


def search_groups(model, lr_bert, lr_soft_extract):
    """Stage 2's two optimizer groups: the retention parameters at LR_SOFT_EXTRACT, everything
    else at LR_BERT, on one schedule shape and step count (the reference's
    `configuration_search_step`)."""
    retention = [layer.retention for layer in model.soft_extracts]
    others = [v for v in model.trainable_variables if all(v is not r for r in retention)]
    return [AdamGroup("bert", others, lr_bert),
            AdamGroup("soft_extract", retention, lr_soft_extract)]


def search_loss(model, features, labels, training):
    """Stage 2's objective: the task loss + sum_l LAMBDA * l * |r_l|_1 (the layers' L1
    regularisers, added once per batch as Keras does)."""
    logits = model(features, training=training)
    return (classification_loss(logits, labels, model.num_labels)
            + ops.sum(ops.stack(model.losses)))


def retrain_stage(run, search_path, retention, train_arrays, dev_arrays, lr_bert):
    """Stage 3. Returns (checkpoint path, dev metrics of the best epoch)."""
    set_seed(run.seed)
    model = build_powerbert(run.config, run.task.num_labels, run.max_length, retention=retention)
    load_stage(model, search_path)
    saved = {}

    def save_best(epoch, record):
        saved.update(record=record, path=run.save(model, RETRAINED,
                                                  {"epoch": epoch, "dev": _dev_metrics(record)},
                                                  retention_config=retention))

    history = _fine_tune(run, model, train_arrays, dev_arrays, lr_bert, save_best)
    run.monitored(history, "Re-trained model")
    run.record(speedup_line(run.config, run.max_length, retention, run.task.num_labels,
                            dev_arrays))
    return saved["path"], _dev_metrics(saved["record"])


def speedup_line(config, max_length, retention, num_labels, dev_arrays):
    """The FLOPs speed-up on the dev texts' real lengths (each keeps min(k_l, n)), and at the
    padded length N, the paper's count, beside it."""
    from common.data import real_lengths
    from powerbert.speed import flops_on_lengths

    lengths = real_lengths(dev_arrays)
    vanilla, method = flops_on_lengths(config, retention, lengths, num_labels)
    padded = flops.speedup(flops.vanilla_flops(config, max_length, num_labels),
                           powerbert_flops(config, max_length, retention, num_labels))
    return (f"FLOPs speed-up : {flops.speedup(vanilla, method):.2f}x on the dev texts' real "
            f"lengths (mean {lengths.mean():.1f} tokens; {vanilla / len(lengths) / 1e9:.4g} -> "
            f"{method / len(lengths) / 1e9:.4g} GFLOPs per example); {padded:.2f}x padded to "
            f"{max_length}, the paper's count")


def evaluate_stage(run, model, dev_arrays):
    """--EVAL_ONLY: dev metrics, logged as the reference does (`loss : ...`, `accuracy : ...` in
    percent), plus the task's metrics in percent; printed as fractions, like training's."""
    metrics = _dev_metrics(evaluate_classifier(model, run.task, dev_arrays, run.batch_size,
                                               log=run.echo))
    shown = {name: value for name, value in metrics.items()
             if name not in ("glue_score", "collapsed")}
    run.echo("dev: " + ", ".join(f"{'loss' if name == 'eval_loss' else name} {value:.4f}"
                                 for name, value in shown.items()))
    lines = [f"loss : {metrics['eval_loss']}"]
    lines += [f"{'accuracy' if name == 'acc' else name} : {value * 100.0}"
              for name, value in shown.items() if name != "eval_loss"]
    for line in lines:
        run.log.write("\n" + line)
    run.log.event("evaluation", split="dev", metrics=metrics)
    return metrics


def predict_stage(run, model, test_arrays, ids, glue=False):
    """--PREDICT_ONLY: `prediction.txt` (one output row per test example: class probabilities,
    or the score for regression) and, with `glue`, the GLUE server's file (e.g. `MRPC.tsv`).
    Both hold the latest prediction; each run's own copies stay in `results/<run id>/`."""
    outputs = predict(model, test_arrays, run.batch_size, progress="predicting")
    if not run.task.is_regression:
        outputs = np.asarray(ops.softmax(outputs, axis=-1))
    run_id = run.log.run_id if run.log is not None else runlog.new_run_id()
    path = write_result_text(os.path.join(run.output_dir, PREDICTION_FILE),
                             "".join(f"{row}\n" for row in outputs), run_id)
    written = [PREDICTION_FILE]
    if glue:
        labels = outputs[:, 0] if run.task.is_regression else outputs.argmax(-1)
        rows = [f"{i}\t{run.task.format_prediction(p)}\n" for i, p in zip(ids, labels)]
        write_result_text(os.path.join(run.output_dir, run.task.submission_file),
                          "index\tprediction\n" + "".join(rows), run_id)
        written.append(run.task.submission_file)
    run.echo(f"wrote {', '.join(written)} to {run.output_dir} (this run's copies: "
             f"{os.path.dirname(result_copy(path, run_id))})")
    return outputs


def _fine_tune(run, model, train_arrays, dev_arrays, lr_bert, save_best):
    return fine_tune(model, run.task, train_arrays, dev_arrays, run.loop(),
                     learning_rate=lr_bert, save_best=save_best, weight_decay=0.0,
                     log=run.echo, param_group=AdamGroup)


def _dev_metrics(record):
    return {k: v for k, v in record.items() if k not in ("epoch", "train_loss", "seconds")}


# ---------------------------------------------------------------- the run

def run(settings, echo=print):
    """Check every input the flags name (files, checkpoint, task), then train, evaluate or
    predict. Returns a summary dict."""
    training = settings.training
    task = get_task(settings.task)
    max_length, num_classes = _task_settings(settings, task)
    if num_classes != task.num_labels:
        raise UserError(f"{settings.task_config_path} gives {task.glue_name} {num_classes} classes but "
                        f"the task has {task.num_labels}; fix num_classes there")
    # Training starts OUTPUT_DIR afresh; evaluation and prediction append to its log.
    check_output_dir(settings.output_dir, overwrite=settings.overwrite_output_dir or not training,
                     flag="--OVERWRITE_OUTPUT_DIR", what="--OUTPUT_DIR")
    source = resolve_source(settings.checkpoint_path, settings.bert_config_path)
    check_checkpoint_task(source.sidecar, task, settings.checkpoint_path, settings.allow_other_task,
                          flag="--ALLOW_OTHER_TASK")
    check_cls_pooling(source.sidecar, settings.checkpoint_path, "PoWER-BERT")
    check_max_length(source.config, max_length,
                     fix=f"set a smaller seq_len for {settings.task.lower()} in the "
                         "--TASK_CONFIG_PATH file")
    check_model_files(settings.checkpoint_path, settings.bert_config_path)
    if training and settings.skip_finetune:  # refused before anything is written (warned later)
        check_not_collapsed(source.sidecar, settings.checkpoint_path, settings.allow_collapsed,
                            flag="--ALLOW_COLLAPSED", warn=lambda line: None)
    retention = None if training else _inference_retention(settings, source, task, max_length)
    tokenizer = _tokenizer(settings, source)
    splits = ("train", "dev") if training else ("dev",) if settings.eval_only else ("test",)
    data = {split: load_split(task, settings.data_dir, split, tokenizer, max_length, log=echo)
            for split in splits}
    model = None
    if not training:
        model = build_powerbert(source.config, task.num_labels, max_length, retention=retention,
                                length_scaled=settings.length_scaled_retention)
    elif settings.skip_finetune:
        model = build_plain(source.config, task.num_labels, max_length)
    if model is not None and not load_backbone_weights(model, source):
        raise UserError(f"{settings.checkpoint_path} has no {task.glue_name} classification head, so "
                        "it is not fine-tuned on the task; pass a fine-tuned checkpoint"
                        + (" or drop --SKIP_FINETUNE" if training else ""))
    _prepare_output_dir(settings.output_dir)
    run_ = Run(task=task, max_length=max_length, config=source.config,
                        tokenizer=tokenizer, output_dir=settings.output_dir,
                        batch_size=settings.batch_size, epochs=settings.epochs, seed=settings.seed,
                        cased=settings.cased, echo=echo,
                        log=RunLog(settings.output_dir, settings.command_line,
                                            append=not training))
    if training:
        return _train(settings, run_, source, data, finetuned_model=model)
    echo(f"retention configuration: {format_retention(retention)}")
    if settings.eval_only:
        return {"retention": retention, **evaluate_stage(run_, model, data["dev"][0])}
    outputs = predict_stage(run_, model, *data["test"], glue=settings.pred_glue)
    return {"retention": retention, "outputs": outputs}


def _train(settings, run_, source, data, finetuned_model=None):
    (train, _), (dev, _) = data["train"], data["dev"]
    run_.echo(f"PoWER-BERT on {run_.task.glue_name}: {len(train['input_ids'])} train / "
              f"{len(dev['input_ids'])} dev rows, sequence length {run_.max_length}")
    if finetuned_model is not None:
        finetuned = adopt_finetuned(run_, finetuned_model, dev, source.path)
    else:
        run_.echo("stage 1/3: fine-tuning")
        finetuned = fine_tune_stage(run_, source, train, dev, settings.lr_bert)
    # A stage-1 model that predicts one class for all of dev gives the search nothing to keep.
    check_not_collapsed(read_sidecar(finetuned), os.path.dirname(finetuned),
                        settings.allow_collapsed, flag="--ALLOW_COLLAPSED", warn=run_.echo)
    run_.echo("stage 2/3: configuration search (Soft-Extract)")
    searched, retention, _ = configuration_search_stage(
        run_, finetuned, train, dev, lam=settings.lam, lr_bert=settings.lr_bert,
        lr_soft_extract=settings.lr_soft_extract)
    run_.echo("stage 3/3: re-training with Extract")
    retrained, metrics = retrain_stage(run_, searched, retention, train, dev,
                                                settings.lr_bert)
    return {"finetune": finetuned, "configuration_search_model": searched,
            "retrained": retrained, "retention": retention, "dev": metrics}


def _task_settings(settings, task):
    """(sequence length N, number of classes) from --TASK_CONFIG_PATH, or the built-in values
    when the default ./task_config.json does not exist."""
    path = settings.task_config_path
    if not os.path.isfile(path):
        if path != DEFAULT_TASK_CONFIG:
            raise UserError(f"task config not found: {path}; pass an existing JSON file or drop "
                            "--TASK_CONFIG_PATH to use the built-in values")
        return task.max_length, task.num_labels
    try:
        with open(path, encoding="utf-8") as handle:
            table = json.load(handle)
    except (OSError, json.JSONDecodeError) as err:
        raise UserError(f"cannot read task config {path}: {err}") from None
    entry = table.get(settings.task.lower()) if isinstance(table, dict) else None
    if not isinstance(entry, dict) or not {"seq_len", "num_classes"} <= entry.keys():
        raise UserError(f"{path} has no '{settings.task.lower()}' entry with seq_len and num_classes; "
                        f"add one, e.g. {{\"{settings.task.lower()}\": {{\"seq_len\": "
                        f"{task.max_length}, \"num_classes\": {task.num_labels}}}}}")
    if not isinstance(entry["seq_len"], int) or entry["seq_len"] < 3:
        raise UserError(f"{path}: seq_len of {settings.task} must be an integer >= 3")
    return entry["seq_len"], entry["num_classes"]


def _inference_retention(settings, source, task, max_length):
    """Check the checkpoint fits the run and pick the retention configuration to evaluate with."""
    kind = "HDF5" if source.kind == "own" else "CKPT"
    if settings.model_format and settings.model_format.upper() != kind:
        what = ("a *.weights.h5 checkpoint of this toolkit" if kind == "HDF5"
                else "a Google TF checkpoint or HF model folder")
        raise UserError(f"--MODEL_FORMAT {settings.model_format.upper()} but {settings.checkpoint_path} "
                        f"is {what}; pass --MODEL_FORMAT {kind}")
    sidecar = source.sidecar or {}
    trained_length = sidecar.get("max_length")
    if trained_length is not None and trained_length != max_length:
        raise UserError(f"{settings.checkpoint_path} was trained with sequence length "
                        f"{trained_length} but {task.glue_name} runs at {max_length} here; use "
                        f"seq_len {trained_length} in --TASK_CONFIG_PATH or a matching checkpoint")
    if sidecar.get("num_labels", task.num_labels) != task.num_labels:
        raise UserError(f"{settings.checkpoint_path} has {sidecar['num_labels']} outputs but "
                        f"{task.glue_name} needs {task.num_labels}; pass a checkpoint of this task")
    layers = source.config.num_hidden_layers
    if settings.retention_config is not None:
        return parse_retention(settings.retention_config, layers, max_length)
    return sidecar.get("method_state", {}).get("retention_config") or [max_length] * layers


def _tokenizer(settings, source):
    if settings.vocab_path:
        return load_tokenizer(settings.vocab_path, cased=settings.cased)
    if not any(os.path.isfile(os.path.join(source.folder, name)) for name in TOKENIZER_FILES):
        raise UserError(f"no vocab.txt beside {settings.checkpoint_path}; pass --VOCAB_PATH")
    return load_tokenizer(source.folder, cased=settings.cased)


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
