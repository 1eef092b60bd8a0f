"""Checks at the door, shared by every command line: numeric flags, output folders, whether a
checkpoint was trained for the task it is asked to run, whether its dev predictions
collapsed to one class and whether it pools what the method reads. Each failed check is one
UserError that names the flag and the fix; nothing is created or changed before they pass."""
import math
import os
import sys

from common.errors import UserError

MAX_SEED = 2 ** 32 - 1


def _flag(name):
    return name if name.startswith("-") else f"--{name}"


def check_numbers(args, *, rates=(), counts=(), non_negative=(), seeds=(), fractions=(),
                  finite=()):
    """Check attributes of `args` by kind; None (an optional flag not given) passes.

    rates: finite and > 0 (learning rates); counts: integers >= 1 (epochs, batch sizes, steps);
    non_negative: finite and >= 0 (patience, weight decay, loss weights); seeds: integers in
    0..2**32-1; fractions: finite and in [0, 1]; finite: any finite number."""
    for name in rates:
        value = getattr(args, name)
        if value is not None and not (math.isfinite(value) and value > 0):
            raise UserError(f"{_flag(name)} must be a finite number > 0, got {value}")
    for name in counts:
        value = getattr(args, name)
        if value is not None and not value >= 1:
            raise UserError(f"{_flag(name)} must be at least 1, got {value}")
    for name in non_negative:
        value = getattr(args, name)
        if value is not None and not (math.isfinite(value) and value >= 0):
            raise UserError(f"{_flag(name)} must be a finite number >= 0, got {value}")
    for name in seeds:
        value = getattr(args, name)
        if value is not None and not 0 <= value <= MAX_SEED:
            raise UserError(f"{_flag(name)} must be in 0..{MAX_SEED}, got {value}")
    for name in fractions:
        value = getattr(args, name)
        if value is not None and not (math.isfinite(value) and 0 <= value <= 1):
            raise UserError(f"{_flag(name)} must be between 0 and 1, got {value}")
    for name in finite:
        value = getattr(args, name)
        if value is not None and not math.isfinite(value):
            raise UserError(f"{_flag(name)} must be a finite number, got {value}")


def _existing_ancestor(path):
    path = os.path.abspath(path)
    while not os.path.exists(path):
        path = os.path.dirname(path)
    return path


def check_output_dir(path, overwrite=False, flag="--overwrite_output_dir", what="output folder",
                     owned=()):
    """Refuse an output folder that cannot hold our files, or that already holds files, unless
    `overwrite`. `owned`: names inside it that may exist without the flag (a log this run
    appends to). Creates nothing."""
    if os.path.exists(path) and not os.path.isdir(path):
        raise UserError(f"{what} {path} exists and is not a folder; pass a folder path")
    if os.path.isdir(path):
        others = sorted(set(os.listdir(path)) - set(owned))
        if others and not overwrite:
            raise UserError(f"{what} {path} is not empty (holds {others[0]}"
                            f"{' and more' if len(others) > 1 else ''}); pass {flag} to write "
                            "into it, or pick another folder")
    base = _existing_ancestor(path)
    if not os.path.isdir(base):
        raise UserError(f"cannot write to {what} {path}: {base} is a file; pass a folder path")
    if not os.access(base, os.W_OK | os.X_OK):
        raise UserError(f"cannot write to {what} {path}: {base} is not writable; pass a "
                        "writable folder")


def check_new_files(paths, overwrite=False, flag="--overwrite_output_dir"):
    """Refuse to replace existing result files unless `overwrite`; check they can be written."""
    for path in paths:
        if os.path.exists(path) and not overwrite:
            raise UserError(f"{path} already exists; pass {flag} to replace it, or move it away")
        check_output_dir(os.path.dirname(os.path.abspath(path)), overwrite=True)


def check_checkpoint_task(sidecar, task, path, allow_other=False,
                          flag="--allow_other_task"):
    """A checkpoint whose sidecar records another task: refused when the label sets differ,
    and unless `allow_other` when they agree (e.g. MNLI-m and MNLI-mm, SST-2 and IMDB)."""
    from common.tasks import get_task

    trained = (sidecar or {}).get("task")
    if not trained:
        return
    try:
        other = get_task(trained)
    except UserError:
        other = None
    if other is not None and other.name == task.name:
        return
    labels = other.labels if other is not None else None
    if other is None or labels != task.labels or other.num_labels != task.num_labels:
        raise UserError(f"{path} was trained on {trained}, whose labels differ from "
                        f"{task.glue_name}'s; pass a checkpoint trained on {task.glue_name}")
    if not allow_other:
        raise UserError(f"{path} was trained on {other.glue_name}, not {task.glue_name} (same "
                        f"labels); pass {flag} to run it on {task.glue_name} anyway")


def check_not_collapsed(sidecar, path, allow=False, flag="--allow_collapsed",
                        warn=None, retrain="train it again"):
    """Refuse a checkpoint whose sidecar records that its dev predictions were all one class
    (`training.collapsed`, common.metrics.collapse) unless `allow`; then `warn` (default: stderr)
    gets one line instead. Returns the record or None."""
    collapsed = ((sidecar or {}).get("training") or {}).get("collapsed")
    return refuse_collapsed(collapsed, path, allow, flag, warn, retrain)


def refuse_collapsed(collapsed, path, allow=False, flag="--allow_collapsed", warn=None,
                     retrain="train it again"):
    """`check_not_collapsed` for a `collapse` record found by an evaluation (None: fine);
    `retrain` says how to train it again in the command's own terms."""
    from common.metrics import COLLAPSE_CAUSES

    if not isinstance(collapsed, dict):
        return None
    what = (f"{path}: its dev predictions are all {collapsed.get('prediction', 'one class')} "
            f"({collapsed.get('examples', '?')} {collapsed.get('task', '')} examples), so it "
            "reads nothing from its input")
    if not allow:
        raise UserError(f"{what} ({COLLAPSE_CAUSES}); {retrain}, or pass {flag} to "
                        "start from it anyway")
    (warn or (lambda line: print(line, file=sys.stderr)))(
        f"warning: {what}; starting from it anyway ({flag})")
    return collapsed


def check_source_not_collapsed(path, allow=False, flag="--allow_collapsed", warn=None):
    """`check_not_collapsed` for a model named on the command line (a local checkpoint of ours;
    anything else records nothing)."""
    if not os.path.exists(path):
        return None
    from common.checkpoints import resolve_source

    return check_not_collapsed(resolve_source(path).sidecar, path, allow, flag, warn)


def check_cls_pooling(sidecar, path, method):
    """UserError when our checkpoint at `path` was fine-tuned with mean pooling: `method` reads
    the [CLS] vector (its paper's), so its head would read a vector it never saw."""
    if (sidecar or {}).get("pooling") == "mean":
        raise UserError(f"{path} was fine-tuned with --pooling mean, but {method} pools the "
                        "[CLS] vector (the paper's); fine-tune with --pooling cls (the default) "
                        "for it")


def check_model_files(path, config_path=None):
    """Open the weights of a local model source far enough to know they are whole: the HDF5
    superblock of our `*.weights.h5`, the header of each `model.safetensors` against the file's
    size. A truncated or corrupted file is one UserError here, before anything runs."""
    from common.checkpoints import resolve_source

    if not os.path.exists(path) and not path.endswith(".weights.h5"):
        return  # a hub id or a TF1 prefix: its own reader says what is wrong
    source = resolve_source(path, config_path)
    if source.kind == "own":
        _check_h5(source.path)
    elif source.kind == "hf":
        for name in sorted(os.listdir(source.path)):
            if name.endswith(".safetensors"):
                _check_safetensors(os.path.join(source.path, name))


def _damaged(path, reason):
    return UserError(f"{path} is damaged ({reason}); restore it from a complete copy or "
                     "re-save the checkpoint")


def _check_h5(path):
    import h5py

    try:
        with h5py.File(path, "r") as handle:
            handle.visit(lambda name: None)
    except OSError as err:
        raise _damaged(path, _one_line(err)) from None


def _check_safetensors(path):
    import json
    import struct

    size = os.path.getsize(path)
    try:
        with open(path, "rb") as handle:
            (length,) = struct.unpack("<Q", handle.read(8))
            if length > size - 8:
                raise ValueError("header longer than the file")
            header = json.loads(handle.read(length))
        ends = [entry["data_offsets"][1] for key, entry in header.items() if key != "__metadata__"]
    except (struct.error, ValueError, KeyError, TypeError, AttributeError) as err:
        raise _damaged(path, f"unreadable safetensors header: {_one_line(err)}") from None
    if 8 + length + max(ends, default=0) > size:
        raise _damaged(path, f"truncated: {size} bytes, the header needs "
                             f"{8 + length + max(ends)}")


def _one_line(error):
    return str(error).splitlines()[0] if str(error) else type(error).__name__
