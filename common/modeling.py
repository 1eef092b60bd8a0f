"""Keras 3 BERT-family backbone (BERT, ALBERT, RoBERTa, XLM-RoBERTa, DistilBERT, ELECTRA): the one
encoder loop, with three seams.

`BertBackbone` runs `embeddings -> for each layer: [before block] -> attention -> [between] ->
feed-forward -> [after block] -> pooler`. The loop is `BertBackbone.run_layers` (one layer:
`run_layer`), written here once; the bracketed hooks belong to a `common.seams.Seam`:

* PoWER-BERT fills `between` (significance from the attention probabilities, then Extract);
* AdapLeR fills `before_block` (contribution predictors edit the mask or drop tokens);
* PABEE fills `after_block` (an internal classifier reads the pooled output); its early exit
  is its own loop around `run_layer` (`pabee.patience`): `run_layers` runs every layer.

`SeamClassifier` is backbone + seam + pooler + `ClassificationHead`: every model of the toolkit
is one (a plain fine-tuned `SequenceClassifier` is the one with no seam).

Pooling (`BertBackbone(pooling=...)`): `cls` (the papers') feeds the [CLS] vector to the
pooler; `mean` feeds the mean of the real tokens' vectors (`state.mask`), for backbones trained
with mean pooling such as the sentence-transformers MiniLM, whose [CLS] vector barely depends on
the input below the last layer.

The families differ only in config (`common.config.BertConfig`): ALBERT has factorised
embeddings (`embedding_size` -> `hidden_size` projection) and one block shared by all layers (or
one per `num_hidden_groups`); ELECTRA the same projection when `embedding_size` != `hidden_size`;
RoBERTa (and XLM-RoBERTa) counts positions from `pad_token_id + 1` (fairseq's `make_positions`)
and has one token type; DistilBERT has no token types. All are post-LayerNorm encoders. The
pooler is the dense layer each family's HF classification head runs on the first token: BERT's
and ALBERT's tanh pooler, RoBERTa's `classifier.dense` + tanh, DistilBERT's `pre_classifier` +
ReLU, ELECTRA's `classifier.dense` + GELU; `ClassificationHead` is the last Dense (`classifier`,
`classifier.out_proj`). HF's RoBERTa and ELECTRA heads also apply dropout before that dense layer;
the pooler here does not (no difference at inference).

Masks: `attention_bias(mask)` (in `common.seams`) turns a (batch, length) 1/0 mask into the
additive key bias (batch, 1, 1, length) every block takes, 0 for kept keys and -10000 for removed
ones (the value HF BERT and AdapLeR use).
"""
import math

import keras
from keras import ops

from common.seams import MASK_VALUE, NO_SEAM, Recorder, attention_bias, initial_state  # noqa: F401


def activation_fn(name):
    """Map a config `hidden_act` to a Keras activation (exact erf GELU for 'gelu')."""
    if name == "gelu":
        return lambda x: keras.activations.gelu(x, approximate=False)
    if name in ("gelu_new", "gelu_pytorch_tanh", "gelu_fast"):
        return lambda x: keras.activations.gelu(x, approximate=True)
    return keras.activations.get(name)


def initializer(config):
    return keras.initializers.TruncatedNormal(stddev=config.initializer_range)


def to_rows(x):
    """(batch, length, ...) -> (batch * length, width): Dense layers on 2-D inputs run as one
    matmul that oneDNN fuses with its bias, activation and residual add (on 3-D inputs Keras
    reshapes between the matmul and the add, which blocks the fusion)."""
    return ops.reshape(x, (-1, math.prod(x.shape[2:])))


class Embeddings(keras.layers.Layer):
    """Word + position (+ token-type) embeddings, LayerNorm, dropout (+ ALBERT's / ELECTRA's
    projection)."""

    def __init__(self, config, **kwargs):
        super().__init__(**kwargs)
        width = config.embedding_width
        init = initializer(config)
        self.pad_token_id, self.position_offset = config.pad_token_id, config.position_offset
        self.single_token_type = config.type_vocab_size == 1
        self.word_embeddings = keras.layers.Embedding(
            config.vocab_size, width, embeddings_initializer=init, name="word_embeddings")
        self.position_embeddings = keras.layers.Embedding(
            config.max_position_embeddings, width, embeddings_initializer=init,
            name="position_embeddings")
        self.token_type_embeddings = keras.layers.Embedding(
            config.type_vocab_size, width, embeddings_initializer=init,
            name="token_type_embeddings") if config.has_token_types else None
        self.layer_norm = keras.layers.LayerNormalization(
            epsilon=config.layer_norm_eps, name="layer_norm")
        self.dropout = keras.layers.Dropout(config.hidden_dropout_prob)
        self.projection = (keras.layers.Dense(config.hidden_size, kernel_initializer=init,
                                              name="projection")
                           if config.projects_embeddings else None)

    def position_ids(self, input_ids):
        """0..n-1; RoBERTa: pad_token_id + 1 + the count of real tokens so far, pad_token_id at
        a padding token (HF's `create_position_ids_from_input_ids`)."""
        if not self.position_offset:
            return ops.arange(ops.shape(input_ids)[1])[None, :]
        real = ops.cast(ops.not_equal(input_ids, self.pad_token_id), "int32")
        return ops.cumsum(real, axis=1) * real + self.pad_token_id

    def call(self, input_ids, token_type_ids, training=False):
        x = self.word_embeddings(input_ids) + self.position_embeddings(self.position_ids(input_ids))
        if self.token_type_embeddings is not None:
            if self.single_token_type:  # RoBERTa: one type whatever ids the input carries
                token_type_ids = ops.zeros_like(input_ids)
            x = x + self.token_type_embeddings(token_type_ids)
        x = self.dropout(self.layer_norm(x), training=training)
        return self.projection(x) if self.projection is not None else x


class AttentionSublayer(keras.layers.Layer):
    """Multi-head self-attention + output projection + residual + LayerNorm.

    Q, K and V come from one fused (hidden, 3*hidden) matmul; scores and mixing are einsums.
    `call(x, bias)` returns `(output, probs)`, probs of shape (batch, heads, queries, keys).
    """

    def __init__(self, config, **kwargs):
        super().__init__(**kwargs)
        self.num_heads = config.num_attention_heads
        self.head_size = config.head_size
        init = initializer(config)
        self.qkv = keras.layers.Dense(3 * config.hidden_size, kernel_initializer=init, name="qkv")
        self.output_dense = keras.layers.Dense(config.hidden_size, kernel_initializer=init,
                                               name="output")
        self.probs_dropout = keras.layers.Dropout(config.attention_probs_dropout_prob)
        self.dropout = keras.layers.Dropout(config.hidden_dropout_prob)
        self.layer_norm = keras.layers.LayerNormalization(
            epsilon=config.layer_norm_eps, name="layer_norm")

    def call(self, x, bias, training=False):
        batch, length = ops.shape(x)[0], ops.shape(x)[1]
        rows = to_rows(x)
        qkv = ops.reshape(self.qkv(rows), (batch, length, 3, self.num_heads, self.head_size))
        query, key, value = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]
        scores = ops.einsum("bqhd,bkhd->bhqk", query, key) * (self.head_size ** -0.5)
        # Softmax over masked scores in float32 under mixed precision (a no-op in float32); the
        # methods read these float32 probabilities (PoWER-BERT's significance sums).
        probs = ops.softmax(ops.cast(scores, "float32") + ops.cast(bias, "float32"), axis=-1)
        mixing = ops.cast(self.probs_dropout(probs, training=training), value.dtype)
        context = ops.einsum("bhqk,bkhd->bqhd", mixing, value)
        output = self.dropout(self.output_dense(to_rows(context)), training=training)
        return ops.reshape(self.layer_norm(rows + output), ops.shape(x)), probs


class FeedForwardSublayer(keras.layers.Layer):
    """Dense(intermediate, act) -> Dense(hidden) -> dropout -> residual + LayerNorm."""

    def __init__(self, config, **kwargs):
        super().__init__(**kwargs)
        init = initializer(config)
        self.intermediate = keras.layers.Dense(
            config.intermediate_size, activation=activation_fn(config.hidden_act),
            kernel_initializer=init, name="intermediate")
        self.output_dense = keras.layers.Dense(config.hidden_size, kernel_initializer=init,
                                               name="output")
        self.dropout = keras.layers.Dropout(config.hidden_dropout_prob)
        self.layer_norm = keras.layers.LayerNormalization(
            epsilon=config.layer_norm_eps, name="layer_norm")

    def call(self, x, training=False):
        rows = to_rows(x)
        output = self.dropout(self.output_dense(self.intermediate(rows)), training=training)
        return ops.reshape(self.layer_norm(rows + output), ops.shape(x))


class TransformerBlock(keras.layers.Layer):
    """One encoder block: `attention` sub-layer, then `feed_forward` sub-layer."""

    def __init__(self, config, **kwargs):
        super().__init__(**kwargs)
        self.attention = AttentionSublayer(config, name="attention")
        self.feed_forward = FeedForwardSublayer(config, name="feed_forward")

    def call(self, x, bias, training=False):
        x, probs = self.attention(x, bias, training=training)
        return self.feed_forward(x, training=training), probs


POOLING_MODES = ("cls", "mean")


class BertBackbone(keras.layers.Layer):
    """Embeddings, the block loop and the pooler; the shared part of every model here."""

    def __init__(self, config, pooling="cls", **kwargs):
        super().__init__(**kwargs)
        if pooling not in POOLING_MODES:
            raise ValueError(f"pooling must be one of {POOLING_MODES}, got {pooling!r}")
        self.config, self.pooling = config, pooling
        self.embeddings = Embeddings(config, name="embeddings")
        groups = config.num_hidden_groups if config.is_albert else config.num_hidden_layers
        self.layer_groups = [TransformerBlock(config, name=f"block_{g}") for g in range(groups)]
        self.pooler = keras.layers.Dense(
            config.hidden_size, activation=activation_fn(config.pooler_activation),
            kernel_initializer=initializer(config), name="pooler")

    def build(self, input_shape=None):
        """Build every sub-layer through its own call, so each variable's key names its block
        (`run_layer` calls the sub-layers of a block directly)."""
        hidden = self.embeddings(ops.ones((1, 2), "int32"), ops.zeros((1, 2), "int32"))
        for block in self.layer_groups:
            block(hidden, ops.zeros((1, 1, 1, 2)))
        self.pooler(hidden[:, 0])
        self.built = True

    @property
    def blocks(self):
        """The block run at each of the L layers (ALBERT: the shared block, repeated)."""
        layers, groups = self.config.num_hidden_layers, len(self.layer_groups)
        return [self.layer_groups[i * groups // layers] for i in range(layers)]

    def pool(self, sequence_output, mask=None):
        """The pooler on the [CLS] vector (`cls`) or on the mean of the vectors whose `mask`
        is 1 (`mean`; no mask: every position)."""
        if self.pooling == "cls":
            return self.pooler(sequence_output[:, 0])
        if mask is None:
            return self.pooler(ops.mean(sequence_output, axis=1))
        mask = ops.cast(mask, sequence_output.dtype)[:, :, None]
        total = ops.sum(sequence_output * mask, axis=1)
        return self.pooler(total / ops.maximum(ops.sum(mask, axis=1), 1.0))

    def start(self, inputs, training=False):
        """Embeddings -> the `EncoderState` the first layer takes."""
        hidden = self.embeddings(ops.cast(inputs["input_ids"], "int32"),
                                 ops.cast(inputs["token_type_ids"], "int32"), training=training)
        return initial_state(hidden, inputs["attention_mask"])

    def run_layer(self, state, layer, seam=NO_SEAM, training=False):
        """Layer `layer` (0-based) with the seam's three hooks around its two sub-layers."""
        block = self.blocks[layer]
        state = seam.before_block(state, layer, training)
        hidden, probs = block.attention(state.hidden, state.bias, training=training)
        state = seam.between(state.replace(hidden=hidden), probs, layer, training)
        hidden = block.feed_forward(state.hidden, training=training)
        return seam.after_block(state.replace(hidden=hidden), layer, training)

    def run_layers(self, state, seam=NO_SEAM, training=False, layers=None):
        """The encoder loop: `run_layer` for each layer (default all)."""
        for layer in range(self.config.num_hidden_layers) if layers is None else layers:
            state = self.run_layer(state, layer, seam, training)
        return state

    def encode(self, inputs, seam=NO_SEAM, training=False):
        """`start` then `run_layers`: the final `EncoderState`."""
        return self.run_layers(self.start(inputs, training), seam, training)

    def call(self, inputs, training=False, output_hidden_states=False, output_attentions=False):
        """Vanilla forward. Returns a dict with `sequence_output`, `pooled_output` and, when
        asked, `hidden_states` (L+1 entries, index 0 = embeddings) and `attentions` (L)."""
        state = self.start(inputs, training)
        embedded = state.hidden
        state = self.run_layers(state, Recorder(output_hidden_states, output_attentions),
                                training)
        outputs = {"sequence_output": state.hidden,
                   "pooled_output": self.pool(state.hidden, state.mask)}
        if output_hidden_states:
            outputs["hidden_states"] = [embedded] + state.records["hidden_states"]
        if output_attentions:
            outputs["attentions"] = state.records["attentions"]
        return outputs


class ClassificationHead(keras.layers.Dense):
    """Dropout then Dense(num_labels) on the pooled output; num_labels=1 is regression. A Dense
    subclass, so its variables keep the keys `<name>/kernel` and `<name>/bias`."""

    def __init__(self, num_labels, dropout=0.0, kernel_initializer="glorot_uniform", **kwargs):
        # float32 under mixed precision: the logits feed the losses and the exit rules.
        kwargs.setdefault("dtype", "float32")
        super().__init__(num_labels, kernel_initializer=kernel_initializer, **kwargs)
        self.dropout = keras.layers.Dropout(dropout)

    def call(self, pooled, training=False):
        return super().call(self.dropout(pooled, training=training))


class SeamClassifier(keras.Model):
    """Backbone `bert` + a seam + pooler + head `classifier`: the model every method is.

    `forward` returns the logits and the final `EncoderState`; `call` the logits. The
    backbone is built through its own call, so its variables have the keys `bert/...` whatever
    model wraps it, and any model here loads any other's checkpoint by key. `head`: a
    `ClassificationHead` the seam owns (PABEE's last internal classifier) instead of a new one
    named `classifier`. `pooling`: `cls` or `mean` (see `BertBackbone.pool`). `make_seam`
    (instead of `seam`): a function of the config that builds the seam after the backbone and
    the head, so that their seeded initial weights do not depend on the seam's layers."""

    def __init__(self, config, num_labels, classifier_dropout=None, seam=NO_SEAM,
                 head_initializer=None, head=None, pooling="cls", make_seam=None, **kwargs):
        super().__init__(**kwargs)
        # The seam is tracked first (the order of the model's variables, which saved optimizer
        # states follow); one made by `make_seam` replaces it at the end.
        self.config, self.num_labels, self.seam = config, num_labels, seam
        self.bert = BertBackbone(config, pooling, name="bert")
        rate = next(r for r in (classifier_dropout, config.classifier_dropout,
                                config.hidden_dropout_prob) if r is not None)
        self.classifier = head if head is not None else ClassificationHead(
            num_labels, rate, kernel_initializer=head_initializer or initializer(config),
            name="classifier")
        if make_seam is not None:
            self.seam = make_seam(config)

    def build(self, input_shape=None):
        self.bert(dummy_inputs())
        self.built = True

    def forward(self, inputs, training=False):
        """(logits, final `EncoderState`): the state carries what the seam recorded."""
        state = self.bert.encode(inputs, self.seam, training)
        return self.classify(state, training), state

    def classify(self, state, training=False):
        """The head on the pooled output of `state`."""
        return self.classifier(self.bert.pool(state.hidden, state.mask), training=training)

    def call(self, inputs, training=False):
        return self.forward(inputs, training)[0]


class SequenceClassifier(SeamClassifier):
    """The backbone + dropout + Dense(num_labels) on the pooled output; num_labels=1 is
    regression."""


def dummy_inputs(length=8, batch=1):
    """Inputs that build every weight of a model (call the model on them once)."""
    ids = ops.ones((batch, length), dtype="int32")
    return {"input_ids": ids, "token_type_ids": ops.zeros_like(ids), "attention_mask": ids}
