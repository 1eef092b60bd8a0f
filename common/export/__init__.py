"""Export a checkpoint of the toolkit for serving: a TensorFlow SavedModel whose signatures take
strings (WordPiece in the graph) or token ids and run the method's fast path in the graph
(`savedmodel`), or an ONNX model of the token-id signature (`onnx`).

`export(model_path, output_dir, ...)` loads the checkpoint through `common.methods.load_model`
(the method's inference knobs applied) and asks the method's `serving` module for its graph
forward pass: `forward(model, source)` -> a function of the int32 feature dict returning
`logits` and the per-example costs the method reports, and `setting(model, source)` -> the
method's setting for the metadata. The vanilla classifier is built here. The output folder is
written beside itself and renamed into place at the end.
"""
import json
import os
import shutil
import sys
import tempfile
from importlib import metadata as package_metadata

from common import methods
from common.errors import UserError
from common.files import temporary_name

FORMATS = ("savedmodel", "onnx")
METADATA = "bert_speedup.json"  # the metadata asset (common.export.savedmodel.METADATA)
TOKEN_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def toolkit_version():
    try:
        return package_metadata.version("bert-speedup")
    except package_metadata.PackageNotFoundError:
        return "unknown"


def vanilla_forward(model):
    return lambda features: {"logits": model(features, training=False)}


def serving_parts(name, model, source):
    """(forward, setting) of a loaded model of method `name`."""
    if name == methods.VANILLA:
        return vanilla_forward(model), {}
    serving = methods.module(name, "serving")
    return serving.forward(model, source), serving.setting(model, source)


def read_metadata(folder):
    """The metadata of an exported folder (plain JSON: no TensorFlow needed)."""
    with open(os.path.join(folder, "assets", METADATA), encoding="utf-8") as handle:
        return json.load(handle)


def labels_of(sidecar):
    """Class names of a checkpoint (None for regression): its task's, readable where the task
    has them (SST-2's negative / positive), as the Python API names them."""
    from common.owndata import checkpoint_task

    task = checkpoint_task(sidecar)
    if task.is_regression:
        return None
    return [str(label) for label in (task.label_names or task.labels)]


def check_output(output_dir, overwrite):
    """An output folder we may write: absent, empty, or (with `overwrite`) a previous export."""
    from common.validation import check_output_dir

    if os.path.isdir(output_dir) and os.listdir(output_dir) and overwrite:
        if not os.path.isfile(os.path.join(output_dir, "assets", METADATA)):
            raise UserError(f"{output_dir} is not empty and holds no earlier export; "
                            "--overwrite_output_dir replaces only an export folder: pick "
                            "an empty or new folder")
    check_output_dir(output_dir, overwrite)


def build_module(model_path, knobs, precision="fp32", warn=None):
    """(ServingModule, metadata, the temporary folder of its metadata file) for a checkpoint."""
    import keras

    from common.checkpoints import resolve_source
    from common.export.savedmodel import ServingModule
    from common.export.tokenizer import from_tokenizer, runs_in_graph
    from common.precision import set_precision
    from common.owndata import checkpoint_task
    from common.tokenization import load_tokenizer
    from common.validation import check_model_files

    warn = warn or (lambda line: print(line, file=sys.stderr))
    if not os.path.exists(model_path):
        raise UserError(f"model folder not found: {model_path}; pass a checkpoint folder "
                        "written by the toolkit")
    check_model_files(model_path)
    source = resolve_source(model_path)
    sidecar = source.sidecar
    if source.kind != "own" or not sidecar.get("task"):
        raise UserError(f"{model_path} is not a fine-tuned checkpoint of the toolkit (no task "
                        "in its config.json); fine-tune it first (bert-speedup-finetune)")
    name = methods.method_of(sidecar)
    methods.check_knobs(name, {k: v for k, v in knobs.items() if v is not None})
    collapsed = (sidecar.get("training") or {}).get("collapsed")
    if collapsed:
        warn(f"warning: {model_path} predicted one class on all of its dev set "
             f"({collapsed.get('prediction', '?')}); exporting it anyway")
    policy = keras.mixed_precision.global_policy()
    set_precision(precision)
    try:
        model, source = methods.load_model(model_path, **knobs)
    finally:  # the model keeps its policy; the process gets its own back
        keras.mixed_precision.set_global_policy(policy)
    forward, setting = serving_parts(name, model, source)
    task = checkpoint_task(sidecar)
    labels = labels_of(sidecar)
    max_length = int(sidecar["max_length"])
    lower_case = bool(sidecar.get("lower_case", True))
    tokenizer = load_tokenizer(source.folder, cased=not lower_case)
    strings = runs_in_graph(tokenizer)
    if not strings:
        warn(f"note: {model_path}'s tokenizer ({type(tokenizer.backend_tokenizer.model).__name__})"
             " cannot run in the graph (tensorflow-text has WordPiece only); the export takes "
             "token ids: serving_default is token_ids, tokenize with the checkpoint's "
             "tokenizer files")
    text_inputs = ["text", "text_pair"] if task.is_pair else ["text"]
    meta = {"format": "bert-speedup-export", "toolkit_version": toolkit_version(),
            "method": name, "setting": setting, "task": task.name,
            "own_data": sidecar.get("own_data"),
            "pair": task.is_pair, "labels": labels, "max_length": max_length,
            "lower_case": lower_case, "precision": precision,
            "backbone": sidecar.get("backbone"),
            "signatures": ({"serving_default": text_inputs, "tokenize": text_inputs}
                           if strings else {"serving_default": list(TOKEN_INPUTS)})
            | {"token_ids": list(TOKEN_INPUTS)}}
    staging = tempfile.mkdtemp(prefix="bert-speedup-export-")
    path = os.path.join(staging, METADATA)
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(meta, handle, indent=1)
    in_graph = from_tokenizer(tokenizer, lower_case, max_length) if strings else None
    module = ServingModule(in_graph, forward, model.variables, labels, task.is_pair, path)
    return module, meta, staging


def export(model_path, output_dir, knobs=None, precision="fp32", output_format="savedmodel",
           overwrite=False, warn=None):
    """Export `model_path` into `output_dir`; returns the metadata written."""
    from common.export.savedmodel import save

    if output_format not in FORMATS:
        raise UserError(f"unknown format {output_format!r}; use one of {', '.join(FORMATS)}")
    check_output(output_dir, overwrite)
    if output_format == "onnx":
        from common.export.onnx import require
        require()  # before the work: a missing optional package is the first thing said
    module, meta, metadata_dir = build_module(
        model_path, dict(knobs or {}), precision, warn)
    staged = temporary_name(output_dir)
    try:
        save(staged, module)
        if output_format == "onnx":
            from common.export.onnx import ConversionError, convert
            try:
                convert(module, staged, meta, output_dir)
            except ConversionError:
                _replace(staged, output_dir)  # the SavedModel stands; the error points to it
                raise
        _replace(staged, output_dir)
    finally:
        shutil.rmtree(staged, ignore_errors=True)
        shutil.rmtree(metadata_dir, ignore_errors=True)
    return meta


def _replace(staged, output_dir):
    """Rename the finished `staged` folder to `output_dir` (an earlier export there goes)."""
    if os.path.isdir(output_dir):
        old = temporary_name(output_dir)
        os.rename(output_dir, old)
        os.rename(staged, output_dir)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.makedirs(os.path.dirname(os.path.abspath(output_dir)), exist_ok=True)
        os.rename(staged, output_dir)
