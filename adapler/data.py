"""Task splits as encoded arrays for the AdapLeR stages.

`load_split` reads a split through `common.data` (GLUE and the tasks of `adapler.tasks`; ERASER
movie reviews as rationale windows), encodes it to MAX_LENGTH with right padding and returns the
arrays with the example ids. Training splits are put in the order of HF datasets'
`shuffle(seed=DATA_SEED)` (numpy `default_rng(seed).permutation`), the one order used by the
saliency and training stages. Examples longer than MAX_LENGTH are truncated, as in the original,
and the count is logged.
"""
import os

import numpy as np

import adapler.tasks  # noqa: F401  (registers the non-GLUE tasks)
from adapler import rationales
from common.data import default_data_dir
from common.data import load_split as common_load_split
from common.tasks import get_task

DEFAULT_DATA_ROOT = "data"


def default_data_dir_for(task):
    """`./data` (holding `<TASK folder>/` or the files); for SST-2 the bundled 2,000-row sample
    when `./data/SST-2` does not exist."""
    task = get_task(task)
    if task.name == "sst-2" and not os.path.isdir(os.path.join(DEFAULT_DATA_ROOT, task.folder)):
        return default_data_dir()
    return DEFAULT_DATA_ROOT


def data_order(count, seed):
    """The once-shuffled training order (HF datasets' Dataset.shuffle(seed))."""
    return np.random.default_rng(seed).permutation(count)


def trim(arrays):
    """Cut the (N, MAX_LENGTH) arrays to the longest example: pads change no output (masked keys,
    CP share 0, no loss) but cost time."""
    width = int(np.asarray(arrays["attention_mask"]).sum(axis=1).max())
    return {key: value[:, :width] if np.ndim(value) == 2 else value
            for key, value in arrays.items()}


def take(arrays, ids, rows):
    return {key: value[rows] for key, value in arrays.items()}, [ids[i] for i in rows]


def load_split(task, data_dir, split, tokenizer, max_length, seed=None, limit=None, log=print):
    """(arrays, ids) of one split; `seed` shuffles it (training), `limit` keeps the first rows."""
    task = get_task(task)
    if task.reader != "movie_rationales":
        return common_load_split(task, data_dir, split, tokenizer, max_length, seed=seed,
                                 limit=limit, log=log)
    documents = rationales.read_eraser(task, data_dir, split)
    arrays, meta = rationales.encode_windows(documents, tokenizer, max_length)
    ids = meta["ids"]
    if seed is not None:
        arrays, ids = take(arrays, ids, data_order(len(ids), seed))
    if limit:
        arrays, ids = take(arrays, ids, np.arange(min(limit, len(ids))))
    return arrays, ids
