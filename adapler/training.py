"""Stage C: the AdapLeR training loop (the original's run_files/run_classification_w_lr.py).

One forward pass in soft mode per step gives both objectives, and one persistent tape routes them:

    BERT + pooler + classifier + CPs  <-  CE + GAMMA * contribution loss      (AdamW, eps 1e-12,
                                                                              weight decay 0.01)
    eta (L) and theta (L - 1)         <-  CE + PHI * length loss              (Adam, peak 5e-4
                                                                              by default)

theta's gradient is the original's quirk: the gradient of the second objective with respect to
THETA_PR (a constant 1 multiplying the [CLS] share before thresholding, passed as `cls_scale`),
divided by theta. Both optimizers warm up linearly over WARMUP_RATIO of the steps and decay
linearly to 0, each clips its gradients to global norm 1, and after every step eta is clipped to
[0.01, 1] and lambda is set by the schedule of `lambda_schedule`. The training order is the
once-shuffled split, the same every epoch (as the original), each example paired with its own
saliency row.
"""
import math
import re

import numpy as np
import tensorflow as tf

from adapler.losses import (contribution_loss, count_drops, js_divergence, kl_divergence,
                            length_loss)
from common import distribute
from common.errors import UserError
from common.precision import clip_norm, training_optimizer
from common.progress import Progress
from common.training import ParamGroup, classification_loss

ETA_RANGE = (0.01, 1.0)
EPSILON = 1e-12
WEIGHT_DECAY = 0.01
MAX_GRAD_NORM = 1.0
NO_DECAY = re.compile("layer_norm|LayerNorm|bias")
DIVERGENCES = {"kl": kl_divergence, "js": js_divergence}


def lambda_schedule(epochs, epoch):
    """lambda set after every step of 0-based `epoch`: 10 * 3^e for 10 epochs, 50 * 50^e for 3,
    10 * 10^e otherwise (10, 100, ..., 1e5 over the default 5 epochs)."""
    if epochs == 10:
        return 10.0 * 3.0 ** epoch
    if epochs == 3:
        return 50.0 * 50.0 ** epoch
    return 10.0 * 10.0 ** epoch


class CheckpointRule:
    """Save when the dev speed-up beats every earlier epoch's and the dev score exceeds the best
    fine-tuned dev score minus 0.01 (one point)."""

    def __init__(self, best_finetuned_score):
        self.threshold = best_finetuned_score - 0.01
        self.best_speedup = 0.0

    def __call__(self, score, speedup):
        if speedup > self.best_speedup and score > self.threshold:
            self.best_speedup = speedup
            return True
        return False


def build_optimizer(group, total_steps, warmup_steps):
    """The group's optimizer; weight decay skips LayerNorm and bias variables by their path."""
    optimizer = group.build_optimizer(total_steps, warmup_steps)
    if group.weight_decay:
        optimizer.exclude_from_weight_decay(
            var_list=[v for v in group.variables if NO_DECAY.search(v.path)])
    optimizer = training_optimizer(optimizer)
    optimizer.build(group.variables)
    return optimizer


class AdapLeRTrainer:
    """Runs the steps of `settings` (adapler.settings.TrainSettings: epochs, learning rates,
    GAMMA, PHI, warm-up, accumulation, divergence); `fit` returns per-step history lists."""

    def __init__(self, model, settings, *, steps_per_epoch):
        self.model, self.epochs = model, settings.epochs
        self.acc_steps = max(1, int(settings.acc_steps))
        learning_rate, head_learning_rate = settings.learning_rate, settings.head_learning_rate
        # variables, so that changing them does not retrace the step
        self.gamma = tf.Variable(float(settings.gamma), trainable=False, name="gamma")
        self.phi = tf.Variable(float(settings.phi), trainable=False, name="phi")
        self.divergence = DIVERGENCES[settings.divergence]
        updates = math.ceil(steps_per_epoch / self.acc_steps) * self.epochs
        warmup = int(settings.warmup_ratio * updates)
        cp_ids = {id(v) for p in model.predictors for v in p.trainable_variables}
        if head_learning_rate:
            backbone = [v for v in model.main_variables if id(v) not in cp_ids]
            heads = [v for v in model.main_variables if id(v) in cp_ids]
            main_groups = [ParamGroup("main", backbone, learning_rate, WEIGHT_DECAY,
                                      epsilon=EPSILON),
                           ParamGroup("heads", heads, head_learning_rate, WEIGHT_DECAY,
                                      epsilon=EPSILON)]
        else:
            main_groups = [ParamGroup("main", model.main_variables, learning_rate, WEIGHT_DECAY,
                                      epsilon=EPSILON)]
        self.groups = main_groups + [ParamGroup("eta", model.state_variables, settings.eta_rate,
                                                optimizer="adam", epsilon=EPSILON)]
        self.optimizers = [build_optimizer(g, updates, warmup) for g in self.groups]
        self.main_variables = [v for g in main_groups for v in g.variables]
        self._gradients = tf.function(
            lambda *batch: distribute.mean_over_replicas(self._step_gradients, *batch),
            reduce_retracing=True)
        self._apply = tf.function(self._apply_gradients, reduce_retracing=True)

    def _step_gradients(self, features, labels, saliency):
        model = self.model
        layers = model.config.num_hidden_layers
        cls_scale = tf.ones([layers - 1])
        with tf.GradientTape(persistent=True) as tape:
            tape.watch(cls_scale)
            outputs = model(features, training=True, cls_scale=cls_scale,
                            output_explanations=True)
            ce = classification_loss(outputs["logits"], labels, model.num_labels)
            cp, per_layer = contribution_loss(outputs["explanations"], saliency,
                                              features["attention_mask"], model.eta,
                                              model.sharpness, model.theta, self.divergence)
            length = length_loss(outputs["lengths"])
            main = ce + self.gamma * cp
            eta_objective = ce + self.phi * length
            # Loss scaling, per optimizer (float16 only; the losses are float32).
            scaled = [optimizer.scale_loss(main) for optimizer in self.optimizers[:-1]]
            scaled_eta = self.optimizers[-1].scale_loss(eta_objective)
        main_grads = [grad for group, objective in zip(self.groups, scaled)
                      for grad in tape.gradient(objective, group.variables)]
        eta_grad, scale_grad = tape.gradient(scaled_eta, [model.eta, cls_scale])
        del tape
        theta_grad = scale_grad / (model.theta + 1e-7)
        grads = [tf.convert_to_tensor(g) if g is not None else tf.zeros_like(v)
                 for g, v in zip(main_grads + [eta_grad, theta_grad],
                                 self.main_variables + model.state_variables)]
        stats = {"ce": ce, "cp": cp, "length": length, "eta_loss": eta_objective,
                 "drops": count_drops(outputs["explanations"], features["attention_mask"],
                                      model.eta, outputs["lengths"]),
                 "kl": tf.stack(per_layer)}
        return grads, stats

    def _apply_gradients(self, grads):
        start = 0
        for group, optimizer in zip(self.groups, self.optimizers):
            part = grads[start:start + len(group.variables)]
            start += len(group.variables)
            clipped, _ = tf.clip_by_global_norm(part, clip_norm(optimizer, MAX_GRAD_NORM))
            distribute.apply_gradients(optimizer, zip(clipped, group.variables))
        self.model.eta.assign(tf.clip_by_value(self.model.eta, *ETA_RANGE))

    def fit(self, arrays, saliency, batch_size, on_epoch_end=None, log=print, log_every=100):
        """Train; `on_epoch_end(epoch)` (1-based) runs after each epoch. Returns the per-step
        history {loss, head_loss, lambda, gamma} (the original's .pkl). `batch_size` is the
        global batch (common.distribute: the step runs under the current strategy)."""
        count = len(arrays["input_ids"])
        if count == 0:
            raise UserError("the training split is empty; check the data folder")
        distribute.check_batches(count, batch_size)
        features_keys = ("input_ids", "token_type_ids", "attention_mask")
        history = {"loss": [], "head_loss": [], "lambda": [], "gamma": []}
        steps_per_epoch = math.ceil(count / batch_size)
        step = 0
        for epoch in range(self.epochs):
            log(f"epoch {epoch + 1}/{self.epochs}")
            progress = Progress(steps_per_epoch, f"epoch {epoch + 1}/{self.epochs}",
                                named=False)
            pending = []
            for start in range(0, count, batch_size):
                rows = slice(start, start + batch_size)
                # Cut the batch to its longest example: pads change nothing (masked keys, CP
                # share 0, not in the losses) but cost time.
                width = int(arrays["attention_mask"][rows].sum(axis=1).max())
                features = {k: arrays[k][rows, :width] for k in features_keys}
                grads, stats = self._gradients(*distribute.split(
                    features, arrays["labels"][rows], saliency[rows, :width]))
                values = {k: float(v) for k, v in stats.items() if k != "kl"}
                if not (np.isfinite(values["ce"]) and np.isfinite(values["cp"])):
                    raise UserError(
                        f"training diverged at step {step + 1}: CE {values['ce']}, CP loss "
                        f"{values['cp']}, eta {np.round(self.model.eta.numpy(), 4)}; lower "
                        "--LEARNING_RATE or --GAMMA")
                pending.append(grads)
                if len(pending) == self.acc_steps or start + batch_size >= count:
                    self._apply([tf.add_n(list(g)) / len(pending) for g in zip(*pending)]
                                if len(pending) > 1 else pending[0])
                    pending = []
                lam = float(self.model.sharpness.numpy())
                history["loss"].append(values["ce"])
                history["head_loss"].append(values["cp"])
                history["lambda"].append(lam)
                history["gamma"].append(float(self.gamma.numpy()))
                self.model.sharpness.assign(lambda_schedule(self.epochs, epoch))
                step += 1
                progress.add(1, **values)
                if step % log_every == 0:
                    log(f"step {step}: eta {np.round(self.model.eta.numpy(), 4)} theta "
                        f"{np.round(self.model.theta.numpy(), 4)} KL per layer "
                        f"{np.round(stats['kl'].numpy(), 4)}")
            if on_epoch_end is not None:
                on_epoch_end(epoch + 1)
        return history
