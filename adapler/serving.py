"""AdapLeR in an exported graph (`common.export`): length-reducing inference (`lr_mode`,
Modarressi et al. 2022, section 3.3): the tokens a layer's contribution predictor scores below
its threshold are removed before the layer, each row compacted to its survivors.

A request of one text runs the model's single-example path (`SingleRemoval`), any other batch
the batched one (`HardRemoval`); the choice is a `tf.cond` inside the graph. `tokens_kept`
(batch, layers): the tokens each layer processes, [CLS] included.
"""
import tensorflow as tf


def setting(model, source):
    return {"eta": [float(v) for v in model.eta.numpy()]}


def _run(model, features):
    outputs = model(features, lr_mode=True)
    kept = tf.stack([tf.cast(tf.round(length), tf.int32) for length in outputs["lengths"]],
                    axis=1)
    return outputs["logits"], kept


def forward(model, source):
    def run(features):
        # A static batch of 1 is what makes the model take its single-example path.
        single = {key: tf.reshape(value, [1, -1]) for key, value in features.items()}
        logits, kept = tf.cond(tf.shape(features["input_ids"])[0] == 1,
                               lambda: _run(model, single), lambda: _run(model, features))
        return {"logits": logits, "tokens_kept": kept}

    return run
