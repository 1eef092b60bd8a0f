"""PABEE's one-stage training, step-based like the original's HF `run_glue.py`, as settings
(`training_loop`) and callbacks of the shared step engine `common.training.Trainer`.

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

from common import distribute
from common.errors import UserError
from common.seeding import set_seed
from common.training import ParamGroup, Trainer, TrainLoop
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


def param_group(model, settings):
    """AdamW on every trainable variable (--learning_rate, --weight_decay, --adam_epsilon)."""
    return ParamGroup("main", model.trainable_variables, settings.learning_rate,
                      settings.weight_decay, optimizer="adamw", epsilon=settings.adam_epsilon)


def training_loop(settings, count, start_step=0):
    """The `common.training.TrainLoop` of `settings` (PabeeSettings) for `count` rows."""
    batch_size = distribute.global_batch(settings.per_gpu_train_batch_size)
    total, epochs, _ = schedule_length(count, batch_size, settings.gradient_accumulation_steps,
                                       settings.num_train_epochs, settings.max_steps)
    return TrainLoop(epochs, settings.per_gpu_train_batch_size, settings.seed,
                     accumulation=settings.gradient_accumulation_steps, carry_over=True,
                     max_grad_norm=settings.max_grad_norm, warmup_steps=settings.warmup_steps,
                     total_steps=total, start_step=start_step,
                     max_updates=settings.max_steps + 1 if settings.max_steps > 0 else None,
                     shape_generic=True)


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


def train(model, train_arrays, settings, *, start_step=0, optimizer_state=None, on_log=None,
          on_save=None, log=print):
    """Train `model` in place as `settings` (PabeeSettings) say; returns (updates done, mean
    update loss). --per_gpu_train_batch_size is per device: the step runs under the current
    strategy (`common.training.Trainer`)."""
    count = len(train_arrays["input_ids"])
    if count == 0:
        raise UserError("the training split is empty; check --data_dir")
    loop = training_loop(settings, count, start_step)
    batch_size = distribute.global_batch(loop.batch_size)
    trainer = Trainer(model, [param_group(model, settings)], loss_fn, loop,
                      math.ceil(count / batch_size))
    optimizer = trainer.optimizers[0]
    if optimizer_state:
        load_optimizer(optimizer, optimizer_state)
    logged = [0.0]

    def on_update(step):
        if settings.logging_steps > 0 and step % settings.logging_steps == 0 and on_log:
            on_log(step, {"learning_rate": float(optimizer.learning_rate),
                          "loss": (trainer.loss_sum - logged[0]) / settings.logging_steps})
            logged[0] = trainer.loss_sum
        if settings.save_steps > 0 and step % settings.save_steps == 0 and on_save:
            on_save(step, optimizer)

    log(f"***** Running training *****  examples = {count}, epochs = {loop.epochs}, batch size "
        f"= {batch_size}, accumulation = {loop.accumulation}, total updates = "
        f"{trainer.total_steps}")
    set_seed(settings.seed)
    trainer.fit(train_arrays, on_update=on_update, log=log)
    mean_loss = trainer.loss_sum / max(trainer.step - start_step, 1)
    log(f" global_step = {trainer.step}, average loss = {mean_loss}")
    return trainer.step, mean_loss
