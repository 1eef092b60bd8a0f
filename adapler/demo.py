"""The README demo row: AdapLeR from a fine-tuned MiniLM checkpoint on the bundled SST-2 sample.

`demo_row` runs stages B-D quickly (length 64, a training subset, few epochs): saliencies of the
fine-tuned checkpoint, AdapLeR training started from it, dev evaluation at lambda = 1e20 (exact
FLOPs), and the measured single-instance speed-up of `lr_mode` vs the same model without
predictors on dev texts. The settings are the demo's, chosen to show length reduction within a
couple of minutes; docs/adapler.md has the full runs.
"""
import os

import numpy as np

from adapler import paths
from adapler.benchmark import sides
from adapler.data import load_split
from adapler.evaluation import evaluate
from adapler.settings import SaliencySettings, TrainSettings
from adapler.stages import (load_for_evaluation, run_adapler, run_saliencies, selection_metric,
                            tokenizer_for)
from common import benchmark
from common.tasks import get_task

# The settings of the full SST-2 run (docs/adapler.md), on half its data and one epoch; in 250
# updates eta's default rate (the original's 5e-4) moves it by about 0.06 and nothing is removed,
# so the demo gives eta 3e-3 (docs/adapler.md, `--ETA_LEARNING_RATE`).
DEMO = {"max_length": 64, "train_examples": 1000, "seed": 42, "batch_size": 4,
        "learning_rate": 2e-5, "gamma": 0.005, "phi": 0.05, "head_learning_rate": 1e-3,
        "eta_learning_rate": 3e-3, "timed_examples": 100}


def demo_row(finetuned_dir, data_dir, work_dir, epochs=1, log=print, **overrides):
    """Run the quick AdapLeR demo; returns the README row as a dict. `overrides` replace
    entries of DEMO (tests use a tiny model)."""
    task = get_task("sst2")
    settings = {**DEMO, **overrides}
    length, seed = settings["max_length"], settings["seed"]
    dirs = paths.TaskDirs("sst2", seed, root=os.path.join(work_dir, "directory"))
    shared = dict(task="sst2", data_dir=data_dir, model_name_or_path=finetuned_dir,
                  max_length=length, data_seed=seed, max_train_examples=settings["train_examples"],
                  allow_collapsed=True)  # the demo warns and goes on (Saliency/TrainSettings)
    files = run_saliencies(SaliencySettings(**shared, batch_size=32), dirs,
                           checkpoints={1: finetuned_dir}, log=log)
    baseline, _ = load_for_evaluation(finetuned_dir, task, length, lr_model=False, log=log)
    tokenizer = tokenizer_for(finetuned_dir, finetuned_dir)
    dev, _ = load_split(task, data_dir, "dev", tokenizer, length, log=log)
    key = selection_metric(task)
    finetuned_score = evaluate(baseline, task, dev)["metrics"][key]
    training = TrainSettings(
        **shared, initial_model_path=finetuned_dir, gamma=settings["gamma"], phi=settings["phi"],
        epochs=epochs, batch_size=settings["batch_size"], learning_rate=settings["learning_rate"],
        eval_batch_size=64, save_name="demo", head_learning_rate=settings["head_learning_rate"],
        eta_learning_rate=settings["eta_learning_rate"])
    result = run_adapler(training, dirs, saliency_files=files,
                         best_finetuned_score=finetuned_score, echo=log)
    model, _ = load_for_evaluation(result["model_path"], task, length, lr_model=True, log=log)
    scores = evaluate(model, task, dev)
    timed = {k: v[:settings["timed_examples"]] for k, v in dev.items()}
    rows, _ = benchmark.run_sides(sides(model, timed, 1), repeats=3,
                                  references=benchmark.REFERENCES, headline="unpadded")
    return {"method": "AdapLeR", "dev_metric_name": key,
            "dev_metric": float(scores["metrics"][key]),
            "flops_speedup": float(scores["speedup"]),
            "measured_speedup": benchmark.row_of(rows, "adapler-unpadded")["speedup"],
            "speedup_vs_padded": benchmark.row_of(rows, "adapler-unpadded")["speedup_vs_padded"],
            "notes": (f"from the fine-tuned checkpoint (dev {key} {finetuned_score:.4f}); "
                      f"{settings['train_examples']} training examples, {epochs} epoch(s), "
                      f"GAMMA {settings['gamma']}, PHI {settings['phi']}, CP learning rate "
                      f"{settings['head_learning_rate']}, eta learning rate "
                      f"{settings['eta_learning_rate']}; mean tokens per layer "
                      f"{' '.join(f'{k:.1f}' for k in np.mean(scores['kept'], axis=0))} of "
                      f"{np.mean(scores['lengths']):.1f}; speed measured on "
                      f"{len(timed['input_ids'])} dev texts, batch 1, against the dense model on "
                      "the unpadded texts")}
