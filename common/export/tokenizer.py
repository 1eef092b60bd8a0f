"""WordPiece tokenization as TensorFlow ops (tensorflow-text), equal to `common.tokenization`.

The toolkit's tokenizer is HF `tokenizers`' BERT pipeline; its steps are written here as graph
ops, in the same order, so that an exported model tokenizes inside its SavedModel:

1. clean: drop NUL, U+FFFD and the Unicode "other" characters (Cc, Cf, Co, Cn; tab, newline and
   carriage return are spaces), turn every other white space into a space;
2. lower-cased checkpoints: NFD, drop the non-spacing marks (Mn), then lower-case. tensorflow-text's
   own lower-casing (`case_fold_utf8`, NFKC case folding) would map the micro sign to Greek mu
   where HF keeps the micro sign, hence the explicit steps;
3. split on white space, and isolate punctuation (ASCII punctuation and Unicode P*) and CJK
   ideographs as words of their own (HF's `BertPreTokenizer` and `handle_chinese_chars`);
4. WordPiece per word (`FastWordpieceTokenizer`), a word of more than 100 characters is
   `[UNK]` (HF counts characters, tensorflow-text bytes, so the rule is applied here);
5. truncation as HF's `longest_first` (pairs: the shorter text keeps up to half of the room),
   then `[CLS] a [SEP] (b [SEP])` with token types, padded to the longest text of the batch.

As in HF, a special token written in the text (`[SEP]`, `[MASK]`..., matched case-sensitively
before any normalization) is that token.
"""
import re

import tensorflow as tf
import tensorflow_text as tf_text

MAX_WORD_CHARS = 100  # HF WordPiece's max_input_chars_per_word
# HF `_is_chinese_char`: the CJK Unified Ideographs blocks and their extensions.
CJK = (r"\x{4E00}-\x{9FFF}\x{3400}-\x{4DBF}\x{20000}-\x{2A6DF}\x{2A700}-\x{2B73F}"
       r"\x{2B740}-\x{2B81F}\x{2B820}-\x{2CEAF}\x{F900}-\x{FAFF}\x{2F800}-\x{2FA1F}")
KEEP_DELIMITERS = rf"[!-/:-@\[-`{{-~]|\p{{P}}|[{CJK}]"
DELIMITERS = rf"\s|{KEEP_DELIMITERS}"


class InGraphTokenizer(tf.Module):
    """`vocab` (tokens in id order), `lower_case`, `max_length` (special tokens included) ->
    `__call__(text, text_pair=None)`: int32 `input_ids`, `token_type_ids`, `attention_mask`,
    each (batch, longest encoded text of the batch)."""

    def __init__(self, vocab, lower_case, max_length, unk="[UNK]", cls="[CLS]", sep="[SEP]",
                 pad="[PAD]", specials=None, name=None):
        super().__init__(name=name)
        index = {token: i for i, token in enumerate(vocab)}
        self.lower_case, self.max_length = bool(lower_case), int(max_length)
        self.cls_id, self.sep_id, self.pad_id = index[cls], index[sep], index.get(pad, 0)
        self.unk = unk
        specials = sorted(specials if specials is not None else {unk, cls, sep, pad}, key=len,
                          reverse=True)  # the longest match first, as HF's matcher
        self.specials = "|".join(re.escape(token) for token in specials)
        self.special_ids = tf.lookup.StaticHashTable(tf.lookup.KeyValueTensorInitializer(
            specials, [index[token] for token in specials], value_dtype=tf.int32), -1)
        # Words longer than MAX_WORD_CHARS are replaced by `unk` before WordPiece, so no byte
        # limit of its own is wanted (4 bytes per character at most).
        self.wordpiece = tf_text.FastWordpieceTokenizer(
            vocab=list(vocab), token_out_type=tf.int32, unknown_token=unk,
            no_pretokenization=True, max_bytes_per_word=4 * MAX_WORD_CHARS + 4)

    def normalize(self, text):
        text = tf.strings.regex_replace(text, r"[\t\n\r]", " ")
        text = tf.strings.regex_replace(text, r"[\x{FFFD}\p{C}]", "")
        text = tf.strings.regex_replace(text, r"[\p{Zs}\x{2028}\x{2029}]", " ")
        if self.lower_case:
            text = tf.strings.regex_replace(tf_text.normalize_utf8(text, "NFD"), r"\p{Mn}", "")
            text = tf.strings.lower(text, encoding="utf-8")
        return text

    def word_ids(self, text):
        """(batch, pieces) ragged int32 word-piece ids of each text ([CLS]/[SEP] not added)."""
        # NUL goes first: tensorflow-text's splitting reads a string only up to its first NUL.
        text = tf.strings.regex_replace(text, r"\x00", "")
        parts = tf_text.regex_split(text, self.specials, self.specials)  # (batch, parts)
        special = self.special_ids.lookup(parts.flat_values)  # -1: ordinary text
        plain = tf.where(special < 0, parts.flat_values, "")
        words = tf_text.regex_split(self.normalize(plain), DELIMITERS, KEEP_DELIMITERS)
        long = tf.strings.length(words.flat_values, unit="UTF8_CHAR") > MAX_WORD_CHARS
        words = words.with_flat_values(tf.where(long, self.unk, words.flat_values))
        pieces = self.wordpiece.tokenize(words).merge_dims(1, 2)  # (parts, pieces)
        tokens = tf.RaggedTensor.from_row_lengths(
            tf.boolean_mask(special, special >= 0), tf.cast(special >= 0, tf.int64))
        return parts.with_values(tf.concat([pieces, tokens], axis=1)).merge_dims(1, 2)

    def truncated(self, first, second=None):
        """HF's `longest_first` lengths: single texts keep max_length - 2 pieces; for pairs
        (room m = max_length - 3) the shorter text keeps min(its length, max(...)) as HF's
        `tokenizers` computes it (utils/truncation.rs)."""
        if second is None:
            return first[:, :self.max_length - 2], None
        room = self.max_length - 3
        n1, n2 = first.row_lengths(), second.row_lengths()
        short, long = tf.minimum(n1, n2), tf.maximum(n1, n2)
        long_keep = tf.where(short > room, short, tf.maximum(short, room - short))
        over = short + long_keep > room
        short_keep = tf.where(over, tf.cast(room // 2, n1.dtype), short)
        long_keep = tf.where(over, tf.cast(room // 2 + room % 2, n1.dtype), long_keep)
        swap = n1 > n2
        keep1 = tf.where(swap, long_keep, short_keep)
        keep2 = tf.where(swap, short_keep, long_keep)
        return _head(first, keep1), _head(second, keep2)

    def __call__(self, text, text_pair=None):
        segments = self.truncated(self.word_ids(text),
                                  None if text_pair is None else self.word_ids(text_pair))
        segments = [s for s in segments if s is not None]
        ids, types = tf_text.combine_segments(segments, self.cls_id, self.sep_id)
        features = {"input_ids": ids.to_tensor(self.pad_id),
                    "token_type_ids": tf.cast(types, tf.int32).to_tensor(0),
                    "attention_mask": tf.ones_like(ids).to_tensor(0)}
        # An empty request would be (0, 0); every text has [CLS] and [SEP], so its width is 2.
        short = tf.maximum(0, 2 - tf.shape(features["input_ids"])[1])
        return {key: tf.pad(value, [[0, 0], [0, short]]) for key, value in features.items()}


def _head(ragged, keep):
    """The first `keep[i]` items of row i of a ragged (batch, None) tensor."""
    keep = tf.minimum(tf.cast(keep, ragged.row_splits.dtype), ragged.row_lengths())
    mask = tf.ragged.range(ragged.row_lengths()) < tf.expand_dims(keep, 1)
    return tf.ragged.boolean_mask(ragged, mask)


def runs_in_graph(tokenizer):
    """Whether the in-graph tokenizer reproduces `tokenizer`: WordPiece (BERT, ALBERT,
    DistilBERT, ELECTRA vocabularies); byte-level BPE (RoBERTa) and Unigram (XLM-RoBERTa) not."""
    from tokenizers import models

    return isinstance(tokenizer.backend_tokenizer.model, models.WordPiece)


def from_tokenizer(tokenizer, lower_case, max_length):
    """An `InGraphTokenizer` with the vocabulary and special tokens of a toolkit tokenizer
    (`common.tokenization.load_tokenizer`, WordPiece: `runs_in_graph`)."""
    vocab = tokenizer.backend_tokenizer.get_vocab(with_added_tokens=False)
    tokens = sorted(vocab, key=vocab.get)
    specials = [token.content for token in
                tokenizer.backend_tokenizer.get_added_tokens_decoder().values()
                if not token.normalized and token.content in vocab]
    return InGraphTokenizer(tokens, lower_case, max_length, unk=tokenizer.unk_token,
                            cls=tokenizer.cls_token, sep=tokenizer.sep_token,
                            pad=tokenizer.pad_token, specials=specials)
