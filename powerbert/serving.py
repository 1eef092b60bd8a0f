"""PoWER-BERT in an exported graph (`common.export`): Extract keeps min(k_l, n) word-vectors
after each block's attention (Goyal et al. 2020, section 3), as `PowerBertClassifier.forward`.

A model whose evaluation pads every batch to the task's length N (`pads_to_max_length`: the
significance sums padded query rows too, as the reference does) gets its ids padded to N in the
graph, so it keeps the tokens the toolkit keeps; with `length_scaled` it runs on the request's
own width. `tokens_kept` (batch, layers): the request's real tokens each block's feed-forward
sub-layer processes.
"""
import tensorflow as tf


def setting(model, source):
    retention = getattr(model, "retention", None)
    return {"retention": retention,
            "length_scaled": bool(retention and model.seam.length_scaled),
            "padded_to_max_length": bool(getattr(model, "pads_to_max_length", False))}


def pad_to(features, length):
    """Pad (batch, n) int features with zeros to (batch, length), a static width."""
    width = tf.shape(features["input_ids"])[1]
    return {key: tf.reshape(tf.pad(value, [[0, 0], [0, length - width]]), [-1, length])
            for key, value in features.items()}


def tokens_kept(attention_mask, positions):
    """Per layer, the real tokens among the kept `positions` (each (batch, k_l)): (batch, L)."""
    return tf.stack([tf.reduce_sum(tf.gather(attention_mask, kept, batch_dims=1), axis=1)
                     for kept in positions], axis=1)


def forward(model, source):
    if getattr(model, "retention", None) is None:  # the fine-tuned stage: a plain classifier
        return lambda features: {"logits": model(features, training=False)}
    max_length = int(source.sidecar["max_length"])
    padded = bool(model.pads_to_max_length)

    def run(features):
        if padded:
            features = pad_to(features, max_length)
        logits, state = model.forward(features)
        return {"logits": logits,
                "tokens_kept": tokens_kept(features["attention_mask"], state.records["positions"])}

    return run
