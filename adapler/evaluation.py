"""Batched evaluation at lambda = 1e20 (the original's `ModelCheckpoint_wlr`): metrics, COUNT,
SPEEDUP (TOTAL), the per-example FLOPs, and the GLUE submission TSV.

Soft mode at lambda = 1e20 masks dropped tokens exactly (mask 0, key bias -10000), so a padded
batch gives the predictions and per-layer lengths of running each example alone in `lr_mode`;
the FLOPs are those of that single-instance, unpadded inference (see adapler.flops).
"""
import csv

import numpy as np
from keras import ops

from adapler.data import trim
from adapler.flops import is_bert_base, per_example_flops, total_speedup
from common.files import write_result
from adapler.soft_removal import EVAL_SHARPNESS
from common.metrics import compute_metrics
from common.training import logits_to_predictions, predict

FEATURES = ("input_ids", "token_type_ids", "attention_mask")


def _evaluation_step(model, features, sharpness=EVAL_SHARPNESS):
    outputs = model(features, sharpness=sharpness, output_explanations=True)
    shares = outputs["explanations"]
    counts = [ops.sum(ops.cast(p > 1e-6, "int32"), axis=-1) for p in shares]
    counts.append(ops.sum(ops.cast(shares[-1] > model.eta[-1], "int32"), axis=-1))
    return {"logits": outputs["logits"], "kept": ops.stack(outputs["lengths"], axis=-1),
            "paper_counts": ops.stack(counts, axis=-1)}


def batched_outputs(model, arrays, batch_size=32, sharpness=EVAL_SHARPNESS):
    """logits (N, C), kept (N, L) tokens processed per layer, paper_counts (N, L + 1)."""
    features = trim({key: np.asarray(arrays[key]) for key in FEATURES})
    outputs = predict(model, features, batch_size,
                      call=lambda m, f: _evaluation_step(m, f, sharpness), progress="evaluating")
    outputs["kept"] = np.rint(outputs["kept"]).astype(np.int64)
    return outputs


def evaluate(model, task, arrays, batch_size=32, counting="exact", sharpness=EVAL_SHARPNESS):
    """Evaluate one split; metrics only when `arrays` has labels. Returns a dict with
    metrics, count, speedup, counting, flops {bert, adapler}, predictions, kept, lengths and,
    for BERT-base shapes in exact mode, fitted_speedup (the paper's polynomials). A finite
    `sharpness` (lambda) gives the soft lengths rounded to whole tokens (for logs only)."""
    outputs = batched_outputs(model, arrays, batch_size, sharpness)
    predictions = logits_to_predictions(outputs["logits"], model.num_labels)
    lengths = np.asarray(arrays["attention_mask"]).sum(axis=1)
    common = dict(config=model.config, lengths=lengths, kept=outputs["kept"],
                  num_labels=model.num_labels, cp_hidden=model.cp_hidden)
    bert, adapler = per_example_flops(counting=counting, paper_counts=outputs["paper_counts"],
                                      predictions=predictions, **common)
    result = {"metrics": compute_metrics(task, predictions, arrays["labels"])
              if "labels" in arrays else {},
              "count": len(predictions), "speedup": total_speedup(bert, adapler),
              "counting": counting, "flops": {"bert": bert, "adapler": adapler},
              "predictions": predictions, "kept": outputs["kept"], "lengths": lengths}
    if counting == "exact" and is_bert_base(model.config):
        result["fitted_speedup"] = total_speedup(*per_example_flops(counting="fitted", **common))
    return result


def summary(result):
    """One log line: `acc: 0.9014 COUNT: 872 SPEEDUP (TOTAL): 2.1345` (+ the fitted speed-up)."""
    parts = [f"{key}: {value:.4f}" for key, value in result["metrics"].items()]
    parts += [f"COUNT: {result['count']}", f"SPEEDUP (TOTAL): {result['speedup']:.4f}"]
    if "fitted_speedup" in result:
        parts.append(f"SPEEDUP (fitted formula): {result['fitted_speedup']:.4f}")
    mean_kept = result["kept"].mean(axis=0)
    parts.append("mean tokens per layer: " + " ".join(f"{k:.1f}" for k in mean_kept)
                 + f" (input {result['lengths'].mean():.1f})")
    return " ".join(parts)


def flops_record(result):
    """The `flops_per_example.pickle` content: per-example FLOPs lists (+ how they were counted
    and the per-layer lengths)."""
    return {"bert": [float(v) for v in result["flops"]["bert"]],
            "adapler": [float(v) for v in result["flops"]["adapler"]],
            "counting": result["counting"], "lengths": result["lengths"].tolist(),
            "kept": result["kept"].tolist()}


def write_glue_tsv(path, task, ids, predictions, run_id):
    """`index<TAB>prediction` rows with the task's label strings (the original's
    run_glue_prediction.py); this run's copy stays in `results/<run_id>/` beside it
    (common.files.write_result)."""
    def write(tmp):
        with open(tmp, "w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle, delimiter="\t", lineterminator="\n")
            writer.writerow(["index", "prediction"])
            for index, prediction in zip(ids, predictions):
                writer.writerow([index, task.format_prediction(prediction)])
    write_result(path, write, run_id)
