"""AdapLeR's operating points for `bert-speedup-compare` (`common.compare.sweep`): one group
per PHI (saliencies of the fine-tuned model, once; then training); its points are the learned
per-layer thresholds eta shifted by each offset at inference.
"""
import json
import os
import shutil

import numpy as np

from common.compare.sweep import (EVAL_BATCH, SEED, Command, Group, Sweep, python, script,
                                  split_sides)

PHIS = {"quick": (0.05,), "full": (0.01, 0.05, 0.2)}
ETA_OFFSETS = {"quick": (-0.2, 0.0, 0.1), "full": (-0.1, 0.0, 0.1, 0.2, 0.3, 0.5)}
TRAINING = {"gamma": 0.005, "batch_size": 4, "learning_rate": 2e-5, "head_learning_rate": 1e-3,
            "eta_learning_rate": 3e-3}
SAVE_NAME = "compare"


def _adapler_dirs(context):
    from adapler import paths
    return paths.TaskDirs(context.task.name, SEED,
                          root=os.path.join(context.runs, "adapler", paths.ROOT))


def adapler_groups(context):
    """One group per PHI (saliencies of the fine-tuned model, once; then training). Stage A is
    the fine-tuned model itself: it is placed in AdapLeR's folder tree as the one fine-tuned
    epoch (with its ft_logs.json entry), so stages B and C start from the same model as every
    other method."""
    from adapler import paths
    from adapler.pipeline import selection_metric

    task, budget = context.task, context.budget
    cwd = os.path.join(context.runs, "adapler")
    dirs = _adapler_dirs(context)
    common_flags = [*context.data_flags("--TASK", "--DATA_DIR", upper=True), "--MAX_LENGTH",
                    context.max_length, "--DATA_SEED", SEED, "--MODEL_NAME_OR_PATH",
                    context.finetuned, *context.collapsed_flag("--ALLOW_COLLAPSED"),
                    *context.precision_flag(upper=True)]

    def place_finetuned():
        target = dirs.finetuned(1)
        if os.path.isdir(target):
            shutil.rmtree(target)
        shutil.copytree(context.finetuned, target)
        score = context.finetuned_scores[selection_metric(task)]
        os.makedirs(dirs.logs, exist_ok=True)
        with open(dirs.ft_logs, "w", encoding="utf-8") as out:
            json.dump([{"validation": {selection_metric(task): score}}], out)

    saliencies = Command("adapler saliencies",
                         python(script("tools", "store_saliencies.py"),
                                *common_flags, "--BATCH_SIZE", 32),
                         os.path.join(cwd, "saliencies"), cwd=cwd, prepare=place_finetuned)
    result = []
    for phi in PHIS[budget.name]:
        name = f"PHI={phi:g}"
        argv = python(script("run_files", "run_glue_w_lr.py"), *common_flags,
                      "--SAVE_NAME", SAVE_NAME, "--GAMMA", TRAINING["gamma"], "--PHI", phi,
                      "--EPOCHS", budget.method_epochs, "--BATCH_SIZE", TRAINING["batch_size"],
                      "--LEARNING_RATE", TRAINING["learning_rate"], "--HEAD_LEARNING_RATE",
                      TRAINING["head_learning_rate"], "--ETA_LEARNING_RATE",
                      TRAINING["eta_learning_rate"], "--INITIAL_MODEL_PATH", "")
        model_path = dirs.adapler_model(paths.stem(SAVE_NAME, TRAINING["gamma"], phi))
        settings = {f"{name} eta{offset:+g}": offset for offset in ETA_OFFSETS[budget.name]}
        result.append(Group("adapler", name,
                            [saliencies, Command(f"adapler {name}", argv,
                                                 os.path.join(cwd, name), cwd=cwd)],
                            list(settings), lambda ctx, path=model_path, settings=settings:
                            AdapLeRPoints(ctx, path, settings)))
    return result


class AdapLeRPoints:
    """One model per eta offset (same weights, eta + offset, at least 0)."""

    def __init__(self, context, model_path, offsets):
        from adapler.pipeline import load_for_evaluation

        self.context, self.models = context, {}
        for setting, offset in offsets.items():
            # Notes on the checkpoint (e.g. it missed the checkpoint rule) are printed once.
            model, _ = load_for_evaluation(model_path, context.task, context.max_length,
                                           lr_model=True,
                                           log=print if not self.models else lambda line: None)
            model.eta.assign(np.maximum(model.eta.numpy() + offset, 0.0).astype(np.float32))
            self.models[setting] = model

    def evaluate(self):
        from adapler.evaluation import evaluate

        ctx, result = self.context, {}
        for setting, model in self.models.items():
            scores = evaluate(model, ctx.task, ctx.dev, EVAL_BATCH)
            detail = "eta " + ",".join(f"{v:.3f}" for v in model.eta.numpy())
            result[setting] = (scores["metrics"][ctx.task.metric], scores["speedup"], detail)
        return result

    def sides(self, batch_size):
        from adapler.speed import sides

        name = "adapler-unpadded" if batch_size == 1 else "adapler-dynamic"
        dense, methods = None, {}
        for setting, model in self.models.items():
            found, methods[setting] = split_sides(sides(model, self.context.timing,
                                                        batch_size), (name,))
            dense = dense or found
        return dense, methods


SWEEPS = {"adapler": Sweep("AdapLeR", adapler_groups)}
