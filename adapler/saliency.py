"""Gradient x input saliencies, the targets of the Contribution Predictors (the original's
tools/store_saliencies.py).

For each example: the gradient of the gold label's logit with respect to the embedding-block
output e (word + position + segment embeddings after LayerNorm), times e, reduced with the L2 norm
over the hidden size, zero on pads, no normalisation:

    s_j = || d z_y / d e_j  (*)  e_j ||_2

computed with removal switched off (eta = 1e-10, lambda = 1e10) and dropout off. Examples are
independent, so one backward pass of the summed gold logits gives every row (the original built a
full batch x labels x length x hidden Jacobian).

Files: `sal_mat_wCLSSEPnoZ_<epoch>.npy` (float32, N x MAX_LENGTH, rows in the order of the split
as the pipeline feeds it) plus `sal_mat_wCLSSEPnoZ_<epoch>.ids.json` holding the example ids,
so training pairs every example with its own row (the original relied on positions only), and
the stage-A checkpoint the saliencies were computed from with its fingerprint
(common.checkpoints.fingerprint): stage C refuses saliencies of a checkpoint that was trained
again since (`check_saliency_sources`).
"""
import json
import os

import numpy as np
import tensorflow as tf
from keras import ops

from adapler.data import trim
from common.files import atomic_write, write_json
from adapler.soft_removal import NO_REMOVAL_ETA
from common.errors import UserError
from common.training import predict

SALIENCY_SHARPNESS = 1e10
GOLD = "gold_labels"  # the labels travel inside the features through `predict`


def saliency_step(model, features):
    """(batch, length) saliencies of one batch; `features` holds the gold labels under GOLD."""
    state = model.bert.start(features)
    with tf.GradientTape() as tape:
        tape.watch(state.hidden)
        logits = model.run(state, eta=NO_REMOVAL_ETA, sharpness=SALIENCY_SHARPNESS)["logits"]
        gold = tf.cast(features[GOLD], tf.int32) if model.num_labels > 1 else ops.zeros_like(
            features[GOLD], dtype="int32")
        total = ops.sum(ops.take_along_axis(logits, gold[:, None], axis=1))
    gradient = tape.gradient(total, state.hidden)
    product = ops.cast(gradient, "float32") * ops.cast(state.hidden, "float32")  # float32 norms
    return ops.sqrt(ops.sum(ops.square(product), axis=-1)) * ops.cast(state.mask, "float32")


def compute_saliencies(model, arrays, batch_size=4):
    """Saliencies (N, length) of labelled `arrays` for an AdapLeR-shaped `model`."""
    if "labels" not in arrays:
        raise UserError("saliencies need gold labels; this split is unlabelled")
    features = trim({key: arrays[key] for key in ("input_ids", "token_type_ids",
                                                  "attention_mask")})
    features[GOLD] = np.asarray(arrays["labels"])
    values = predict(model, features, batch_size, call=saliency_step,
                     dynamic=False, progress="saliencies").astype(np.float32)
    return np.pad(values, ((0, 0), (0, arrays["input_ids"].shape[1] - values.shape[1])))


def ids_file(path):
    return path[: -len(".npy")] + ".ids.json"


def write_saliencies(path, matrix, ids, meta):
    """Write the matrix and its ids (+ `meta`: task, split, max_length, seed, checkpoint)."""
    def save_matrix(tmp):
        with open(tmp, "wb") as handle:
            np.save(handle, np.asarray(matrix, np.float32))

    write_json(ids_file(path), {**meta, "ids": [str(i) for i in ids]})
    atomic_write(path, save_matrix)


def check_saliency_sources(paths, warn=print):
    """Refuse (one UserError) saliency files whose stage-A checkpoint is no longer the one they
    were computed from: it was trained again, removed, or the files predate the record. Files
    of the original code (no .ids.json) carry nothing to check: one warning line each."""
    from common.checkpoints import fingerprint

    for path in paths:
        if not os.path.isfile(ids_file(path)):
            warn(f"warning: {path} has no {os.path.basename(ids_file(path))}, so nothing tells "
                 "which stage-A checkpoint it was computed from; using it as it is")
            continue
        try:
            with open(ids_file(path), encoding="utf-8") as handle:
                meta = json.load(handle)
            folder, recorded = meta.get("checkpoint"), meta.get("checkpoint_fingerprint")
        except (OSError, ValueError, AttributeError) as err:
            raise UserError(f"cannot read {ids_file(path)}: {err}") from None
        recompute = ("recompute them with python ./tools/store_saliencies.py (the same --TASK, "
                     "--DATA_SEED and --MAX_LENGTH, plus --OVERWRITE_OUTPUT_DIR)")
        if not folder or not recorded:
            raise UserError(f"{path} does not record the fingerprint of the stage-A checkpoint "
                            f"it was computed from (an older version wrote it); {recompute}")
        if not os.path.exists(folder):
            raise UserError(f"{path} was computed from {folder}, which is gone; {recompute}")
        if fingerprint(folder) != recorded:
            raise UserError(f"{path} was computed from an earlier stage-A run: {folder} has been "
                            f"trained again since (its weights differ); {recompute}")


def _fix(what):
    return (f"{what}; rerun tools/store_saliencies.py with the same --TASK, --DATA_SEED, "
            "--MAX_LENGTH, --DATA_DIR and --MAX_TRAIN_EXAMPLES (or none) as this stage")


def read_saliencies(paths, ids, max_length):
    """The element-wise mean of the saliency files, one row per id of `ids` (in that order).

    Rows are matched by the stored ids (rows of other examples, e.g. of a larger
    --MAX_TRAIN_EXAMPLES, are left out); a file without ids (written by the original code) must
    have exactly one row per example, in order. A 3-D file (N, k, T) is read at index 0 of its
    middle axis, as the original did."""
    if not paths:
        raise UserError(_fix("no saliency file found"))
    wanted = [str(i) for i in ids]
    total = None
    for path in paths:
        try:
            matrix = np.load(path)
        except (OSError, ValueError) as err:
            raise UserError(f"cannot read saliency file {path}: {err}") from None
        if matrix.ndim == 3:
            matrix = matrix[:, 0]
        if matrix.ndim != 2 or matrix.shape[1] != max_length:
            raise UserError(_fix(f"saliency file {path} has shape {matrix.shape} but MAX_LENGTH "
                                 f"is {max_length}"))
        if os.path.isfile(ids_file(path)):
            with open(ids_file(path), encoding="utf-8") as handle:
                stored = json.load(handle)["ids"]
            if len(stored) != len(matrix):
                raise UserError(_fix(f"{ids_file(path)} lists {len(stored)} ids for "
                                     f"{len(matrix)} rows"))
            row_of = {key: row for row, key in enumerate(stored)}
            missing = [key for key in wanted if key not in row_of]
            if missing:  # extra rows (saliencies of a larger training subset) are left out
                raise UserError(_fix(f"saliency file {path} has no row for {len(missing)} of "
                                     f"the {len(wanted)} examples (ids {', '.join(missing[:3])}"
                                     f"{', ...' if len(missing) > 3 else ''})"))
            matrix = matrix[[row_of[key] for key in wanted]]
        elif len(matrix) != len(wanted):
            raise UserError(_fix(f"saliency file {path} has {len(matrix)} rows but the split has "
                                 f"{len(wanted)} examples"))
        total = matrix.astype(np.float64) if total is None else total + matrix
    return (total / len(paths)).astype(np.float32)
