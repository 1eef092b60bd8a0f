"""The AdapLeR pipeline stages behind the run_files/ and tools/ scripts.

    A  finetune      fine-tune BERT, save every epoch, write logs/ft_logs.json
    B  saliencies    gradient x input of the 3 best fine-tuned epochs, one file per epoch
    C  train         train AdapLeR from the saliencies; keep the best speed-up within one point
    D  evaluate      metrics, COUNT and SPEEDUP on a labelled split; per-example FLOPs pickle
       predict_glue  GLUE test TSVs, COUNT and SPEEDUP

Each stage reads its settings object (`adapler.settings`, filled by `adapler.cli`) and the
folder tree of `adapler.paths` (relative to the working directory). Errors a user can cause raise
UserError naming the command to run first.
"""
import json
import os

import numpy as np

from adapler import paths
from adapler.data import load_split, trim
from adapler.evaluation import evaluate, flops_record, summary, write_glue_tsv
from adapler.flops import check_counting
from adapler.model import build_model, load_checkpoint_into
from adapler.saliency import (check_saliency_sources, compute_saliencies, read_saliencies,
                              write_saliencies)
from adapler.soft_removal import NO_REMOVAL_ETA
from adapler.training import AdapLeRTrainer, CheckpointRule
from common import distribute
from common.checkpoints import (check_max_length, checkpoint_meta, fingerprint,
                                load_backbone_weights, load_weights, resolve_source,
                                save_checkpoint)
from common.errors import UserError
from common.files import result_copy, write_json, write_pickle, write_result_pickle
from common.runlog import RunLog, new_run_id
from common.modeling import SequenceClassifier, dummy_inputs
from common.seeding import set_seed
from common.tasks import get_task
from common.tokenization import TOKENIZER_FILES, load_tokenizer
from common.validation import check_checkpoint_task, check_cls_pooling, check_not_collapsed
from common.training import TrainLoop, fine_tune

BEST_EPOCHS = 3
RECORD_KEYS = ("epoch", "train_loss", "seconds", "eval_loss")  # fine_tune's non-metric keys


def selection_metric(task):
    """The original's selection metric: the first metric it lists (accuracy for MRPC and QQP,
    which list accuracy before F1; the task's main metric otherwise)."""
    return "acc" if task.metric == "f1" else task.metric


def ordered_metrics(task, metrics):
    """Metrics dict with the selection metric first (ft_logs.json reads 'first metric')."""
    key = selection_metric(task)
    return {key: metrics[key], **{k: v for k, v in metrics.items() if k != key}}


def rounded(variable, digits=4):
    """A variable's values as a short list for logs."""
    return [round(float(v), digits) for v in variable.numpy()]


def finetune_command(task_name, seed, max_length):
    return (f"python ./run_files/run_classification_bert.py --TASK {task_name} "
            f"--MAX_LENGTH {max_length} --DATA_SEED {seed}")


def tokenizer_for(model_name_or_path, checkpoint=None):
    """The tokenizer saved with `checkpoint`, else the one of the base model."""
    if checkpoint and any(os.path.isfile(os.path.join(checkpoint, f)) for f in TOKENIZER_FILES):
        return load_tokenizer(checkpoint)
    return load_tokenizer(resolve_source(model_name_or_path).folder)


# ---------------------------------------------------------------- stage A

def run_finetune(settings, dirs, log=print):
    """Stage A (FinetuneSettings): the stock classifier (attention dropout on), every epoch
    saved, ft_logs.json."""
    seed, max_length, limit = settings.data_seed, settings.max_length, settings.max_train_examples
    set_seed(seed)
    task_def = get_task(settings.task)
    source = resolve_source(settings.model_name_or_path)
    check_max_length(source.config, max_length, fix="pass a smaller --MAX_LENGTH")
    check_cls_pooling(source.sidecar, settings.model_name_or_path, "AdapLeR")
    tokenizer = load_tokenizer(source.folder)
    train, _ = load_split(task_def, settings.data_dir, "train", tokenizer, max_length,
                          limit=limit, seed=seed if limit else None, log=log)
    dev, _ = load_split(task_def, settings.data_dir, "dev", tokenizer, max_length, log=log)
    model = SequenceClassifier(source.config, task_def.num_labels)
    model(dummy_inputs())
    load_backbone_weights(model, source)
    logs = []

    def save_epoch(epoch, record):
        metrics = {k: v for k, v in record.items() if k not in RECORD_KEYS}
        logs.append({"validation": ordered_metrics(task_def, metrics)})
        save_checkpoint(model, dirs.finetuned(epoch), checkpoint_meta(
            "vanilla", task_def, max_length,
            training={"epoch": epoch, "dev": metrics, "data_seed": seed}), tokenizer=tokenizer)
        write_json(dirs.ft_logs, logs)
        log(f"saved {dirs.finetuned(epoch)}; dev {logs[-1]['validation']}")

    fine_tune(model, task_def, trim(train), trim(dev),
              TrainLoop(settings.epochs, settings.batch_size, seed,
                        warmup_proportion=settings.warmup_ratio),
              learning_rate=settings.learning_rate, save_best=lambda epoch, record: None,
              on_epoch_end=save_epoch, log=log)
    return logs


def read_ft_logs(dirs, task_name, seed, max_length):
    """[(epoch, score)] from ft_logs.json (first dev split, first metric), best first."""
    if not os.path.isfile(dirs.ft_logs):
        raise UserError(f"{dirs.ft_logs} not found; fine-tune first: "
                        f"{finetune_command(task_name, seed, max_length)}")
    try:
        with open(dirs.ft_logs, encoding="utf-8") as handle:
            logs = json.load(handle)
        scores = [float(next(iter(next(iter(entry.values())).values()))) for entry in logs]
    except (OSError, ValueError, StopIteration, AttributeError, TypeError) as err:
        raise UserError(f"{dirs.ft_logs} is not a fine-tuning log ({err}); rerun "
                        f"{finetune_command(task_name, seed, max_length)}") from None
    if not scores:
        raise UserError(f"{dirs.ft_logs} lists no epoch; rerun "
                        f"{finetune_command(task_name, seed, max_length)}")
    return sorted(enumerate(scores, 1), key=lambda item: (-item[1], item[0]))


def finetuned_checkpoint(dirs, epoch, task_name, seed, max_length):
    folder = dirs.finetuned(epoch)
    if not os.path.isfile(os.path.join(folder, "model.weights.h5")):
        raise UserError(f"fine-tuned checkpoint {folder} not found; fine-tune first: "
                        f"{finetune_command(task_name, seed, max_length)}")
    return folder


# ---------------------------------------------------------------- stage B

def run_saliencies(settings, dirs, checkpoints=None, log=print):
    """Stage B (SaliencySettings): one saliency file per checkpoint ({epoch: folder}, default:
    the 3 best epochs of ft_logs.json). Returns the written paths. A checkpoint whose dev
    predictions were all one class is refused unless `settings.allow_collapsed`."""
    split, seed, max_length = settings.split, settings.data_seed, settings.max_length
    task_def = get_task(settings.task)
    if checkpoints is None:
        best = read_ft_logs(dirs, dirs.task, seed, max_length)[:BEST_EPOCHS]
        checkpoints = {epoch: finetuned_checkpoint(dirs, epoch, dirs.task, seed, max_length)
                       for epoch, _ in best}
        log(f"best fine-tuned epochs: {', '.join(f'{e} ({s:.4f})' for e, s in best)}")
    for folder in checkpoints.values():
        check_not_collapsed(resolve_source(folder).sidecar, folder, settings.allow_collapsed,
                            flag="--ALLOW_COLLAPSED", warn=log)
    first = next(iter(checkpoints.values()))
    tokenizer = tokenizer_for(settings.model_name_or_path, first)
    training = split == "train"
    arrays, ids = load_split(task_def, settings.data_dir, split, tokenizer, max_length,
                             seed=seed if training else None,
                             limit=settings.max_train_examples if training else None, log=log)
    written = []
    for epoch, folder in checkpoints.items():
        model = build_model(resolve_source(folder).config, task_def.num_labels, max_length)
        load_checkpoint_into(model, folder)
        log(f"saliencies of {split} ({len(ids)} examples) with {folder}")
        matrix = compute_saliencies(model, arrays, settings.batch_size)
        path = dirs.saliency_file(split, epoch)
        write_saliencies(path, matrix, ids, {"task": task_def.name, "split": split,
                                             "max_length": max_length, "data_seed": seed,
                                             "checkpoint": os.path.abspath(folder),
                                             "checkpoint_fingerprint": fingerprint(folder)})
        written.append(path)
        log(f"wrote {path}")
    return written


def saliency_files_for(dirs, seed, max_length):
    """The saliency files of the best fine-tuned epochs, as stage B wrote them."""
    best = read_ft_logs(dirs, dirs.task, seed, max_length)[:BEST_EPOCHS]
    files = [dirs.saliency_file("train", epoch) for epoch, _ in best]
    missing = [f for f in files if not os.path.isfile(f)]
    if missing:
        raise UserError(f"saliency file {missing[0]} not found; run first: python "
                        f"./tools/store_saliencies.py --TASK {dirs.task} --DATA_SEED {seed} "
                        f"--MAX_LENGTH {max_length}")
    return files, best[0][1]


# ---------------------------------------------------------------- stage C

def run_adapler(settings, dirs, *, saliency_files=None, best_finetuned_score=None, echo=print):
    """Stage C (TrainSettings). Saliency files and the best fine-tuned dev score default to
    those of stages A-B in `dirs`. Returns {"model_path", "saved_by_rule", "epochs": [per-epoch
    dev results]}. A fine-tuned starting checkpoint whose dev predictions were all one class is
    refused unless `settings.allow_collapsed`."""
    seed, max_length, counting = settings.data_seed, settings.max_length, settings.counting
    task_def = get_task(settings.task)
    set_seed(seed)
    if saliency_files is None:
        saliency_files, best_finetuned_score = saliency_files_for(dirs, seed, max_length)
    check_saliency_sources(saliency_files, warn=echo)  # not from an earlier stage-A run
    # --INITIAL_MODEL_PATH: "pretrain" = the base model with a fresh head (the original's
    # default), "" = the best fine-tuned epoch, anything else = that checkpoint.
    folder = None if settings.initial_model_path == "pretrain" else _initial_folder(
        settings.initial_model_path, dirs, seed, max_length)
    source = resolve_source(folder or settings.model_name_or_path)
    check_cls_pooling(source.sidecar, folder or settings.model_name_or_path, "AdapLeR")
    if folder:
        check_not_collapsed(source.sidecar, folder, settings.allow_collapsed,
                            flag="--ALLOW_COLLAPSED", warn=echo)
    check_counting(source.config, counting)
    model = build_model(source.config, task_def.num_labels, max_length)
    if source.kind == "own":
        load_checkpoint_into(model, folder)
    else:
        load_backbone_weights(model, source)
    tokenizer = tokenizer_for(settings.model_name_or_path, folder)
    train, ids = load_split(task_def, settings.data_dir, "train", tokenizer, max_length,
                            seed=seed, limit=settings.max_train_examples, log=echo)
    dev, _ = load_split(task_def, settings.data_dir, "dev", tokenizer, max_length, log=echo)
    saliency = read_saliencies(saliency_files, ids, max_length)
    run_stem = paths.stem(settings.save_name, settings.gamma, settings.phi)
    # Inputs are checked: start the run's log (the original's `.log`, afresh) and its JSON lines.
    log = RunLog(dirs.log_file(run_stem), dirs.log_file(run_stem, ".jsonl"), fresh=True,
                 echo=echo)
    log(f"arguments: {settings.flags()}")
    rule = CheckpointRule(best_finetuned_score)
    log(f"initial weights: {folder or settings.model_name_or_path}; {len(ids)} training "
        f"examples; score threshold {rule.threshold:.4f}")
    model_path = dirs.adapler_model(run_stem)
    metric_key = selection_metric(task_def)
    records = []

    def meta(epoch, result, met):
        return checkpoint_meta("adapler", task_def, max_length, method_state={
            "gamma": settings.gamma, "phi": settings.phi, "eta_learning_rate": settings.eta_rate,
            "cp_hidden": model.cp_hidden, "eta": model.eta.numpy().tolist(),
            "theta": model.theta.numpy().tolist(), "counting": counting}, training={
            "epoch": epoch, "dev": result["metrics"], "dev_speedup": result["speedup"],
            "data_seed": seed, "checkpoint_rule_met": met})

    def end_of_epoch(epoch):
        log(f"---------- epoch {epoch} ----------")
        result = evaluate(model, task_def, dev, settings.eval_batch_size, counting)
        log(f"validation: {summary(result)}")
        log.event("validation", epoch=epoch, metrics=result["metrics"],
                  speedup=result["speedup"], eta=rounded(model.eta))
        if settings.eval_current_lambda:
            current = evaluate(model, task_def, dev, settings.eval_batch_size, counting,
                               sharpness=float(model.sharpness.numpy()))
            log(f"validation (lambda {float(model.sharpness.numpy()):g}): {summary(current)}")
        log(f"Confidence Ratios: {rounded(model.eta)}")
        old = rule.best_speedup
        if rule(result["metrics"][metric_key], result["speedup"]):
            save_checkpoint(model, model_path, meta(epoch, result, True), tokenizer=tokenizer)
            log(f"Speedup improved from: {old:.4f}, {result['speedup']:.4f}; saved {model_path}")
        records.append(result)

    batch_size = distribute.global_batch(settings.batch_size)  # --BATCH_SIZE is per device
    trainer = AdapLeRTrainer(model, settings, batch_size=batch_size,
                             steps_per_epoch=-(-len(ids) // batch_size))
    history = trainer.fit(train, saliency, on_epoch_end=end_of_epoch, log=log)
    write_pickle(dirs.log_file(run_stem, ".pkl"), history)
    saved_by_rule = rule.best_speedup > 0
    if not saved_by_rule:
        save_checkpoint(model, model_path, meta(settings.epochs, records[-1], False),
                        tokenizer=tokenizer)
        log(f"WARNING: no epoch reached a dev {metric_key} above {rule.threshold:.4f} with a "
            f"better speed-up; saved the final epoch's model to {model_path} instead (its "
            "config.json says checkpoint_rule_met: false)")
    log("completed!")
    return {"model_path": model_path, "saved_by_rule": saved_by_rule, "epochs": records}


def _initial_folder(initial_model_path, dirs, seed, max_length):
    if initial_model_path == "":
        epoch = read_ft_logs(dirs, dirs.task, seed, max_length)[0][0]
        return finetuned_checkpoint(dirs, epoch, dirs.task, seed, max_length)
    return paths.checkpoint_folder(initial_model_path)


# ---------------------------------------------------------------- stage D

def load_for_evaluation(model_path, task_def, max_length, lr_model, log=print,
                        allow_other_task=False):
    """An AdapLeR model from an AdapLeR checkpoint (--LR_MODEL), or a fine-tuned BERT run through
    the same path with eta = 1e-10 (nothing removed; fresh CPs only add their FLOPs)."""
    folder = paths.checkpoint_folder(model_path)
    if not os.path.exists(folder):
        raise UserError(f"checkpoint {model_path} not found; pass --MODEL_PATH of a model "
                        "written by run_classification_w_lr.py or run_classification_bert.py")
    source = resolve_source(folder)
    if source.kind != "own":
        raise UserError(f"{model_path} is not a bert-speedup checkpoint; pass a folder written "
                        "by run_classification_w_lr.py or run_classification_bert.py")
    check_checkpoint_task(source.sidecar, task_def, model_path, allow_other_task,
                          flag="--ALLOW_OTHER_TASK")
    model = build_model(source.config, task_def.num_labels, max_length)
    sidecar = load_checkpoint_into(model, source.folder, require_adapler=lr_model)
    if sidecar.get("max_length") not in (None, max_length):
        log(f"note: {folder} was trained with MAX_LENGTH {sidecar['max_length']}, evaluating "
            f"with {max_length}")
    if sidecar["training"].get("checkpoint_rule_met") is False:
        log(f"note: {folder} did not meet the checkpoint rule (final epoch's model)")
    if not lr_model:
        model.eta.assign(np.full(model.eta.shape, NO_REMOVAL_ETA, np.float32))
    return model, source.folder


def run_evaluation(settings, log=print):
    """Stage D1 (EvaluationSettings): metrics + COUNT + SPEEDUP on a labelled split; writes
    flops_per_example.pickle."""
    task_def, split = get_task(settings.task), settings.split
    model, folder, tokenizer = _evaluation_model(settings, task_def, log)
    arrays, _ = load_split(task_def, settings.data_dir, split, tokenizer, settings.max_length,
                           log=log)
    if "labels" not in arrays:
        raise UserError(f"the {task_def.glue_name} {split} split has no labels; use "
                        "run_glue_prediction.py for GLUE test sets, or --SPLIT dev")
    result = evaluate(model, task_def, arrays, settings.batch_size, settings.counting)
    log(f"{split}: {summary(result)}")
    log(f"eta: {rounded(model.eta)}")
    pickle_path = os.path.join(paths.logs_dir_for(folder), "flops_per_example.pickle")
    run_id = new_run_id()
    write_result_pickle(pickle_path, flops_record(result), run_id)
    log(f"wrote {pickle_path} (this run's copy: {result_copy(pickle_path, run_id)})")
    return result


def run_glue_prediction(settings, log=print):
    """Stage D2 (EvaluationSettings): GLUE test predictions as
    `glue_prediction_<model>_<split>.tsv`."""
    task_def = get_task(settings.task)
    model, folder, tokenizer = _evaluation_model(settings, task_def, log)
    arrays, ids = load_split(task_def, settings.data_dir, "test", tokenizer, settings.max_length,
                             log=log)
    arrays.pop("labels", None)
    result = evaluate(model, task_def, arrays, settings.batch_size, settings.counting)
    logs = paths.logs_dir_for(folder)
    tsv = os.path.join(logs, f"glue_prediction_{os.path.basename(os.path.normpath(folder))}"
                             f"_test.tsv")
    run_id = new_run_id()
    write_glue_tsv(tsv, task_def, ids, result["predictions"], run_id)
    write_result_pickle(os.path.join(logs, "flops_per_example.pickle"), flops_record(result),
                        run_id)
    log(f"test: {summary(result)}")
    log(f"wrote {tsv} (this run's copy: {result_copy(tsv, run_id)})")
    return tsv


def _evaluation_model(settings, task_def, log):
    """(model, checkpoint folder, tokenizer) of stage D."""
    model, folder = load_for_evaluation(settings.model_path, task_def, settings.max_length,
                                        settings.lr_model, log, settings.allow_other_task)
    check_counting(model.config, settings.counting)
    return model, folder, tokenizer_for(settings.model_name_or_path, folder)
