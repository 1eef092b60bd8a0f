"""The non-GLUE tasks of AdapLeR (the original's utils/task_loaders.py), read from local files in
their public formats.

Importing this module registers them in `common.tasks` (names as the original's `--TASK` keys)
and their readers in `common.data`. Files are looked up in DATA_DIR and DATA_DIR/<folder>:

* imdb (imdb/): the aclImdb/{train,test}/{neg,pos}/*.txt folders, or HF exports
  train/test .parquet/.jsonl/.csv with columns text, label; dev = 4,096 rows carved from train.
* ag_news (ag_news_csv/): the release's train.csv/test.csv (no header: class 1-4, title,
  description; text = title + " " + description) or HF exports (text, label); dev = 6,000 carved.
* dbpedia (dbpedia_csv/): train.csv/test.csv (class 1-14, title, content; text = content) or HF
  dbpedia_14 exports; dev = 6,000 carved.
* amazon (amazon_reviews_multi/): dataset_en_{train,dev,test}.json, JSON lines with review_body
  and stars (label = stars - 1).
* scitail (SciTailV1.1/): tsv_format/scitail_1.0_{train,dev,test}.tsv (premise, hypothesis,
  label; neutral -> 0, entails -> 1).
* hatexplain (hatexplain/): dataset.json + post_id_divisions.json of the HateXplain repository.
* movie_rationales (movies/): ERASER movies/{train,val,test}.jsonl + docs/ (adapler.rationales).

`read_hatexplain_rationales` gives the HateXplain posts with their majority rationale.

"Carved" dev sets are the first rows of the training file shuffled with numpy's
`default_rng(42).permutation` (what HF datasets' `shuffle(seed=42)` does); the rest is train.
HateXplain labels are the annotators' majority vote, a three-way tie going to the lowest label id
as in the original (so all 15,383 / 1,922 / 1,924 posts are kept; the HateXplain paper drops the
ties instead). Example ids are row numbers in the source file (HateXplain: post ids).
"""
import json
import os

import numpy as np

from adapler.rationales import Document, read_eraser
from common.data import Examples, read_table, register_reader, split_path
from common.errors import UserError
from common.tasks import Layout, Task, get_task, register_task

CARVE_SEED = 42
DEV_SIZES = {"imdb": 4096, "ag_news": 6000, "dbpedia": 6000}
HATEXPLAIN_SPLITS = {"train": "train", "dev": "val", "test": "test"}
DBPEDIA_LABELS = ("Company", "EducationalInstitution", "Artist", "Athlete", "OfficeHolder",
                  "MeanOfTransportation", "Building", "NaturalPlace", "Village", "Animal", "Plant",
                  "Album", "Film", "WrittenWork")


def _files(train, test, dev=None):
    """Split -> candidate files; without `dev` the dev split is carved out of the train file."""
    return {"train": train, "dev": dev or train, "test": test}


def _hf_names(split):
    return (f"{split}.parquet", f"{split}-00000-of-00001.parquet", f"{split}.jsonl",
            f"plain_text/{split}-00000-of-00001.parquet", f"data/{split}-00000-of-00001.parquet")


def _columns(table, names, path):
    missing = [name for name in names if name not in table.columns]
    if missing:
        raise UserError(f"{path} has no column {', '.join(missing)} (columns: "
                        f"{', '.join(map(str, table.columns))}); expected {', '.join(names)}")
    return [table[name].astype(str).tolist() if name != "label" else table[name].tolist()
            for name in names]


def _class_ids(values, task, path, offset=0):
    """Labels as class ids: integers (minus `offset`) or the task's label names."""
    ids = []
    for value in values:
        text = str(value).strip()
        try:
            number = int(float(text)) - offset
        except ValueError:
            number = task.labels.index(text) if text in task.labels else -1
        if not 0 <= number < task.num_labels:
            raise UserError(f"{path}: label '{value}' is not a {task.glue_name} label "
                            f"({offset}..{task.num_labels - 1 + offset} or "
                            f"{', '.join(task.labels)}); check the file and --TASK")
        ids.append(number)
    return np.asarray(ids, np.int64)


def _carve(examples, split, dev_size):
    """The dev rows (first `dev_size` of the seeded shuffle) or the remaining train rows."""
    if len(examples) <= dev_size:
        raise UserError(f"the training file has {len(examples)} rows, too few to carve a "
                        f"{dev_size}-row dev set; pass the full training file")
    order = np.random.default_rng(CARVE_SEED).permutation(len(examples))
    rows = np.sort(order[:dev_size] if split == "dev" else order[dev_size:])
    return Examples([examples.text_a[i] for i in rows],
                    None if examples.text_b is None else [examples.text_b[i] for i in rows],
                    examples.labels[rows], [examples.ids[i] for i in rows])


def _row_examples(text_a, labels, text_b=None):
    return Examples(list(text_a), None if text_b is None else list(text_b), labels,
                    [str(i) for i in range(len(text_a))])


def _source_split(split):
    return "train" if split == "dev" else split


def _acl_imdb(data_dir, split):
    """(texts, labels) from the original aclImdb folders, or None when they are not there."""
    for root in (data_dir, os.path.join(data_dir, "aclImdb")):
        folder = os.path.join(root, split)
        if all(os.path.isdir(os.path.join(folder, name)) for name in ("pos", "neg")):
            texts, labels = [], []
            for label, name in enumerate(("neg", "pos")):
                for file in sorted(os.listdir(os.path.join(folder, name))):
                    if file.endswith(".txt"):
                        with open(os.path.join(folder, name, file), encoding="utf-8") as handle:
                            texts.append(handle.read())
                        labels.append(label)
            return texts, np.asarray(labels, np.int64)
    return None


def read_imdb(task, data_dir, split):
    source = _source_split(split)
    found = _acl_imdb(data_dir, source) if os.path.isdir(data_dir) else None
    if found is None:
        path = split_path(task, data_dir, split)
        texts, labels = _columns(read_table(path), ["text", "label"], path)
        found = texts, _class_ids(labels, task, path)
    examples = _row_examples(found[0], found[1])
    return _carve(examples, split, DEV_SIZES[task.name]) if source == "train" else examples


def _read_news(task, data_dir, split, csv_columns, text_of, hf_text):
    """AG News / DBpedia: the original headerless CSV (1-based class first) or an HF export."""
    path = split_path(task, data_dir, split)
    if path.endswith(".csv"):
        table = read_table(path, header=False, names=csv_columns)
        columns = dict(zip(csv_columns, _columns(table, csv_columns, path)))
        texts, labels = text_of(columns), _class_ids(columns["label"], task, path, offset=1)
    else:
        texts, labels = _columns(read_table(path), [hf_text, "label"], path)
        labels = _class_ids(labels, task, path)
    examples = _row_examples(texts, labels)
    return _carve(examples, split, DEV_SIZES[task.name]) if split != "test" else examples


def read_ag_news(task, data_dir, split):
    return _read_news(task, data_dir, split, ["label", "title", "description"],
                      lambda c: [f"{t} {d}" for t, d in zip(c["title"], c["description"])],
                      "text")


def read_dbpedia(task, data_dir, split):
    return _read_news(task, data_dir, split, ["label", "title", "content"],
                      lambda c: c["content"], "content")


def read_amazon(task, data_dir, split):
    path = split_path(task, data_dir, split)
    texts, stars = _columns(read_table(path), ["review_body", "stars"], path)
    return _row_examples(texts, _class_ids(stars, task, path, offset=1))


def read_scitail(task, data_dir, split):
    path = split_path(task, data_dir, split)
    table = read_table(path, header=False, names=["premise", "hypothesis", "label"])
    premise, hypothesis, labels = _columns(table, ["premise", "hypothesis", "label"], path)
    ids = [0 if str(label).strip() == "neutral" else 1 for label in labels]
    return _row_examples(premise, np.asarray(ids, np.int64), hypothesis)


def _json(path, what):
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, json.JSONDecodeError) as err:
        raise UserError(f"cannot read the HateXplain {what} {path}: {err}") from None


def hatexplain_posts(data_dir, split):
    """[(post id, post record)] of one split, in the order of post_id_divisions.json."""
    task = get_task("hatexplain")
    dataset = _json(split_path(task, data_dir, split), "dataset")
    divisions_path = None
    for folder in (data_dir, os.path.join(data_dir, task.folder), os.path.join(data_dir, "Data")):
        if os.path.isfile(os.path.join(folder, "post_id_divisions.json")):
            divisions_path = os.path.join(folder, "post_id_divisions.json")
            break
    if divisions_path is None:
        raise UserError(f"post_id_divisions.json not found in {data_dir}; put the HateXplain "
                        "split file next to dataset.json")
    ids = _json(divisions_path, "split file").get(HATEXPLAIN_SPLITS[split])
    if ids is None:
        raise UserError(f"{divisions_path} has no '{HATEXPLAIN_SPLITS[split]}' list")
    missing = [post for post in ids if post not in dataset]
    if missing:
        raise UserError(f"{len(missing)} post ids of {divisions_path} (e.g. {missing[0]}) are "
                        "not in dataset.json; use the files of the same HateXplain release")
    return [(post, dataset[post]) for post in ids]


def hatexplain_label(post, labels):
    """Majority vote of the annotators; a tie goes to the lowest label id (the original's)."""
    votes = np.bincount([labels.index(a["label"]) for a in post["annotators"]],
                        minlength=len(labels))
    return int(np.argmax(votes))


def read_hatexplain(task, data_dir, split):
    posts = hatexplain_posts(data_dir, split)
    return Examples([" ".join(post["post_tokens"]) for _, post in posts], None,
                    np.asarray([hatexplain_label(post, task.labels) for _, post in posts],
                               np.int64),
                    [post_id for post_id, _ in posts])


def read_hatexplain_rationales(data_dir, split):
    """HateXplain posts of one split that carry rationales, with the majority rationale."""
    labels = get_task("hatexplain").labels
    documents = []
    for post_id, post in hatexplain_posts(data_dir, split):
        marks = post.get("rationales") or []
        if not marks:
            continue
        if any(len(m) != len(post["post_tokens"]) for m in marks):
            raise UserError(f"HateXplain post {post_id}: a rationale's length differs from "
                            "its post_tokens; use an unmodified dataset.json")
        evidence = (np.mean(np.asarray(marks, np.float64), axis=0) >= 0.5).astype(np.int64)
        if evidence.any():
            documents.append(Document(post_id, list(post["post_tokens"]), evidence,
                                      hatexplain_label(post, labels)))
    return documents


def read_movie_rationales(task, data_dir, split):
    documents = read_eraser(task, data_dir, split)
    return Examples([" ".join(doc.words) for doc in documents], None,
                    np.asarray([doc.label for doc in documents], np.int64),
                    [doc.id for doc in documents])


def _register(name, display, folder, labels, files, reader, pair=False, max_length=128,
              aliases=()):
    layout = Layout(text_a=0, text_b=1 if pair else None, label=2 if pair else 1)
    register_task(Task(name=name, glue_name=display, folder=folder, labels=tuple(labels),
                       metric="acc", max_length=max_length, files=files, layout=layout,
                       test_layout=layout, reader=name), aliases)
    register_reader(name, reader)


def register_all():
    """Register the tasks (idempotent: importing the module twice is harmless)."""
    from common.tasks import task_names
    if "imdb" in task_names():
        return
    _register("imdb", "IMDB", "imdb", ("neg", "pos"), _files(
        _hf_names("train") + ("train.csv",), _hf_names("test") + ("test.csv",)), read_imdb)
    _register("ag_news", "AG News", "ag_news_csv", ("World", "Sports", "Business", "Sci/Tech"),
              _files(("train.csv",) + _hf_names("train"), ("test.csv",) + _hf_names("test")),
              read_ag_news, aliases=("agnews",))
    _register("dbpedia", "DBpedia", "dbpedia_csv", DBPEDIA_LABELS, _files(
        ("train.csv", "dbpedia_14/train-00000-of-00001.parquet") + _hf_names("train"),
        ("test.csv", "dbpedia_14/test-00000-of-00001.parquet") + _hf_names("test")),
        read_dbpedia, aliases=("dbpedia_14",))
    _register("amazon", "Amazon", "amazon_reviews_multi", ("1", "2", "3", "4", "5"), _files(
        ("dataset_en_train.json", "train/dataset_en_train.json") + _hf_names("train"),
        ("dataset_en_test.json", "test/dataset_en_test.json") + _hf_names("test"),
        ("dataset_en_dev.json", "dev/dataset_en_dev.json") + _hf_names("validation")),
        read_amazon, aliases=("amazon_reviews_multi",))
    _register("scitail", "SciTail", "SciTailV1.1", ("neutral", "entails"), _files(
        ("scitail_1.0_train.tsv", "tsv_format/scitail_1.0_train.tsv"),
        ("scitail_1.0_test.tsv", "tsv_format/scitail_1.0_test.tsv"),
        ("scitail_1.0_dev.tsv", "tsv_format/scitail_1.0_dev.tsv")), read_scitail, pair=True)
    dataset = ("dataset.json", "Data/dataset.json")
    _register("hatexplain", "HateXplain", "hatexplain", ("hatespeech", "normal", "offensive"),
              _files(dataset, dataset, dataset), read_hatexplain, max_length=72)
    _register("movie_rationales", "Movie Rationales", "movies", ("NEG", "POS"), _files(
        ("train.jsonl",), ("test.jsonl",), ("val.jsonl",)), read_movie_rationales,
        aliases=("movies", "eraser_movies"))


register_all()
