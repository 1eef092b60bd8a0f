"""The PoWER-BERT classifier: the shared backbone's blocks run in a loop with Soft-Extract or
Extract in the seam between each block's attention and feed-forward sub-layers (spec §2, §3).

    x = embeddings(tokens)
    for block l:   x, probs = block.attention(x, mask)
                   x = SoftExtract_l(x, significance(probs))        # configuration search
                or x, mask = extract(x, mask, significance(probs), retention[l])   # Extract
                   x = block.feed_forward(x)
    logits = classifier(pooler(x[:, 0]))

The backbone and head keep the names `bert` and `classifier`, so the variable keys match a plain
`SequenceClassifier` checkpoint (stage 1) and every stage loads the previous one by key; the
retention parameters live under `soft_extract_<l>/` and may be absent from a checkpoint.
"""
import dataclasses

import keras
from keras import ops

from common.modeling import BertBackbone, attention_bias, dummy_inputs, initializer
from powerbert.extract import SoftExtract, extract
from powerbert.significance import significance

SOFT_EXTRACT_PREFIX = "soft_extract_"


def reference_config(config):
    """The backbone config as the reference runs it: no attention-probability dropout
    (keras-bert has none); hidden dropout stays as configured."""
    return dataclasses.replace(config, attention_probs_dropout_prob=0.0)


class PowerBertClassifier(keras.Model):
    """BERT + pooler + classifier with Extract (`retention` given) or Soft-Extract
    (`search_length` given: the task's sequence length N) after every block's attention."""

    optional_checkpoint_keys = (SOFT_EXTRACT_PREFIX,)

    def __init__(self, config, num_labels, *, retention=None, search_length=None, lam=0.0,
                 classifier_dropout=0.0, **kwargs):
        kwargs.setdefault("name", "powerbert")
        super().__init__(**kwargs)
        if (retention is None) == (search_length is None):
            raise ValueError("give either a retention configuration or a search length")
        layers = config.num_hidden_layers
        if retention is not None and len(retention) != layers:
            raise ValueError(f"retention needs {layers} values, got {len(retention)}")
        self.config, self.num_labels = config, num_labels
        self.retention = None if retention is None else [int(k) for k in retention]
        self.bert = BertBackbone(config, name="bert")
        self.classifier_dropout = keras.layers.Dropout(classifier_dropout)
        # float32 under mixed precision: the logits feed the loss.
        self.classifier = keras.layers.Dense(num_labels, kernel_initializer=initializer(config),
                                             dtype="float32", name="classifier")
        # Block l (1-based) pays LAMBDA * l per unit of retention mass.
        self.soft_extracts = [] if search_length is None else [
            SoftExtract(search_length, lam * (l + 1), name=f"{SOFT_EXTRACT_PREFIX}{l + 1}")
            for l in range(layers)]

    def build(self, input_shape):
        # Create the backbone's variables through its own call so their keys are `bert/...`.
        self.bert(dummy_inputs())

    def call(self, inputs, training=False):
        return self.forward(inputs, training=training)["logits"]

    def forward(self, inputs, training=False, trace=False):
        """{'logits'} and, with `trace`, 'lengths' (word-vectors entering each FFN) and
        'positions' (with Extract: the original positions kept after each block, (batch, k_l))."""
        x = self.bert.embeddings(inputs["input_ids"], inputs["token_type_ids"], training=training)
        mask = ops.cast(inputs["attention_mask"], x.dtype)
        positions = ops.broadcast_to(ops.arange(ops.shape(mask)[1])[None, :], ops.shape(mask))
        lengths, kept = [], []
        for layer, block in enumerate(self.bert.blocks):
            x, probs = block.attention(x, attention_bias(mask, x.dtype), training=training)
            scores = significance(probs)  # float32 sums: the probabilities are float32
            if self.soft_extracts:
                x = self.soft_extracts[layer](x, scores)
            else:
                x, mask, chosen = extract(x, mask, scores, self.retention[layer])
                if trace and chosen is not None:
                    positions = ops.take_along_axis(positions, chosen, axis=1)
                kept.append(positions)
            lengths.append(x.shape[1])
            x = block.feed_forward(x, training=training)
        pooled = self.bert.pool(x)
        outputs = {"logits": self.classifier(self.classifier_dropout(pooled, training=training))}
        if trace:
            outputs.update(lengths=lengths, positions=kept)
        return outputs

    def retention_masses(self):
        """Per-block sums of the Soft-Extract retention parameters."""
        return [layer.mass() for layer in self.soft_extracts]
