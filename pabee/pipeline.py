"""The run_glue_with_pabee flow: train, save checkpoints, evaluate every checkpoint x patience.

Files (mirroring the original's layout, in this toolkit's formats):

    output_dir/model.weights.h5, config.json   final model (after --do_train) + sidecar,
    output_dir/tokenizer files, training_args.json     committed as one set (common.checkpoints)
    output_dir/checkpoint-<step>/              every --save_steps updates: the same, plus
                                               optimizer.weights.h5 (resumable)
    <eval dir>/<prefix>/eval_results.txt       metrics of the LAST patience evaluated (original)
    <eval dir>/<prefix>/eval_results_patience<t>.txt   one per patience: metrics + exit stats
    <eval dir>/<prefix>/eval_results_layers.tsv        --eval_each_layer: every classifier alone
    output_dir/eval_results_patience.tsv       all checkpoints x tasks x patience of the
                                               evaluation in one table
    <folder>/results/<run id>/<file>           each evaluation's own copy of each of these
                                               result files (common.files.write_result): the
                                               names above hold the latest evaluation's
    output_dir/log_history.jsonl               the run log's JSON lines (common.runlog): every
                                               logging step (the original also sent them to
                                               TensorBoard) and every evaluation row, each with
                                               its run id: no evaluation replaces another

<eval dir> is output_dir, and output_dir-MM for MNLI mismatched; <prefix> is the checkpoint
folder name for checkpoint folders, empty for output_dir itself.
"""
import json
import os
import re

import numpy as np
import pandas as pd
import tensorflow as tf

from common import checkpoints
from common.benchmark import Stopwatch
from common.data import load_split, map_length_sorted, real_lengths, split_path
from common.errors import UserError
from common.files import result_copy, write_result_text
from common.metrics import collapse, collapse_warning, compute_metrics
from common.runlog import RunLog
from common.tasks import get_task
from common.tokenization import TOKENIZER_FILES, load_tokenizer
from common.seeding import set_seed
from common.training import logits_to_predictions
from common.validation import check_checkpoint_task, check_model_files
from pabee.model import build_model, load_weights
from pabee.patience import (EarlyExitEngine, ExitRule, exit_statistics, map_batches, ratio_line,
                            simulate, stats_line)
from pabee.train import save_optimizer, train

TABLE = "eval_results_patience.tsv"
HISTORY = "log_history.jsonl"
FINAL = "final"  # the final model's name in TABLE (its checkpoints are named by folder)


def run(settings, log=print):
    """Do what `settings` (a checked PabeeSettings, see `pabee.cli.settings`) asks; returns the
    results dict (`<metric>_<step>` keys, as the original)."""
    task = get_task(settings.task_name)
    if settings.no_cuda:
        tf.config.set_visible_devices([], "GPU")
    log("Training/evaluation parameters " + json.dumps(settings.flags(), sort_keys=True))
    if settings.do_train:  # every file the run will read, before the first step
        for split_task, split in [(task, "train")] + [
                (t, "dev") for t, _ in eval_tasks(task, settings.output_dir)
                if settings.do_eval or settings.evaluate_during_training]:
            split_path(split_task, settings.data_dir, split)
    set_seed(settings.seed)
    if settings.do_train:
        train_and_save(settings, task, log)
    if not settings.do_eval:
        return {}
    return evaluate_checkpoints(settings, task, log)


# ---------------------------------------------------------------- training

def eval_tasks(task, output_dir):
    """(task, eval dir) pairs: MNLI is scored on matched and mismatched dev (output_dir-MM)."""
    pairs = [(task, output_dir)]
    if task.name == "mnli":
        pairs.append((get_task("mnli-mm"), output_dir.rstrip("/") + "-MM"))
    return pairs


def _check_model_type(settings, source):
    if source.config.model_type != settings.model_type:
        raise UserError(f"{source.path} is a {source.config.model_type.upper()} model but "
                        f"--model_type is {settings.model_type}; pass --model_type "
                        f"{source.config.model_type}")


def _resume_point(path, source):
    """(global step, optimizer file) when `path` is one of our checkpoint-<step> folders."""
    match = re.search(r"-(\d+)/?$", path)
    state = os.path.join(source.folder, checkpoints.OPTIMIZER_NAME)
    if match and source.kind == "own" and os.path.isfile(state):
        return int(match.group(1)), state
    return 0, None


def _encode_split(tokenizer, task, data_dir, split, max_length, log=None):
    return load_split(task, data_dir, split, tokenizer, max_length, log=log)[0]


def train_and_save(settings, task, log):
    source = checkpoints.resolve_source(settings.model_name_or_path, settings.config_name or None)
    _check_model_type(settings, source)
    checkpoints.check_max_length(source.config, settings.max_seq_length,
                                 fix="pass a smaller --max_seq_length")
    tokenizer = load_tokenizer(settings.tokenizer_name or source.folder, cased=not settings.do_lower_case)
    pooling = checkpoints.choose_pooling(source, settings.pooling, log)
    model = build_model(source, task.num_labels, pooling=pooling)
    loaded = load_weights(model, source)
    total = sum(int(np.prod(v.shape)) for v in model.weights)
    heads, added = model.head_parameters()
    log(f"Total Model Parameters: {total}")
    log(f"Output Layers Parameters: {heads}")
    log(f"Added Output Layers Parameters: {added}")
    log(f"internal classifiers loaded from the checkpoint: {loaded} of {model.num_layers} "
        "(the others start fresh)")
    train_arrays = _encode_split(tokenizer, task, settings.data_dir, "train", settings.max_seq_length,
                                 log)
    if task.is_regression and loaded == 0:
        mean = model.start_at_mean_score(train_arrays["labels"])
        log(f"regression: the internal classifiers start at the mean training score {mean:.3f}")
    start_step, optimizer_state = _resume_point(settings.model_name_or_path, source)
    if start_step:
        log(f"resuming from update {start_step} with the optimizer state of {optimizer_state}")
    os.makedirs(settings.output_dir, exist_ok=True)
    dev = [(t, _encode_split(tokenizer, t, settings.data_dir, "dev", settings.max_seq_length))
           for t, _ in eval_tasks(task, settings.output_dir)] if settings.evaluate_during_training else []
    history = RunLog(None, os.path.join(settings.output_dir, HISTORY), echo=None)
    engine = EarlyExitEngine(model) if dev else None

    def on_log(step, record):
        for eval_task, arrays in dev:
            logits = map_length_sorted(engine.full, arrays, settings.per_gpu_eval_batch_size)
            metrics = _score(eval_task, logits, arrays["labels"], model.num_labels)
            prefix = "eval_" if eval_task is task else f"eval_{eval_task.name}/"
            record.update({prefix + key: value for key, value in metrics.items()})
        record["step"] = step
        log(f"step {step}: " + ", ".join(
            f"{key} {value:.4g}" if isinstance(value, float) else f"{key} {value}"
            for key, value in sorted(record.items()) if key != "step"))
        history.event("log", **record)

    def on_save(step, optimizer):
        folder = os.path.join(settings.output_dir, f"checkpoint-{step}")
        _save_folder(model, folder, _meta(settings, task, model, step), tokenizer, settings,
                     optimizer)
        log(f"Saving model checkpoint to {folder}")

    step, _ = train(model, train_arrays, settings, start_step=start_step,
                    optimizer_state=optimizer_state, on_log=on_log, on_save=on_save, log=log)
    checkpoints.save_checkpoint(model, settings.output_dir, _meta(settings, task, model, step),
                                tokenizer=tokenizer, extra_files={
                                    "training_args.json": _training_args_writer(settings)})
    log(f"Saving model checkpoint to {settings.output_dir}")


def _meta(settings, task, model, step):
    return checkpoints.checkpoint_meta(
        "pabee", task, settings.max_seq_length, lower_case=bool(settings.do_lower_case),
        method_state={"model_type": settings.model_type, "num_layers": model.num_layers,
                      "head_dropout": model.head_dropout, "patience": settings.patience,
                      "regression_threshold": settings.regression_threshold,
                      **({"retention_config": model.retention} if model.retention else {})},
        training={"seed": settings.seed, "global_step": step})


def _training_args_writer(settings):
    text = json.dumps(settings.flags(), indent=2, sort_keys=True)

    def write(path):
        with open(path, "w", encoding="utf-8") as out:
            out.write(text)
    return write


def _save_folder(model, folder, meta, tokenizer, settings, optimizer):
    """A complete checkpoint-<step> folder with the optimizer state, committed as one set."""
    checkpoints.save_checkpoint(model, folder, meta, tokenizer=tokenizer, extra_files={
        checkpoints.OPTIMIZER_NAME: lambda path: save_optimizer(optimizer, path),
        "training_args.json": _training_args_writer(settings)})


# ---------------------------------------------------------------- evaluation

def _holds_model(folder):
    names = os.listdir(folder)
    return (any(n.endswith(".weights.h5") and n != checkpoints.OPTIMIZER_NAME for n in names)
            and "config.json" in names) or "model.safetensors" in names or (
        "pytorch_model.bin" in names)


def _natural_key(path):
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path)]


def find_checkpoints(output_dir, eval_all):
    """output_dir, plus (eval_all) every folder under it holding a model, in natural order."""
    if not os.path.isdir(output_dir):
        raise UserError(f"output directory {output_dir} not found; evaluation loads the model "
                        "from --output_dir: train with --do_train or point it at a trained model")
    found = [output_dir] if _holds_model(output_dir) else []
    if eval_all:
        for root, dirs, _ in os.walk(output_dir):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            if root != output_dir and _holds_model(root):
                found.append(root)
    if not found:
        raise UserError(f"no model in {output_dir}; evaluation loads the model from "
                        "--output_dir: train with --do_train or point it at a trained PABEE model")
    return sorted(found, key=_natural_key)


def load_for_eval(path, task, model_type=None, previous=None, pooling=None, log=print,
                  allow_other_task=False):
    """A PABEE model with all its internal classifiers from `path` (else one UserError), with
    the pooling it was trained with (`pooling`, if given, must agree).

    `previous` (a model of the same shape, e.g. the last checkpoint's) is reloaded in place,
    so its compiled inference functions stay valid."""
    source = checkpoints.resolve_source(path)
    if source.kind == "own":
        trained = checkpoints.recorded_pooling(source) or "cls"  # older checkpoints: cls
        if pooling and pooling != trained:
            raise UserError(f"{path} was trained with --pooling {trained}, not {pooling}; "
                            f"drop --pooling or pass --pooling {trained}")
        pooling = trained
    else:
        pooling = checkpoints.choose_pooling(source, pooling, log)
    if model_type and source.config.model_type != model_type:
        raise UserError(f"{path} is a {source.config.model_type.upper()} model but "
                        f"--model_type is {model_type}")
    check_checkpoint_task(source.sidecar, task, path, allow_other_task)
    trained_for = (source.sidecar or {}).get("num_labels")
    if trained_for is not None and trained_for != task.num_labels:
        raise UserError(f"{path} was trained for {(source.sidecar or {}).get('task')} with "
                        f"{trained_for} labels, not {task.glue_name}; pass the matching "
                        "--task_name")
    reuse = (previous is not None and previous.config == source.config
             and previous.bert.pooling == pooling)
    model = previous if reuse else build_model(source, task.num_labels, pooling=pooling)
    load_weights(model, source, require_heads=True)
    return model


def _score(task, logits, labels, num_labels, log=None, what="the classifier"):
    """The task's metrics; `log` also gets a warning when `what` predicts one class for all."""
    predictions = logits_to_predictions(np.asarray(logits), num_labels)
    metrics = compute_metrics(task, predictions, labels)
    metrics.pop("glue_score")
    collapsed = collapse(task, predictions) if log else None
    if collapsed:
        log(collapse_warning(collapsed, what))
    return metrics


def run_patience(engine, task, arrays, patience, threshold, batch_size, log=None):
    """One evaluation on length-sorted, dynamically padded batches (at batch size 1: each text
    unpadded): (metrics, exit layers or None for patience 0, seconds)."""
    watch = Stopwatch()
    what = f"evaluating patience {patience}"
    if patience == 0:
        logits, exits = map_length_sorted(engine.full, arrays, batch_size, progress=what), None
    else:
        rule = ExitRule(patience, threshold, task.is_regression)

        def run(batch):
            result = engine.run(batch, rule)
            return result.logits, result.exit_layers

        logits, exits = map_length_sorted(run, arrays, batch_size, progress=what)
    seconds = watch.seconds
    return (_score(task, logits, arrays["labels"], engine.model.num_labels, log,
                   f"PABEE at patience {patience}"), exits, seconds)


def _result_lines(values):
    return "".join(f"{key} = {values[key]}\n" for key in sorted(values))


def evaluate_checkpoints(settings, task, log=print):
    patience_list = settings.patience_list
    paths = find_checkpoints(settings.output_dir, settings.eval_all_checkpoints)
    for path in paths:  # a damaged one is found before any result file is rewritten
        check_model_files(path)
    tokenizer = load_tokenizer(settings.output_dir if _has_vocab(settings.output_dir) else paths[0],
                               cased=not settings.do_lower_case)
    pairs = eval_tasks(task, settings.output_dir)
    data = {t.name: _encode_split(tokenizer, t, settings.data_dir, "dev", settings.max_seq_length,
                                  log)
            for t, _ in pairs}
    history = RunLog(None, os.path.join(settings.output_dir, HISTORY), echo=None)
    results, rows, model, engine = {}, [], None, None
    for path in paths:
        final = "checkpoint" not in path
        name = FINAL if final else os.path.basename(os.path.normpath(path))
        prefix = "" if final else name
        step = path.split("-")[-1] if len(paths) > 1 else ""
        log(f"Evaluation of the final model in {path}" if final
            else f"Evaluation for checkpoint {prefix}")
        loaded = load_for_eval(path, task, settings.model_type, previous=model,
                               pooling=settings.pooling, log=log,
                               allow_other_task=settings.allow_other_task)
        checkpoints.check_max_length(loaded.config, settings.max_seq_length,
                                     fix="pass a smaller --max_seq_length")
        if loaded is not model:
            model, engine = loaded, EarlyExitEngine(loaded, jit_compile=settings.jit_compile)
        for patience in patience_list:
            exits = []
            for eval_task, eval_dir in pairs:
                arrays = data[eval_task.name]
                metrics, task_exits, seconds = run_patience(
                    engine, eval_task, arrays, patience, settings.regression_threshold or 0.0,
                    settings.per_gpu_eval_batch_size, log)
                log(f"***** Eval results {name} ({eval_task.glue_name}, patience {patience}, "
                    f"{seconds:.1f} s) *****")
                for key in sorted(metrics):
                    log(f"  {key} = {metrics[key]}")
                key_prefix = "" if eval_task is task else f"{eval_task.name}/"
                results.update({f"{key_prefix}{k}_{step}": v for k, v in metrics.items()})
                row = {"checkpoint": name, "task": eval_task.glue_name, "patience": patience,
                       **metrics, "eval_seconds": round(seconds, 3),
                       "examples_per_second": len(arrays["input_ids"]) / seconds}
                if task_exits is not None:
                    exits.append(task_exits)
                    row.update(exit_statistics(model.config, task_exits, real_lengths(arrays),
                                               model.num_labels, model.retention))
                folder = os.path.join(eval_dir, prefix)
                os.makedirs(folder, exist_ok=True)
                write_result_text(os.path.join(folder, "eval_results.txt"),
                                  _result_lines(metrics), history.run_id)
                write_result_text(os.path.join(folder, f"eval_results_patience{patience}.txt"),
                                  _result_lines({k: v for k, v in row.items()
                                                 if k != "checkpoint"}), history.run_id)
                rows.append(row)
                history.event("evaluation", **row)
            if exits:  # MNLI m and mm pooled, as the original counts them
                lengths = np.concatenate([real_lengths(data[t.name]) for t, _ in pairs])
                stats = exit_statistics(model.config, np.concatenate(exits), lengths,
                                        model.num_labels, model.retention)
                log(stats_line(patience, stats))
                log(ratio_line(stats))
            else:
                log(f"*** Patience = 0: full model, all {model.num_layers} layers ***")
        if settings.eval_each_layer:
            for eval_task, eval_dir in pairs:
                evaluate_each_layer(engine, eval_task, data[eval_task.name], patience_list,
                                    settings, os.path.join(eval_dir, prefix), log,
                                    run_id=history.run_id)
    table = pd.DataFrame(rows)
    if "exit_histogram" in table:
        table["exit_histogram"] = table["exit_histogram"].map(
            lambda h: " ".join(map(str, h)) if isinstance(h, list) else "")
    path = write_result_text(os.path.join(settings.output_dir, TABLE),
                             table.to_csv(sep="\t", index=False), history.run_id)
    log(f"results of every checkpoint and patience: {path} (this evaluation, also kept as "
        f"{result_copy(path, history.run_id)}; every evaluation's rows stay in {HISTORY})")
    return results


def _has_vocab(folder):
    return any(os.path.isfile(os.path.join(folder, n)) for n in TOKENIZER_FILES)


def evaluate_each_layer(engine, task, arrays, patience_list, settings, folder, log=print, *,
                        run_id):
    """Score every classifier alone, the oracle, and the patience list simulated offline."""
    model = engine.model
    layer_logits = np.concatenate(
        map_batches(engine.all_layers, arrays, max(settings.per_gpu_eval_batch_size, 32),
                    progress="scoring every internal classifier"), axis=1)
    labels = arrays["labels"]
    rows = [{"row": f"layer {i + 1}",
             **_score(task, z, labels, model.num_labels, log, f"internal classifier {i + 1}")}
            for i, z in enumerate(layer_logits)]
    if not task.is_regression:
        right = np.argmax(layer_logits, -1) == labels[None, :]
        rows.append({"row": "oracle (any layer right)", "acc": float(right.any(0).mean())})
    for patience in patience_list:
        result = simulate(layer_logits, ExitRule(patience, settings.regression_threshold or 0.0,
                                                 task.is_regression))
        row = {"row": f"patience {patience} (simulated)",
               **_score(task, result.logits, labels, model.num_labels)}
        if patience:
            row["avg_exit_layer"] = float(result.exit_layers.mean())
        rows.append(row)
    table = pd.DataFrame(rows)
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, "eval_results_layers.tsv")
    write_result_text(path, table.to_csv(sep="\t", index=False), run_id)
    log(f"per-layer results ({task.glue_name}):\n{table.to_string(index=False)}")
    return table
