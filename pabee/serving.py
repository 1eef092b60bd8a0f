"""PABEE in an exported graph (`common.export`): patience-based early exit (Zhou et al. 2020,
section 3.1) per example, in one graph.

A batch runs a `tf.while_loop` over the layers: each step runs the next layer (a `tf.switch_case`
over the layers' blocks and internal classifiers) on the rows still running, applies the exit
rule (`pabee.patience.ExitRule`), writes the exiting rows' logits and gathers them out, and the
loop ends when no row is left. A request of one text takes the batch-1 path instead (chosen by a
`tf.cond` in the graph): the conditional chain of `EarlyExitEngine`, where nothing past the exit
runs. Patience 0 is the full model. With a PoWER-BERT retention under the exits (PABEE on
PoWER-BERT) each block also extracts word-vectors, as in `PabeeClassifier`.

Costs: `layers_run` (batch,) int32, the 1-based layer each example exited after; with
PoWER-BERT under the exits also `tokens_kept` (batch, layers), 0 for layers not run.
"""
import tensorflow as tf

from common.seams import NO_SEAM, EncoderState
from pabee.model import LOGITS
from pabee.patience import ExitRule


def setting(model, source):
    return {"patience": int(model.patience), "regression_threshold": _threshold(source),
            "retention": model.retention}


def _threshold(source):
    return float(source.sidecar["method_state"].get("regression_threshold") or 0.0)


def _layer(model, index, hidden, mask, bias, positions, request_mask):
    """Layer `index` with its internal classifier on a state's tensors: the next state's
    tensors, the classifier's logits and the real tokens the layer kept (`request_mask`: the
    rows' attention mask in the request, by original position)."""
    state = model.bert.run_layer(EncoderState(hidden, mask, bias, positions), index, model.seam)
    kept = tf.reduce_sum(tf.gather(request_mask, state.positions, batch_dims=1), axis=1)
    return (state.hidden, state.mask, state.bias, state.positions,
            tf.cast(state.records[LOGITS][-1], tf.float32), kept)


def _batched(model, rule, features):
    """The while-loop over layers for any batch (see the module docstring)."""
    layers, request_mask = model.num_layers, features["attention_mask"]
    state = model.bert.start(features)
    batch = tf.shape(features["input_ids"])[0]
    labels = model.num_labels
    start = (tf.constant(0), state.hidden, state.mask, state.bias, state.positions,
             tf.range(batch), tf.zeros([batch], tf.int32), tf.zeros([batch, labels]),
             tf.zeros([batch, labels]), tf.fill([batch], layers),
             tf.zeros([batch, layers], tf.int32))

    def body(index, hidden, mask, bias, positions, rows, counter, previous, out, exits, kept):
        hidden, mask, bias, positions, logits, layer_kept = tf.switch_case(index, [
            (lambda i=i: _layer(model, i, hidden, mask, bias, positions,
                                tf.gather(request_mask, rows)))
            for i in range(layers)])
        # The first layer has no previous prediction to agree with.
        counter = tf.where(index > 0, rule.update(counter, previous, logits), counter)
        done = tf.logical_or(counter >= rule.patience, index == layers - 1)
        column = tf.fill(tf.shape(rows), index)
        kept = tf.tensor_scatter_nd_update(kept, tf.stack([rows, column], 1), layer_kept)
        leaving = tf.boolean_mask(rows, done)[:, None]
        out = tf.tensor_scatter_nd_update(out, leaving, tf.boolean_mask(logits, done))
        exits = tf.tensor_scatter_nd_update(exits, leaving,
                                            tf.fill(tf.shape(leaving)[:1], index + 1))
        stay = tf.where(tf.logical_not(done))[:, 0]
        hidden, mask, bias, positions, rows, counter, logits = (
            tf.gather(t, stay) for t in (hidden, mask, bias, positions, rows, counter, logits))
        return index + 1, hidden, mask, bias, positions, rows, counter, logits, out, exits, kept

    def running(index, *state):
        return tf.logical_and(index < layers, tf.size(state[4]) > 0)

    width = model.config.hidden_size
    # The running rows shrink, and so do the word-vectors under PoWER-BERT's Extract.
    invariants = (tf.TensorShape([]), tf.TensorShape([None, None, width]),
                  tf.TensorShape([None, None]), tf.TensorShape([None, 1, 1, None]),
                  tf.TensorShape([None, None]), tf.TensorShape([None]), tf.TensorShape([None]),
                  tf.TensorShape([None, labels])) + tuple(value.shape for value in start[8:])
    result = tf.while_loop(running, body, start, shape_invariants=invariants)
    return result[8], result[9], result[10]


def _single(model, rule, features):
    """One example: layer by layer behind conditionals, nothing past the exit runs."""
    layers = model.num_layers

    def from_layer(index, tensors, counter, previous, kept):
        *tensors, logits, layer_kept = _layer(model, index, *tensors,
                                              features["attention_mask"])
        kept = kept + [layer_kept]
        if index == layers - 1:
            return logits, tf.constant([layers]), tf.stack(kept, axis=1)
        if index:
            counter = rule.update(counter, previous, logits)
        finished = (logits, tf.constant([index + 1]),
                    tf.stack(kept + [tf.zeros([1], tf.int32)] * (layers - index - 1), axis=1))
        if index < rule.patience:
            return from_layer(index + 1, tensors, counter, logits, kept)
        return tf.cond(counter[0] >= rule.patience, lambda: finished,
                       lambda: from_layer(index + 1, tensors, counter, logits, kept))

    state = model.bert.start(features)
    return from_layer(0, (state.hidden, state.mask, state.bias, state.positions),
                      tf.zeros([1], tf.int32), None, [])


def forward(model, source):
    below = model.retention is not None

    def outputs(logits, exits, kept):
        return {"logits": logits, "layers_run": exits, **({"tokens_kept": kept} if below else {})}

    if model.patience == 0:
        def full(features):
            state = model.bert.encode(features, model.below or NO_SEAM)
            batch = tf.shape(features["input_ids"])[0]
            kept = (tf.stack([tf.reduce_sum(tf.gather(features["attention_mask"], p,
                                                      batch_dims=1), axis=1)
                              for p in state.records.get("positions", [])], axis=1)
                    if below else None)
            return outputs(model.classify(state), tf.fill([batch], model.num_layers), kept)
        return full

    rule = ExitRule(model.patience, _threshold(source), model.num_labels == 1)

    def run(features):
        single = {key: tf.reshape(value, [1, -1]) for key, value in features.items()}
        return outputs(*tf.cond(tf.shape(features["input_ids"])[0] == 1,
                                lambda: _single(model, rule, single),
                                lambda: _batched(model, rule, features)))

    return run
