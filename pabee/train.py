"""PABEE's one-stage training loop, step-based like the original's HF `run_glue.py`.

Everything (embeddings, layers, pooler, all heads) is trained jointly on the weighted loss of
`pabee.model.loss_fn`. Faithful to the original:

* AdamW (epsilon --adam_epsilon, decay off for biases and LayerNorm), global-norm clipping once
  per update, linear warm-up then linear decay to 0 at T updates; update k uses the LR of step
  k-1, so with warm-up the first update has LR 0;
* gradient accumulation: micro-batch losses are divided by the accumulation count and an update
  happens after every `ga`-th batch of an epoch; leftover batches at an epoch's end carry over
  into the next epoch's first update;
* T = (batches per epoch // ga) * num_train_epochs; the loop runs int(num_train_epochs) epochs
  (a fractional epoch count is truncated for the loop, not for T);
* with max_steps > 0, T = max_steps and the loop stops once more than max_steps updates are done,
  i.e. after one extra update at LR 0;
* each epoch is a fresh random permutation, the last partial batch kept; the seed is set again
  before the first epoch.

Every `logging_steps` updates `on_log(step, record)` gets the mean update loss since the last log
and the LR of the next update; every `save_steps` updates `on_save(step, optimizer)` is called.
"""
import math

import h5py
import numpy as np
import tensorflow as tf

from common import distribute
from common.errors import UserError
from common.precision import clip_norm, training_optimizer
from common.progress import Progress
from common.seeding import set_seed
from common.training import ParamGroup, batches, split_features
from pabee.model import loss_fn


def schedule_length(count, batch_size, grad_accum, num_train_epochs, max_steps):
    """(T, epochs to loop, updates per epoch) as the original computes them."""
    updates_per_epoch = math.ceil(count / batch_size) // grad_accum
    if updates_per_epoch == 0:
        raise UserError(f"--gradient_accumulation_steps {grad_accum} is larger than the "
                        f"{math.ceil(count / batch_size)} batches of one epoch; lower it")
    if max_steps > 0:
        return max_steps, max_steps // updates_per_epoch + 1, updates_per_epoch
    total = int(updates_per_epoch * num_train_epochs)
    if total < 1:
        raise UserError(f"--num_train_epochs {num_train_epochs} gives no update; raise it")
    return total, int(num_train_epochs), updates_per_epoch


def build_optimizer(model, learning_rate, weight_decay, adam_epsilon, total_steps, warmup_steps):
    group = ParamGroup("main", model.trainable_variables, learning_rate, weight_decay,
                       optimizer="adamw", epsilon=adam_epsilon)
    optimizer = training_optimizer(group.build_optimizer(total_steps, warmup_steps))
    optimizer.build(model.trainable_variables)
    return optimizer


def save_optimizer(optimizer, path):
    """Optimizer state (Keras variables, in order) to HDF5; the caller makes it atomic."""
    store = {}
    optimizer.save_own_variables(store)
    with h5py.File(path, "w") as out:
        for key, value in store.items():
            out.create_dataset(key, data=np.asarray(value))


def load_optimizer(optimizer, path):
    with h5py.File(path, "r") as data:
        store = {key: data[key][()] for key in data}
    shapes = [tuple(store[str(i)].shape) if str(i) in store else None
              for i in range(len(optimizer.variables))]
    if len(store) != len(optimizer.variables) or shapes != [tuple(v.shape)
                                                           for v in optimizer.variables]:
        raise UserError(f"optimizer state {path} does not fit this model; resume from a "
                        "checkpoint of the same model and task")
    optimizer.load_own_variables(store)


def train(model, train_arrays, *, batch_size, learning_rate, num_train_epochs, max_steps=-1,
          grad_accum=1, weight_decay=0.0, adam_epsilon=1e-8, max_grad_norm=1.0, warmup_steps=0,
          logging_steps=500, save_steps=500, seed=42, start_step=0, optimizer_state=None,
          on_log=None, on_save=None, log=print):
    """Train `model` in place; returns (updates done, mean update loss). `batch_size` is per
    device (--per_gpu_train_batch_size): the step runs under the current strategy."""
    count = len(train_arrays["input_ids"])
    if count == 0:
        raise UserError("the training split is empty; check --data_dir")
    batch_size = distribute.global_batch(batch_size)
    distribute.check_batches(count, batch_size)
    total, epochs, updates_per_epoch = schedule_length(
        count, batch_size, grad_accum, num_train_epochs, max_steps)
    optimizer = build_optimizer(model, learning_rate, weight_decay, adam_epsilon, total,
                                warmup_steps)
    if optimizer_state:
        load_optimizer(optimizer, optimizer_state)
    variables = model.trainable_variables
    accumulated = [tf.Variable(tf.zeros_like(v), trainable=False) for v in variables]

    signature = [{key: tf.TensorSpec([None, None], tf.int32) for key in train_arrays
                  if key != "labels"},
                 tf.TensorSpec([None], tf.as_dtype(train_arrays["labels"].dtype))]

    def micro_batch(features, labels):
        with tf.GradientTape() as tape:
            loss = loss_fn(model, features, labels, training=True) / grad_accum
            scaled = optimizer.scale_loss(loss)  # float16 only; the loss is float32
        return loss, [tf.convert_to_tensor(g) for g in tape.gradient(scaled, variables)]

    # One trace, also for the last partial batch (one device); no AutoGraph (nothing branches
    # on tensors, and it re-reads source files, which breaks long runs when a file is edited).
    @tf.function(input_signature=signature if distribute.replicas() == 1 else None,
                 autograph=False, reduce_retracing=True)
    def accumulate(features, labels):
        loss, grads = distribute.mean_over_replicas(micro_batch, features, labels)
        for total_grad, grad in zip(accumulated, grads):
            total_grad.assign_add(grad)
        return loss

    @tf.function(autograph=False)
    def update():
        grads = [g.value() for g in accumulated]
        if max_grad_norm and max_grad_norm > 0:
            grads, _ = tf.clip_by_global_norm(grads, clip_norm(optimizer, max_grad_norm))
        distribute.apply_gradients(optimizer, zip(grads, variables))
        for g in accumulated:
            g.assign(tf.zeros_like(g))

    log(f"***** Running training *****  examples = {count}, epochs = {epochs}, batch size = "
        f"{batch_size}, accumulation = {grad_accum}, total updates = {total}")
    set_seed(seed)
    rng = np.random.default_rng(seed)
    first_epoch, skip = divmod(start_step, updates_per_epoch)
    for _ in range(first_epoch):  # resume: same batch order as an uninterrupted run
        rng.permutation(count)
    step, loss_sum, logged_sum = start_step, 0.0, 0.0
    for epoch in range(first_epoch, epochs):
        log(f"Epoch {epoch + 1}/{epochs}")
        progress = Progress(math.ceil(count / batch_size), f"epoch {epoch + 1}/{epochs}",
                            named=False)
        for index, batch in enumerate(batches(train_arrays, batch_size, shuffle=True, rng=rng)):
            if epoch == first_epoch and index < skip * grad_accum:
                progress.add(1)
                continue
            features, labels = split_features(batch)
            loss = float(accumulate(*distribute.split(features, labels)))
            loss_sum += loss
            progress.add(1, loss=loss * grad_accum)
            if (index + 1) % grad_accum:
                continue
            update()
            step += 1
            if logging_steps > 0 and step % logging_steps == 0 and on_log is not None:
                on_log(step, {"learning_rate": float(optimizer.learning_rate),
                              "loss": (loss_sum - logged_sum) / logging_steps})
                logged_sum = loss_sum
            if save_steps > 0 and step % save_steps == 0 and on_save is not None:
                on_save(step, optimizer)
            if 0 < max_steps < step:
                break
        progress.close()
        if 0 < max_steps < step:
            break
    mean_loss = loss_sum / max(step - start_step, 1)
    log(f" global_step = {step}, average loss = {mean_loss}")
    return step, mean_loss
