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
import dataclasses
import re

import numpy as np
import tensorflow as tf

from adapler.losses import (contribution_loss, count_drops, js_divergence, kl_divergence,
                            length_loss)
from common import distribute
from common.errors import UserError
from common.training import ParamGroup, Trainer, TrainLoop, classification_loss

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


@dataclasses.dataclass
class AdapLeRGroup(ParamGroup):
    """A ParamGroup whose weight decay skips LayerNorm and bias variables by their path."""

    def build_optimizer(self, total_steps, warmup_steps):
        optimizer = super().build_optimizer(total_steps, warmup_steps)
        if self.weight_decay:
            optimizer.exclude_from_weight_decay(
                var_list=[v for v in self.variables if NO_DECAY.search(v.path)])
        return optimizer


@dataclasses.dataclass
class StateGroup(AdapLeRGroup):
    """eta and theta. theta's gradient is the original's quirk: the gradient of the objective
    with respect to THETA_PR (`cls_scale`, a constant 1 multiplying the [CLS] share before
    thresholding), divided by theta."""
    cls_scale: object = None

    def gradients(self, tape, objective):
        eta, theta = self.variables
        eta_grad, scale_grad = tape.gradient(objective, [eta, self.cls_scale])
        return [eta_grad, scale_grad / (theta + 1e-7)]


class AdapLeRTrainer:
    """Runs the steps of `settings` (adapler.settings.TrainSettings: epochs, learning rates,
    GAMMA, PHI, warm-up, accumulation, divergence) on the shared step engine
    (`common.training.Trainer`, `engine`); `fit` returns per-step history lists. `batch_size`
    is the global batch (common.distribute: the step runs under the current strategy)."""

    def __init__(self, model, settings, *, batch_size, steps_per_epoch):
        self.model, self.epochs = model, settings.epochs
        learning_rate, head_learning_rate = settings.learning_rate, settings.head_learning_rate
        # variables, so that changing them does not retrace the step
        self.gamma = tf.Variable(float(settings.gamma), trainable=False, name="gamma")
        self.phi = tf.Variable(float(settings.phi), trainable=False, name="phi")
        # THETA_PR: trainable, so that the tape watches it; no optimizer updates it.
        self.cls_scale = tf.Variable(tf.ones([model.config.num_hidden_layers - 1]),
                                     name="cls_scale")
        self.divergence = DIVERGENCES[settings.divergence]
        cp_ids = {id(v) for p in model.predictors for v in p.trainable_variables}
        if head_learning_rate:
            backbone = [v for v in model.main_variables if id(v) not in cp_ids]
            heads = [v for v in model.main_variables if id(v) in cp_ids]
            main_groups = [AdapLeRGroup("main", backbone, learning_rate, WEIGHT_DECAY,
                                        epsilon=EPSILON),
                           AdapLeRGroup("heads", heads, head_learning_rate, WEIGHT_DECAY,
                                        epsilon=EPSILON)]
        else:
            main_groups = [AdapLeRGroup("main", model.main_variables, learning_rate,
                                        WEIGHT_DECAY, epsilon=EPSILON)]
        self.groups = main_groups + [StateGroup("eta", model.state_variables, settings.eta_rate,
                                                optimizer="adam", epsilon=EPSILON,
                                                cls_scale=self.cls_scale)]
        self.main_variables = [v for g in main_groups for v in g.variables]
        loop = TrainLoop(settings.epochs, batch_size // distribute.replicas(), shuffle=False,
                         trim=True, accumulation=max(1, int(settings.acc_steps)),
                         max_grad_norm=MAX_GRAD_NORM, warmup_proportion=settings.warmup_ratio)
        self.engine = Trainer(model, self.groups, self._losses, loop, steps_per_epoch,
                              after_update=lambda: model.eta.assign(
                                  tf.clip_by_value(model.eta, *ETA_RANGE)))
        self.optimizers = self.engine.optimizers

    def _losses(self, model, features, labels, saliency, training=True):
        """Each group's objective and the step's statistics."""
        outputs = model(features, training=training, cls_scale=self.cls_scale,
                        output_explanations=True)
        ce = classification_loss(outputs["logits"], labels, model.num_labels)
        cp, per_layer = contribution_loss(outputs["explanations"], saliency,
                                          features["attention_mask"], model.eta,
                                          model.sharpness, model.theta, self.divergence)
        length = length_loss(outputs["lengths"])
        main = ce + self.gamma * cp
        eta_objective = ce + self.phi * length
        stats = {"ce": ce, "cp": cp, "length": length, "eta_loss": eta_objective,
                 "drops": count_drops(outputs["explanations"], features["attention_mask"],
                                      model.eta, outputs["lengths"]),
                 "kl": tf.stack(per_layer)}
        return {group.name: main for group in self.groups[:-1]} | {"eta": eta_objective}, stats

    def fit(self, arrays, saliency, on_epoch_end=None, log=print, log_every=100):
        """Train; `on_epoch_end(epoch)` (1-based) runs after each epoch. Returns the per-step
        history {loss, head_loss, lambda, gamma} (the original's .pkl)."""
        history = {"loss": [], "head_loss": [], "lambda": [], "gamma": []}
        epoch_of = [0]

        def on_batch(stats):
            values = {k: v for k, v in stats.items() if k != "kl"}
            step = len(history["loss"]) + 1
            if not (np.isfinite(values["ce"]) and np.isfinite(values["cp"])):
                raise UserError(
                    f"training diverged at step {step}: CE {values['ce']}, CP loss "
                    f"{values['cp']}, eta {np.round(self.model.eta.numpy(), 4)}; lower "
                    "--LEARNING_RATE or --GAMMA")
            history["loss"].append(values["ce"])
            history["head_loss"].append(values["cp"])
            history["lambda"].append(float(self.model.sharpness.numpy()))
            history["gamma"].append(float(self.gamma.numpy()))
            self.model.sharpness.assign(lambda_schedule(self.epochs, epoch_of[0]))
            if step % log_every == 0:
                log(f"step {step}: eta {np.round(self.model.eta.numpy(), 4)} theta "
                    f"{np.round(self.model.theta.numpy(), 4)} KL per layer "
                    f"{np.round(stats['kl'], 4)}")
            return values

        def epoch_end(epoch, _):
            epoch_of[0] = epoch
            if on_epoch_end is not None:
                on_epoch_end(epoch)

        keys = ("input_ids", "token_type_ids", "attention_mask", "labels")
        self.engine.fit({**{k: arrays[k] for k in keys}, "saliency": saliency},
                        extra_keys=("saliency",), on_batch=on_batch, on_epoch_end=epoch_end,
                        log=log)
        return history
