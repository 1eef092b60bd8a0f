"""PoWER-BERT as seam code: `PowerBertSeam` fills the shared encoder loop's `between` seam
(after a block's attention sub-layer, before its feed-forward sub-layer; the reference's
`_wrap_layer`), and `PowerBertClassifier` is the shared `SeamClassifier` with that seam.

    between(state, probs, l):  scores = significance(probs)
        Soft-Extract (configuration search): hidden *= r_l[rank of each word-vector]
        Extract: keep [CLS] + the k-1 most significant word-vectors (hidden, mask, positions)

The backbone and head keep the names `bert` and `classifier`, so the variable keys match a plain
`SequenceClassifier` checkpoint (stage 1) and every stage loads the previous one by key; the
retention parameters keep the keys `soft_extract_<l>/retention` and may be absent from a
checkpoint.

Padding: Extract keeps `min(k_l, n)` word-vectors of a batch of length n, so it also runs on
length-sorted, dynamically padded batches (n is known per trace under XLA and a run-time value in
a graph traced for any length). Padded keys have significance 0, but padded query rows do add to
the real tokens' scores (as in the reference), so with the default `padding_queries=True` the
kept tokens, and sometimes a prediction, can differ from the run padded to N. With
`padding_queries=False` only real query rows count and the predictions do not depend on the
padding. `length_scaled` keeps `ceil(k_l * n / N)` instead (N = `max_length`, the task's length).
"""
import dataclasses

from keras import ops

from common.checkpoints import load_backbone_weights, resolve_source
from common.modeling import SeamClassifier, SequenceClassifier, dummy_inputs
from common.seams import SeamLayer
from powerbert.extract import SoftExtract, extract
from powerbert.significance import significance

SOFT_EXTRACT_PREFIX = "soft_extract_"


def reference_config(config):
    """The backbone config as the reference runs it: no attention-probability dropout
    (keras-bert has none); hidden dropout stays as configured."""
    return dataclasses.replace(config, attention_probs_dropout_prob=0.0)


class PowerBertSeam(SeamLayer):
    """Soft-Extract (`search_length` N given) or Extract (`retention` given: word-vectors kept
    per block) between each block's attention and feed-forward sub-layers. `length_scaled`,
    `max_length` and `padding_queries`: see the module docstring.

    Records per layer `lengths` (word-vectors entering the feed-forward sub-layer: an int, or a
    scalar tensor when the length is only known at run time) and, with Extract, `positions` (the
    original positions kept, (batch, k_l)) and, once, `batch_length` (the n of the batch)."""

    def __init__(self, num_layers, *, retention=None, search_length=None, lam=0.0,
                 length_scaled=False, max_length=None, padding_queries=True, **kwargs):
        super().__init__(**kwargs)
        if (retention is None) == (search_length is None):
            raise ValueError("give either a retention configuration or a search length")
        if retention is not None and len(retention) != num_layers:
            raise ValueError(f"retention needs {num_layers} values, got {len(retention)}")
        if length_scaled and (retention is None or max_length is None):
            raise ValueError("length_scaled needs a retention configuration and max_length")
        self.retention = None if retention is None else [int(k) for k in retention]
        self.length_scaled, self.max_length = bool(length_scaled), max_length
        self.padding_queries = bool(padding_queries)
        # Block l (1-based) pays LAMBDA * l per unit of retention mass.
        self.soft_extracts = [] if search_length is None else [
            SoftExtract(search_length, lam * (l + 1), name=f"{SOFT_EXTRACT_PREFIX}{l + 1}")
            for l in range(num_layers)]

    def kept(self, layer, batch_length):
        """Word-vectors block `layer` keeps of a batch of `batch_length` tokens (an int, or a
        scalar tensor); `extract` caps it at the length that reaches the block."""
        k = self.retention[layer]
        if self.length_scaled:
            return (k * batch_length + self.max_length - 1) // self.max_length  # ceil(k n / N)
        return k

    def between(self, state, probs, layer, training=False):
        # float32 sums under mixed precision: the attention probabilities are float32.
        scores = significance(probs, None if self.padding_queries else state.mask)
        if self.soft_extracts:
            state = state.replace(hidden=self.soft_extracts[layer](state.hidden, scores))
        else:
            if layer == 0:
                state.record("batch_length", ops.shape(state.hidden)[1])
            batch_length = state.records["batch_length"][0] if self.length_scaled else None
            k = self.kept(layer, batch_length)
            hidden, mask, chosen = extract(state.hidden, state.mask, scores, k)
            if chosen is not None:
                positions = ops.take_along_axis(state.positions, chosen, axis=1)
                state = state.replace(hidden=hidden, positions=positions).with_mask(mask)
            state.record("positions", state.positions)
        state.record("lengths", ops.shape(state.hidden)[1])  # an int unless only known at run time
        return state

    def retention_masses(self):
        """Per-block sums of the Soft-Extract retention parameters."""
        return [layer.mass() for layer in self.soft_extracts]


class PowerBertClassifier(SeamClassifier):
    """BERT + pooler + classifier with Extract (`retention` given) or Soft-Extract
    (`search_length` given: the task's sequence length N) after every block's attention.
    `forward(inputs)` returns (logits, final state); the state's `records` hold the seam's
    per-layer `lengths` and `positions`."""

    optional_checkpoint_keys = (SOFT_EXTRACT_PREFIX,)

    def __init__(self, config, num_labels, *, retention=None, search_length=None, lam=0.0,
                 length_scaled=False, max_length=None, padding_queries=True,
                 classifier_dropout=0.0, **kwargs):
        kwargs.setdefault("name", "powerbert")
        seam = PowerBertSeam(config.num_hidden_layers, retention=retention,
                             search_length=search_length, lam=lam, length_scaled=length_scaled,
                             max_length=max_length, padding_queries=padding_queries,
                             name="powerbert_seam")
        super().__init__(config, num_labels, classifier_dropout, seam=seam, **kwargs)
        self.retention = seam.retention

    @property
    def pads_to_max_length(self):
        """Whether evaluation pads every batch to N (read by `common.training.predict`):
        Soft-Extract is sized for N, and the reference's significance sums padded query rows
        too, so on a shorter batch Extract may keep other tokens (docs/powerbert.md). With
        length-scaled retention, or significance over real query rows only, batches are
        dynamically padded."""
        seam = self.seam
        return bool(seam.soft_extracts) or (seam.padding_queries and not seam.length_scaled)

    @property
    def soft_extracts(self):
        return self.seam.soft_extracts

    def retention_masses(self):
        return self.seam.retention_masses()


# ---------------------------------------------------------------- the method contract

def build_plain(config, num_labels, max_length):
    """The stage-1 classifier: the shared SequenceClassifier, no dropout before the classifier
    and none on the attention probabilities (keras-bert has neither)."""
    model = SequenceClassifier(reference_config(config), num_labels, classifier_dropout=0.0)
    model(dummy_inputs(max_length))
    return model


def build_powerbert(config, num_labels, max_length, **kwargs):
    """A PowerBertClassifier with its weights built for inputs of `max_length` tokens (the N of
    a length-scaled retention)."""
    model = PowerBertClassifier(reference_config(config), num_labels, max_length=max_length,
                                **kwargs)
    model(dummy_inputs(max_length))
    return model


def load_stage(model, path):
    """Load one of our checkpoints (any stage) into `model` by variable key."""
    load_backbone_weights(model, resolve_source(path))
    return model


def load_model(source, length_scaled=False):
    """The inference model of a PoWER-BERT checkpoint (`common.checkpoints.Source`): Extract
    with the retention it records (stage 1 has none: the plain classifier)."""
    sidecar = source.sidecar
    retention = sidecar["method_state"].get("retention_config")
    labels, max_length = sidecar["num_labels"], sidecar["max_length"]
    model = (build_plain(source.config, labels, max_length) if retention is None else
             build_powerbert(source.config, labels, max_length, retention=retention,
                             length_scaled=bool(length_scaled)))
    return load_stage(model, source.folder)
