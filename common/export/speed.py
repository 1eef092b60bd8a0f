"""Timing exported models on the harness (`common.benchmark`): strings in, the same requests.

Every SavedModel is timed through its `serving_default` signature on the same requests (the
texts in dataset order, `batch_size` per request, each padded in the graph to its longest text),
interleaved by the harness; the reference is the exported dense model. Two more sides price the
in-graph tokenization: the dense export's `tokenize` signature alone, and its `token_ids`
signature on the ids `tokenize` gave (the model without the tokenizer). ONNX models (`onnx`:
{name: model.onnx}) run in ONNX Runtime on those ids, in a worker process (`common.benchmark.
Remote`), beside `dense-ids-in`. `measure` is `tools/benchmark_export.py`'s run on a task's texts.
"""
import numpy as np

from common.benchmark import Remote, Side, blocking, record, run_sides
from common.errors import UserError
from common.export import read_metadata

REFERENCE = "dense"
TOKENIZE, IDS_IN = "dense-tokenize-only", "dense-ids-in"


def requests(texts, pairs, batch_size):
    """The requests: {'text'[, 'text_pair']} string tensors of `batch_size` texts each."""
    import tensorflow as tf

    out = []
    for start in range(0, len(texts), batch_size):
        request = {"text": tf.constant(texts[start:start + batch_size])}
        if pairs is not None:
            request["text_pair"] = tf.constant(pairs[start:start + batch_size])
        out.append(request)
    return out


def export_sides(dense, exported, texts, pairs, batch_size):
    """The sides: `dense` (folder) under REFERENCE, each of `exported` ({name: folder}), and the
    tokenization pair."""
    import tensorflow as tf
    import tensorflow_text  # noqa: F401  registers the in-graph tokenizer's ops

    items = requests(texts, pairs, batch_size)
    count = len(texts)
    sides, keep = [], []
    for name, folder in {REFERENCE: dense, **exported}.items():
        loaded = tf.saved_model.load(folder)
        keep.append(loaded)  # the signatures need their object alive
        serve = loaded.signatures["serving_default"]
        method = read_metadata(folder)["method"]
        sides.append(Side(name, blocking(lambda request, serve=serve: serve(**request)), items,
                          examples=count, note=f"{name}: {method} export in {folder}"))
    loaded = keep[0]
    tokenize, by_ids = loaded.signatures["tokenize"], loaded.signatures["token_ids"]
    ids = [{key: value for key, value in tokenize(**request).items()} for request in items]
    sides.append(Side(TOKENIZE, blocking(lambda request: tokenize(**request)), items,
                      examples=count))
    sides.append(Side(IDS_IN, blocking(lambda features: by_ids(**features)), ids,
                      examples=count))
    return sides, keep, ids


def onnx_sides(name, path, items, examples):
    """ONNX Runtime running `path` on the token-id `items` (built in a worker process)."""
    import onnxruntime

    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    return [Side(name, lambda features: session.run(None, features), items, examples=examples,
                 note=f"{name}: ONNX Runtime {onnxruntime.__version__}, {path}, token ids in")]


def check_labels(outputs):
    """The exported sides' predicted labels on the first request, side by side (a report line)."""
    labels = {name: np.asarray(out["label_id"]).tolist() for name, out in outputs.items()
              if isinstance(out, dict) and "label_id" in out}
    return labels


def run(dense, exported, texts, pairs, batch_sizes, repeats=5, warmup=1, log=print, onnx=None):
    """One group of rows per batch size (speed-up vs the dense export)."""
    groups = []
    for size in batch_sizes:
        sides, keep, ids = export_sides(dense, exported, texts, pairs, size)
        items = [{key: value.numpy() for key, value in features.items()} for features in ids]
        remote = [Remote("common.export.speed:onnx_sides", {
            "name": name, "path": path, "items": items, "examples": len(texts)})
            for name, path in (onnx or {}).items()]
        rows, measurement = run_sides(sides, remote, repeats=repeats, warmup=warmup,
                                      references={"dense": [REFERENCE]}, headline="dense",
                                      check=check_labels)
        for row in rows:
            row["batch_size"] = size
        tokenize = next(row for row in rows if row["side"] == TOKENIZE)
        measurement["notes"].append(
            f"in-graph tokenization: {tokenize['median_ms'] / len(sides[0].items):.3f} ms per "
            f"request of {size} (the `tokenize` signature alone)")
        groups.append({"batch_size": size, "environment": measurement["environment"],
                       "notes": measurement["notes"], "rows": rows,
                       "first_request_labels": measurement["check"]})
        log(f"timed batch size {size}: " + ", ".join(
            f"{row['side']} {row['median_ms']:.1f} ms" for row in rows))
        del keep
    return groups


COLUMNS = [("batch_size", "batch"), ("side", "side"), ("median_ms", "ms per pass"),
           ("ms_per_example", "ms / example"), ("speedup_vs_dense", "vs dense export"),
           ("paired_speedup_vs_dense", "paired vs dense export")]


def measure(args, command, models, onnx, batch_sizes):
    """`tools/benchmark_export.py`'s run: the dense export and `models` ({name: export folder};
    `onnx`: {name: model.onnx}) on the --task's texts at each of `batch_sizes`; the JSON
    record."""
    from common.data import default_data_dir, read_split

    for folder in [args.dense, *models.values()]:
        try:
            read_metadata(folder)
        except OSError:
            raise UserError(f"{folder} is not a folder written by bert-speedup-export; "
                            "export the model first") from None
    task = args.task or read_metadata(args.dense)["task"]
    examples = read_split(task, args.data_dir or default_data_dir(), args.split)
    count = args.examples or len(examples)
    pairs = None if examples.text_b is None else examples.text_b[:count]
    groups = run(args.dense, models, examples.text_a[:count], pairs, batch_sizes,
                        args.repeats, args.warmup, onnx=onnx)
    return record(command, {"task": task, "split": args.split, "examples": count,
                            "dense": args.dense, "models": models, "onnx": onnx}, groups)
