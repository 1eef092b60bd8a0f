"""The patience-based exit rule and the two engines that apply it.

Rule (per example, patience t >= 1): after layer i, the prediction counts as "unchanged" when
its argmax equals layer i-1's (regression: |z_i - z_{i-1}| < threshold, strict). The counter grows
on "unchanged" and resets to 0 otherwise; the moment it equals t the example exits with layer i's
logits. Otherwise layer L answers. Patience 0 means the full model (the caller runs it).

`EarlyExitEngine.run` computes layers one at a time and stops each example at its own exit:
at batch size 1 it is the original's per-example loop, run as one compiled graph call whose
layers sit behind conditionals (no host round trip per layer); on a batch, each row exits on its
own and the exited rows are dropped (gathered out) before the next layer, with the decision made
on the host after every layer (the original instead waits for the whole batch to agree). Both
give the same predictions and exit layers. `simulate` applies the same rule to stored per-layer
logits (offline patience sweeps). The rule is written once with `keras.ops`, so the same code
runs on numpy arrays and inside the graph.
"""
import dataclasses

import numpy as np
import tensorflow as tf
from keras import ops

from common import flops
from common.errors import parse_int_list
from common.inference import Compiled
from common.progress import Progress
from common.seams import EncoderState
from common.training import batches
from pabee.flops import pabee_flops, powerbert_pabee_flops
from pabee.model import LOGITS


@dataclasses.dataclass(frozen=True)
class ExitRule:
    patience: int
    regression_threshold: float = 0.0
    is_regression: bool = False

    def update(self, counter, previous, current):
        """New counters of the rows whose logits went from `previous` to `current`."""
        if self.is_regression:
            same = ops.abs(current[:, 0] - previous[:, 0]) < self.regression_threshold
        else:
            same = ops.argmax(current, axis=-1) == ops.argmax(previous, axis=-1)
        return ops.where(same, counter + 1, ops.zeros_like(counter))


@dataclasses.dataclass
class ExitResult:
    logits: np.ndarray  # (N, C): the logits of the layer each example exited at
    exit_layers: np.ndarray  # (N,): 1-based layer each example stopped after


def parse_patience_list(text):
    """'3,4, 5' -> [3, 4, 5]; UserError for anything but non-negative integers (0 = full model)."""
    return parse_int_list(text, "--patience", minimum=0)


def _exit_loop(rule, num_layers, count, layer_logits, keep_rows):
    """The rule over `count` rows: `layer_logits(i)` gives layer i's logits (numpy) of the rows
    still running; `keep_rows(index)` is told which of them continue after an exit."""
    if rule.patience < 1:
        raise ValueError("patience 0 means the full model; no exit loop")
    rows = np.arange(count)
    counter = np.zeros(count, np.int64)
    exit_layers = np.full(count, num_layers)
    output, previous = None, None
    for index in range(num_layers):
        logits = np.asarray(layer_logits(index))
        if output is None:
            output = np.empty((count, logits.shape[-1]), logits.dtype)
        if previous is not None:
            counter = np.asarray(rule.update(counter, previous, logits))
        done = counter == rule.patience
        if index == num_layers - 1:
            done[:] = True
        if done.any():
            output[rows[done]] = logits[done]
            exit_layers[rows[done]] = index + 1
            if done.all():
                break
            keep = np.flatnonzero(~done)
            keep_rows(keep)
            rows, counter, logits = rows[keep], counter[keep], logits[keep]
        previous = logits
    return ExitResult(output, exit_layers)


def simulate(layer_logits, rule):
    """Apply the rule offline to stored logits of shape (L, N, C)."""
    layer_logits = np.asarray(layer_logits)
    num_layers, count = layer_logits.shape[:2]
    if rule.patience == 0:
        return ExitResult(layer_logits[-1], np.full(count, num_layers))
    active = {"rows": np.arange(count)}

    def keep_rows(keep):
        active["rows"] = active["rows"][keep]

    return _exit_loop(rule, num_layers, count, lambda i: layer_logits[i][active["rows"]],
                      keep_rows)


class EarlyExitEngine:
    """Compiled inference on a PABEE model: early exit layer by layer, the full model
    (patience 0, the vanilla forward) and all layers' logits (per-layer evaluation).

    Every step is `BertBackbone.run_layer` with the model's seam (its internal classifiers).
    Every compiled function takes any batch size and length (one trace each; per-layer steps
    one trace per layer; embeddings are fused into layer 1's step), so the same steps serve the
    batch-1 loop and the shrinking batches, and reloading other weights into the same model
    needs no retracing."""

    def __init__(self, model, jit_compile=False):
        self.model = model
        floats = model.compute_dtype  # hidden, mask and bias: bfloat16 / float16 when mixed
        state_spec = [tf.TensorSpec([None, None, model.config.hidden_size], floats),
                      tf.TensorSpec([None, None], floats),
                      tf.TensorSpec([None, 1, 1, None], floats),
                      tf.TensorSpec([None, None], tf.int32)]
        input_spec = [{key: tf.TensorSpec([None, None], tf.int32) for key in INPUT_KEYS}]
        self._full = _compiled(lambda features: model(features), input_spec, jit_compile)
        self._all_layers = _compiled(lambda features: model(features, all_layers=True),
                                     input_spec, jit_compile)
        self._first = _compiled(self._first_step, input_spec, jit_compile)
        self._steps = [None] + [_compiled(self._step_fn(i), state_spec, jit_compile)
                                for i in range(1, model.num_layers)]
        self._gather = _compiled(
            lambda hidden, mask, bias, positions, rows: tuple(
                tf.gather(t, rows) for t in (hidden, mask, bias, positions)),
            state_spec + [tf.TensorSpec([None], tf.int32)], False)
        self._input_spec, self._jit_compile = input_spec, jit_compile
        self._single = {}  # rule -> compiled batch-1 loop

    def full(self, features):
        """Patience 0: the full encoder and the last classifier, logits as numpy."""
        return self._full(_inputs(features)).numpy()

    def all_layers(self, features):
        """(L, N, C) logits of every internal classifier (no exit)."""
        return np.stack([z.numpy() for z in self._all_layers(_inputs(features))])

    def _layer(self, index, state):
        """Layer `index` with its internal classifier: (state after it, the classifier's
        logits). Each layer starts with empty records: only its own logits are read."""
        state = self.model.bert.run_layer(state.replace(records={}), index, self.model.seam)
        return state, state.records[LOGITS][-1]

    def _first_step(self, features):
        """Embeddings and layer 1 in one call (one host round trip fewer per example)."""
        state, logits = self._layer(0, self.model.bert.start(features))
        return _tensors(state) + (logits,)

    def _step_fn(self, index):
        def step(*tensors):
            state, logits = self._layer(index, EncoderState(*tensors))
            return _tensors(state) + (logits,)
        return step

    def _single_loop(self, rule):
        """The batch-1 exit loop as one graph of nested conditionals: after layer i (from
        layer t on, before which the counter cannot reach t) a conditional either returns
        layer i's logits or runs layer i + 1 with its classifier and rule update, so nothing
        past the exit executes. One example needs no row masks: the branch taken is the
        example's state."""
        layers = self.model.num_layers

        def loop(features):
            def from_layer(index, state, counter, previous):
                state, logits = self._layer(index, state)
                if index == layers - 1:
                    return logits, tf.constant([layers])
                if index:
                    counter = rule.update(counter, previous, logits)
                if index < rule.patience:
                    return from_layer(index + 1, state, counter, logits)
                return tf.cond(counter[0] >= rule.patience,
                               lambda: (logits, tf.constant([index + 1])),
                               lambda: from_layer(index + 1, state, counter, logits))

            return from_layer(0, self.model.bert.start(features), tf.zeros([1], tf.int32), None)

        if rule not in self._single:
            self._single[rule] = _compiled(loop, self._input_spec, self._jit_compile)
        return self._single[rule]

    def run(self, features, rule):
        """Early exit on one batch of features (numpy int32 arrays); returns an ExitResult."""
        if rule.patience < 1:
            raise ValueError("patience 0 means the full model: use EarlyExitEngine.full")
        features = _inputs(features)
        if features["input_ids"].shape[0] == 1:
            logits, exit_layers = self._single_loop(rule)(features)
            return ExitResult(logits.numpy(), exit_layers.numpy())
        running = {}

        def layer_logits(index):
            if index == 0:
                *tensors, logits = self._first(features)
            else:
                *tensors, logits = self._steps[index](*running["state"])
            running["state"] = tensors
            return logits.numpy()

        def keep_rows(keep):
            running["state"] = self._gather(*running["state"], keep.astype(np.int32))

        return _exit_loop(rule, self.model.num_layers, len(features["input_ids"]),
                          layer_logits, keep_rows)

    def run_all(self, arrays, rule, batch_size=1, progress=None):
        """Early exit over every row of `arrays`, `batch_size` rows at a time, in order."""
        results = map_batches(lambda batch: self.run(batch, rule), arrays, batch_size, progress)
        return ExitResult(np.concatenate([r.logits for r in results]),
                          np.concatenate([r.exit_layers for r in results]))


INPUT_KEYS = ("input_ids", "token_type_ids", "attention_mask")


def _tensors(state):
    """The tensors of an `EncoderState` that the compiled steps pass on (records aside)."""
    return state.hidden, state.mask, state.bias, state.positions


def _inputs(features):
    return {key: tf.convert_to_tensor(features[key], tf.int32) for key in INPUT_KEYS}


def _compiled(fn, signature, jit_compile):
    """Nothing here branches on tensors: no AutoGraph (see common.inference.Compiled)."""
    return Compiled(fn, jit_compile, signature, autograph=False)


def map_batches(fn, arrays, batch_size, progress=None):
    """[fn(batch) for each `batch_size` slice of `arrays`, in order]; `progress`: the name of
    the step, to show its progress (common.progress)."""
    outputs = []
    shown = Progress(len(arrays["input_ids"]), progress, unit="example") if progress else None
    for batch in batches(arrays, batch_size):
        outputs.append(fn(batch))
        if shown:
            shown.add(len(batch["input_ids"]))
    return outputs


def exit_statistics(config, exit_layers, length, num_labels, retention=None):
    """Average exit layer X, the original's printed 'Speed Up' S = 1 - X/L, the ratio L/X, the
    analytic FLOPs ratio (vanilla / PABEE; `length` = the tokens each example runs with, one
    number or one per example; `retention`: PABEE on PoWER-BERT) and the histogram of exit
    layers."""
    layers = config.num_hidden_layers
    exit_layers = np.asarray(exit_layers)
    average = float(exit_layers.mean())
    lengths = np.broadcast_to(np.asarray(length), exit_layers.shape)
    pairs, counts = np.unique(np.stack([lengths, exit_layers], 1), axis=0, return_counts=True)
    def method_flops(n, e):
        if retention is None:
            return pabee_flops(config, n, e, num_labels)
        return powerbert_pabee_flops(config, n, retention, e, num_labels)

    used = sum(int(c) * method_flops(int(n), int(e)) for (n, e), c in zip(pairs, counts))
    vanilla = sum(int(c) * flops.vanilla_flops(config, int(n), num_labels)
                  for (n, _), c in zip(pairs, counts))
    histogram = np.bincount(exit_layers, minlength=layers + 1)[1:]
    return {"avg_exit_layer": average, "speed_up": 1 - average / layers,
            "layer_ratio": layers / average, "flops_ratio": flops.speedup(vanilla, used),
            "exit_histogram": [int(c) for c in histogram]}


def stats_line(patience, stats):
    """The original's log line (speed-up printed as the fraction of layers skipped)."""
    return (f"*** Patience = {patience} Avg. Inference Layers = {stats['avg_exit_layer']:.2f} "
            f"Speed Up = {stats['speed_up']:.2f} ***")


def ratio_line(stats):
    """What the original's 'Speed Up' is, the speed-up as ratios (how the paper and README
    report it) and the exit histogram."""
    return (f"layers skipped {100 * stats['speed_up']:.0f}% (the 'Speed Up' above); speed-up: "
            f"layer ratio L/X = {stats['layer_ratio']:.2f}x, FLOPs ratio = "
            f"{stats['flops_ratio']:.2f}x; exits per layer = {stats['exit_histogram']}")
