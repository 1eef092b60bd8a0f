"""Task registry: which files a task has, where its columns are, its labels, metric and max length.

Label lists are in class-id order, spelled as they appear in the files. They follow the Google
BERT / HF GLUE processors, so PoWER-BERT, AdapLeR and PABEE checkpoints agree on class ids:

    CoLA, SST-2, MRPC, QQP, WNLI   ('0', '1')
    QNLI, RTE                      ('entailment', 'not_entailment')
    MNLI (m, mm) and AX            ('contradiction', 'entailment', 'neutral')
    STS-B                          regression (labels None, one output)

`max_length` defaults are PoWER-BERT's task_config.json values. Other tasks (IMDB, AG News...) are
added with `register_task(Task(...), aliases=...)`; `reader` names the file format the reader in
`common.data` must use ('glue_tsv' for tab-separated files with quoting off).
"""
import dataclasses

from common.errors import UserError

METRICS = ("mcc", "acc", "f1", "macro_f1", "pearson", "spearman")
REGRESSION_METRICS = ("pearson", "spearman")


@dataclasses.dataclass(frozen=True)
class Layout:
    """0-based column positions in one kind of file. A negative index counts from the row's end."""
    text_a: int
    text_b: int | None = None
    label: int | None = None
    id: int | None = None  # None: ids are running row numbers
    header: bool = True

    @property
    def min_columns(self):
        """Fewest columns a row needs for every used column (a negative label must not overlap)."""
        used = [c for c in (self.text_a, self.text_b, self.label, self.id) if c is not None]
        last = max([c for c in used if c >= 0], default=-1) + 1
        return last + max([-c for c in used if c < 0], default=0)


@dataclasses.dataclass(frozen=True)
class Task:
    name: str  # canonical lower-case name, e.g. 'sst-2'
    glue_name: str  # name used in submissions and messages, e.g. 'SST-2', 'MNLI-m'
    folder: str  # data folder name, e.g. 'MNLI' for both MNLI-m and MNLI-mm
    labels: tuple[str, ...] | None  # class-id order; None for regression
    metric: str  # main metric for model selection: one of METRICS
    max_length: int
    # split -> candidate file names, first existing one wins
    files: dict = dataclasses.field(hash=False)
    layout: Layout | None  # train/dev files; None when the task has only a test split
    test_layout: Layout | None  # unlabeled test files
    submission_file: str | None = None  # GLUE leaderboard file name
    submission_format: str = "label"  # submission values: 'label', 'int' or 'float'
    reader: str = "glue_tsv"
    score_range: tuple[float, float] | None = None  # regression: the valid scores
    label_names: tuple[str, ...] | None = None  # readable names when the labels are 0/1 codes
    reported: tuple[str, ...] = ()  # metrics reported beside the main one's (own data)

    def __post_init__(self):
        if self.metric not in METRICS:
            raise ValueError(f"task {self.name}: metric must be one of {METRICS}")
        if (self.metric in REGRESSION_METRICS) != (self.labels is None):
            raise ValueError(f"task {self.name}: regression tasks (labels None) use "
                             f"{' or '.join(REGRESSION_METRICS)}")

    @property
    def is_regression(self):
        return self.labels is None

    @property
    def num_labels(self):
        return 1 if self.labels is None else len(self.labels)

    @property
    def is_pair(self):
        return (self.layout or self.test_layout).text_b is not None

    @property
    def splits(self):
        return tuple(self.files)

    def split_files(self, split):
        """Candidate file names for `split`; UserError for a split the task does not have."""
        if split not in self.files:
            raise UserError(f"task {self.name} has no '{split}' split; use one of "
                            f"{', '.join(self.files)}")
        return self.files[split]

    def split_layout(self, split):
        """Column layout of `split`: splits named test* are unlabeled."""
        self.split_files(split)
        return self.test_layout if split.startswith("test") else self.layout

    def sidecar_record(self):
        """Sidecar entries of a checkpoint trained on this task: `labels` (id -> name) of a
        classification task."""
        return {} if self.is_regression else {
            "labels": {str(i): label for i, label in enumerate(self.labels)}}

    def label_name(self, class_id):
        """A class id as a reader says it: 'positive (1)' for SST-2, 'entailment' for MNLI."""
        label = self.labels[int(class_id)]
        return f"{self.label_names[int(class_id)]} ({label})" if self.label_names else label

    def format_prediction(self, prediction):
        """One prediction (class id, or float for regression) as GLUE expects it in a submission."""
        if self.is_regression:
            return f"{float(prediction):.3f}"
        label = self.labels[int(prediction)]
        return str(int(label)) if self.submission_format == "int" else label


_TASKS: dict[str, Task] = {}
_ALIASES: dict[str, str] = {}


def _key(name):
    return str(name).strip().lower().replace("_", "-")


def register_task(task, aliases=()):
    """Add `task` under its name, its GLUE name and `aliases` (all case-insensitive)."""
    keys = [_key(alias) for alias in (task.name, task.glue_name, *aliases)]
    for key in keys:
        owner = _ALIASES.get(key)
        if owner is not None and owner != task.name:
            raise ValueError(f"task name '{key}' is already used by task {owner}")
    _ALIASES.update(dict.fromkeys(keys, task.name))
    _TASKS[task.name] = task
    return task


def task_names():
    """Canonical names of all registered tasks."""
    return tuple(_TASKS)


def get_task(name):
    """The Task called `name` (any alias, any case); a Task is returned as is."""
    if isinstance(name, Task):
        return name
    canonical = _ALIASES.get(_key(name))
    if canonical is None:
        raise UserError(f"unknown task '{name}'; valid tasks: {', '.join(task_names())}")
    return _TASKS[canonical]


def _glue(name, glue_name, labels, metric, max_length, layout, test_layout, folder=None,
          files=None, submission_format="int", aliases=(), score_range=None, label_names=None):
    files = files or {"train": ("train.tsv",), "dev": ("dev.tsv",), "test": ("test.tsv",)}
    register_task(Task(name=name, glue_name=glue_name, folder=folder or glue_name, labels=labels,
                       metric=metric, max_length=max_length, files=files, layout=layout,
                       test_layout=test_layout, submission_file=f"{glue_name}.tsv",
                       submission_format=submission_format, score_range=score_range,
                       label_names=label_names), aliases)


BINARY = ("0", "1")
ENTAILMENT = ("entailment", "not_entailment")
NLI = ("contradiction", "entailment", "neutral")
# sentence1/sentence2/label after an index column (QNLI, RTE, WNLI)
_INDEXED_PAIR = Layout(text_a=1, text_b=2, label=3)
_INDEXED_PAIR_TEST = Layout(text_a=1, text_b=2, id=0)


def _mnli_files(kind):
    # PoWER-BERT's README has users rename the chosen dev/test file to dev.tsv/test.tsv.
    return {"train": ("train.tsv",),
            "dev": (f"dev_{kind}.tsv", "dev.tsv"),
            "test": (f"test_{kind}.tsv", "test.tsv")}


_glue("cola", "CoLA", BINARY, "mcc", 64,
      Layout(text_a=3, label=1, header=False), Layout(text_a=1, id=0),
      label_names=("unacceptable", "acceptable"))
_glue("sst-2", "SST-2", BINARY, "acc", 64,
      Layout(text_a=0, label=1), Layout(text_a=1, id=0), aliases=("sst2",),
      label_names=("negative", "positive"))
_glue("mrpc", "MRPC", BINARY, "f1", 128,
      Layout(text_a=3, text_b=4, label=0), Layout(text_a=3, text_b=4, id=0),
      label_names=("not_equivalent", "equivalent"))
_glue("qqp", "QQP", BINARY, "f1", 128,
      Layout(text_a=3, text_b=4, label=5), Layout(text_a=1, text_b=2, id=0),
      label_names=("not_duplicate", "duplicate"))
_glue("sts-b", "STS-B", None, "spearman", 64,
      Layout(text_a=7, text_b=8, label=-1), Layout(text_a=7, text_b=8, id=0),
      submission_format="float", aliases=("stsb",), score_range=(0.0, 5.0))
_glue("mnli", "MNLI-m", NLI, "acc", 128,
      Layout(text_a=8, text_b=9, label=-1), Layout(text_a=8, text_b=9, id=0),
      folder="MNLI", files=_mnli_files("matched"), submission_format="label",
      aliases=("mnli-matched",))
_glue("mnli-mm", "MNLI-mm", NLI, "acc", 128,
      Layout(text_a=8, text_b=9, label=-1), Layout(text_a=8, text_b=9, id=0),
      folder="MNLI", files=_mnli_files("mismatched"), submission_format="label",
      aliases=("mnli-mismatched",))
_glue("qnli", "QNLI", ENTAILMENT, "acc", 128, _INDEXED_PAIR, _INDEXED_PAIR_TEST,
      submission_format="label")
_glue("rte", "RTE", ENTAILMENT, "acc", 256, _INDEXED_PAIR, _INDEXED_PAIR_TEST,
      submission_format="label")
_glue("wnli", "WNLI", BINARY, "acc", 128, _INDEXED_PAIR, _INDEXED_PAIR_TEST,
      label_names=("not_entailment", "entailment"))
# The diagnostic set is predicted with an MNLI model; only its test file exists.
_glue("ax", "AX", NLI, "acc", 128, None, _INDEXED_PAIR_TEST, folder="diagnostic",
      files={"test": ("diagnostic.tsv", "AX.tsv")}, submission_format="label",
      aliases=("diagnostic",))
