"""PABEE's row of the README's main-job demo (`tools/demo.py`).

From the fine-tuned MiniLM checkpoint (backbone and pooler load; the 6 internal classifiers start
fresh, as in the original), train PABEE on the bundled SST-2 sample at length 64. Then score the
full SST-2 dev set once with every internal classifier and apply every patience 0..L-1 to those
stored logits (exact: the exit rule only reads per-layer logits), pick the smallest patience
within one accuracy point of patience 0 (if none is, the most accurate one), and measure its
batch-1 latency against the full model on the same unpadded dev sentences (`common.benchmark`).
"""
import numpy as np

from common import benchmark
from common.data import load_split, real_lengths
from common.metrics import compute_metrics
from common.tasks import get_task
from common.tokenization import load_tokenizer
from pabee import cli, pipeline, speed
from pabee.patience import EarlyExitEngine, ExitRule, exit_statistics, map_batches, simulate

LENGTH = 64
TIMED_EXAMPLES = 200


def demo_row(finetuned_dir, data_dir, work_dir, epochs=1):
    argv = ["--model_type", "bert", "--model_name_or_path", finetuned_dir,
            "--task_name", "SST-2", "--do_train", "--do_lower_case", "--data_dir", data_dir,
            "--max_seq_length", str(LENGTH), "--per_gpu_train_batch_size", "32",
            "--learning_rate", "1e-4", "--num_train_epochs", str(epochs),
            "--logging_steps", "0", "--save_steps", "0", "--output_dir", work_dir,
            "--overwrite_output_dir", "--allow_collapsed"]  # the demo warns and goes on
    task = get_task("sst-2")
    pipeline.run(cli.settings(argv))
    model = pipeline.load_for_eval(work_dir, task)
    engine = EarlyExitEngine(model)
    arrays, _ = load_split(task, data_dir, "dev", load_tokenizer(work_dir), LENGTH)
    layer_logits = np.concatenate(map_batches(engine.all_layers, arrays, 64,
                                              progress="scoring every internal classifier"), axis=1)
    results = {t: simulate(layer_logits, ExitRule(t)) for t in range(model.num_layers)}
    accuracy = {t: compute_metrics(task, np.argmax(r.logits, -1), arrays["labels"])["acc"]
                for t, r in results.items()}
    patiences = range(1, model.num_layers)
    chosen = next((t for t in patiences if accuracy[t] >= accuracy[0] - 0.01),
                  max(patiences, key=lambda t: (accuracy[t], -t)))
    stats = exit_statistics(model.config, results[chosen].exit_layers, real_lengths(arrays),
                            model.num_labels)
    timed = {key: value[:TIMED_EXAMPLES] for key, value in arrays.items()}
    rows, _ = benchmark.run_sides(speed.sides(engine, timed, 1, {chosen: ExitRule(chosen)}),
                                  repeats=3, references=benchmark.REFERENCES,
                                  headline="unpadded")
    return {"method": f"PABEE (patience {chosen})", "dev_metric_name": "acc",
            "dev_metric": accuracy[chosen], "flops_speedup": stats["flops_ratio"],
            "measured_speedup": benchmark.row_of(rows, speed.side_name(1, chosen))["speedup"],
            "speedup_vs_padded": benchmark.row_of(
                rows, speed.side_name(1, chosen))["speedup_vs_padded"],
            "notes": (f"avg exit layer {stats['avg_exit_layer']:.2f} of {model.num_layers} "
                      f"(L/X {stats['layer_ratio']:.2f}x); last layer alone acc "
                      f"{accuracy[0]:.3f}; {epochs} epoch(s) on the 2,000-row sample; "
                      f"latency at batch 1 on {TIMED_EXAMPLES} unpadded dev sentences against the "
                      "dense model on the same texts")}
