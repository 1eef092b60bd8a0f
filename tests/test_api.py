"""The Python API (common.api): load a checkpoint of every method, predict in input order with
the method's cost, the same answers in batches as one by one, knobs, evaluate a file, and the
round trip of own data (label names from the training file)."""
import json

import numpy as np
import pandas as pd
import pytest

from common.api import load
from common.errors import UserError
from conftest import FIXTURES

OLD = FIXTURES / "old_checkpoints"
TEXTS = ["the movie was good .", "an awful film", "it is fun", "this acting was very bad",
         "good"]


@pytest.mark.parametrize("folder, knobs, cost", [
    ("finetune", {}, None),
    ("powerbert/retrained", {}, "tokens_kept"),
    ("adapler/adapler", {}, "tokens_kept"),
    ("pabee", {"patience": 1}, "layers_run")])
def test_predict_every_method(folder, knobs, cost):
    model = load(OLD / folder, **knobs)
    batched = model.predict(TEXTS, batch_size=2)
    single = [model.predict([text])[0] for text in TEXTS]
    assert len(batched) == len(TEXTS)
    for many, one in zip(batched, single):
        assert many["label"] == one["label"] and many["label"] in ("negative", "positive")
        np.testing.assert_allclose(list(many["probabilities"].values()),
                                   list(one["probabilities"].values()), atol=1e-5)
        assert sum(many["probabilities"].values()) == pytest.approx(1.0)
        assert (cost in many) if cost else not ({"tokens_kept", "layers_run"} & set(many))
    if cost == "tokens_kept":  # per layer, never more than the text's word pieces
        lengths = [len(t.split()) + 2 for t in TEXTS]
        for row, length in zip(batched, lengths):
            assert len(row[cost]) == 2 and all(0 < k <= length for k in row[cost])
    if cost == "layers_run":
        assert all(row[cost] in (1, 2) for row in batched)


def test_input_order_survives_length_sorting():
    model = load(OLD / "finetune")
    def table(rows):
        return np.array([list(r["probabilities"].values()) for r in rows])

    reversed_rows = model.predict(TEXTS[::-1], batch_size=2)
    np.testing.assert_allclose(table(reversed_rows[::-1]),
                               table(model.predict(TEXTS, batch_size=3)), atol=1e-5)


def test_evaluate_a_file_and_bad_calls(tmp_path):
    model = load(OLD / "finetune")
    dev = tmp_path / "dev.tsv"
    pd.DataFrame({"sentence": TEXTS[:4], "label": [1, 0, 1, 0]}).to_csv(dev, sep="\t",
                                                                       index=False)
    metrics = model.evaluate(dev)
    expected = np.mean([r["label"] == ("positive" if y else "negative") for r, y in
                        zip(model.predict(TEXTS[:4]), [1, 0, 1, 0])])
    assert metrics["acc"] == pytest.approx(expected) and metrics["examples"] == 4
    with pytest.raises(UserError, match="list of strings"):
        model.predict("one text")
    with pytest.raises(UserError, match="not a string"):
        model.predict(["ok", None])
    with pytest.raises(UserError, match="model not found"):
        load(tmp_path / "nothing")
    assert model.predict([]) == []


def test_own_data_round_trip(tmp_path):
    """Fine-tune on a CSV with string labels, load, predict names, evaluate the JSON lines."""
    from tests.test_own_data import TINY, rows, run, write
    from tools import finetune

    train = write(tmp_path / "train.csv", rows(16, 0))
    dev = write(tmp_path / "dev.jsonl", rows(8, 1))
    out = tmp_path / "model"
    assert run(finetune.main, ["--model", TINY, "--max_length", 16, "--epochs", 1,
                               "--output_dir", out, "--train_file", train, "--validation_file",
                               dev, "--text_column", "review", "--label_column",
                               "sentiment"]) is None
    model = load(out)
    assert model.labels == ("negative", "positive")
    predictions = model.predict([r["review"] for r in rows(8, 1)])
    assert {p["label"] for p in predictions} <= {"negative", "positive"}
    metrics = model.evaluate(dev)
    assert metrics["acc"] == pytest.approx(
        json.loads((out / "eval_results.json").read_text())["acc"])


def test_a_savedmodel_answers_as_its_checkpoint(tmp_path):
    """`load` of a `bert-speedup-export` folder: the same labels, probabilities and costs as the
    checkpoint it was exported from, in input order; knobs are fixed at export."""
    from common.export import export

    exported = tmp_path / "exported"
    export(str(OLD / "pabee"), str(exported), knobs={"patience": 1})
    texts = ["a gripping , funny film", "bad", "", "the plot was very good and the acting too"]
    ours = load(OLD / "pabee", patience=1).predict(texts, batch_size=2)
    served = load(exported)
    assert served.method == "pabee" and served.labels == load(OLD / "pabee").labels
    theirs = served.predict(texts, batch_size=2)
    for a, b in zip(ours, theirs):
        assert a["label"] == b["label"] and a["layers_run"] == b["layers_run"]
        np.testing.assert_allclose(list(a["probabilities"].values()),
                                   list(b["probabilities"].values()), atol=1e-5)
    with pytest.raises(UserError, match="fixed at export"):
        load(exported, patience=2)


@pytest.mark.parametrize("family", ["tiny_roberta", "tiny_xlm_roberta", "tiny_distilbert",
                                    "tiny_electra"])
def test_every_backbone_answers_from_python(family, tmp_path):
    """A checkpoint of each family predicts through the API what its model gives on the
    family's own token ids (byte-level BPE, Unigram, WordPiece)."""
    from common import checkpoints
    from common.tokenization import encode, load_tokenizer

    model, _, _ = checkpoints.load_classifier(str(FIXTURES / family), 2)
    tokenizer = load_tokenizer(str(FIXTURES / family))
    folder = tmp_path / family
    checkpoints.save_checkpoint(model, str(folder), {"task": "sst-2", "num_labels": 2,
                                                     "max_length": 16, "method": "vanilla"},
                                tokenizer=tokenizer)
    texts = ["a good film", "bad", "the plot was very good and the acting too"]
    logits = np.asarray(model(encode(tokenizer, texts, max_length=16)))
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    expected = shifted / shifted.sum(axis=1, keepdims=True)
    got = load(folder).predict(texts, batch_size=2)
    np.testing.assert_allclose([list(row["probabilities"].values()) for row in got], expected,
                               atol=1e-5)
