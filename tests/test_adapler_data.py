"""The non-GLUE tasks of AdapLeR: readers for the public file formats, the
carved dev splits and their sizes, HateXplain votes, ERASER rationale windows and the
rationale comparison table."""
import csv
import json

import numpy as np
import pandas as pd
import pytest

import adapler.tasks  # noqa: F401
from adapler.rationale_evaluation import compare
from adapler.rationales import encode_windows, read_eraser
from common.data import read_split, read_table
from common.errors import UserError
from common.tasks import get_task
from common.tokenization import load_tokenizer
from conftest import SHARED_DATA

SHARED = SHARED_DATA
TOKENIZER = "tests/fixtures/tiny_bert"


def write_headerless_csv(path, rows):
    with open(path, "w", newline="", encoding="utf-8") as handle:
        csv.writer(handle, quoting=csv.QUOTE_ALL).writerows(rows)


@pytest.mark.skipif(not (SHARED / "agnews" / "test.csv").is_file(), reason="no AG News file")
def test_real_ag_news_test_split():
    examples = read_split("ag_news", str(SHARED / "agnews"), "test")
    assert len(examples) == 7600
    assert np.bincount(examples.labels).tolist() == [1900] * 4
    assert examples.text_a[0].startswith("Fears for T N pension after talks Unions representing")
    assert examples.labels[0] == 2  # class 3, Business
    assert examples.text_b is None and examples.ids[:2] == ["0", "1"]


@pytest.mark.parametrize("name,total,dev,writer", [
    ("imdb", 25_000, 4096, "hf_csv"), ("ag_news", 120_000, 6000, "news"),
    ("dbpedia", 560_000, 6000, "news")])
def test_carved_dev_splits(tmp_path, name, total, dev, writer):
    task = get_task(name)
    labels = np.arange(total) % task.num_labels
    if writer == "hf_csv":
        pd.DataFrame({"text": [f"review {i}" for i in range(total)], "label": labels}).to_csv(
            tmp_path / "train.csv", index=False)
    else:
        write_headerless_csv(tmp_path / "train.csv",
                             ((label + 1, f"title {i}", f"body {i}")
                              for i, label in enumerate(labels)))
    train = read_split(name, str(tmp_path), "train")
    held = read_split(name, str(tmp_path), "dev")
    assert (len(train), len(held)) == (total - dev, dev)
    assert not set(train.ids) & set(held.ids)
    row = int(held.ids[0])
    assert held.labels[0] == labels[row]
    expected = {"imdb": f"review {row}", "ag_news": f"title {row} body {row}",
                "dbpedia": f"body {row}"}[name]
    assert held.text_a[0] == expected
    again = read_split(name, str(tmp_path), "dev")
    assert again.ids == held.ids  # the carve-out is seeded


def test_amazon_scitail_and_bad_files(tmp_path):
    rows = [{"review_body": f"text {i}", "stars": i % 5 + 1, "language": "en"} for i in range(7)]
    with open(tmp_path / "dataset_en_dev.json", "w") as handle:
        handle.writelines(json.dumps(r) + "\n" for r in rows)
    examples = read_split("amazon", str(tmp_path), "dev")
    assert examples.labels.tolist() == [0, 1, 2, 3, 4, 0, 1]
    folder = tmp_path / "SciTailV1.1" / "tsv_format"
    folder.mkdir(parents=True)
    (folder / "scitail_1.0_test.tsv").write_text(
        'A "quoted" premise.\tThe hypothesis.\tentails\nP2\tH2\tneutral\n')
    examples = read_split("scitail", str(tmp_path), "test")
    assert examples.text_a[0] == 'A "quoted" premise.' and examples.text_b[1] == "H2"
    assert examples.labels.tolist() == [1, 0]
    write_headerless_csv(tmp_path / "test.csv", [(7, "t", "d")])
    with pytest.raises(UserError, match="label '7' is not a AG News label"):
        read_split("ag_news", str(tmp_path), "test")
    with pytest.raises(UserError, match="AG News train file not found"):
        read_split("ag_news", str(tmp_path / "SciTailV1.1"), "train")
    with pytest.raises(UserError, match="unknown task 'nope'"):
        get_task("nope")


def test_parquet_reader_or_clear_error(tmp_path):
    path = str(tmp_path / "train.parquet")
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        open(path, "wb").close()
        with pytest.raises(UserError, match="pip install pyarrow"):
            read_table(path)
        return
    pd.DataFrame({"text": ["a", "b"], "label": [0, 1]}).to_parquet(path)
    assert read_table(path)["text"].tolist() == ["a", "b"]


def hatexplain_post(post_id, votes, tokens=("you", "are", "great"), rationales=()):
    return {"post_id": post_id, "post_tokens": list(tokens),
            "annotators": [{"label": v, "annotator_id": i, "target": []}
                           for i, v in enumerate(votes)],
            "rationales": [list(r) for r in rationales]}


def test_hatexplain_votes_and_rationales(tmp_path):
    dataset = {
        "a": hatexplain_post("a", ["offensive", "offensive", "normal"]),
        "b": hatexplain_post("b", ["normal", "offensive", "hatespeech"]),  # tie -> hatespeech
        "c": hatexplain_post("c", ["hatespeech", "offensive", "offensive"],
                             rationales=[(1, 1, 0), (0, 1, 0)]),
    }
    (tmp_path / "dataset.json").write_text(json.dumps(dataset))
    (tmp_path / "post_id_divisions.json").write_text(
        json.dumps({"train": ["a", "b"], "val": ["c"], "test": []}))
    examples = read_split("hatexplain", str(tmp_path), "train")
    assert examples.ids == ["a", "b"] and examples.labels.tolist() == [2, 0]
    assert examples.text_a[0] == "you are great"
    from adapler.tasks import read_hatexplain_rationales
    docs = read_hatexplain_rationales(str(tmp_path), "dev")
    assert [d.id for d in docs] == ["c"] and docs[0].evidence.tolist() == [1, 1, 0]


@pytest.mark.skipif(not (SHARED / "hatexplain").is_dir(), reason="no HateXplain split file")
def test_hatexplain_split_sizes(tmp_path):
    divisions = json.loads((SHARED / "hatexplain" / "post_id_divisions.json").read_text())
    dataset = {post: hatexplain_post(post, ["normal"]) for ids in divisions.values()
               for post in ids}
    (tmp_path / "dataset.json").write_text(json.dumps(dataset))
    (tmp_path / "post_id_divisions.json").write_text(json.dumps(divisions))
    sizes = [len(read_split("hatexplain", str(tmp_path), s)) for s in ("train", "dev", "test")]
    assert sizes == [15_383, 1_922, 1_924]


def eraser_fixture(root):
    """Two ERASER-format movie reviews (docs + jsonl), one annotation without evidence."""
    movies = root / "movies"
    (movies / "docs").mkdir(parents=True)
    (movies / "docs" / "negR_000.txt").write_text(
        "the plot was boring .\nthe acting was awful and the films were bad .\n")
    (movies / "docs" / "posR_001.txt").write_text("a very fun movie .\n")
    lines = [
        {"annotation_id": "negR_000.txt", "classification": "NEG", "query": "?",
         "evidences": [[{"docid": "negR_000.txt", "start_token": 3, "end_token": 4,
                         "text": "boring"}],
                       [{"docid": "negR_000.txt", "start_token": 8, "end_token": 9,
                         "text": "awful"}]]},
        {"annotation_id": "posR_001.txt", "classification": "POS", "query": "?",
         "evidences": []},
    ]
    (movies / "test.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    return movies


def test_eraser_documents_and_windows(tmp_path):
    eraser_fixture(tmp_path)
    task = get_task("movie_rationales")
    docs = read_eraser(task, str(tmp_path), "test")
    assert len(docs) == 1 and docs[0].label == 0  # the annotation without evidence is skipped
    assert docs[0].words[3] == "boring" and docs[0].evidence.tolist() == [
        0, 0, 0, 1, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0]
    tokenizer = load_tokenizer(TOKENIZER)
    arrays, meta = encode_windows(docs, tokenizer, max_length=8)
    # "films" -> film ##s: 16 pieces in windows of 6; the third window has no rationale
    assert len(arrays["input_ids"]) == 2 and meta["start"] == [0, 6]
    first = tokenizer.convert_ids_to_tokens(arrays["input_ids"][0].tolist())
    assert first == ["[CLS]", "the", "plot", "was", "boring", ".", "the", "[SEP]"]
    assert meta["evidence"][0].tolist() == [-1, 0, 0, 0, 1, 0, 0, -1]
    assert meta["evidence"][1].tolist()[:4] == [-1, 0, 0, 2]
    assert arrays["attention_mask"].sum(1).tolist() == [8, 8]
    assert read_split(task, str(tmp_path), "test").labels.tolist() == [0]


def test_rationale_rates_table():
    evidence = np.array([[-1, 1, 1, 0, 0, 0, -1], [-1, 0, 2, 0, -1, -1, -1]])
    kept = np.array([[1, 1, 0, 1, 0, 0, 1], [1, 0, 1, 0, 1, 0, 0]])
    scores = {"oracle": (evidence > 0).astype(float)}
    table = compare(kept, evidence, scores)
    adapler = table.loc["AdapLeR (kept tokens)"]
    # kept (CLS/SEP/pads excluded): row 0 {1 (R), 3 (not R)}, row 1 {2 (R)}; R has 3 pieces,
    # the other real pieces are 5 (row 0: 3, 4, 5; row 1: 1, 3)
    assert adapler["recall"] == pytest.approx(2 / 3)
    assert adapler["FPR"] == pytest.approx(1 / 5)
    assert adapler["precision"] == pytest.approx(2 / 3)
    oracle = table.loc["top-k oracle"]
    assert oracle["FPR"] == 0.0 and oracle["precision"] == 1.0
    assert list(table.index) == ["AdapLeR (kept tokens)", "top-k oracle", "top-k random"]
