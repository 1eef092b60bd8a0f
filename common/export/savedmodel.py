"""A checkpoint as a TensorFlow SavedModel: WordPiece and the method's fast path in one graph.

Signatures (the first two also return `logits`):

* `serving_default(text[, text_pair])`: `[batch]` strings, tokenized in the graph
  (`common.export.tokenizer`, padded to the longest text of the request, truncated at the
  checkpoint's max length as the toolkit truncates);
* `token_ids(input_ids, attention_mask, token_type_ids)`: `[batch, length]` int32;
* `tokenize(text[, text_pair])`: the in-graph tokenizer alone (those three int32 tensors).

A checkpoint whose tokenizer the graph cannot run (RoBERTa's byte-level BPE, XLM-RoBERTa's
Unigram: `common.export.tokenizer.runs_in_graph`) is exported with token ids in only:
`serving_default` is then `token_ids`, and the caller tokenizes with the folder's tokenizer.

Outputs: classification `probabilities` (batch, classes), `label_id` (batch,) int32, `label`
(batch,) the class name; regression `score` (batch,); and what the method reports per example
(its `serving.forward`): `layers_run` (batch,) and/or `tokens_kept` (batch, layers).

The SavedModel holds the model's variables, the tokenizer's vocabulary and the functions; no
Python class of this toolkit is saved, so `tf.saved_model.load` needs only TensorFlow and
tensorflow-text (`import tensorflow_text` registers the tokenizer's ops). Its metadata is the
asset `assets/bert_speedup.json`.
"""
import tensorflow as tf

from common.export import METADATA

TOKEN_KEYS = ("input_ids", "attention_mask", "token_type_ids")


class ServingModule(tf.Module):
    """The saved object: tokenizer, model variables, metadata asset and the signatures."""

    def __init__(self, tokenizer, forward, variables, labels, pair, metadata_path):
        super().__init__(name="bert_speedup")
        self.tokenizer = tokenizer
        # The TensorFlow variables under the Keras ones: what TF1-style loaders
        # (saved_model_cli run, TF Serving) restore by object path.
        self.model_variables = [variable.value for variable in variables]
        self.metadata = tf.saved_model.Asset(metadata_path)
        # One trace of the model serves both signatures.
        self._forward = tf.function(forward, input_signature=[
            {key: tf.TensorSpec([None, None], tf.int32) for key in TOKEN_KEYS}])
        self._labels = None if labels is None else tuple(labels)
        self.token_ids = tf.function(self._serve_ids, input_signature=[
            tf.TensorSpec([None, None], tf.int32, name) for name in TOKEN_KEYS])
        if tokenizer is None:  # a tokenizer the graph cannot run: ids in, `token_ids` serves
            self.serving_default = self.tokenize = None
            return
        texts = [tf.TensorSpec([None], tf.string, name) for name in ("text", "text_pair")]
        self.serving_default = (
            tf.function(self._serve_pair, input_signature=texts) if pair else
            tf.function(self._serve_text, input_signature=texts[:1]))
        self.tokenize = tf.function(
            (lambda text, text_pair: self.tokenizer(text, text_pair)) if pair else
            (lambda text: self.tokenizer(text)), input_signature=texts if pair else texts[:1])

    def _serve_text(self, text):
        return self._serve_features(self.tokenizer(text))

    def _serve_pair(self, text, text_pair):
        return self._serve_features(self.tokenizer(text, text_pair))

    def _serve_ids(self, input_ids, attention_mask, token_type_ids):
        return self._serve_features({"input_ids": input_ids, "attention_mask": attention_mask,
                                     "token_type_ids": token_type_ids})

    def _serve_features(self, features):
        features = {key: features[key] for key in TOKEN_KEYS}
        outputs = dict(tf.cond(tf.shape(features["input_ids"])[0] > 0,
                               lambda: self._forward(features), lambda: self._no_rows()))
        logits = tf.cast(outputs["logits"], tf.float32)
        outputs["logits"] = logits
        if self._labels is None:
            outputs["score"] = logits[:, 0]
        else:
            label_id = tf.argmax(logits, axis=-1, output_type=tf.int32)
            outputs.update(probabilities=tf.nn.softmax(logits, axis=-1), label_id=label_id,
                           label=tf.gather(tf.constant(self._labels), label_id))
        return outputs

    def _no_rows(self):
        """The outputs of an empty request: those of one dummy row, cut to none (a method's
        compaction cannot run on zero rows)."""
        one = tf.ones([1, 2], tf.int32)
        outputs = self._forward({"input_ids": one, "attention_mask": one,
                                 "token_type_ids": tf.zeros_like(one)})
        return tf.nest.map_structure(lambda value: value[:0], outputs)

    def signatures(self):
        ids = self.token_ids.get_concrete_function()
        if self.tokenizer is None:
            return {"serving_default": ids, "token_ids": ids}
        return {"serving_default": self.serving_default.get_concrete_function(),
                "token_ids": ids, "tokenize": self.tokenize.get_concrete_function()}


def save(folder, module):
    """Write the SavedModel of `module` into the new folder `folder`; its metadata asset is
    copied to `assets/` under its own name (METADATA)."""
    tf.saved_model.save(module, folder, signatures=module.signatures())
