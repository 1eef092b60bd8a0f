"""common.tokenization on a tiny vocabulary: special tokens, pairs, truncation, casing."""
import numpy as np
import pytest

from common.errors import UserError
from common.tokenization import encode, load_tokenizer

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]",
         "the", "cat", "sat", "on", "mat", "a", "dog", "cafe", "The", "##s"]
ID = {token: i for i, token in enumerate(VOCAB)}
PAD, UNK, CLS, SEP = 0, 1, 2, 3


@pytest.fixture(scope="module")
def vocab_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("vocab") / "vocab.txt"
    path.write_text("\n".join(VOCAB) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def uncased(vocab_file):
    return load_tokenizer(vocab_file)


def ids(*tokens):
    return [ID[t] for t in tokens]


def test_single_sentence_padding_and_dtypes(uncased):
    out = encode(uncased, ["the cat sat", "a dog"], max_length=8)
    assert set(out) == {"input_ids", "token_type_ids", "attention_mask"}
    for array in out.values():
        assert array.dtype == np.int32 and array.shape == (2, 8)
    assert out["input_ids"][0].tolist() == [CLS, *ids("the", "cat", "sat"), SEP, PAD, PAD, PAD]
    assert out["input_ids"][1].tolist() == [CLS, *ids("a", "dog"), SEP, PAD, PAD, PAD, PAD]
    assert out["attention_mask"][1].tolist() == [1, 1, 1, 1, 0, 0, 0, 0]
    assert not out["token_type_ids"].any()


def test_pair_layout(uncased):
    out = encode(uncased, ["the cat"], ["a dog"], max_length=8)
    assert out["input_ids"][0].tolist() == [
        CLS, *ids("the", "cat"), SEP, *ids("a", "dog"), SEP, PAD]
    assert out["token_type_ids"][0].tolist() == [0, 0, 0, 0, 1, 1, 1, 0]
    assert out["attention_mask"][0].tolist() == [1] * 7 + [0]


def test_pair_truncation_is_longest_first(uncased):
    out = encode(uncased, ["the cat sat on the mat"], ["a dog"], max_length=7)
    # 3 specials leave 4 tokens: the long first text is cut, the short second one kept whole
    assert out["input_ids"][0].tolist() == [CLS, *ids("the", "cat"), SEP, *ids("a", "dog"), SEP]
    out = encode(uncased, ["a dog"], ["the cat sat on the mat"], max_length=7)
    assert out["input_ids"][0].tolist() == [CLS, *ids("a", "dog"), SEP, *ids("the", "cat"), SEP]


def test_single_truncation_keeps_sep(uncased):
    out = encode(uncased, ["the cat sat on the mat"], max_length=4)
    assert out["input_ids"][0].tolist() == [CLS, *ids("the", "cat"), SEP]


def test_lower_casing_and_accents(uncased, vocab_file):
    assert encode(uncased, ["The CAT café cats"], max_length=8)["input_ids"][0][:6].tolist() == [
        CLS, *ids("the", "cat", "cafe", "cat", "##s")]
    cased = load_tokenizer(vocab_file, cased=True)
    assert encode(cased, ["The CAT café"], max_length=6)["input_ids"][0].tolist() == [
        CLS, ID["The"], UNK, UNK, SEP, PAD]


def test_model_folder(vocab_file):
    tokenizer = load_tokenizer(vocab_file.parent)
    assert encode(tokenizer, ["the mat"], max_length=4)["input_ids"][0].tolist() == [
        CLS, *ids("the", "mat"), SEP]


def test_empty_input(uncased):
    out = encode(uncased, [], max_length=5)
    assert out["input_ids"].shape == (0, 5) and out["input_ids"].dtype == np.int32


def test_errors(uncased, tmp_path):
    with pytest.raises(UserError, match="vocabulary not found"):
        load_tokenizer(tmp_path / "missing" / "vocab.txt")
    with pytest.raises(UserError, match="no vocab.txt or tokenizer.json"):
        load_tokenizer(tmp_path)
    bad = tmp_path / "vocab.txt"
    bad.write_text("a\nb\n")
    with pytest.raises(UserError, match="cannot read vocabulary"):
        load_tokenizer(bad)
    with pytest.raises(UserError, match="at least 3"):
        encode(uncased, ["a"], ["b"], max_length=2)
    with pytest.raises(UserError, match="at least 2"):
        encode(uncased, ["a"], max_length=1)
    encode(uncased, ["a"], max_length=2)
    with pytest.raises(UserError, match="second texts"):
        encode(uncased, ["a", "b"], ["c"], max_length=8)


FAMILY_TOKENIZERS = ["tiny_roberta", "tiny_xlm_roberta", "tiny_distilbert", "tiny_electra"]


def _hf_ids(reference, kind):
    return {key: reference[f"{kind}_{key}"] for key in ("input_ids", "token_type_ids",
                                                         "attention_mask")}


def _assert_hf_ids(tokenizer, reference, token_types=True):
    """Our ids equal the ones HF's tokenizer of the family gave (tools/make_backbone_fixtures)."""
    texts_a, texts_b = list(reference["texts_a"]), list(reference["texts_b"])
    for kind, second in (("pair", texts_b), ("single", None)):
        ours, theirs = encode(tokenizer, texts_a, second, max_length=16), _hf_ids(reference, kind)
        for key in ("input_ids", "attention_mask") + (("token_type_ids",) if token_types else ()):
            np.testing.assert_array_equal(ours[key], theirs[key], err_msg=f"{kind} {key}")


@pytest.mark.parametrize("name", FAMILY_TOKENIZERS)
def test_family_tokenizer_gives_hf_ids(name, fixtures_dir):
    """RoBERTa's byte-level BPE and XLM-RoBERTa's Unigram from tokenizer.json (`<s> a </s></s> b
    </s>`, no token types), DistilBERT's and ELECTRA's WordPiece; DistilBERT's model ignores
    token types, so only the ids and masks are compared there."""
    reference = np.load(fixtures_dir / name / "reference.npz")
    tokenizer = load_tokenizer(fixtures_dir / name)
    _assert_hf_ids(tokenizer, reference, token_types=name != "tiny_distilbert")
    if name in ("tiny_roberta", "tiny_xlm_roberta"):
        pair = encode(tokenizer, ["the"], ["good"], max_length=16)["input_ids"][0]
        # <s> a </s></s> b </s> <pad>...
        assert pair[0] == 0 and list(pair).count(2) == 3 and pair[-1] == 1
        assert load_tokenizer(fixtures_dir / name / "tokenizer.json").tokenize("the plot") == (
            tokenizer.tokenize("the plot"))
        assert set(tokenizer("the", "good")["token_type_ids"]) == {0}  # every caller gets them
        with pytest.raises(UserError, match="at least 4"):
            encode(tokenizer, ["a"], ["b"], max_length=3)


def test_roberta_from_vocab_json_and_merges(fixtures_dir, tmp_path):
    """A RoBERTa folder with vocab.json + merges.txt and no tokenizer.json: the same ids."""
    for name in ("vocab.json", "merges.txt", "tokenizer_config.json"):
        (tmp_path / name).write_bytes((fixtures_dir / "tiny_roberta" / name).read_bytes())
    _assert_hf_ids(load_tokenizer(tmp_path), np.load(fixtures_dir / "tiny_roberta" /
                                                     "reference.npz"))
    (tmp_path / "tokenizer_config.json").unlink()  # RoBERTa's special tokens by default
    _assert_hf_ids(load_tokenizer(tmp_path), np.load(fixtures_dir / "tiny_roberta" /
                                                     "reference.npz"))
    (tmp_path / "merges.txt").write_text("not\na merges file\n")
    with pytest.raises(UserError, match="cannot read the tokenizer files"):
        load_tokenizer(tmp_path)


def test_library_tokenizer_saved_in_a_checkpoint_loads_again(fixtures_dir, tmp_path):
    tokenizer = load_tokenizer(fixtures_dir / "tiny_xlm_roberta")
    tokenizer.save_pretrained(tmp_path)
    _assert_hf_ids(load_tokenizer(tmp_path), np.load(fixtures_dir / "tiny_xlm_roberta" /
                                                     "reference.npz"))
