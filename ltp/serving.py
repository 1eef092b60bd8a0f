"""LTP in an exported graph (`common.export`): hard thresholds, pruned tokens removed and each
batch compacted to its longest survivor (Kim et al. 2022, section 3), as `LtpClassifier` does at
inference. `tokens_kept` (batch, layers): the real tokens each block's feed-forward sub-layer
processes.
"""
import tensorflow as tf


def setting(model, source):
    return {"thresholds": model.thresholds(), "threshold_scale": model.default_pruning.scale}


def forward(model, source):
    def run(features):
        logits, state = model.forward(features)
        kept = tf.stack([tf.cast(tf.round(n), tf.int32) for n in state.records["lengths"]],
                        axis=1)
        return {"logits": logits, "tokens_kept": kept}

    return run
