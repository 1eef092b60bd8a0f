"""Per-example FLOPs of BERT and AdapLeR, the split speed-up, and the paper's fitted formulas
(the original's utils/classification_utils.py).

Three ways to count, all single-instance and unpadded, the speed-up always a ratio of sums:

* `exact` (default): `common.flops` on the true per-layer lengths: BERT on n tokens vs AdapLeR
  whose block l runs on kept[l] tokens, each CP scoring the tokens present before its removal,
  the embeddings on n tokens, with the task's true number of labels. Any backbone.
* `fitted`: the paper's fitted BERT-base polynomials (`fitted_bert_flops` and
  `fitted_adapler_flops`) on the true lengths and label count (reported beside `exact` for
  12-layer, 768-wide models only).
* `paper` (`--PAPER_FLOPS`): the original's count, bugs included for parity: the 13-entry vector
  c_l = #(p_l > 1e-6), c_12 = #(p_11 > eta_11) (the last layer compared with eta_11 instead of
  eta_11 / n), the label count estimated as max(prediction) + 1, and the fitted polynomials
  (which charge the embeddings and the CPs at post-removal lengths).

The exact count on `common.flops`' per-layer primitives: removal happens before a block, so block
l runs on kept[l] tokens (a_l = f_l = kept[l]), and the contribution predictor before it scores
the tokens present before the removal, p_l = (n, kept[0], ..., kept[L-2]):

    predictor(n) = n*(2HP + P + g*P + 2P + 1) + 5n    CP Dense(H->P), act, Dense(P->1), softmax

with P = CP_HIDDEN (32). For BERT-base the backbone's count gives 3,156*n^2 per layer, exactly
the n^2 term of the fitted formula, and matches FLOPs_BERT(n, C) (`fitted_bert_flops`) within
0.05% for n in 8..512 (the fit's elementwise terms came from TF's profiler, which counts a few of
them differently).
"""
import numpy as np

from common.errors import UserError
from common.flops import (ACTIVATION_FLOPS, SOFTMAX_FLOPS, check_lengths, dense_flops,
                          forward_flops, speedup, vanilla_flops)

BERT_BASE = {"num_hidden_layers": 12, "hidden_size": 768, "num_attention_heads": 12,
             "intermediate_size": 3072}
COUNTINGS = ("exact", "fitted", "paper")
CP_HIDDEN = 32  # the contribution predictor's hidden width (adapler.predictor)


def predictor_flops(config, n, cp_hidden=CP_HIDDEN):
    """A contribution predictor on n tokens: MLP H->cp_hidden->1, softmax over the tokens."""
    return (dense_flops(n, config.hidden_size, cp_hidden)
            + ACTIVATION_FLOPS[config.hidden_act] * n * cp_hidden
            + dense_flops(n, cp_hidden, 1) + SOFTMAX_FLOPS * n)


def adapler_flops(config, n, kept, num_labels=2, cp_hidden=CP_HIDDEN):
    """AdapLeR on n tokens: block l runs on kept[l] tokens; its CP scores the tokens present
    before the removal."""
    kept = check_lengths("kept", kept, n, count=config.num_hidden_layers)
    if any(after > before for before, after in zip(kept, kept[1:])):
        raise UserError(f"kept lengths {kept} grow from one layer to the next; a removed "
                        "token does not come back, so give non-increasing lengths")
    return (forward_flops(config, n, kept, num_labels=num_labels)
            + sum(predictor_flops(config, p, cp_hidden) for p in [n] + kept[:-1]))


def fitted_bert_flops(n, num_labels):
    """AdapLeR's fitted BERT-base count on the unpadded length n."""
    return 37_872 * n * n + 170_216_500 * n + 1_181_953 + 1_537 * num_labels


def fitted_adapler_flops(kept, num_labels):
    """AdapLeR's fitted count; kept = (k_0..k_11) = (c_1..c_12), i.e. c[1:] of the count vector."""
    if len(kept) != 12:
        raise UserError(f"the fitted AdapLeR formula needs 12 per-layer lengths, got {len(kept)}")
    return (1_183_537 + 1_537 * (num_labels - 1) + 6_152 * kept[0]
            + sum(3_156 * k * k + 14_233_554 * k for k in kept))


def is_bert_base(config):
    return all(getattr(config, key) == value for key, value in BERT_BASE.items()) and (
        not config.is_albert)


def check_counting(config, counting):
    if counting in ("fitted", "paper") and not is_bert_base(config):
        raise UserError(f"the paper's fitted FLOPs formula is for 12-layer BERT-base; this model "
                        f"has {config.num_hidden_layers} layers of width {config.hidden_size}. "
                        "Drop --PAPER_FLOPS to count FLOPs exactly")


def per_example_flops(config, counting, lengths, kept, num_labels, cp_hidden,
                      paper_counts=None, predictions=None):
    """(bert FLOPs list, adapler FLOPs list) for one split.

    lengths: (N,) unpadded input lengths; kept: (N, L) tokens processed by each layer;
    paper_counts: (N, 13) the original's c vector; predictions: (N,) class ids (paper mode)."""
    lengths = np.asarray(lengths, dtype=np.int64)
    if counting == "exact":
        bert = [vanilla_flops(config, int(n), num_labels) for n in lengths]
        adapler = [adapler_flops(config, int(n), [int(k) for k in row], num_labels, cp_hidden)
                   for n, row in zip(lengths, kept)]
        return bert, adapler
    check_counting(config, counting)
    if counting == "fitted":
        bert = [fitted_bert_flops(int(n), num_labels) for n in lengths]
        adapler = [fitted_adapler_flops([int(k) for k in row], num_labels) for row in kept]
        return bert, adapler
    classes = int(np.max(predictions)) + 1 if len(predictions) else num_labels
    bert = [fitted_bert_flops(int(row[0]), classes) for row in paper_counts]
    adapler = [fitted_adapler_flops([int(c) for c in row[1:]], classes) for row in paper_counts]
    return bert, adapler


def total_speedup(bert, adapler):
    return speedup(float(np.sum(bert)), float(np.sum(adapler)))
