"""Tokenization through the `tokenizers` library (wrapped as transformers fast tokenizers).

`load_tokenizer` takes a `vocab.txt`, a `tokenizer.json` or a model folder holding one of them
(or RoBERTa's `vocab.json` + `merges.txt`):

* WordPiece (BERT, ALBERT's converted vocabularies, DistilBERT, ELECTRA): `[CLS] a [SEP] (b
  [SEP])`, token types 0 / 1; text is lower-cased and accent-stripped unless `cased` (the papers'
  CASED / --do_lower_case flags).
* any other `tokenizer.json` (RoBERTa's byte-level BPE, XLM-RoBERTa's Unigram): its own
  normalizer, pre-tokenizer and post-processor, so the family's special tokens and pair format
  (`<s> a </s></s> b </s>`); the special tokens named in the folder's `tokenizer_config.json` /
  `special_tokens_map.json` (else RoBERTa's). `cased` does not apply: these vocabularies are
  cased or normalise text themselves. Token types are the post-processor's (all 0 for both).
* `vocab.json` + `merges.txt` without `tokenizer.json`: RoBERTa's byte-level BPE, built here.

`encode` turns lists of texts into fixed-length int32 arrays.
"""
import json
import os

import numpy as np

from common.errors import UserError

TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "vocab.json")
BPE_FILES = ("vocab.json", "merges.txt")
SPECIAL_TOKENS = ("bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token",
                  "mask_token")
ROBERTA_SPECIAL_TOKENS = {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>",
                          "sep_token": "</s>", "pad_token": "<pad>", "cls_token": "<s>",
                          "mask_token": "<mask>"}


def load_tokenizer(path, cased=False):
    """A fast tokenizer for `path` (vocab.txt, tokenizer.json or a folder with one of them, or
    with vocab.json + merges.txt): `BertTokenizerFast` for WordPiece, else the library
    tokenizer of the files (module docstring)."""
    from tokenizers import Tokenizer, normalizers
    from tokenizers.implementations import BertWordPieceTokenizer
    from transformers import BertTokenizerFast

    options = {"do_lower_case": not cased, "strip_accents": not cased}
    path = os.fspath(path)
    if os.path.isdir(path):
        if not any(os.path.isfile(os.path.join(path, name)) for name in TOKENIZER_FILES):
            raise UserError(f"no vocab.txt or tokenizer.json (or vocab.json + merges.txt) in "
                            f"{path}; pass the model folder that holds the vocabulary, or the "
                            "vocab.txt file")
        if not _is_wordpiece(path):
            return _checked(_library_tokenizer(path), path)
        try:
            tokenizer = BertTokenizerFast.from_pretrained(path, local_files_only=True, **options)
        except Exception as err:  # JSON, Rust and OS errors of damaged tokenizer files
            raise UserError(f"cannot read the tokenizer files in {path} "
                            f"({str(err).splitlines()[0] if str(err) else type(err).__name__}); "
                            "restore them or pass --VOCAB_PATH / --tokenizer_name") from None
        return _checked(tokenizer, path)
    if not os.path.isfile(path):
        raise UserError(f"vocabulary not found: {path}; pass a vocab.txt file or a model folder")
    # A lone file is built with the `tokenizers` library, then wrapped: the `vocab_file` keyword
    # is not understood by every transformers release.
    if os.path.basename(path) == "tokenizer.json" and not _is_wordpiece(os.path.dirname(path)):
        return _checked(_library_tokenizer(os.path.dirname(path)), path)
    try:
        if os.path.basename(path) == "tokenizer.json":
            backend = Tokenizer.from_file(path)
            backend.normalizer = normalizers.BertNormalizer(lowercase=not cased,
                                                            strip_accents=not cased)
        else:
            backend = BertWordPieceTokenizer(path, lowercase=not cased,
                                             strip_accents=not cased)._tokenizer
    except Exception as err:  # the Rust library raises plain Exception / TypeError
        raise UserError(f"cannot read vocabulary {path}: {err}; pass a BERT vocab.txt (one "
                        "token per line, with [CLS], [SEP], [UNK]) or tokenizer.json") from None
    return _checked(BertTokenizerFast(tokenizer_object=backend, **options), path)


def _is_wordpiece(folder):
    """Whether the folder's tokenizer is WordPiece: its tokenizer.json says so, or it has a
    vocab.txt and no vocab.json + merges.txt. A damaged tokenizer.json counts as WordPiece
    (the WordPiece loader reports it)."""
    path = os.path.join(folder, "tokenizer.json")
    if os.path.isfile(path):
        try:
            with open(path, encoding="utf-8") as handle:
                return json.load(handle)["model"]["type"] == "WordPiece"
        except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError):
            return True
    return not all(os.path.isfile(os.path.join(folder, name)) for name in BPE_FILES)


def _special_tokens(folder):
    """{`<kind>_token`: text} from tokenizer_config.json / special_tokens_map.json, else
    RoBERTa's."""
    found = {}
    for name in ("special_tokens_map.json", "tokenizer_config.json"):
        try:
            with open(os.path.join(folder, name), encoding="utf-8") as handle:
                values = json.load(handle)
        except (OSError, UnicodeDecodeError, ValueError):
            continue
        for key in SPECIAL_TOKENS:
            value = values.get(key) if isinstance(values, dict) else None
            value = value.get("content") if isinstance(value, dict) else value
            if isinstance(value, str):
                found.setdefault(key, value)
    return found or dict(ROBERTA_SPECIAL_TOKENS)


def _library_tokenizer(folder):
    """The folder's tokenizer.json (or RoBERTa's byte-level BPE from vocab.json + merges.txt)
    as a fast tokenizer with the folder's special tokens."""
    from tokenizers import Tokenizer, processors
    from tokenizers.implementations import ByteLevelBPETokenizer
    from transformers import PreTrainedTokenizerFast

    special = _special_tokens(folder)
    try:
        if os.path.isfile(os.path.join(folder, "tokenizer.json")):
            backend = Tokenizer.from_file(os.path.join(folder, "tokenizer.json"))
        else:
            backend = ByteLevelBPETokenizer(*(os.path.join(folder, n) for n in BPE_FILES),
                                            add_prefix_space=False, trim_offsets=True)._tokenizer
            ids = {key: backend.token_to_id(special[key]) for key in ("sep_token", "cls_token")
                   if key in special}
            if None in ids.values() or len(ids) < 2:
                raise ValueError("its vocab.json lacks the separator or classifier token")
            backend.post_processor = processors.RobertaProcessing(
                (special["sep_token"], ids["sep_token"]), (special["cls_token"], ids["cls_token"]),
                trim_offsets=True, add_prefix_space=False)
        # Token types (all 0 from these post-processors) for every caller: the models take them.
        return PreTrainedTokenizerFast(tokenizer_object=backend, model_input_names=[
            "input_ids", "token_type_ids", "attention_mask"], **special)
    except Exception as err:  # JSON, Rust and OS errors of damaged tokenizer files
        raise UserError(f"cannot read the tokenizer files in {folder} "
                        f"({str(err).splitlines()[0] if str(err) else type(err).__name__}); "
                        "restore them or pass another tokenizer folder") from None


def _checked(tokenizer, path):
    """An empty vocabulary, or one without [UNK], fails on the first text; say so now."""
    vocab = tokenizer.backend_tokenizer.get_vocab(with_added_tokens=False)
    if tokenizer.unk_token not in vocab:
        raise UserError(f"the vocabulary of {path} is empty or has no {tokenizer.unk_token} "
                        "token; restore vocab.txt (one token per line, with [CLS], [SEP], [UNK])")
    return tokenizer


def encode(tokenizer, texts_a, texts_b=None, max_length=128):
    """Batch-encode texts (pairs truncated longest-first) into int32 arrays `input_ids`,
    `token_type_ids`, `attention_mask` of shape (n, max_length), padded to `max_length`."""
    texts_a = list(texts_a)
    texts_b = None if texts_b is None else list(texts_b)
    minimum = tokenizer.num_special_tokens_to_add(pair=texts_b is not None)
    if max_length < minimum:
        raise UserError(f"max length {max_length} is too small; use at least {minimum} "
                        f"to fit the special tokens")
    if texts_b is not None and len(texts_b) != len(texts_a):
        raise UserError(f"{len(texts_a)} first texts but {len(texts_b)} second texts; "
                        "every pair needs both texts")
    keys = ("input_ids", "token_type_ids", "attention_mask")
    if not texts_a:
        return {key: np.zeros((0, max_length), np.int32) for key in keys}
    encoded = tokenizer(texts_a, texts_b, max_length=max_length, padding="max_length",
                        truncation="longest_first", return_token_type_ids=True,
                        return_attention_mask=True, return_tensors="np")
    return {key: np.asarray(encoded[key], dtype=np.int32) for key in keys}
