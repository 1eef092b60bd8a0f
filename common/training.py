"""The one training-step engine the methods share, and batched prediction.

`Trainer` runs epochs of seeded mini-batches as its `TrainLoop` settings say (shuffling,
accumulation, clipping, warm-up, limits); loss scaling and the tf.distribute strategy are applied
on every step. The caller gives a `loss_fn` and one or more `ParamGroup`s, each with its own
optimizer (AdamW or Adam) on a warm-up + linear-decay schedule. `loss_fn` returns a scalar
(every group descends it) or a dict {group name: scalar} (each group descends its own objective:
AdapLeR's eta, for instance). A method's specifics are callbacks (`Trainer.fit`) and small
`ParamGroup` subclasses (their optimizer, their gradient sources).

`train()` is the epoch-evaluating use: after each epoch an `evaluate` callback returns metrics;
the best epoch by `select` is handed to `on_best` (which writes the checkpoint atomically).
`fine_tune()` is stage 1 of every method: a classifier or regressor trained with cross-entropy /
MSE and selected on the task's dev metric.
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

    def gradients(self, tape, objective):
        """The gradients of `objective` for `variables` (a subclass may route them)."""
        return tape.gradient(objective, self.variables)

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


def batches(arrays, batch_size, shuffle=False, rng=None, trim=False):
    """Yield dicts of numpy slices; the last, partial batch is kept. `trim`: cut every 2-D array
    of a batch to its longest row (by `attention_mask`): pads change nothing but cost time."""
    count = len(next(iter(arrays.values())))
    order = rng.permutation(count) if shuffle else np.arange(count)
    for start in range(0, count, batch_size):
        index = order[start:start + batch_size] if shuffle else slice(start, start + batch_size)
        batch = {key: value[index] for key, value in arrays.items()}
        if trim:
            width = int(batch["attention_mask"].sum(axis=1).max())
            batch = {key: value[:, :width] if value.ndim == 2 else value
                     for key, value in batch.items()}
        yield batch


def split_features(batch):
    features = {k: v for k, v in batch.items() if k != "labels"}
    return features, batch.get("labels")


@dataclasses.dataclass(frozen=True)
class TrainLoop:
    """How `Trainer` runs: the settings every method's training fills.

    batch_size         per device (common.distribute: the step runs under the current strategy)
    shuffle            a fresh permutation of the rows every epoch (from `seed`); False: the
                       rows' own order every epoch
    trim               cut each batch to its longest row
    accumulation       micro-batches per update
    carry_over         True: an update after every `accumulation`-th batch of an epoch, each
                       loss divided by `accumulation`, the leftovers of an epoch carried into
                       the next one's first update (HF run_glue); False: the batches of an
                       epoch in groups of `accumulation` (the last one may be smaller), the
                       update the mean of the group's gradients
    max_grad_norm      each group's gradients clipped to this global norm (None or 0: not)
    clip_jointly       clip every group's gradients together, to one global norm (HF's Trainer
                       clips `model.parameters()` at once, whatever optimizer steps them)
    warmup_steps, warmup_proportion (of the updates; overrides warmup_steps), total_steps (T of
                       the schedules; default max_updates, else updates per epoch x epochs)
    max_updates        stop after this many updates (None: run every epoch)
    start_step         updates already done (resume: the batch order goes on from there)
    shape_generic      trace the step once for any batch shape (one device); else per shape
                       until TensorFlow relaxes it. The two traces may round differently (oneDNN
                       fuses some ops only in one of them), so a method keeps the one it had.
    """
    epochs: int
    batch_size: int
    seed: int = 0
    shuffle: bool = True
    trim: bool = False
    accumulation: int = 1
    carry_over: bool = False
    max_grad_norm: float | None = None
    clip_jointly: bool = False
    warmup_steps: int = 0
    warmup_proportion: float | None = None
    total_steps: int | None = None
    max_updates: int | None = None
    start_step: int = 0
    shape_generic: bool = False

    @classmethod
    def fine_tuning(cls, epochs, batch_size, seed=42):
        """Fine-tuning's usual loop: 10% warm-up, gradients clipped to norm 1."""
        return cls(epochs, batch_size, seed, warmup_proportion=0.1, max_grad_norm=1.0)

    def updates_per_epoch(self, batches_per_epoch):
        if self.carry_over:
            return batches_per_epoch // self.accumulation
        return math.ceil(batches_per_epoch / self.accumulation)


class Trainer:
    """The one training-step engine: each step takes the gradients of every `ParamGroup`'s
    objective (loss-scaled under float16, embedding gradients made dense, averaged over the
    replicas), accumulates them over `loop.accumulation` micro-batches, clips each group to its
    global norm and applies each group's optimizer on its warm-up + linear-decay schedule.

    `loss_fn(model, *batch, training)` -> a scalar (every group descends it), a dict
    {group name: scalar}, or either with a dict of statistics to report, as a pair. `batch` is
    (features, labels) and any further arrays the caller splits off (`fit(extra_keys=...)`).
    `after_update()` runs in the update's graph after the optimizers (e.g. clip a variable).
    A group may differentiate other sources than its variables (`ParamGroup.gradients`)."""

    def __init__(self, model, groups, loss_fn, loop, batches_per_epoch, after_update=None):
        self.model, self.groups, self.loss_fn, self.loop = model, groups, loss_fn, loop
        self.after_update = after_update
        self.updates_per_epoch = loop.updates_per_epoch(batches_per_epoch)
        self.total_steps = (loop.total_steps or loop.max_updates
                            or self.updates_per_epoch * loop.epochs)
        warmup = (int(self.total_steps * loop.warmup_proportion)
                  if loop.warmup_proportion is not None else loop.warmup_steps)
        self.optimizers = [training_optimizer(group.build_optimizer(self.total_steps, warmup))
                           for group in groups]
        for group, optimizer in zip(groups, self.optimizers):
            optimizer.build(group.variables)
        self.accumulated = None if loop.accumulation == 1 else [
            [tf.Variable(tf.zeros_like(v), trainable=False) for v in group.variables]
            for group in groups]
        self._step, self._updates = None, {}
        self.step, self.loss_sum = loop.start_step, 0.0

    def _gradients(self, *batch):
        with tf.GradientTape(persistent=True) as tape:
            losses = self.loss_fn(self.model, *batch, True)
            losses, stats = losses if isinstance(losses, tuple) else (losses, {})
            divisor = self.loop.accumulation if self.loop.carry_over else 1
            if divisor > 1:
                losses = ({k: v / divisor for k, v in losses.items()}
                          if isinstance(losses, dict) else losses / divisor)
            # Loss scaling (float16 only; a no-op otherwise); the losses themselves are float32.
            objectives = [optimizer.scale_loss(losses[group.name] if isinstance(losses, dict)
                                               else losses)
                          for group, optimizer in zip(self.groups, self.optimizers)]
        total = losses if not isinstance(losses, dict) else tf.add_n(list(losses.values()))
        # Embedding gradients arrive as IndexedSlices with one row per token occurrence;
        # Keras 3 would square those rows one by one in Adam's second moment. Dense
        # gradients give the textbook (and PyTorch/Keras-2) Adam update.
        grads = [[None if g is None else tf.convert_to_tensor(g)
                  for g in group.gradients(tape, objective)]
                 for group, objective in zip(self.groups, objectives)]
        del tape
        return total, stats, grads

    def _apply(self, grads):
        if self.loop.max_grad_norm and self.loop.clip_jointly:
            flat, _ = tf.clip_by_global_norm(
                [g for group_grads in grads for g in group_grads],
                clip_norm(self.optimizers[0], self.loop.max_grad_norm))
            sizes = [len(group_grads) for group_grads in grads]
            grads = [flat[sum(sizes[:i]):sum(sizes[:i + 1])] for i in range(len(sizes))]
        for group, optimizer, group_grads in zip(self.groups, self.optimizers, grads):
            pairs = [(g, v) for g, v in zip(group_grads, group.variables) if g is not None]
            if self.loop.max_grad_norm and not self.loop.clip_jointly:
                clipped, _ = tf.clip_by_global_norm(
                    [g for g, _ in pairs], clip_norm(optimizer, self.loop.max_grad_norm))
                pairs = list(zip(clipped, [v for _, v in pairs]))
            distribute.apply_gradients(optimizer, pairs)
        if self.after_update is not None:
            self.after_update()

    def _compiled_step(self, batch):
        """The step of a micro-batch: without accumulation gradients and update in one graph;
        with it, the gradients added to the accumulators. No AutoGraph (nothing branches on
        tensors, and it re-reads source files, which breaks long runs when a file is edited)."""
        if self._step is not None:
            return self._step
        signature = None
        if self.loop.shape_generic and distribute.replicas() == 1:
            signature = [tf.nest.map_structure(
                lambda a: tf.TensorSpec([None] * a.ndim, tf.as_dtype(a.dtype)), part)
                for part in batch]

        def step(*batch):
            total, stats, grads = distribute.mean_over_replicas(self._gradients, *batch)
            if self.accumulated is None:
                self._apply(grads)
            else:
                for sums, group_grads in zip(self.accumulated, grads):
                    for total_grad, grad in zip(sums, group_grads):
                        if grad is not None:
                            total_grad.assign_add(grad)
            return total, stats

        self._step = tf.function(step, input_signature=signature, autograph=False,
                                 reduce_retracing=True)
        return self._step

    def update(self, count):
        """Apply the accumulated gradients (accumulation only), divided by `count` unless the
        losses were, and reset them."""
        divide = count > 1 and not self.loop.carry_over
        if divide not in self._updates:
            # `count` is an argument, not a constant: Grappler would turn a division by a
            # constant into a multiplication by its reciprocal, which rounds differently.
            def update(count):
                self._apply([[g.value() / count if divide else g.value() for g in sums]
                             for sums in self.accumulated])
                for sums in self.accumulated:
                    for g in sums:
                        g.assign(tf.zeros_like(g))
            self._updates[divide] = tf.function(update, autograph=False)
        self._updates[divide](tf.constant(float(count)))

    def fit(self, arrays, *, extra_keys=(), on_batch=None, on_update=None, on_epoch_end=None,
            log=print):
        """Run the epochs of `loop` over `arrays` (numpy, rows first, `labels` among them).

        `extra_keys`: arrays handed to `loss_fn` after the labels instead of with the
        features. `on_batch(stats)` (the step's statistics as floats) may return the values to
        show in the progress bar; `on_update(step)` runs after each update, `on_epoch_end(epoch,
        mean loss)` (1-based) after each epoch and returns what `fit` collects. Returns the
        list of what `on_epoch_end` returned."""
        loop = self.loop
        count = len(arrays["input_ids"])
        if count == 0:
            raise UserError("the training split is empty; check the data folder")
        batch_size = distribute.global_batch(loop.batch_size)
        distribute.check_batches(count, batch_size)
        per_epoch = math.ceil(count / batch_size)
        rng = np.random.default_rng(loop.seed)
        first_epoch, skip = divmod(loop.start_step, self.updates_per_epoch)
        for _ in range(first_epoch if loop.shuffle else 0):  # resume: the same batch order
            rng.permutation(count)
        records, stop = [], False
        divisor = loop.accumulation if loop.carry_over else 1  # of each loss
        for epoch in range(first_epoch, loop.epochs):
            log(f"epoch {epoch + 1}/{loop.epochs}")
            progress = Progress(per_epoch, f"epoch {epoch + 1}/{loop.epochs}", named=False)
            losses = []
            for index, batch in enumerate(batches(arrays, batch_size, loop.shuffle, rng,
                                                  loop.trim)):
                if epoch == first_epoch and index < skip * loop.accumulation:
                    progress.add(1)
                    continue
                features, labels = split_features(
                    {k: v for k, v in batch.items() if k not in extra_keys})
                parts = distribute.split(features, labels, *(batch[k] for k in extra_keys))
                total, stats = self._compiled_step(parts)(*parts)
                due = (index + 1) % loop.accumulation == 0 or (
                    not loop.carry_over and index + 1 == per_epoch)
                if due and self.accumulated is not None:
                    self.update(index % loop.accumulation + 1)  # the group's micro-batches
                loss = float(total)
                self.loss_sum += loss
                losses.append(loss)
                shown = on_batch({k: v.numpy() if v.shape.rank else float(v)
                                  for k, v in stats.items()}) if on_batch else None
                progress.add(1, **(shown or {"loss": loss * divisor}))
                if not due:
                    continue
                self.step += 1
                if on_update is not None:
                    on_update(self.step)
                if loop.max_updates and self.step >= loop.max_updates:
                    stop = True
                    break
            progress.close()
            if on_epoch_end is not None:
                records.append(on_epoch_end(epoch + 1, float(np.mean(losses or [0.0]))))
            if stop:
                break
        return records


def train(model, train_arrays, loop, groups, loss_fn, *, evaluate=None, select=None,
          on_best=None, on_epoch_end=None, log=print):
    """Train `model` (a `Trainer` with the `loop` settings) and return the list of per-epoch
    records (loss, metrics, seconds).

    `loss_fn(model, features, labels, training)` -> scalar or {group name: scalar}.
    `evaluate(model)` -> metrics dict; `select(metrics)` -> number to maximise;
    `on_best(epoch, metrics)` is called whenever an epoch beats all earlier ones."""
    count = len(train_arrays["input_ids"])
    if count == 0:
        raise UserError("the training split is empty; check the data folder")
    trainer = Trainer(model, groups, loss_fn, loop,
                      math.ceil(count / distribute.global_batch(loop.batch_size)))
    best, started = [-math.inf], [time.time()]

    def epoch_end(epoch, train_loss):
        record = {"epoch": epoch, "train_loss": train_loss,
                  "seconds": round(time.time() - started[0], 2)}
        if evaluate is not None:
            record.update(evaluate(model))
            score = select(record) if select else -record.get("loss", 0.0)
            if score > best[0]:
                best[0] = score
                if on_best is not None:
                    on_best(epoch, record)
        log("  " + ", ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}"
                             for k, v in record.items() if not isinstance(v, dict)))
        if on_epoch_end is not None:
            on_epoch_end(epoch, record)
        started[0] = time.time()
        return record

    return trainer.fit(train_arrays, on_epoch_end=epoch_end, log=log)


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


def fine_tune(model, task, train_arrays, dev_arrays, loop, *, learning_rate, save_best,
              weight_decay=0.01, eval_batch_size=None, on_epoch_end=None, log=print,
              param_group=ParamGroup):
    """Stage 1 of every method: fine-tune a SequenceClassifier-like model on `task`, run as
    `loop` says (a `TrainLoop`; `TrainLoop.fine_tuning` gives the usual one).

    `save_best(epoch, metrics)` writes the checkpoint of a new best dev epoch (by the task's
    main metric). `param_group` is the ParamGroup class (a subclass changes the optimizer or
    its schedule). Returns the per-epoch history."""
    from common.metrics import main_metric

    set_seed(loop.seed)
    num_labels = model.num_labels

    def loss_fn(m, features, labels, training):
        return classification_loss(m(features, training=training), labels, num_labels)

    def evaluate(m):
        return evaluate_classifier(m, task, dev_arrays, eval_batch_size or loop.batch_size,
                                   log=log)

    group = param_group("main", model.trainable_variables, learning_rate, weight_decay)
    key = main_metric(task)
    return train(model, train_arrays, loop, [group], loss_fn, evaluate=evaluate,
                 select=lambda r: r[key], on_best=save_best, on_epoch_end=on_epoch_end, log=log)
