"""The three PoWER-BERT stages (the reference's training.py), evaluation and prediction, and the
run's log file.

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
import os

import keras
import numpy as np
from keras import ops

from common import checkpoints, distribute, flops, runlog
from common.files import result_copy, write_result_text
from common.modeling import SequenceClassifier, dummy_inputs
from common.seeding import set_seed
from common.training import classification_loss, evaluate_classifier, fine_tune, predict, train
from powerbert.model import PowerBertClassifier, reference_config
from powerbert.optimizer import WARMUP_PROPORTION, AdamGroup, KerasTwoWarmupDecay, stage_steps
from powerbert.retention import derive_retention, format_retention, movement_warning

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

    def meta(self, stage, **extra):
        return {"task": self.task.name, "num_labels": self.task.num_labels,
                "max_length": self.max_length, "lower_case": not self.cased, "method": "powerbert",
                "stage": stage, **extra}

    def save(self, model, stage, **extra):
        folder = os.path.join(self.output_dir, stage)
        return checkpoints.save_checkpoint(model, folder, self.meta(stage, **extra),
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


def build_plain(config, num_labels, max_length):
    """The stage-1 classifier: the shared SequenceClassifier, no dropout before the classifier
    and none on the attention probabilities (keras-bert has neither)."""
    model = SequenceClassifier(reference_config(config), num_labels, classifier_dropout=0.0)
    model(dummy_inputs(max_length))
    return model


def build_powerbert(config, num_labels, max_length, **kwargs):
    """A PowerBertClassifier with its weights built for inputs of `max_length` tokens (the N of
    a length-scaled retention)."""
    model = PowerBertClassifier(reference_config(config), num_labels, max_length=max_length,
                                **kwargs)
    model(dummy_inputs(max_length))
    return model


def load_stage(model, path):
    """Load one of our checkpoints (any stage) into `model` by variable key."""
    checkpoints.load_backbone_weights(model, checkpoints.resolve_source(path))
    return model


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
        saved["path"] = run.save(model, FINETUNE, epoch=epoch, dev=_dev_metrics(record))

    history = _fine_tune(run, model, train_arrays, dev_arrays, lr_bert, save_best)
    run.monitored(history, "Fine-tuned model")
    return saved["path"]


def adopt_finetuned(run, model, dev_arrays, source_path,
                    title="Fine-tuned model (stage 1 skipped: the given checkpoint)"):
    """Use an already fine-tuned classifier as the stage-1 result (--SKIP_FINETUNE): evaluate
    it on dev and save it as the `finetune` checkpoint; `title` names it in the log."""
    record = evaluate_classifier(model, run.task, dev_arrays, run.batch_size, log=run.echo)
    run.monitored([record], title)
    return run.save(model, FINETUNE, epoch=0, dev=_dev_metrics(record), source=source_path)


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

    history = train(model, train_arrays, epochs=run.epochs, batch_size=run.batch_size,
                    groups=search_groups(model, lr_bert, lr_soft_extract), loss_fn=search_loss,
                    evaluate=evaluate, seed=run.seed,
                    warmup_proportion=WARMUP_PROPORTION, max_grad_norm=None, log=run.echo)
    masses = model.retention_masses()
    retention = derive_retention(masses)
    path = run.save(model, SEARCH, epoch=run.epochs, dev=_dev_metrics(history[-1]), lam=lam,
                    lr_soft_extract=lr_soft_extract, retention_masses=masses,
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
        saved.update(record=record, path=run.save(model, RETRAINED, epoch=epoch,
                                                  dev=_dev_metrics(record),
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
                           flops.powerbert_flops(config, max_length, retention, num_labels))
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
    return fine_tune(model, run.task, train_arrays, dev_arrays, epochs=run.epochs,
                     batch_size=run.batch_size, learning_rate=lr_bert, save_best=save_best,
                     weight_decay=0.0, warmup_proportion=WARMUP_PROPORTION, seed=run.seed,
                     max_grad_norm=None, log=run.echo, param_group=AdamGroup)


def _dev_metrics(record):
    return {k: v for k, v in record.items() if k not in ("epoch", "train_loss", "seconds")}

