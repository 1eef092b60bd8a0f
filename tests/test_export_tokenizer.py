"""The in-graph tokenizer (common.export.tokenizer) gives the toolkit tokenizer's ids: on every
text of the bundled SST-2 dev set, on the MRPC dev pairs when /work/shared holds them, and on
texts that exercise each normalization step, lower-cased and cased, at a length that truncates."""
import os

import numpy as np
import pytest
import tensorflow as tf

from common.data import default_data_dir, read_split
from common.export.tokenizer import from_tokenizer
from common.tokenization import encode, load_tokenizer
from conftest import FIXTURES

MRPC = "/work/shared/data/glue/MRPC"
TRICKY = ["", "   ", "µ micro and μ mu", "Crème brûlée À LA CARTE", "İstanbul ǅ ß ﬁ",
          "tab\there\nnew\rline", "zero\u200bwidth\u00a0nbsp\u3000ideographic space",
          "控制 中文字符 and 日本語", "a" * 101, "é" * 60, "$5 + <tags> | ~tilde^ `q`",
          "«quotes» — dash … ellipsis", "\x00nul\ufffdreplacement\x07bell", "emoji 🙂 ok",
          "don't STOP-believing!!!", "[SEP] typed [UNK]"]


def _vocabs():
    from common.data import default_model_dir
    folders = [FIXTURES / "tiny_bert", FIXTURES / "old_checkpoints" / "finetune"]
    try:
        folders.append(default_model_dir())
    except Exception:  # the MiniLM package is optional here
        pass
    return [os.fspath(folder) for folder in folders]


def _assert_equal(tokenizer, lower_case, max_length, texts_a, texts_b=None):
    graph = from_tokenizer(tokenizer, lower_case, max_length)
    ours = {key: value.numpy() for key, value in graph(
        tf.constant(texts_a), None if texts_b is None else tf.constant(texts_b)).items()}
    reference = encode(tokenizer, texts_a, texts_b, max_length)
    width = ours["input_ids"].shape[1]
    assert width == int(reference["attention_mask"].sum(1).max())  # padded to the longest
    for key, value in reference.items():
        mismatched = np.flatnonzero((value[:, :width] != ours[key]).any(1))
        assert not len(mismatched), (key, [texts_a[i] for i in mismatched[:5]])


@pytest.mark.parametrize("folder", _vocabs())
def test_bundled_sst2_dev(folder):
    examples = read_split("sst-2", default_data_dir(), "dev")
    tokenizer = load_tokenizer(folder)
    for max_length in (128, 12):
        _assert_equal(tokenizer, True, max_length, examples.text_a)


@pytest.mark.skipif(not os.path.isdir(MRPC), reason="MRPC dev set not present")
@pytest.mark.parametrize("folder", _vocabs())
def test_mrpc_dev_pairs(folder):
    examples = read_split("mrpc", MRPC, "dev")
    tokenizer = load_tokenizer(folder)
    for max_length in (128, 24, 7):  # 24 and 7 truncate longest-first
        _assert_equal(tokenizer, True, max_length, examples.text_a, examples.text_b)


@pytest.mark.parametrize("cased", [False, True])
def test_normalization_edge_cases(cased):
    from common.data import default_model_dir
    try:
        folder = default_model_dir()
    except Exception:
        folder = os.fspath(FIXTURES / "tiny_bert")
    tokenizer = load_tokenizer(folder, cased=cased)
    _assert_equal(tokenizer, not cased, 32, TRICKY)
    _assert_equal(tokenizer, not cased, 9, TRICKY, TRICKY[::-1])


def test_micro_sign_kept():
    """The case that tensorflow-text's built-in lower-casing gets wrong (NFKC folds µ to μ)."""
    from common.data import default_model_dir
    try:
        tokenizer = load_tokenizer(default_model_dir())
    except Exception:
        pytest.skip("the MiniLM vocabulary (with µ) is not installed")
    assert "µ" in tokenizer.get_vocab() and "μ" in tokenizer.get_vocab()
    ids = from_tokenizer(tokenizer, True, 8)(tf.constant(["µ"]))["input_ids"].numpy()[0]
    assert ids[1] == tokenizer.convert_tokens_to_ids("µ")


def test_only_wordpiece_runs_in_the_graph():
    from common.export.tokenizer import runs_in_graph

    folder = FIXTURES / "tiny_roberta"
    if not folder.is_dir():
        pytest.skip("no RoBERTa fixture")
    assert not runs_in_graph(load_tokenizer(os.fspath(folder)))
    assert runs_in_graph(load_tokenizer(os.fspath(FIXTURES / "tiny_bert")))
