"""Analytic FLOPs of one forward pass (batch 1, no padding) as a function of per-layer lengths.

Counting rules: a multiply-add is 2 FLOPs; every other element-wise arithmetic op, reduction step or
transcendental (exp, erf, tanh) is 1 FLOP. Gathers, reshapes, comparisons and sorting are free, as
are per-row scalars (1/H, +eps, rsqrt). This gives the per-element costs

    softmax       5  (max, subtract, exp, sum, divide)                            SOFTMAX_FLOPS
    LayerNorm     7  (sum for mean, subtract, square, sum for variance,
                      scale by 1/sigma, *gamma, +beta)                            LAYER_NORM_FLOPS
    activation    g  gelu 5 (x/sqrt2, erf, +1, *x, *0.5); tanh-approximated gelus 9;
                      relu 1; tanh 1                                              ACTIVATION_FLOPS
    per score     7  = scaling 1 + additive attention mask 1 (added even without padding,
                      as in HF BERT) + softmax 5

Notation: H hidden, F intermediate, A heads, E embedding width (ALBERT's and ELECTRA's
embedding_size, H for the others), C labels, g = ACTIVATION_FLOPS[hidden_act], t =
ACTIVATION_FLOPS of the pooler's activation (tanh; DistilBERT's pre_classifier ReLU, ELECTRA's
head GELU), P = hidden width of an AdapLeR contribution predictor (CP). For n tokens:

    embeddings(n)  = n*(2E + 7E)                      two adds of the three lookups + LayerNorm
                                                      (DistilBERT: one add, no token types)
                     + n*(2EH + H)                    ALBERT, and ELECTRA when E != H: E->H
                                                      projection
    attention(n)   = 4*n*(2H^2 + H)                   Q, K, V and output projections with biases
                     + 2*H*n^2 + 2*H*n^2              QK^T and AV, A*n^2*2*(H/A) each
                     + 7*A*n^2                        scaling, mask, softmax
                     + n*H*(1 + 7)                    residual add + LayerNorm
    ffn(n)         = n*(2HF + F) + g*n*F + n*(2FH + H) + n*H*(1 + 7)
    head(C)        = 2H^2 + H + t*H                   pooler Dense(H->H) + its activation
                     + 2HC + C                        classifier Dense(H->C)
    predictor(n)   = n*(2HP + P + g*P + 2P + 1) + 5n  CP Dense(H->P), act, Dense(P->1), softmax

    FLOPs = embeddings(n) + sum_l [attention(a_l) + ffn(f_l) + predictor(p_l)] + exits * head(C)

over the executed blocks l, where a_l / f_l are the tokens entering block l's attention / FFN
sub-layer and p_l the tokens a CP scores before block l (0 when there is none). The methods map to:

    vanilla     a_l = f_l = n for all L blocks, one head
    PoWER-BERT  a_l = retention[l-1] (n for the first block), f_l = retention[l]: Extract sits
                after the attention sub-layer's residual + LayerNorm; the significance sums,
                like all selection bookkeeping, are not counted
    AdapLeR     a_l = f_l = kept[l] (removal happens before the block), p_l = tokens present before
                the removal (n, kept[0], ..., kept[L-2]); CP = Dense(H->32) -> gelu -> Dense(32->1)
    PABEE       a_l = f_l = n for the first m blocks, m heads (every executed layer runs the shared
                pooler and its own classifier)

For BERT-base this gives 3,156*n^2 per layer, exactly the n^2 term of AdapLeR's fitted formula, and
matches its FLOPs_BERT(n, C) (`adapler.flops.fitted_bert_flops`) within 0.05% for n in 8..512 (the
elementwise terms of the fit came from TF's profiler, which counts a few of them differently).
"""
from numbers import Integral

from common.errors import UserError

SOFTMAX_FLOPS = 5
LAYER_NORM_FLOPS = 7
SCORE_FLOPS = 1 + 1 + SOFTMAX_FLOPS
ACTIVATION_FLOPS = {"gelu": 5, "gelu_new": 9, "gelu_pytorch_tanh": 9, "gelu_fast": 9,
                    "relu": 1, "tanh": 1}
ADAPLER_CP_HIDDEN = 32


def _dense(n, d_in, d_out):
    """n tokens through Dense(d_in -> d_out) with bias."""
    return n * (2 * d_in * d_out + d_out)


def embedding_flops(config, n):
    """Embeddings of n tokens: the adds of the lookups (two; DistilBERT, without token types,
    one), LayerNorm, ALBERT's / ELECTRA's projection. RoBERTa's position ids are integer
    bookkeeping, not counted."""
    width = config.embedding_width
    flops = n * width * ((2 if config.has_token_types else 1) + LAYER_NORM_FLOPS)
    if config.projects_embeddings:
        flops += _dense(n, width, config.hidden_size)
    return flops


def attention_flops(config, n):
    """Attention sub-layer on n tokens: projections, scores, softmax, mixing, residual + LN."""
    h = config.hidden_size
    return (4 * _dense(n, h, h) + 4 * h * n * n + SCORE_FLOPS * config.num_attention_heads * n * n
            + n * h * (1 + LAYER_NORM_FLOPS))


def ffn_flops(config, n):
    """Feed-forward sub-layer on n tokens: two Dense layers, activation, residual + LayerNorm."""
    h, f = config.hidden_size, config.intermediate_size
    return (_dense(n, h, f) + ACTIVATION_FLOPS[config.hidden_act] * n * f + _dense(n, f, h)
            + n * h * (1 + LAYER_NORM_FLOPS))


def block_flops(config, n_attn, n_ffn=None):
    """One block whose attention sub-layer sees n_attn tokens and its FFN n_ffn (default n_attn)."""
    return attention_flops(config, n_attn) + ffn_flops(config, n_attn if n_ffn is None else n_ffn)


def head_flops(config, num_labels=2):
    """Pooler (Dense H->H + the family's activation) and classifier (Dense H->num_labels) on
    the [CLS] vector."""
    h = config.hidden_size
    return (_dense(1, h, h) + ACTIVATION_FLOPS[config.pooler_activation] * h
            + _dense(1, h, num_labels))


def predictor_flops(config, n, cp_hidden=ADAPLER_CP_HIDDEN):
    """An AdapLeR contribution predictor on n tokens: MLP H->cp_hidden->1, softmax over tokens."""
    return (_dense(n, config.hidden_size, cp_hidden)
            + ACTIVATION_FLOPS[config.hidden_act] * n * cp_hidden
            + _dense(n, cp_hidden, 1) + SOFTMAX_FLOPS * n)


def _check_lengths(name, values, upper=None, count=None):
    """The values as a list of positive integers, each at most `upper`, `count` of them."""
    values = list(values)
    for value in values:
        if not isinstance(value, Integral) or value < 1:
            raise UserError(f"{name}: {value!r} is not a positive integer")
        if upper is not None and value > upper:
            raise UserError(f"{name} entry {value} exceeds the input length {upper}")
    if count is not None and len(values) != count:
        raise UserError(f"{name} needs {count} entries (one per layer), got {len(values)}")
    return values


def forward_flops(config, n, lengths=None, *, ffn_lengths=None, predictor_lengths=None,
                  num_labels=2, num_exits=1, cp_hidden=ADAPLER_CP_HIDDEN):
    """FLOPs of one forward pass over an n-token input.

    lengths[l]: tokens entering block l's attention (default n for all layers; fewer entries than
    num_hidden_layers = early exit). ffn_lengths[l]: tokens entering block l's FFN (default
    lengths[l]). predictor_lengths[l]: tokens scored by a contribution predictor before block l
    (default: no predictors). num_exits: how many times pooler + classifier run.
    """
    _check_lengths("input length", [n])
    _check_lengths("num_labels", [num_labels])
    layers = config.num_hidden_layers
    lengths = [n] * layers if lengths is None else _check_lengths("lengths", lengths, n)
    if not 1 <= len(lengths) <= layers:
        raise UserError(f"lengths needs 1 to {layers} entries (one per executed layer), "
                        f"got {len(lengths)}")
    if ffn_lengths is None:
        ffn_lengths = lengths
    ffn_lengths = _check_lengths("ffn_lengths", ffn_lengths, n, count=len(lengths))
    if any(f > a for f, a in zip(ffn_lengths, lengths)):
        raise UserError("a block's FFN cannot see more tokens than its attention sub-layer")
    total = embedding_flops(config, n)
    if predictor_lengths is not None:
        predictor_lengths = _check_lengths("predictor_lengths", predictor_lengths, n,
                                           count=len(lengths))
        if any(a > p for a, p in zip(lengths, predictor_lengths)):
            raise UserError("a block cannot see more tokens than its predictor scored")
        total += sum(predictor_flops(config, p, cp_hidden) for p in predictor_lengths)
    total += sum(block_flops(config, a, f) for a, f in zip(lengths, ffn_lengths))
    return total + num_exits * head_flops(config, num_labels)


def vanilla_flops(config, n, num_labels=2):
    """The unmodified model on n tokens."""
    return forward_flops(config, n, num_labels=num_labels)


def powerbert_flops(config, n, retention, num_labels=2):
    """PoWER-BERT: block l attends over retention[l-1] (n first); its FFN sees retention[l]."""
    retention = _check_lengths("retention", retention, n, count=config.num_hidden_layers)
    return forward_flops(config, n, [n] + retention[:-1], ffn_lengths=retention,
                         num_labels=num_labels)


def adapler_flops(config, n, kept, num_labels=2, cp_hidden=ADAPLER_CP_HIDDEN):
    """AdapLeR: block l runs on kept[l] tokens; its CP scores the tokens present before removal."""
    kept = _check_lengths("kept", kept, n, count=config.num_hidden_layers)
    return forward_flops(config, n, kept, predictor_lengths=[n] + kept[:-1],
                         num_labels=num_labels, cp_hidden=cp_hidden)


def pabee_flops(config, n, exit_layer, num_labels=2):
    """PABEE exiting after exit_layer blocks, each followed by the pooler and its classifier."""
    if not isinstance(exit_layer, Integral) or not 1 <= exit_layer <= config.num_hidden_layers:
        raise UserError(f"exit_layer must be an integer in 1..{config.num_hidden_layers}, "
                        f"got {exit_layer!r}")
    return forward_flops(config, n, [n] * exit_layer, num_labels=num_labels, num_exits=exit_layer)


def powerbert_pabee_flops(config, n, retention, exit_layer, num_labels=2):
    """PABEE exiting after `exit_layer` blocks of a PoWER-BERT model: the blocks run as in
    `powerbert_flops` (retention capped at n, as Extract keeps min(k_l, n)), each followed by
    the pooler and its classifier."""
    retention = [min(int(k), n) for k in retention]
    _check_lengths("retention", retention, n, count=config.num_hidden_layers)
    if not isinstance(exit_layer, Integral) or not 1 <= exit_layer <= config.num_hidden_layers:
        raise UserError(f"exit_layer must be an integer in 1..{config.num_hidden_layers}, "
                        f"got {exit_layer!r}")
    return forward_flops(config, n, ([n] + retention[:-1])[:exit_layer],
                         ffn_lengths=retention[:exit_layer], num_labels=num_labels,
                         num_exits=exit_layer)


def speedup(baseline_flops, method_flops):
    """Speed-up of a method over the baseline (for a split: pass sums, a ratio of sums)."""
    return baseline_flops / method_flops

