"""PoWER-BERT's row of the README demo: from a fine-tuned MiniLM SST-2 checkpoint, a short
configuration search and re-training, then the dev accuracy and the FLOPs and measured speed-ups
(against the dense model on the same length-sorted, dynamically padded batches).

To stay within a couple of CPU minutes, both stages train on the first TRAIN_ROWS sentences of
the training file; with so few steps the retention parameters need a large LR_SOFT_EXTRACT to
travel at all (spec §10 item 10).
"""
import os

from common import benchmark
from common.data import load_split
from common.checkpoints import load_backbone_weights, resolve_source
from common.data import real_lengths
from common.tasks import get_task
from common.tokenization import load_tokenizer
from powerbert import pipeline, speed
from powerbert.retention import format_retention

MAX_LENGTH = 64
TRAIN_ROWS = 640
BATCH_SIZE = 32
LR_BERT = 5e-5
LR_SOFT_EXTRACT = 0.1
LAMBDA = 0.0005
TIMING_ROWS = 128


def demo_row(finetuned_dir, data_dir, work_dir, epochs=1):
    """Run stages 2 and 3 from `finetuned_dir` (our SST-2 checkpoint) and report one row."""
    task = get_task("sst-2")
    source = resolve_source(finetuned_dir)
    tokenizer = load_tokenizer(source.folder)
    train, _ = load_split(task, data_dir, "train", tokenizer, MAX_LENGTH, limit=TRAIN_ROWS)
    dev, _ = load_split(task, data_dir, "dev", tokenizer, MAX_LENGTH)
    os.makedirs(work_dir, exist_ok=True)
    settings = (f"demo_row(finetuned_dir={finetuned_dir!r}, train rows={TRAIN_ROWS}, "
                f"epochs={epochs}, LR_BERT={LR_BERT}, LR_SOFT_EXTRACT={LR_SOFT_EXTRACT}, "
                f"LAMBDA={LAMBDA})")
    run = pipeline.Run(task=task, max_length=MAX_LENGTH, config=source.config,
                       tokenizer=tokenizer, output_dir=work_dir, batch_size=BATCH_SIZE,
                       epochs=epochs, log=pipeline.RunLog(work_dir, settings))
    vanilla = pipeline.build_plain(source.config, task.num_labels, MAX_LENGTH)
    load_backbone_weights(vanilla, source)
    finetuned = pipeline.adopt_finetuned(run, vanilla, dev, finetuned_dir,
                                         title="Fine-tuned model (the demo's stage 1)")
    searched, retention, _ = pipeline.configuration_search_stage(
        run, finetuned, train, dev, lam=LAMBDA, lr_bert=LR_BERT, lr_soft_extract=LR_SOFT_EXTRACT)
    retrained, metrics = pipeline.retrain_stage(run, searched, retention, train, dev, LR_BERT)
    model = pipeline.build_powerbert(source.config, task.num_labels, MAX_LENGTH,
                                     retention=retention)
    pipeline.load_stage(model, retrained)
    timed = {k: v[:TIMING_ROWS] for k, v in dev.items() if k != "labels"}
    rows, _ = benchmark.run_sides(speed.sides(vanilla, model, timed, BATCH_SIZE), repeats=5,
                                  references=benchmark.REFERENCES, headline="dynamic")
    vanilla_flops, method_flops = speed.flops_on_lengths(source.config, retention,
                                                         real_lengths(dev), task.num_labels)
    fastest = max((benchmark.row_of(rows, name) for name in ("powerbert-dynamic",
                                                              "powerbert-dynamic-graph")),
                  key=lambda row: row["speedup"])  # XLA or one graph, as the baseline
    return {"method": "PoWER-BERT", "dev_metric_name": task.metric,
            "dev_metric": metrics[task.metric], "flops_speedup": vanilla_flops / method_flops,
            "measured_speedup": fastest["speedup"],
            "speedup_vs_padded": fastest["speedup_vs_padded"],
            "notes": (f"retention {format_retention(retention)}; search + re-train "
                      f"{epochs} epoch(s) each on {TRAIN_ROWS} rows; timed on {TIMING_ROWS} dev "
                      f"rows in length-sorted dynamic batches of {BATCH_SIZE} against the dense "
                      "model on the same batches; FLOPs on the real lengths")}
