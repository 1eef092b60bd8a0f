"""The Python API: load any model of the toolkit, predict texts, evaluate a file.

    from common.api import load

    model = load("runs/reviews")                     # any checkpoint folder of the toolkit
    model.predict(["a great film", "an awful plot"])
    # [{"label": "positive", "probabilities": {"negative": 0.03, "positive": 0.97}}, ...]
    model.evaluate("dev.csv")                         # {"acc": ..., "f1": ..., ...}

`load(path, **knobs)` takes the method's inference knobs (`common.methods.knobs`: PoWER-BERT
`length_scaled`, AdapLeR `eta_offset`, PABEE `patience`). Each prediction carries the method's
per-example cost: `layers_run` (early exit) or `tokens_kept` (one count per layer), from the
method's `serving` module: the graph forward pass `bert-speedup-export` saves, its fast path. Texts run in length-sorted,
dynamically padded batches (`common.data.map_length_sorted`); results come back in input order.

A backend turns texts into logits and costs: `CheckpointBackend` for the toolkit's checkpoint
folders, `SavedModelBackend` for the folders of `bert-speedup-export` (its tokenizer and fast
path inside the graph; only TensorFlow and tensorflow-text needed).
"""
import os

import numpy as np

from common.errors import UserError


class CheckpointBackend:
    """A checkpoint folder of the toolkit (any method, vanilla included)."""

    def __init__(self, path, **knobs):
        from common import methods
        from common.checkpoints import resolve_source
        from common.owndata import checkpoint_task
        from common.tokenization import load_tokenizer

        sidecar = resolve_source(path).sidecar
        if not sidecar or not sidecar.get("task"):
            raise UserError(f"{path} is not a trained checkpoint of this toolkit (no task in its "
                            "config.json); fine-tune it first (bert-speedup-finetune)")
        model, source = methods.load_model(path, **knobs)
        self.path, self.method = path, methods.method_of(sidecar)
        self.task = checkpoint_task(sidecar)
        self.max_length = int(sidecar["max_length"])
        self.tokenizer = load_tokenizer(source.folder, cased=not sidecar.get("lower_case", True))
        self.run = _runner(self.method, model, source)

    def outputs(self, texts, text_pairs, batch_size):
        """{"logits": (n, C), cost arrays...} of the texts, in their order."""
        from common.data import Examples, encode_examples, map_length_sorted

        examples = Examples(texts, text_pairs, None, list(range(len(texts))))
        arrays = encode_examples(self.tokenizer, examples, self.max_length, log=None)
        return map_length_sorted(self.run, arrays, batch_size)


def _runner(method, model, source):
    """The method's graph forward pass (the one export saves), compiled: one batch of
    features -> numpy `logits` and costs."""
    from common.export import serving_parts
    from common.inference import compile_forward

    call = compile_forward(serving_parts(method, model, source)[0])
    return lambda features: {key: np.asarray(value) for key, value in call(features).items()}


class SavedModelBackend:
    """A folder written by `bert-speedup-export`: its string signature (the tokenizer and the
    method's fast path in the graph). Texts run in batches sorted by their length in
    characters (the word pieces are only known inside the graph)."""

    def __init__(self, path, **knobs):
        import tensorflow as tf
        import tensorflow_text  # noqa: F401  registers the in-graph tokenizer's ops

        from common.export import read_metadata
        from common.owndata import checkpoint_task

        meta = read_metadata(path)
        given = sorted(key for key, value in knobs.items() if value is not None)
        if given:
            raise UserError(f"{path} is an exported model whose settings were fixed at export "
                            f"({meta['setting']}); export the checkpoint again with the "
                            f"{', '.join(given)} you want")
        if "text" not in meta["signatures"]["serving_default"]:
            raise UserError(f"{path} was exported with token ids in only (its tokenizer cannot "
                            "run in the graph); load the checkpoint folder it was exported from")
        self.path, self.method = path, meta["method"]
        self.task = checkpoint_task({"task": meta["task"], "own_data": meta.get("own_data")})
        self.serve = tf.saved_model.load(path).signatures["serving_default"]
        self.tf = tf

    def outputs(self, texts, text_pairs, batch_size):
        """{"logits": (n, C), cost arrays...} of the texts, in their order."""
        sizes = [len(t) + (len(text_pairs[i]) if text_pairs else 0) for i, t in enumerate(texts)]
        order = np.argsort(sizes, kind="stable")
        parts = []
        for start in range(0, len(texts), batch_size):
            rows_ = order[start:start + batch_size]
            request = {"text": self.tf.constant([texts[i] for i in rows_])}
            if text_pairs is not None:
                request["text_pair"] = self.tf.constant([text_pairs[i] for i in rows_])
            result = self.serve(**request)
            parts.append({key: value.numpy() for key, value in result.items()
                          if key in ("logits", "layers_run", "tokens_kept")})
        outputs = {key: np.concatenate([part[key] for part in parts]) for key in parts[0]}
        restored = np.empty_like(order)
        restored[order] = np.arange(len(order))
        return {key: value[restored] for key, value in outputs.items()}


def _is_saved_model(path):
    return os.path.isfile(os.path.join(path, "saved_model.pb"))


# (detect(path), backend class): the first that detects the path loads it.
BACKENDS = [(_is_saved_model, SavedModelBackend),
            (lambda path: True, CheckpointBackend)]


def load(path, **knobs):
    """The model at `path` (a checkpoint folder or its *.weights.h5) with the method's inference
    `knobs`, ready to `predict` and `evaluate`."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise UserError(f"model not found: {path}; pass a checkpoint folder of this toolkit")
    backend = next(factory for detect, factory in BACKENDS if detect(path))
    return Model(backend(path, **knobs))


def _texts(values, what):
    if isinstance(values, str):
        raise UserError(f"{what} must be a list of strings, not one string; wrap it in a list")
    values = list(values)
    bad = next((i for i, v in enumerate(values) if not isinstance(v, str)), None)
    if bad is not None:
        raise UserError(f"{what}[{bad}] is {type(values[bad]).__name__}, not a string")
    return values


class Model:
    """A loaded model: `predict(texts)` and `evaluate(file)`."""

    def __init__(self, backend):
        self.backend = backend

    @property
    def task(self):
        return self.backend.task

    @property
    def method(self):
        return self.backend.method

    @property
    def labels(self):
        """Class names in id order (readable names where the task has them); None: regression."""
        task = self.task
        return None if task.is_regression else tuple(task.label_names or task.labels)

    def predict(self, texts, text_pairs=None, batch_size=32):
        """One dict per text, in order: `label` (the class name; the score for regression),
        `probabilities` ({name: p}; absent for regression) and the method's cost."""
        if batch_size < 1:
            raise UserError(f"batch_size must be >= 1, got {batch_size}")
        texts = _texts(texts, "texts")
        if text_pairs is not None:
            text_pairs = _texts(text_pairs, "text_pairs")
            if len(text_pairs) != len(texts):
                raise UserError(f"{len(texts)} texts but {len(text_pairs)} text_pairs; give one "
                                "pair per text")
        if not texts:
            return []
        outputs = self.backend.outputs(texts, text_pairs, batch_size)
        return rows(outputs, self.labels)

    def evaluate(self, file, text_column=None, text_pair_column=None, label_column=None,
                 batch_size=32):
        """The task's metrics on a labelled file (CSV, TSV, JSON lines, parquet; the training
        file's columns unless named), plus the mean cost per example and the example count."""
        from common.metrics import compute_metrics
        from common.owndata import own_task, read_own_split
        from common.training import logits_to_predictions

        task = own_task({"dev": os.fspath(file)}, text_column, text_pair_column, label_column,
                        trained=self.task)
        examples = read_own_split(task, None, "dev")
        outputs = self.backend.outputs(examples.text_a, examples.text_b, batch_size)
        logits = outputs.pop("logits")
        metrics = compute_metrics(task, logits_to_predictions(logits, task.num_labels),
                                  examples.labels)
        metrics.update({key: float(np.mean(value)) for key, value in outputs.items()})
        metrics["examples"] = len(examples)
        return metrics


def rows(outputs, labels):
    """Per-example dicts from batched outputs (`logits` + cost arrays)."""
    logits = np.asarray(outputs["logits"], np.float64)
    costs = {key: np.asarray(value) for key, value in outputs.items() if key != "logits"}
    if labels is None:
        results = [{"label": float(row[0])} for row in logits]
    else:
        shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
        probabilities = shifted / shifted.sum(axis=1, keepdims=True)
        results = [{"label": labels[int(np.argmax(p))],
                    "probabilities": {name: float(v) for name, v in zip(labels, p)}}
                   for p in probabilities]
    for key, values in costs.items():
        for result, value in zip(results, values):
            result[key] = value.tolist() if np.ndim(value) else int(value)
    return results
