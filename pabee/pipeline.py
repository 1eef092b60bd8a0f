"""The run_glue_with_pabee flow: train, save checkpoints, evaluate every checkpoint x patience.

Files (mirroring the original's layout, in this toolkit's formats):

    output_dir/pabee.weights.h5, config.json   final model (after --do_train) + sidecar
    output_dir/tokenizer files, training_args.json
    output_dir/checkpoint-<step>/              every --save_steps updates: the same, plus
                                               optimizer.weights.h5 (resumable)
    <eval dir>/<prefix>/eval_results.txt       metrics of the LAST patience evaluated (original)
    <eval dir>/<prefix>/eval_results_patience<t>.txt   one per patience: metrics + exit stats
    <eval dir>/<prefix>/eval_results_layers.tsv        --eval_each_layer: every classifier alone
    output_dir/eval_results_patience.tsv       all checkpoints x tasks x patience in one table
    output_dir/log_history.jsonl               the JSON line of every logging step (the original
                                               also sent them to TensorBoard)

<eval dir> is output_dir, and output_dir-MM for MNLI mismatched; <prefix> is the checkpoint
folder name for checkpoint folders, empty for output_dir itself.
"""
import json
import os
import re
import shutil
import tempfile

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from common import checkpoints
from common.benchmark import Stopwatch
from common.data import encode_examples, map_length_sorted, read_split, real_lengths
from common.errors import UserError
from common.metrics import compute_metrics
from common.tasks import get_task
from common.tokenization import load_tokenizer
from common.training import logits_to_predictions, set_seed
from pabee import cli
from pabee.model import build_model, load_weights
from pabee.patience import (EarlyExitEngine, ExitRule, exit_statistics, map_batches, ratio_line,
                            simulate, stats_line)
from pabee.train import save_optimizer, train

WEIGHTS_NAME = "pabee"
TABLE = "eval_results_patience.tsv"


def run(args, log=print):
    """Do what the flags ask; returns the results dict (`<metric>_<step>` keys, as the original)."""
    task = get_task(args.task_name)
    patience_list = cli.validate(args, task)
    if args.no_cuda:
        tf.config.set_visible_devices([], "GPU")
    if (args.do_train and os.path.isdir(args.output_dir) and os.listdir(args.output_dir)
            and not args.overwrite_output_dir):
        raise UserError(f"output directory {args.output_dir} already exists and is not empty; "
                        "use --overwrite_output_dir to train into it, or pick another folder")
    log("Training/evaluation parameters " + json.dumps(vars(args), sort_keys=True))
    set_seed(args.seed)
    if args.do_train:
        train_and_save(args, task, log)
    if not args.do_eval:
        return {}
    return evaluate_checkpoints(args, task, patience_list, log)


# ---------------------------------------------------------------- training

def eval_tasks(task, output_dir):
    """(task, eval dir) pairs: MNLI is scored on matched and mismatched dev (output_dir-MM)."""
    pairs = [(task, output_dir)]
    if task.name == "mnli":
        pairs.append((get_task("mnli-mm"), output_dir.rstrip("/") + "-MM"))
    return pairs


def _check_model_type(args, source):
    if source.config.model_type != args.model_type:
        raise UserError(f"{source.path} is a {source.config.model_type.upper()} model but "
                        f"--model_type is {args.model_type}; pass --model_type "
                        f"{source.config.model_type}")


def _resume_point(path):
    """(global step, optimizer file) when `path` is one of our checkpoint-<step> folders."""
    match = re.search(r"-(\d+)/?$", path)
    folder = os.path.dirname(path) if path.endswith(".weights.h5") else path
    state = os.path.join(folder, "optimizer.weights.h5")
    if match and os.path.isfile(state):
        return int(match.group(1)), state
    return 0, None


def _encode_split(tokenizer, task, data_dir, split, max_length):
    return encode_examples(tokenizer, read_split(task, data_dir, split), max_length)


def train_and_save(args, task, log):
    source = checkpoints.resolve_source(args.model_name_or_path, args.config_name or None)
    _check_model_type(args, source)
    checkpoints.check_max_length(source.config, args.max_seq_length)
    tokenizer = load_tokenizer(args.tokenizer_name or source.folder, cased=not args.do_lower_case)
    model = build_model(source, task.num_labels, name=WEIGHTS_NAME)
    loaded = load_weights(model, source)
    total = sum(int(np.prod(v.shape)) for v in model.weights)
    heads, added = model.head_parameters()
    log(f"Total Model Parameters: {total}")
    log(f"Output Layers Parameters: {heads}")
    log(f"Added Output Layers Parameters: {added}")
    log(f"internal classifiers loaded from the checkpoint: {loaded} of {model.num_layers} "
        "(the others start fresh)")
    train_arrays = _encode_split(tokenizer, task, args.data_dir, "train", args.max_seq_length)
    start_step, optimizer_state = _resume_point(args.model_name_or_path)
    if start_step:
        log(f"resuming from update {start_step} with the optimizer state of {optimizer_state}")
    os.makedirs(args.output_dir, exist_ok=True)
    meta = _meta(args, task, model)
    dev = [(t, _encode_split(tokenizer, t, args.data_dir, "dev", args.max_seq_length))
           for t, _ in eval_tasks(task, args.output_dir)] if args.evaluate_during_training else []
    history = os.path.join(args.output_dir, "log_history.jsonl")
    engine = EarlyExitEngine(model) if dev else None

    def on_log(step, record):
        for eval_task, arrays in dev:
            logits = map_length_sorted(engine.full, arrays, args.per_gpu_eval_batch_size)
            metrics = _score(eval_task, logits, arrays["labels"], model.num_labels)
            prefix = "eval_" if eval_task is task else f"eval_{eval_task.name}/"
            record.update({prefix + key: value for key, value in metrics.items()})
        record["step"] = step
        line = json.dumps(record, sort_keys=True)
        log(line)
        with open(history, "a", encoding="utf-8") as out:
            out.write(line + "\n")

    def on_save(step, optimizer):
        folder = os.path.join(args.output_dir, f"checkpoint-{step}")
        _save_folder(model, folder, dict(meta, global_step=step), tokenizer, args, optimizer)
        log(f"Saving model checkpoint to {folder}")

    step, _ = train(
        model, train_arrays, batch_size=args.per_gpu_train_batch_size,
        learning_rate=args.learning_rate, num_train_epochs=args.num_train_epochs,
        max_steps=args.max_steps, grad_accum=args.gradient_accumulation_steps,
        weight_decay=args.weight_decay, adam_epsilon=args.adam_epsilon,
        max_grad_norm=args.max_grad_norm, warmup_steps=args.warmup_steps,
        logging_steps=args.logging_steps, save_steps=args.save_steps, seed=args.seed,
        start_step=start_step, optimizer_state=optimizer_state, on_log=on_log, on_save=on_save,
        log=log)
    checkpoints.save_checkpoint(model, args.output_dir, dict(meta, global_step=step),
                                name=WEIGHTS_NAME, tokenizer=tokenizer)
    _write_text(os.path.join(args.output_dir, "training_args.json"),
                json.dumps(vars(args), indent=2, sort_keys=True))
    log(f"Saving model checkpoint to {args.output_dir}")


def _meta(args, task, model):
    return {"method": "pabee", "task": task.name, "num_labels": task.num_labels,
            "max_length": args.max_seq_length, "model_type": args.model_type,
            "num_layers": model.num_layers, "head_dropout": model.head_dropout,
            "do_lower_case": args.do_lower_case, "patience": args.patience,
            "regression_threshold": args.regression_threshold}


def _save_folder(model, folder, meta, tokenizer, args, optimizer):
    """A complete checkpoint folder, built aside and renamed into place (never half-written)."""
    parent = os.path.dirname(os.path.abspath(folder))
    staging = tempfile.mkdtemp(dir=parent, prefix=f".{os.path.basename(folder)}.")
    try:
        checkpoints.save_checkpoint(model, staging, meta, name=WEIGHTS_NAME, tokenizer=tokenizer)
        save_optimizer(optimizer, os.path.join(staging, "optimizer.weights.h5"))
        _write_text(os.path.join(staging, "training_args.json"),
                    json.dumps(vars(args), indent=2, sort_keys=True))
        if os.path.isdir(folder):
            shutil.rmtree(folder)
        os.replace(staging, folder)
    finally:
        if os.path.isdir(staging):
            shutil.rmtree(staging)


def _write_text(path, text):
    """Write a small text file atomically (temp file + rename)."""
    handle, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(path)), suffix=".tmp")
    with os.fdopen(handle, "w", encoding="utf-8") as out:
        out.write(text)
    os.replace(tmp, path)


# ---------------------------------------------------------------- evaluation

def _holds_model(folder):
    names = os.listdir(folder)
    return (any(n.endswith(".weights.h5") and n != "optimizer.weights.h5" for n in names)
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


def load_for_eval(path, task, model_type=None, previous=None):
    """A PABEE model with all its internal classifiers from `path` (else one UserError).

    `previous` (a model of the same shape, e.g. the last checkpoint's) is reloaded in place,
    so its compiled inference functions stay valid."""
    source = checkpoints.resolve_source(path)
    if model_type and source.config.model_type != model_type:
        raise UserError(f"{path} is a {source.config.model_type.upper()} model but "
                        f"--model_type is {model_type}")
    trained_for = (source.sidecar or {}).get("num_labels")
    if trained_for is not None and trained_for != task.num_labels:
        raise UserError(f"{path} was trained for {(source.sidecar or {}).get('task')} with "
                        f"{trained_for} labels, not {task.glue_name}; pass the matching "
                        "--task_name")
    reuse = previous is not None and previous.config == source.config
    model = previous if reuse else build_model(source, task.num_labels, name=WEIGHTS_NAME)
    load_weights(model, source, require_heads=True)
    return model


def _score(task, logits, labels, num_labels):
    metrics = compute_metrics(task, logits_to_predictions(np.asarray(logits), num_labels), labels)
    metrics.pop("glue_score")
    return metrics


def run_patience(engine, task, arrays, patience, threshold, batch_size):
    """One evaluation on length-sorted, dynamically padded batches (at batch size 1: each text
    unpadded): (metrics, exit layers or None for patience 0, seconds)."""
    watch = Stopwatch()
    if patience == 0:
        logits, exits = map_length_sorted(engine.full, arrays, batch_size), None
    else:
        rule = ExitRule(patience, threshold, task.is_regression)
        progress = keras.utils.Progbar(len(arrays["input_ids"]))

        def run(batch):
            result = engine.run(batch, rule)
            progress.add(len(result.logits))
            return result.logits, result.exit_layers

        logits, exits = map_length_sorted(run, arrays, batch_size)
    seconds = watch.seconds
    return _score(task, logits, arrays["labels"], engine.model.num_labels), exits, seconds


def _result_lines(values):
    return "".join(f"{key} = {values[key]}\n" for key in sorted(values))


def evaluate_checkpoints(args, task, patience_list, log=print):
    paths = find_checkpoints(args.output_dir, args.eval_all_checkpoints)
    tokenizer = load_tokenizer(args.output_dir if _has_vocab(args.output_dir) else paths[0],
                               cased=not args.do_lower_case)
    pairs = eval_tasks(task, args.output_dir)
    data = {t.name: _encode_split(tokenizer, t, args.data_dir, "dev", args.max_seq_length)
            for t, _ in pairs}
    results, rows, model, engine = {}, [], None, None
    for path in paths:
        name = os.path.basename(os.path.normpath(path))
        prefix = name if "checkpoint" in path else ""
        step = path.split("-")[-1] if len(paths) > 1 else ""
        log(f"Evaluation for checkpoint {prefix}")
        loaded = load_for_eval(path, task, args.model_type, previous=model)
        checkpoints.check_max_length(loaded.config, args.max_seq_length)
        if loaded is not model:
            model, engine = loaded, EarlyExitEngine(loaded, jit_compile=args.jit_compile)
        for patience in patience_list:
            exits = []
            for eval_task, eval_dir in pairs:
                arrays = data[eval_task.name]
                metrics, task_exits, seconds = run_patience(
                    engine, eval_task, arrays, patience, args.regression_threshold or 0.0,
                    args.per_gpu_eval_batch_size)
                log(f"***** Eval results {prefix} ({eval_task.glue_name}, patience {patience}, "
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
                                               model.num_labels))
                folder = os.path.join(eval_dir, prefix)
                os.makedirs(folder, exist_ok=True)
                _write_text(os.path.join(folder, "eval_results.txt"), _result_lines(metrics))
                _write_text(os.path.join(folder, f"eval_results_patience{patience}.txt"),
                            _result_lines({k: v for k, v in row.items() if k != "checkpoint"}))
                rows.append(row)
            if exits:  # MNLI m and mm pooled, as the original counts them
                lengths = np.concatenate([real_lengths(data[t.name]) for t, _ in pairs])
                stats = exit_statistics(model.config, np.concatenate(exits), lengths,
                                        model.num_labels)
                log(stats_line(patience, stats))
                log(ratio_line(stats))
            else:
                log(f"*** Patience = 0: full model, all {model.num_layers} layers ***")
        if args.eval_each_layer:
            for eval_task, eval_dir in pairs:
                evaluate_each_layer(engine, eval_task, data[eval_task.name], patience_list,
                                    args, os.path.join(eval_dir, prefix), log)
    table = pd.DataFrame(rows)
    if "exit_histogram" in table:
        table["exit_histogram"] = table["exit_histogram"].map(
            lambda h: " ".join(map(str, h)) if isinstance(h, list) else "")
    _write_text(os.path.join(args.output_dir, TABLE), table.to_csv(sep="\t", index=False))
    log(f"results of every checkpoint and patience: {os.path.join(args.output_dir, TABLE)}")
    return results


def _has_vocab(folder):
    return any(os.path.isfile(os.path.join(folder, n)) for n in ("vocab.txt", "tokenizer.json"))


def evaluate_each_layer(engine, task, arrays, patience_list, args, folder, log=print):
    """Score every classifier alone, the oracle, and the patience list simulated offline."""
    model = engine.model
    layer_logits = np.concatenate(
        map_batches(engine.all_layers, arrays, max(args.per_gpu_eval_batch_size, 32)), axis=1)
    labels = arrays["labels"]
    rows = [{"row": f"layer {i + 1}", **_score(task, z, labels, model.num_labels)}
            for i, z in enumerate(layer_logits)]
    if not task.is_regression:
        right = np.argmax(layer_logits, -1) == labels[None, :]
        rows.append({"row": "oracle (any layer right)", "acc": float(right.any(0).mean())})
    for patience in patience_list:
        result = simulate(layer_logits, ExitRule(patience, args.regression_threshold or 0.0,
                                                 task.is_regression))
        row = {"row": f"patience {patience} (simulated)",
               **_score(task, result.logits, labels, model.num_labels)}
        if patience:
            row["avg_exit_layer"] = float(result.exit_layers.mean())
        rows.append(row)
    table = pd.DataFrame(rows)
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, "eval_results_layers.tsv")
    _write_text(path, table.to_csv(sep="\t", index=False))
    log(f"per-layer results ({task.glue_name}):\n{table.to_string(index=False)}")
    return table
