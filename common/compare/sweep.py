"""What compare asks of a method's `sweep` module, and what it hands it.

A method's `sweep.py` holds `SWEEPS = {name: Sweep(title, groups)}`: usually one entry named
after the method; a method may add combinations with another (PABEE on a PoWER-BERT model is
`pabee.sweep`'s). `groups(context)` returns the `Group`s of the budget `context.budget`:

    Group       one trained model (the `Command`s that train it, each its own command line run
                in a subprocess, flags as in the README) and the settings read from it;
                `load(context)` returns its points
    points      `evaluate()` -> {setting: (metric, FLOPs speed-up on the real lengths, detail)}
                and `sides(batch_size)` -> (the dense baselines of the same backbone and head
                without the method, {setting: [candidate sides]}), built by the method's
                `speed` module for `common.benchmark`; compare counts the fastest candidate of
                each setting

`Budget` holds what every method shares (epochs, training subset, timing); each method keeps
its own grid per budget name (`Budget.name`) in its sweep module. Methods are found through the
registry (`common.methods`).
"""
import dataclasses
import os
import sys
from typing import Callable

from common import methods

SEED = 42  # the data seed and training seed every method's command line gets
EVAL_BATCH = 64


@dataclasses.dataclass(frozen=True)
class Budget:
    name: str  # the key of each method's own grid
    finetune_epochs: int
    finetune_learning_rate: float  # peak AdamW learning rate of the fine-tuning (batch 32)
    method_epochs: int
    train_limit: int | None  # default training subset (None: every row)
    timing_examples: int  # dev rows every point is timed on
    repeats: int
    batch_sizes: tuple  # timed batch sizes unless --batch_sizes says otherwise


# quick (the demo, about 10 minutes on 2 CPU cores with MiniLM): few points, one epoch of each
# method on a 1,000-row training subset, timed at batch 32 only.
BUDGETS = {
    "quick": Budget("quick", finetune_epochs=2, finetune_learning_rate=2e-4, method_epochs=1,
                    train_limit=1000, timing_examples=64, repeats=3, batch_sizes=(32,)),
    "full": Budget("full", finetune_epochs=3, finetune_learning_rate=1e-4, method_epochs=2,
                   train_limit=None, timing_examples=256, repeats=5, batch_sizes=(1, 32)),
}


@dataclasses.dataclass
class Context:
    """What every method needs: the task, the fine-tuned checkpoint and its sidecar, data."""
    task: object  # common.tasks.Task
    finetuned: str  # checkpoint folder of the fine-tuned model
    cased: bool
    config: object  # BertConfig of the backbone
    max_length: int
    train_dir: str  # data folder the trainings read (the training subset, full dev)
    runs: str  # output_dir/runs
    budget: Budget
    dev: dict  # encoded full dev split (labels included)
    finetuned_scores: dict  # dev metrics of the fine-tuned model
    timing: dict  # the first `timing_examples` dev rows
    allow_collapsed: bool = False  # --allow_collapsed: pass it on to every method
    precision: str = "fp32"  # --bf16 / --fp16: every training runs in it
    pooling: str | None = None  # "mean" for a backbone trained with mean pooling, else None
    log: Callable = print

    def collapsed_flag(self, flag):
        """[flag] when the methods may start from a collapsed fine-tuned model, else []."""
        return [flag] if self.allow_collapsed else []

    def data_flags(self, task_flag, data_flag, upper=False):
        """The flags naming the training data on a method's command line (`data_flags`)."""
        return data_flags(self.task, self.train_dir, task_flag, data_flag, upper)

    def precision_flag(self, upper=False):
        """[--bf16] / [--fp16] (upper-case on PoWER-BERT's and AdapLeR's command lines), or []."""
        return precision_flag(self.precision, upper)


@dataclasses.dataclass
class Command:
    """One training run of a method's command line. `folder` holds its DONE marker (and, for
    most methods, its output); `prepare()` runs before it."""
    label: str
    argv: list
    folder: str
    cwd: str | None = None
    prepare: Callable | None = None


@dataclasses.dataclass
class Group:
    method: str
    name: str
    commands: list
    settings: list
    load: Callable  # context -> points


@dataclasses.dataclass(frozen=True)
class Sweep:
    title: str  # as tables show it
    groups: Callable  # context -> [Group]


def sweeps():
    """{name: Sweep} of every registered method (each method's own first, then the
    combinations its sweep module adds)."""
    found = {}
    for name in methods.names():
        found.update(methods.module(name, "sweep").SWEEPS)
    return dict(sorted(found.items(), key=lambda item: ("+" in item[0], item[0])))


def groups(name, context):
    """The training groups of sweep `name`, each with the operating points it sweeps."""
    return sweeps()[name].groups(context)


def data_flags(task, train_dir, task_flag, data_flag, upper=False):
    """[task_flag, the task, data_flag, train_dir] for a GLUE task; for own data (a task read
    from files) its training and dev files, columns, kind and metric, in the command line's
    style (`--TRAIN_FILE` ... when `upper`), so each command builds the same task."""
    from common.owndata import OwnTask

    if not isinstance(task, OwnTask):
        return [task_flag, task.name, data_flag, train_dir]
    spec = task.spec()
    values = {"train_file": task.split_files("train")[0],
              "validation_file": task.split_files("dev")[0], "task_type": spec["kind"],
              **{key: spec[key] for key in ("text_column", "text_pair_column", "label_column",
                                            "metric")}}
    return [item for name, value in values.items() if value is not None
            for item in ("--" + (name.upper() if upper else name), value)]


def precision_flag(precision, upper=False):
    """[--bf16] / [--fp16] for 'bf16' / 'fp16' (upper-case when `upper`), [] for 'fp32'."""
    return [] if precision == "fp32" else [f"--{precision.upper() if upper else precision}"]


# The installed toolkit's root: the scripts of tools/ and run_files/ are run from it, and the
# subprocesses import the same code as this process.
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def python(*args):
    """A command line running this Python on `args`."""
    return [sys.executable, *map(str, args)]


def script(*parts):
    """The path of one of the toolkit's scripts, e.g. script("run_files", "run_glue_w_lr.py")."""
    return os.path.join(REPO, *parts)


def split_sides(all_sides, names):
    """(the dense sides, the sides named in `names`) of a timing module's sides."""
    return ([side for side in all_sides if side.name.startswith("dense")],
            [side for side in all_sides if side.name in names])
