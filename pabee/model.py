"""The PABEE model: a BERT/ALBERT backbone with one internal classifier after every layer.

The internal classifiers are PABEE's seam (`InternalClassifiers`, `after_block`): after layer i
the pooled output (the backbone's own, shared pooler) goes through dropout (training only, a
fresh mask per layer) and classifier i, a `ClassificationHead` named `classifiers_{i-1}`, and its
logits are recorded under `LOGITS`. The last one is the final classifier (the model's `head`);
there is no separate head. Heads start at N(0, initializer_range) / zero bias (the HF init rule); for
regression, fresh heads' biases start at the mean training score (`start_at_mean_score`).

Dropout rate: BERT `hidden_dropout_prob`, ALBERT `classifier_dropout_prob` (0.1 unless the
checkpoint's config says otherwise), as in the original.

Training runs the seam at every layer and the loss is sum_i i * loss_i / sum_i i. Patience 0
(`call`) is the plain full forward with the last classifier. Early exit lives in
`pabee.patience`, on the same seam and `BertBackbone.run_layer`.
"""
import json
import os
import re

import keras
import numpy as np
import tensorflow as tf

from common import checkpoints
from common.errors import UserError
from common.modeling import ClassificationHead, SeamClassifier, dummy_inputs
from common.seams import NO_SEAM, Composite, SeamLayer
from common.training import classification_loss
from powerbert.model import PowerBertSeam

HEAD_PREFIX = "classifiers_"
LOGITS = "logits"  # the record name of the internal classifiers' outputs
ALBERT_CLASSIFIER_DROPOUT = 0.1  # HF AlbertConfig default `classifier_dropout_prob`


class InternalClassifiers(SeamLayer):
    """PABEE's seam: after block i, classifier i on the pooled output; its logits are recorded
    under `LOGITS`. `pool(hidden, mask)` is the model's pooling (one pooler for every exit)."""

    def __init__(self, config, num_labels, dropout, pool, **kwargs):
        super().__init__(**kwargs)
        init = keras.initializers.RandomNormal(stddev=config.initializer_range)
        self.classifiers = [
            ClassificationHead(num_labels, dropout, kernel_initializer=init,
                               bias_initializer="zeros", name=f"{HEAD_PREFIX}{i}")
            for i in range(config.num_hidden_layers)]
        self.pool = pool

    def after_block(self, state, layer, training=False):
        pooled = self.pool(state.hidden, state.mask)
        state.record(LOGITS, self.classifiers[layer](pooled, training=training))
        return state


class PabeeClassifier(SeamClassifier):
    """Backbone `bert` + shared pooler + L internal classifiers `classifiers_0..L-1` (the seam;
    the last one is the head).

    `retention` (word-vectors kept per block) puts PoWER-BERT's Extract under the exits: the
    model's seam is then `Composite(PowerBertSeam, InternalClassifiers)`, one loop in which each
    block drops word-vectors between its sub-layers and each layer's classifier reads what is
    left (PABEE on a PoWER-BERT checkpoint)."""

    optional_checkpoint_keys = (HEAD_PREFIX,)

    def __init__(self, config, num_labels, head_dropout=None, pooling="cls", retention=None,
                 **kwargs):
        if head_dropout is None:
            head_dropout = (ALBERT_CLASSIFIER_DROPOUT if config.is_albert
                            else config.hidden_dropout_prob)
        exits = InternalClassifiers(config, num_labels, float(head_dropout), pool=None,
                                    name="internal_classifiers")
        below = None if retention is None else PowerBertSeam(
            config.num_hidden_layers, retention=retention, name="powerbert_seam")
        super().__init__(config, num_labels, seam=exits if below is None else Composite(
            below, exits, name="powerbert_pabee"), head=exits.classifiers[-1], pooling=pooling,
            **kwargs)
        exits.pool = self.bert.pool
        self.exits, self.below = exits, below
        self.retention = None if below is None else below.retention
        self.num_layers = config.num_hidden_layers
        self.head_dropout = float(head_dropout)

    @property
    def classifiers(self):
        return self.exits.classifiers

    def forward(self, inputs, training=False):
        """The seam at every layer: (the last classifier's logits, the final state, whose
        `records[LOGITS]` are [z_1, ..., z_L])."""
        state = self.bert.encode(inputs, self.seam, training)
        return state.records[LOGITS][-1], state

    def call(self, inputs, training=False, all_layers=False):
        """all_layers: the logits of every internal classifier, [z_1, ..., z_L] (training,
        per-layer evaluation). Otherwise patience 0: the full encoder and the last classifier."""
        if all_layers:
            return self.forward(inputs, training)[1].records[LOGITS]
        return self.classify(self.bert.encode(inputs, self.below or NO_SEAM, training), training)

    def start_at_mean_score(self, scores):
        """Regression: every internal classifier's bias starts at the mean training score.

        From a zero bias, all L heads must reach scores around 2.7 (STS-B: 0-5), and Adam moves
        a bias by about one learning rate per update; the fast way there is through the pooler
        they share and the layers below, which learn to give every input the same pooled
        vector, and from there nothing input-dependent is learned (Spearman near 0). Started
        at the mean, the heads only have to learn what varies with the input."""
        mean = float(np.mean(scores))
        for head in self.classifiers:
            head.bias.assign(np.full(head.bias.shape, mean, np.float32))
        return mean

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
        return source.sidecar["method_state"].get("head_dropout")
    if not source.config.is_albert:
        return None
    path = os.path.join(source.folder, "config.json")
    if os.path.isfile(path):
        with open(path, encoding="utf-8") as handle:
            return json.load(handle).get("classifier_dropout_prob")
    return None


def retention_of(source):
    """The PoWER-BERT retention configuration a checkpoint of this toolkit records (a PoWER-BERT
    checkpoint, or a PABEE model trained on one), else None."""
    if source.kind != "own":
        return None
    return source.sidecar["method_state"].get("retention_config")


def build_model(source, num_labels, name="pabee", pooling="cls"):
    """An unloaded PabeeClassifier for a resolved `common.checkpoints.Source`, weights built;
    with PoWER-BERT's Extract under the exits when the source records a retention."""
    model = PabeeClassifier(source.config, num_labels, head_dropout_of(source), pooling,
                            retention=retention_of(source), name=name)
    model(dummy_inputs(), all_layers=True)  # the backbone (through its own call), every head
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


# ---------------------------------------------------------------- the method contract

def load_model(source, patience=None):
    """The inference model of a PABEE checkpoint (`common.checkpoints.Source`), every internal
    classifier loaded; `model.patience` is `patience`, else the one the checkpoint records."""
    pooling = checkpoints.recorded_pooling(source) or "cls"
    model = build_model(source, source.sidecar["num_labels"], pooling=pooling)
    load_weights(model, source, require_heads=True)
    model.patience = int(patience if patience is not None
                         else source.sidecar["method_state"].get("patience", 0))
    return model
