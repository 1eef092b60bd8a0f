"""WordPiece tokenization through transformers' fast BERT tokenizer.

`load_tokenizer` takes a `vocab.txt`, a `tokenizer.json` or a model folder holding either; text is
lower-cased and accent-stripped unless `cased` (the papers' CASED / --do_lower_case flags).
`encode` turns lists of texts into fixed-length int32 arrays `[CLS] a [SEP] (b [SEP])`.
"""
import os

import numpy as np

from common.errors import UserError

TOKENIZER_FILES = ("tokenizer.json", "vocab.txt")


def load_tokenizer(path, cased=False):
    """A `BertTokenizerFast` for `path` (vocab.txt, tokenizer.json or a folder with one of them)."""
    from tokenizers import Tokenizer, normalizers
    from tokenizers.implementations import BertWordPieceTokenizer
    from transformers import BertTokenizerFast

    options = {"do_lower_case": not cased, "strip_accents": not cased}
    path = os.fspath(path)
    if os.path.isdir(path):
        if not any(os.path.isfile(os.path.join(path, name)) for name in TOKENIZER_FILES):
            raise UserError(f"no vocab.txt or tokenizer.json in {path}; pass the model folder "
                            "that holds the vocabulary, or the vocab.txt file")
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
    minimum = 2 if texts_b is None else 3  # room for [CLS] and the [SEP]s
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
