"""The PABEE model: a BERT/ALBERT backbone with one internal classifier after every layer.

The seam is after each block: layer i's [CLS] vector goes through the backbone's own (shared)
pooler, then dropout (training only, a fresh mask per layer), then classifier i, a single
`Dense(num_labels)` named `classifiers_{i-1}`. The last one is the final classifier; there is no
separate head. Heads start at N(0, initializer_range) / zero bias (the HF init rule).

Dropout rate: BERT `hidden_dropout_prob`, ALBERT `classifier_dropout_prob` (0.1 unless the
checkpoint's config says otherwise), as in the original.

Training returns all L logits and the loss is sum_i i * loss_i / sum_i i. Patience 0 (`call`) is
the plain full forward with the last classifier. Early exit lives in `pabee.patience`.
"""
import json
import os
import re

import keras
import numpy as np
import tensorflow as tf

from common import checkpoints
from common.errors import UserError
from common.modeling import BertBackbone, attention_bias, dummy_inputs
from common.training import classification_loss

HEAD_PREFIX = "classifiers_"
ALBERT_CLASSIFIER_DROPOUT = 0.1  # HF AlbertConfig default `classifier_dropout_prob`


class PabeeClassifier(keras.Model):
    """Backbone `bert` + shared pooler + L internal classifiers `classifiers_0..L-1`."""

    optional_checkpoint_keys = (HEAD_PREFIX,)

    def __init__(self, config, num_labels, head_dropout=None, **kwargs):
        super().__init__(**kwargs)
        self.config = config
        self.num_labels = num_labels
        self.num_layers = config.num_hidden_layers
        if head_dropout is None:
            head_dropout = ALBERT_CLASSIFIER_DROPOUT if config.is_albert else config.hidden_dropout_prob
        self.head_dropout = float(head_dropout)
        self.bert = BertBackbone(config, name="bert")
        self.dropout = keras.layers.Dropout(self.head_dropout, name="head_dropout")
        init = keras.initializers.RandomNormal(stddev=config.initializer_range)
        # float32 under mixed precision: the logits feed the loss and the patience rule.
        self.classifiers = [
            keras.layers.Dense(num_labels, kernel_initializer=init, bias_initializer="zeros",
                               dtype="float32", name=f"{HEAD_PREFIX}{i}")
            for i in range(self.num_layers)]

    def build(self, input_shape):
        """Sub-layers build on the first calls (see `build_model`)."""

    # ------------------------------------------------------------ the pieces of the loop
    def embed(self, inputs, training=False):
        """Embeddings (ALBERT: projected once, here) and the additive attention bias."""
        x = self.bert.embeddings(inputs["input_ids"], inputs["token_type_ids"], training=training)
        return x, attention_bias(inputs["attention_mask"], x.dtype)

    def layer(self, index, x, bias, training=False):
        """Block `index` (0-based; ALBERT: the index-th application of the shared block)."""
        return self.bert.blocks[index](x, bias, training=training)[0]

    def exit_logits(self, index, x, training=False):
        """Internal classifier `index` on layer output `x`: pooler -> dropout -> Dense."""
        pooled = self.bert.pool(x)
        return self.classifiers[index](self.dropout(pooled, training=training))

    def call(self, inputs, training=False, all_layers=False):
        """all_layers: the logits of every internal classifier, [z_1, ..., z_L] (training,
        per-layer evaluation). Otherwise patience 0: the full encoder and the last classifier."""
        if not all_layers:
            pooled = self.bert(inputs, training=training)["pooled_output"]
            return self.classifiers[-1](self.dropout(pooled, training=training))
        x, bias = self.embed(inputs, training)
        logits = []
        for index in range(self.num_layers):
            x = self.layer(index, x, bias, training)
            logits.append(self.exit_logits(index, x, training))
        return logits

    # ------------------------------------------------------------ sizes
    def head_parameters(self):
        """(all heads, heads added over a plain classifier): L(HC+C) and (L-1)(HC+C)."""
        one = self.config.hidden_size * self.num_labels + self.num_labels
        return self.num_layers * one, (self.num_layers - 1) * one


def weighted_loss(layer_logits, labels, num_labels):
    """sum_i i * loss(z_i) / sum_i i over the layers 1..L (CE, or MSE when num_labels == 1)."""
    total = tf.add_n([(i + 1) * classification_loss(z, labels, num_labels)
                      for i, z in enumerate(layer_logits)])
    count = len(layer_logits)
    return total / (count * (count + 1) / 2)


def loss_fn(model, features, labels, training=True):
    """The training objective, in the form `common.training` and `pabee.train` expect."""
    return weighted_loss(model(features, training=training, all_layers=True), labels,
                         model.num_labels)


# ---------------------------------------------------------------- building and loading

def head_dropout_of(source):
    """The head dropout a source's config asks for (None: the model's default rule)."""
    if source.kind == "own":
        return source.sidecar.get("head_dropout")
    if not source.config.is_albert:
        return None
    path = os.path.join(source.folder, "config.json")
    if os.path.isfile(path):
        with open(path, encoding="utf-8") as handle:
            return json.load(handle).get("classifier_dropout_prob")
    return None


def build_model(source, num_labels, name="pabee"):
    """An unloaded PabeeClassifier for a resolved `common.checkpoints.Source`, weights built."""
    model = PabeeClassifier(source.config, num_labels, head_dropout_of(source), name=name)
    model(dummy_inputs())  # builds the backbone through its own call: variables under "bert/"
    model(dummy_inputs(), all_layers=True)  # then every head
    return model


def load_weights(model, source, require_heads=False):
    """Fill `model` from `source`; returns how many internal classifiers were loaded.

    Our own checkpoints load by variable key (a plain fine-tuned checkpoint: backbone and pooler,
    heads stay fresh, as a HF `*ForSequenceClassification` checkpoint does in the original); HF
    folders load the backbone and, if present, an HF PABEE model's `classifiers.{i}` heads.
    `require_heads`: all L heads must come from the checkpoint (PABEE evaluation)."""
    if source.kind == "own":
        skipped = checkpoints.load_weights(model, source.path,
                                           optional=checkpoints.model_optional_keys(model))
        fresh = {key.split("/")[0] for key in skipped if key.startswith(HEAD_PREFIX)}
        loaded = model.num_layers - len(fresh)
    else:
        tensors = source.tensors()
        checkpoints.assign_hf_tensors(model.bert, tensors, source=source.path)
        loaded = _assign_hf_heads(model, tensors, source.path)
    if require_heads and loaded < model.num_layers:
        raise UserError(
            f"{source.path} has {loaded} of the {model.num_layers} PABEE internal classifiers; "
            "it is not a PABEE model: train one first with --do_train (or pass its output_dir)")
    return loaded


def _assign_hf_heads(model, tensors, path):
    """HF PABEE heads `classifiers.{i}.weight` (num_labels, H) -> kernel (H, num_labels)."""
    indexes = sorted({int(m.group(1)) for key in tensors
                      if (m := re.match(r"classifiers\.(\d+)\.weight$", key))})
    for index in indexes:
        if index >= model.num_layers:
            raise UserError(f"{path} has classifier {index} but the model has "
                            f"{model.num_layers} layers; check the config")
        head = model.classifiers[index]
        kernel = np.asarray(tensors[f"classifiers.{index}.weight"]).T
        if kernel.shape != tuple(head.kernel.shape):
            raise UserError(f"classifiers.{index}.weight in {path} has shape {kernel.T.shape} but "
                            f"the task needs ({model.num_labels}, {model.config.hidden_size}); "
                            "check --task_name")
        head.kernel.assign(kernel.astype(np.float32))
        head.bias.assign(np.asarray(tensors[f"classifiers.{index}.bias"], np.float32))
    return len(indexes)
