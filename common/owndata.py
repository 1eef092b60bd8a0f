"""Your own data: files (CSV, TSV, JSON lines, parquet) and column names instead of a GLUE folder.

    add_data_flags(parser, upper=False)    --train_file ... (--TRAIN_FILE ... when `upper`)
    apply_data_flags(args, "task", "data_dir")

`apply_data_flags` turns the parsed flags into what every pipeline already reads: a task name
and a data folder. The task is an `OwnTask` built from the files and registered in
`common.tasks` (its `reader` reads the named files, whatever the data folder), so `load_split`,
the metrics and the checkpoints work on it unchanged; the GLUE tasks are untouched.

Column defaults are HF `run_glue`'s: `sentence1` + `sentence2` when the file has them, else
`sentence`, else `text`; the label column is `label`. The label set is the training file's
(sorted: numerically when every label is a number), recorded in each checkpoint as id -> name
(`OwnTask.sidecar_record`). Regression when asked (`--task_type regression`) or when every label is
a number and there are more than `MANY_VALUES` distinct ones. Metrics by kind: accuracy and F1
(binary), accuracy and macro F1 (more classes), Pearson and Spearman (regression); `--metric`
picks the main one (model selection).
"""
import dataclasses
import math
import os

import numpy as np

from common.errors import UserError
from common.tasks import Layout, Task, get_task, register_task

READER = "own_table"
KINDS = ("classification", "regression")
MANY_VALUES = 10  # a numeric label column with more distinct values is a regression target
DEFAULT_MAX_LENGTH = 128  # HF run_glue's max_seq_length
SPLIT_FLAGS = {"train": "train_file", "dev": "validation_file", "test": "test_file"}
COLUMN_FLAGS = ("text_column", "text_pair_column", "label_column")
FLAGS = tuple(SPLIT_FLAGS.values()) + COLUMN_FLAGS + ("task_type", "metric")
ID_COLUMNS = ("id", "idx")


@dataclasses.dataclass(frozen=True)
class OwnTask(Task):
    """A task read from the user's files by column name."""
    text_column: str = "sentence"
    text_pair_column: str | None = None
    label_column: str = "label"

    @property
    def is_pair(self):
        return self.text_pair_column is not None

    def spec(self):
        """What a checkpoint records to rebuild this task (`task_from_spec`)."""
        return {"name": self.name, "kind": "regression" if self.is_regression else
                "classification", "labels": list(self.labels or ()), "metric": self.metric,
                "reported": list(self.reported), "text_column": self.text_column,
                "text_pair_column": self.text_pair_column, "label_column": self.label_column,
                "max_length": self.max_length}

    def sidecar_record(self):
        """The labels, and the spec that rebuilds this task from the checkpoint alone."""
        return {**super().sidecar_record(), "own_data": self.spec()}

    def with_files(self, **paths):
        """This task reading other files: `dev=path` etc."""
        return dataclasses.replace(self, files={split: (path,) for split, path in paths.items()})


# ---------------------------------------------------------------- flags

def add_data_flags(parser, upper=False, test=True):
    """The own-data flags, in the parser's style (`--TRAIN_FILE` when `upper`); `test`: with
    `--test_file` (a command that predicts)."""
    group = parser.add_argument_group("own data (instead of a task folder; see docs/own_data.md)")

    def flag(name, **options):
        group.add_argument("--" + (name.upper() if upper else name), **options)

    flag("train_file", help="training file: .csv, .tsv, .jsonl or .parquet (its labels are the "
                            "label set; default: none, the task folder's train split)")
    flag("validation_file", help="validation (dev) file, same columns (default: none, the task "
                                 "folder's dev split)")
    if test:
        flag("test_file", help="test file, labels not needed (default: none, the task folder's "
                               "test split)")
    flag("text_column", help="the text's column (default: sentence1 if present, else sentence, "
                             "else text)")
    flag("text_pair_column", help="the second text's column for pairs (default: sentence2 when "
                                  "the text column is sentence1)")
    flag("label_column", help="the label's column (default: label)")
    flag("task_type", choices=KINDS, help="default: regression when every label is a number and "
                                          f"there are more than {MANY_VALUES} distinct ones")
    flag("metric", choices=("acc", "f1", "macro_f1", "mcc", "pearson", "spearman"),
         help="the main metric (model selection); default: acc for classes, spearman for "
              "regression")


def _pop(args, name):
    for key in (name, name.upper()):
        if hasattr(args, key):
            value = getattr(args, key)
            delattr(args, key)
            return value
    return None


def apply_data_flags(args, task_attr="task", data_attr="data_dir", checkpoint=None,
                     default_task=None):
    """Consume the own-data flags of `args`: with a file given, register the task, set
    `args.<task_attr>` to its name and `args.<data_attr>` to the first file's folder, and return
    the task; else None (column flags without a file are refused). `checkpoint`: the model path,
    whose recorded labels are used when no training file is given. The flags are removed from
    `args`, so a settings object built from `vars(args)` needs no field for them."""
    flags = {name: _pop(args, name) for name in FLAGS}
    files = {split: flags[flag] for split, flag in SPLIT_FLAGS.items() if flags[flag]}
    upper = task_attr.isupper()  # the command line's flag style
    style = lambda name: "--" + (name.upper() if upper else name)  # noqa: E731
    if not files:
        given = [style(name) for name in FLAGS if flags[name] is not None]
        if given:
            raise UserError(f"{', '.join(given)} need(s) {style('train_file')}, "
                            f"{style('validation_file')} or {style('test_file')}")
        return None
    named = getattr(args, task_attr, None)
    if named not in (None, default_task):
        raise UserError(f"{style(task_attr.lower())} {named} and {style('train_file')} / "
                        f"{style('validation_file')} exclude each other; pass one of them")
    options = {name: flags[name] for name in FLAGS if name not in SPLIT_FLAGS.values()}
    task = own_task(files, **options, checkpoint=checkpoint, style=style)
    setattr(args, task_attr, task.name)
    if getattr(args, data_attr, None) is None:
        setattr(args, data_attr, os.path.dirname(os.path.abspath(next(iter(files.values())))))
    return task


# ---------------------------------------------------------------- building the task

def _table(path):
    """The file's cells (common.data.read_table); an empty file is a UserError."""
    from common.data import read_table

    if not os.path.isfile(path):
        raise UserError(f"data file not found: {path}")
    if os.path.getsize(path) == 0:
        raise UserError(f"{path} is empty; it needs a header row and data rows")
    table = read_table(path)
    if not len(table):
        raise UserError(f"{path} has no data rows (columns: {', '.join(map(str, table.columns))})")
    return table


def _column(table, name, path, flag):
    if name not in table.columns:
        raise UserError(f"{path} has no column '{name}'; its columns are "
                        f"{', '.join(map(str, table.columns))}; pass {flag}")
    return table[name]


def _missing(value):
    return value is None or (isinstance(value, float) and math.isnan(value))


def label_name(value):
    """A label cell as its name: 1, 1.0 and '1' are all '1'."""
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value).strip()


def _number(text):
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _text_columns(columns, text_column, text_pair_column):
    if text_column:
        return text_column, text_pair_column
    if "sentence1" in columns:
        return "sentence1", text_pair_column or ("sentence2" if "sentence2" in columns else None)
    for name in ("sentence", "text"):
        if name in columns:
            return name, text_pair_column
    return None, text_pair_column


def _labels(table, column, path, flag):
    values = _column(table, column, path, flag)
    names = []
    for row, value in enumerate(values):
        text = "" if _missing(value) else label_name(value)
        if not text:
            raise UserError(f"{path} row {row + 1}: no label in column '{column}'; every "
                            "training row needs one")
        names.append(text)
    return names


def _kind_and_labels(names, task_type):
    numbers = [_number(name) for name in names]
    numeric = all(number is not None for number in numbers)
    distinct = sorted(set(names), key=(lambda n: (float(n), n)) if numeric else None)
    if task_type == "regression" and not numeric:
        bad = next(name for name, number in zip(names, numbers) if number is None)
        raise UserError(f"--task_type regression needs numeric labels; found '{bad}'")
    if task_type == "regression" or (task_type is None and numeric
                                     and len(distinct) > MANY_VALUES):
        return "regression", None
    if len(distinct) < 2:
        raise UserError(f"the training file has one label ({distinct[0]}); a classifier needs "
                        "at least two")
    return "classification", tuple(distinct)


def _main_metric(kind, labels, metric):
    if kind == "regression":
        if metric not in (None, "pearson", "spearman"):
            raise UserError(f"--metric {metric} is for classes; a regression task uses pearson "
                            "or spearman")
        return metric or "spearman", ("pearson", "spearman")
    if metric in ("pearson", "spearman"):
        raise UserError(f"--metric {metric} is for regression; pass --task_type regression or "
                        "a classification metric (acc, f1, macro_f1, mcc)")
    binary = len(labels) == 2
    if metric == "f1" and not binary:
        raise UserError(f"--metric f1 is binary F1; with {len(labels)} labels use macro_f1")
    return metric or "acc", ("acc", "f1") if binary else ("acc", "macro_f1")


def _task_name(files):
    """own-<name>: the training (else first) file's stem, or its folder's name when the stem only
    says which split it is (data/reviews/train.csv -> own-reviews)."""
    path = os.path.abspath(files.get("train") or next(iter(files.values())))
    stem = os.path.splitext(os.path.basename(path))[0]
    if stem.lower() in ("train", "training", "dev", "validation", "valid", "test", "data"):
        stem = os.path.basename(os.path.dirname(path)) or stem
    return "own-" + stem.lower().replace("_", "-").replace(" ", "-")


def task_from_spec(spec, files=None):
    """The OwnTask a checkpoint recorded (`OwnTask.spec`), registered, reading `files`."""
    regression = spec["kind"] == "regression"
    task = OwnTask(name=spec["name"], glue_name=spec["name"], folder="", metric=spec["metric"],
                   labels=None if regression else tuple(spec["labels"]),
                   max_length=spec.get("max_length", DEFAULT_MAX_LENGTH),
                   files={split: (path,) for split, path in (files or {}).items()},
                   layout=Layout(text_a=0), test_layout=Layout(text_a=0),
                   submission_file="predictions.tsv",
                   submission_format="float" if regression else "label", reader=READER,
                   reported=tuple(spec.get("reported", ())), text_column=spec["text_column"],
                   text_pair_column=spec.get("text_pair_column"),
                   label_column=spec.get("label_column", "label"))
    _register(task)
    return task


def _register(task):
    from common.data import register_reader

    register_reader(READER, read_own_split)
    register_task(task)


def checkpoint_task(sidecar):
    """The task a checkpoint was trained on: its own-data record, else the registered task it
    names; None when it names none."""
    from common.tasks import task_names

    sidecar = sidecar or {}
    spec = sidecar.get("own_data")
    if spec and spec["name"] not in task_names():  # a task built from files stays as it is
        return task_from_spec(spec)
    return get_task(sidecar["task"]) if sidecar.get("task") else None


def own_task(files, text_column=None, text_pair_column=None, label_column=None, task_type=None,
             metric=None, checkpoint=None, trained=None, style=lambda name: "--" + name):
    """The OwnTask of `files` ({"train"|"dev"|"test": path}), registered. Without a training
    file the label set is the one `checkpoint` (or the task `trained`) was trained on."""
    if "train" not in files:
        trained = trained or _trained_task(checkpoint, style)
    if isinstance(trained, OwnTask):  # the columns it was trained with, unless told otherwise
        text_column = text_column or trained.text_column
        text_pair_column = text_pair_column or trained.text_pair_column
        label_column = label_column or trained.label_column
    label_column = label_column or "label"
    first = files.get("train") or files.get("dev") or files["test"]
    tables = {path: _table(path) for path in set(files.values())}
    columns = list(map(str, tables[first].columns))
    text_column, text_pair_column = _text_columns(columns, text_column, text_pair_column)
    if text_column is None:
        raise UserError(f"{first} has none of the default text columns (sentence1, sentence, "
                        f"text); its columns are {', '.join(columns)}; pass "
                        f"{style('text_column')}")
    for split in files:  # every column is checked before anything runs
        table = tables[files[split]]
        for column, flag in ((text_column, "text_column"), (text_pair_column, "text_pair_column"),
                             (label_column if split != "test" else None, "label_column")):
            if column is not None:
                _column(table, column, files[split], style(flag))
    if "train" in files:
        names = _labels(tables[files["train"]], label_column, files["train"],
                        style("label_column"))
        kind, labels = _kind_and_labels(names, task_type)
    else:
        kind = "regression" if trained.is_regression else "classification"
        labels = trained.labels
    # A checkpoint of own data keeps its task's name; other files make a task of their own.
    name = trained.name if isinstance(trained, OwnTask) else _task_name(files)
    main, reported = _main_metric(kind, labels, metric)
    spec = {"name": name, "kind": kind, "labels": list(labels or ()), "metric": main,
            "reported": [m for m in reported if m != main], "text_column": text_column,
            "text_pair_column": text_pair_column, "label_column": label_column,
            "max_length": DEFAULT_MAX_LENGTH}
    return task_from_spec(spec, files)


def _trained_task(checkpoint, style):
    from common.checkpoints import resolve_source

    task = checkpoint_task(resolve_source(checkpoint).sidecar) if checkpoint else None
    if task is None:
        raise UserError(f"pass {style('train_file')} (the label set is read from it) or a "
                        "checkpoint of this toolkit trained on a task")
    return task


# ---------------------------------------------------------------- reading

def read_own_split(task, data_dir, split):
    """Examples of one of the task's files (`data_dir` is not used: the files are named)."""
    from common.data import Examples

    path = task.split_files(split)[0]
    table = _table(path)
    texts = _texts(table, task.text_column, path, "text_column")
    pairs = _texts(table, task.text_pair_column, path, "text_pair_column") \
        if task.text_pair_column else None
    id_column = next((c for c in ID_COLUMNS if c in table.columns), None)
    ids = [str(v) for v in table[id_column]] if id_column else [str(i) for i in range(len(table))]
    labels = None
    if not split.startswith("test"):
        labels = np.asarray([_label_id(task, value, path, row) for row, value in enumerate(
            _column(table, task.label_column, path, "--label_column"))],
            np.float32 if task.is_regression else np.int64)
    return Examples(texts, pairs, labels, ids)


def _texts(table, column, path, flag):
    values = _column(table, column, path, "--" + flag)
    texts = []
    for row, value in enumerate(values):
        if _missing(value):
            raise UserError(f"{path} row {row + 1}: no text in column '{column}'; fill the cell "
                            "or drop the row")
        texts.append(str(value))
    return texts


def _label_id(task, value, path, row):
    text = "" if _missing(value) else label_name(value)
    if task.is_regression:
        number = _number(text)
        if number is None:
            raise UserError(f"{path} row {row + 1}: label '{text}' is not a number; the task "
                            "is a regression")
        return number
    if text not in task.labels:
        raise UserError(f"{path} row {row + 1}: label '{text}' never occurs in the training "
                        f"file (its labels: {', '.join(task.labels)}); fix the row or add the "
                        "label to the training data")
    return task.labels.index(text)
