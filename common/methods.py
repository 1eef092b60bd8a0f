"""The method contract, and the registry through which every command finds the methods.

A method is one package, registered under the `bert_speedup.methods` entry points of setup.py
(`<name> = <package>`). Every method package holds the same modules:

    settings   frozen dataclasses its command line fills; the pipeline reads only them; and
               `KNOBS`, the inference knobs of its checkpoints: {name: argparse options of the
               `--<name>` flag (type or action, help)} (no TensorFlow: `--help` stays fast)
    model      its seam(s) and classifier factory; `load_model(folder, **knobs)` builds the
               inference model of one of its checkpoints, its knobs applied
    pipeline   its stages
    cli        the paper's command line
    flops      its FLOPs count, built on `common.flops`' per-layer primitives
    speed      its timing sides for `common.benchmark`
    sweep      its operating points for compare
    serving    its fast path as graph code, for export and the Python API: `forward(model,
               source)` (a function of the int32 feature dict -> `logits` and the method's
               per-example costs, `layers_run` / `tokens_kept`) and `setting(model, source)`
               (what the export's metadata records)

`common/` names no method in its code: it asks this registry. A checkpoint's sidecar records the
method that wrote it (`method`); `vanilla` is the plain fine-tuned classifier, which `common/`
builds itself.
"""
import importlib
from importlib import metadata

from common.errors import UserError

GROUP = "bert_speedup.methods"
VANILLA = "vanilla"
MODULES = ("settings", "model", "pipeline", "cli", "flops", "speed", "sweep", "serving")


def _entry_points():
    return {entry.name: entry for entry in metadata.entry_points(group=GROUP)}


def names():
    """The registered methods (sorted by name)."""
    return sorted(_entry_points())


def module(name, part):
    """`part` (one of MODULES) of method `name`, imported."""
    entries = _entry_points()
    if name not in entries:
        raise UserError(f"unknown method {name!r}; the installed methods are "
                        f"{', '.join(entries) or 'none'} (is the toolkit installed with "
                        "`pip install -e .`?)")
    return importlib.import_module(f"{entries[name].value}.{part}")


def method_of(sidecar):
    """The method a checkpoint sidecar records (`vanilla` for foreign checkpoints)."""
    return (sidecar or {}).get("method", VANILLA)


def knobs(name):
    """The inference knobs of method `name` (name -> argparse options), {} for the vanilla
    classifier."""
    return {} if name == VANILLA else module(name, "settings").KNOBS


def add_knob_flags(parser):
    """`--<knob>` for every knob of every registered method, default None (not given)."""
    seen = {}
    for method in names():
        for knob, options in knobs(method).items():
            if knob in seen:
                continue
            seen[knob] = method
            parser.add_argument(f"--{knob}", default=None,
                                **{**options, "help": f"{method}: {options['help']}"})
    return seen


def check_knobs(name, given):
    """One UserError for a knob the method does not have (e.g. a patience on PoWER-BERT)."""
    allowed = knobs(name)
    unknown = sorted(set(given) - set(allowed))
    if unknown:
        have = ", ".join(allowed) or "none"
        raise UserError(f"{', '.join(unknown)} does not apply to a {name} model (its inference "
                        f"settings: {have})")


def load_model(path, **given):
    """(model, source) for any checkpoint of the toolkit: the method its sidecar records, with
    the inference knobs `given` (None values are left at the checkpoint's own)."""
    from common.checkpoints import load_classifier, resolve_source

    source = resolve_source(path)
    name = method_of(source.sidecar)
    given = {key: value for key, value in given.items() if value is not None}
    check_knobs(name, given)
    if name == VANILLA:
        model, source, _ = load_classifier(path)
        return model, source
    return module(name, "model").load_model(source, **given), source
