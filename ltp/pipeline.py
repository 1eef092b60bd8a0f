"""LTP's stages (the original's `run.py` + its HF Trainer changes) and evaluation; `run(settings)`
(an `ltp.settings.LtpSettings`) checks the inputs and runs one of them:

    soft   from a fine-tuned classifier: learn the thresholds and the weights together, the
           pruning soft (sigmoid masks of temperature T), loss = task loss + lambda sum_l
           mean(m_l) (Kim et al. 2022, section 3.2, Eq. 5)        -> the soft checkpoint
    hard   from the soft checkpoint: fine-tune the weights, the thresholds fixed and the pruning
           hard (section 3.2, last paragraph)                     -> the final model
    eval   dev metrics, tokens kept per layer and the FLOPs speed-up of a checkpoint

As the original's Trainer: AdamW (epsilon 1e-8) for the weights at --lr and a second AdamW for
the thresholds at --lr_threshold (default --lr) with --weight_decay_threshold, each on a linear
decay to 0 without warm-up; gradients clipped to norm 1 over all of them at once; evaluation
every epoch (or every --save_steps updates) with the hard thresholds, the best by the GLUE
score kept (`--no_load`: the last). Every stage's checkpoint is one folder (weights +
config.json: the stage, thresholds, settings + tokenizer files), written atomically.
"""
import math
import os

from common import checkpoints, distribute
from common.checkpoints import load_backbone_weights, resolve_source
from common.data import load_split
from common.errors import UserError
from common.seeding import set_seed
from common.tasks import get_task
from common.tokenization import load_tokenizer
from common.training import (ParamGroup, Trainer, TrainLoop, classification_loss,
                             evaluate_classifier)
from common.validation import (check_checkpoint_task, check_cls_pooling, check_model_files,
                               check_not_collapsed, check_output_dir)
from ltp.model import SCORE_LENGTH, Pruning, build_model
from ltp.speed import dev_flops

DEFAULT_FINAL_THRESHOLD = 0.01  # the README's
ADAM_EPSILON = 1e-8  # HF TrainingArguments' default
MAX_GRAD_NORM = 1.0
EVAL_RESULTS = "eval_results.json"


def run(settings, echo=print):
    """Check every input, then train one stage or evaluate. Returns a summary dict."""
    task = get_task(settings.task)
    if not os.path.exists(settings.restore):
        raise UserError(f"--restore {settings.restore} does not exist; pass a fine-tuned "
                        "checkpoint folder")
    check_model_files(settings.restore)
    source = resolve_source(settings.restore)
    sidecar = source.sidecar or {}
    check_checkpoint_task(sidecar, task, settings.restore, settings.allow_other_task)
    check_cls_pooling(sidecar, settings.restore, "LTP")
    is_ltp = sidecar.get("method") == "ltp"
    if settings.masking_mode == "hard" and settings.training and not is_ltp:
        echo(f"note: {settings.restore} is not an LTP checkpoint: the hard stage runs with the "
             "starting thresholds (the original's manual-threshold baseline)")
    final, score_length = _threshold_settings(settings, sidecar, is_ltp, echo)
    if settings.output_dir is not None:
        check_output_dir(settings.output_dir, overwrite=settings.overwrite_output_dir or
                         settings.eval, what="--output_dir")
    if settings.training:
        check_not_collapsed(sidecar, settings.restore, settings.allow_collapsed, warn=echo)
    set_seed(settings.seed)  # before the model exists: its dropout draws its state at creation
    model = build_model(source.config, task.num_labels, settings.max_seq_length, final,
                        score_length)
    if not load_backbone_weights(model, source):
        raise UserError(f"{settings.restore} has no {task.glue_name} classification head, so it "
                        "is not fine-tuned on the task; fine-tune it first "
                        "(bert-speedup-finetune) and pass that folder")
    lower_case = bool(sidecar.get("lower_case", True)) if source.kind == "own" else True
    tokenizer = load_tokenizer(source.folder, cased=not lower_case)
    dev, _ = load_split(task, settings.data_dir, "dev", tokenizer, settings.max_seq_length,
                        log=echo)
    if settings.eval:
        return evaluate(model, task, dev, settings, echo)
    train, _ = load_split(task, settings.data_dir, "train", tokenizer, settings.max_seq_length,
                          log=echo)
    meta = dict(task=task, max_length=settings.max_seq_length, lower_case=lower_case,
                final=final, score_length=score_length)
    return train_stage(model, train, dev, settings, meta, tokenizer, echo)


def _threshold_settings(settings, sidecar, is_ltp, echo):
    """(final_token_threshold, score_length): an LTP checkpoint's own (its thresholds are in
    its weights), else the flags' (or their defaults)."""
    given = settings.final_token_threshold, settings.score_length
    if not is_ltp:
        return tuple(DEFAULT if value is None else value
                     for value, DEFAULT in zip(given, (DEFAULT_FINAL_THRESHOLD, SCORE_LENGTH)))
    state = sidecar.get("method_state", {})
    own = state["final_token_threshold"], state.get("score_length", SCORE_LENGTH)
    if any(value is not None and value != mine for value, mine in zip(given, own)):
        echo(f"note: {settings.restore} was trained with --final_token_threshold {own[0]:g} "
             f"--score_length {own[1]}; those are used, not the flags'")
    return own


def evaluation(model, task, dev, batch_size):
    """Dev metrics with hard pruning, the mean tokens kept per layer and the FLOPs speed-up."""
    record = evaluate_classifier(model, task, dev, batch_size, progress="evaluating")
    vanilla, method, kept = dev_flops(model, dev, batch_size)
    record["flops_speedup"] = vanilla / method
    record["tokens_kept"] = kept
    return record


def evaluate(model, task, dev, settings, echo):
    record = evaluation(model, task, dev, settings.bs)
    record["thresholds"] = model.thresholds()
    _show(record, task, echo)
    if settings.output_dir is not None:
        from common.files import write_json

        os.makedirs(settings.output_dir, exist_ok=True)
        path = os.path.join(settings.output_dir, EVAL_RESULTS)
        write_json(path, {"restore": settings.restore, "task": task.name, **record})
        echo(f"wrote {path}")
    return record


def _show(record, task, echo):
    metrics = ", ".join(f"{k} {v:.4f}" for k, v in record.items()
                        if isinstance(v, float) and k not in ("flops_speedup", "seconds"))
    echo(f"dev ({task.glue_name}, hard thresholds): {metrics}; FLOPs speed-up "
         f"{record['flops_speedup']:.2f}x on the dev texts' real lengths; tokens kept per layer "
         f"(mean): {', '.join(f'{n:.1f}' for n in record['tokens_kept'])}")


def loss_fn(pruning, lambda_threshold):
    """The stage's objective: the task loss (+ lambda x the mask regularizer when soft)."""
    def loss(model, features, labels, training):
        logits, state = model.forward(features, training=training, pruning=pruning)
        task_loss = classification_loss(logits, labels, model.num_labels)
        if pruning.mode != "soft":
            return task_loss
        return task_loss + lambda_threshold * model.seam.regularizer(state)
    return loss


def param_groups(model, settings):
    """The weights' AdamW and, in the soft stage, the thresholds' (the original's
    `optimizer_threshold`)."""
    groups = [ParamGroup("main", model.main_variables, settings.lr, settings.weight_decay,
                         epsilon=ADAM_EPSILON)]
    if settings.masking_mode == "soft":
        groups.append(ParamGroup("threshold", model.threshold_variables,
                                 settings.lr_threshold or settings.lr,
                                 settings.weight_decay_threshold, epsilon=ADAM_EPSILON))
    return groups


def train_stage(model, train, dev, settings, meta, tokenizer, echo):
    """One stage (soft or hard). Returns the summary: the checkpoint, its dev record."""
    count = len(train["input_ids"])
    batch_size = distribute.global_batch(settings.bs)
    per_epoch = math.ceil(count / batch_size)
    total = max(1, math.ceil(settings.epoch * per_epoch))
    loop = TrainLoop(math.ceil(settings.epoch), settings.bs, settings.seed, trim=True,
                     max_grad_norm=MAX_GRAD_NORM, clip_jointly=True, total_steps=total,
                     max_updates=total)
    pruning = (Pruning("soft", settings.temperature) if settings.masking_mode == "soft"
               else Pruning("mask"))
    trainer = Trainer(model, param_groups(model, settings),
                      loss_fn(pruning, settings.lambda_threshold), loop, per_epoch)
    echo(f"LTP {settings.masking_mode} stage on {meta['task'].glue_name}: {count} train / "
         f"{len(dev['input_ids'])} dev rows, {total} updates, thresholds start at "
         f"{', '.join(f'{t:.4g}' for t in model.thresholds())}")
    best = {"score": -math.inf, "record": None, "path": None}
    history = []

    def check(step, epoch):
        record = evaluation(model, meta["task"], dev, settings.bs)
        record.update(step=step, epoch=epoch, thresholds=model.thresholds())
        history.append(record)
        _show(record, meta["task"], echo)
        echo(f"  thresholds: {', '.join(f'{t:.4g}' for t in record['thresholds'])}")
        score = record["glue_score"]
        if not settings.no_load and score > best["score"]:
            best.update(score=score, record=record,
                        path=save(model, settings, meta, record, tokenizer))

    def on_update(step):
        if settings.save_steps and step % settings.save_steps == 0:
            check(step, step / per_epoch)

    def on_epoch_end(epoch, mean_loss):
        echo(f"  epoch {epoch}: mean training loss {mean_loss:.4f}")
        if not settings.save_steps:
            check(trainer.step, epoch)

    trainer.fit(train, on_update=on_update, on_epoch_end=on_epoch_end, log=echo)
    if settings.no_load or best["path"] is None:
        record = history[-1] if history and history[-1]["step"] == trainer.step else None
        if record is None:
            record = evaluation(model, meta["task"], dev, settings.bs)
            record.update(step=trainer.step, epoch=trainer.step / per_epoch,
                          thresholds=model.thresholds())
        best.update(record=record, path=save(model, settings, meta, record, tokenizer))
    echo(f"saved the {'last' if settings.no_load else 'best'} model (step "
         f"{best['record']['step']}) to {settings.output_dir}")
    return {"checkpoint": best["path"], "dev": best["record"], "history": history}


def save(model, settings, meta, record, tokenizer):
    """The stage's checkpoint folder (atomic): weights, sidecar, tokenizer files."""
    state = {"stage": settings.masking_mode, "final_token_threshold": meta["final"],
             "score_length": meta["score_length"], "thresholds": model.thresholds(),
             "temperature": settings.temperature, "lambda_threshold": settings.lambda_threshold,
             "restore": settings.restore}
    training = {"step": record["step"], "epoch": record["epoch"], "seed": settings.seed,
                "dev": {k: v for k, v in record.items()
                        if k not in ("step", "epoch", "thresholds", "seconds")}}
    sidecar = checkpoints.checkpoint_meta("ltp", meta["task"], meta["max_length"],
                                          lower_case=meta["lower_case"], method_state=state,
                                          training=training)
    return checkpoints.save_checkpoint(model, settings.output_dir, sidecar, tokenizer=tokenizer)

