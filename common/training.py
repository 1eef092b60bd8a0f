"""The training loop the three methods share, and batched prediction.

`train()` runs epochs of seeded, shuffled mini-batches. The caller gives a `loss_fn` and one or
more `ParamGroup`s, each with its own optimizer (AdamW or Adam) on a warm-up + linear-decay
schedule. `loss_fn` returns a scalar (every group descends it) or a dict {group name: scalar}
(each group descends its own objective: AdapLeR's eta, for instance). After each epoch an
`evaluate` callback returns metrics; the best epoch by `select` is handed to `on_best` (which
writes the checkpoint atomically). `fine_tune()` is stage 1 of every method: a classifier or
regressor trained with cross-entropy / MSE and selected on the task's dev metric.
"""
import dataclasses
import math
import time

import keras
import numpy as np
import tensorflow as tf

from common import distribute
from common.errors import UserError
from common.precision import clip_norm, training_optimizer
from common.progress import Progress
from common.seeding import set_seed

NO_DECAY = ("layer_norm", "bias")


class WarmupLinearDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up from 0 to `peak` over `warmup_steps`, then linear decay to 0 at `total_steps`."""

    def __init__(self, peak, total_steps, warmup_steps=0):
        self.peak, self.total_steps, self.warmup_steps = float(peak), int(total_steps), int(warmup_steps)

    def __call__(self, step):
        step = tf.cast(step, tf.float32)
        warmup = self.peak * step / max(self.warmup_steps, 1)
        decay = self.peak * tf.maximum(0.0, (self.total_steps - step) /
                                       max(self.total_steps - self.warmup_steps, 1))
        return tf.where(step < self.warmup_steps, warmup, decay)

    def get_config(self):
        return {"peak": self.peak, "total_steps": self.total_steps,
                "warmup_steps": self.warmup_steps}


@dataclasses.dataclass
class ParamGroup:
    """Variables trained by one optimizer at one learning rate."""
    name: str
    variables: list
    learning_rate: float
    weight_decay: float = 0.0
    optimizer: str = "adamw"  # "adamw" or "adam"
    epsilon: float = 1e-6
    beta_1: float = 0.9
    beta_2: float = 0.999

    def build_optimizer(self, total_steps, warmup_steps):
        schedule = WarmupLinearDecay(self.learning_rate, total_steps, warmup_steps)
        if self.optimizer == "adam":
            return keras.optimizers.Adam(schedule, beta_1=self.beta_1, beta_2=self.beta_2,
                                         epsilon=self.epsilon)
        optimizer = keras.optimizers.AdamW(schedule, weight_decay=self.weight_decay,
                                           beta_1=self.beta_1, beta_2=self.beta_2,
                                           epsilon=self.epsilon)
        optimizer.exclude_from_weight_decay(var_names=list(NO_DECAY))
        return optimizer


def classification_loss(logits, labels, num_labels):
    """Mean cross-entropy (classification) or MSE on the single output (regression)."""
    if num_labels == 1:
        return tf.reduce_mean(tf.square(tf.squeeze(logits, -1) - tf.cast(labels, logits.dtype)))
    return tf.reduce_mean(tf.keras.losses.sparse_categorical_crossentropy(
        tf.cast(labels, tf.int32), logits, from_logits=True))


def batches(arrays, batch_size, shuffle=False, rng=None):
    """Yield dicts of numpy slices; the last, partial batch is kept."""
    count = len(next(iter(arrays.values())))
    order = rng.permutation(count) if shuffle else np.arange(count)
    for start in range(0, count, batch_size):
        index = order[start:start + batch_size]
        yield {key: value[index] for key, value in arrays.items()}


def split_features(batch):
    features = {k: v for k, v in batch.items() if k != "labels"}
    return features, batch.get("labels")


def train(model, train_arrays, *, epochs, batch_size, groups, loss_fn, evaluate=None,
          select=None, on_best=None, on_epoch_end=None, seed=0, warmup_steps=0,
          warmup_proportion=None, max_grad_norm=None, max_steps=None, log=print):
    """Train `model` and return the list of per-epoch records (loss, metrics, seconds).

    `loss_fn(model, features, labels, training)` -> scalar or {group name: scalar}.
    `evaluate(model)` -> metrics dict; `select(metrics)` -> number to maximise;
    `on_best(epoch, metrics)` is called whenever an epoch beats all earlier ones.
    `batch_size` is per device (common.distribute: the step runs under the current strategy)."""
    count = len(train_arrays["input_ids"])
    if count == 0:
        raise UserError("the training split is empty; check the data folder")
    batch_size = distribute.global_batch(batch_size)
    distribute.check_batches(count, batch_size)
    steps_per_epoch = math.ceil(count / batch_size)
    total_steps = max_steps or steps_per_epoch * epochs
    if warmup_proportion is not None:
        warmup_steps = int(total_steps * warmup_proportion)
    optimizers = [training_optimizer(group.build_optimizer(total_steps, warmup_steps))
                  for group in groups]
    for group, optimizer in zip(groups, optimizers):
        optimizer.build(group.variables)

    def gradients(features, labels):
        with tf.GradientTape(persistent=True) as tape:
            losses = loss_fn(model, features, labels, True)
            # Loss scaling (float16 only; a no-op otherwise); the losses themselves are float32.
            objectives = [optimizer.scale_loss(losses[group.name] if isinstance(losses, dict)
                                               else losses)
                          for group, optimizer in zip(groups, optimizers)]
        total = losses if not isinstance(losses, dict) else tf.add_n(list(losses.values()))
        # Embedding gradients arrive as IndexedSlices with one row per token occurrence;
        # Keras 3 would square those rows one by one in Adam's second moment. Dense
        # gradients give the textbook (and PyTorch/Keras-2) Adam update.
        grads = [[None if g is None else tf.convert_to_tensor(g)
                  for g in tape.gradient(objective, group.variables)]
                 for group, objective in zip(groups, objectives)]
        del tape
        return total, grads

    @tf.function(reduce_retracing=True)
    def step(features, labels):
        total, grads = distribute.mean_over_replicas(gradients, features, labels)
        for group, optimizer, group_grads in zip(groups, optimizers, grads):
            pairs = [(g, v) for g, v in zip(group_grads, group.variables) if g is not None]
            if max_grad_norm:
                clipped, _ = tf.clip_by_global_norm([g for g, _ in pairs],
                                                    clip_norm(optimizer, max_grad_norm))
                pairs = list(zip(clipped, [v for _, v in pairs]))
            distribute.apply_gradients(optimizer, pairs)
        return total

    rng = np.random.default_rng(seed)
    history, best, done = [], -math.inf, 0
    for epoch in range(1, epochs + 1):
        log(f"epoch {epoch}/{epochs}")
        progress = Progress(steps_per_epoch, f"epoch {epoch}/{epochs}", named=False)
        started, losses = time.time(), []
        for batch in batches(train_arrays, batch_size, shuffle=True, rng=rng):
            features, labels = split_features(batch)
            loss = float(step(*distribute.split(features, labels)))
            losses.append(loss)
            done += 1
            progress.add(1, loss=loss)
            if max_steps and done >= max_steps:
                break
        progress.close()
        record = {"epoch": epoch, "train_loss": float(np.mean(losses)),
                  "seconds": round(time.time() - started, 2)}
        if evaluate is not None:
            record.update(evaluate(model))
            score = select(record) if select else -record.get("loss", 0.0)
            if score > best:
                best = score
                if on_best is not None:
                    on_best(epoch, record)
        history.append(record)
        log("  " + ", ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}"
                             for k, v in record.items() if not isinstance(v, dict)))
        if on_epoch_end is not None:
            on_epoch_end(epoch, record)
        if max_steps and done >= max_steps:
            break
    return history


def predict(model, arrays, batch_size=64, call=None, dynamic=None, progress=None):
    """Outputs of `call(model, features)` (default: `model(features)`) over all rows, as numpy,
    in the rows' order.

    The rows run length-sorted, each batch cut to its longest text (`common.data.
    map_length_sorted`): a dense model's outputs do not depend on the padding, so this saves the
    work on pads. `dynamic=False` keeps every batch at the full width (outputs with one value
    per position); the default is True unless the model sets `pads_to_max_length` (a model
    whose layers are sized for the task's max length). `progress`: the name of the step, to show
    its progress."""
    from common.data import map_length_sorted

    if dynamic is None:
        dynamic = not getattr(model, "pads_to_max_length", False)
    call = call or (lambda m, features: m(features, training=False))
    compiled = tf.function(lambda features: call(model, features), reduce_retracing=True)
    features = {k: v for k, v in arrays.items() if k != "labels"}
    return map_length_sorted(compiled, features, batch_size, dynamic, progress)


def logits_to_predictions(logits, num_labels):
    return logits[:, 0] if num_labels == 1 else np.argmax(logits, axis=-1)


def evaluate_classifier(model, task, arrays, batch_size=64, dynamic=None, progress="evaluating",
                        log=print):
    """Metrics of a classifier/regressor `model` (with `.num_labels`) on labelled `arrays`: the
    task's metrics, 'acc' for every classification task, and 'eval_loss' (the task loss).
    `dynamic`: length-sorted dynamic padding, `progress`: the step's name (see `predict`). When
    every prediction is the same class (a constant regression output), 'collapsed'
    (common.metrics.collapse) is added and `log` gets one warning line; a checkpoint saved from
    such a record carries it."""
    from common.metrics import accuracy, collapse, collapse_warning, compute_metrics

    num_labels = model.num_labels
    logits = predict(model, arrays, batch_size, dynamic=dynamic, progress=progress)
    predictions = logits_to_predictions(logits, num_labels)
    metrics = compute_metrics(task, predictions, arrays["labels"])
    if num_labels > 1:
        metrics.setdefault("acc", accuracy(predictions, arrays["labels"]))
    metrics["eval_loss"] = float(classification_loss(
        tf.constant(logits), tf.constant(arrays["labels"]), num_labels))
    collapsed = collapse(task, predictions)
    if collapsed:
        metrics["collapsed"] = collapsed
        log(collapse_warning(collapsed))
    return metrics


def fine_tune(model, task, train_arrays, dev_arrays, *, epochs, batch_size, learning_rate,
              save_best, weight_decay=0.01, warmup_proportion=0.1, seed=42, eval_batch_size=None,
              max_grad_norm=1.0, on_epoch_end=None, log=print, param_group=ParamGroup):
    """Stage 1 of every method: fine-tune a SequenceClassifier-like model on `task`.

    `save_best(epoch, metrics)` writes the checkpoint of a new best dev epoch (by the task's
    main metric). `param_group` is the ParamGroup class (a subclass changes the optimizer or
    its schedule). Returns the per-epoch history."""
    from common.metrics import main_metric

    set_seed(seed)
    num_labels = model.num_labels

    def loss_fn(m, features, labels, training):
        return classification_loss(m(features, training=training), labels, num_labels)

    def evaluate(m):
        return evaluate_classifier(m, task, dev_arrays, eval_batch_size or batch_size, log=log)

    group = param_group("main", model.trainable_variables, learning_rate, weight_decay)
    key = main_metric(task)
    return train(model, train_arrays, epochs=epochs, batch_size=batch_size, groups=[group],
                 loss_fn=loss_fn, evaluate=evaluate, select=lambda r: r[key], on_best=save_best,
                 on_epoch_end=on_epoch_end, seed=seed, warmup_proportion=warmup_proportion,
                 max_grad_norm=max_grad_norm, log=log)
