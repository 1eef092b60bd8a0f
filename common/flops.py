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
head GELU). For n tokens:

    dense(n, i, o) = n*(2io + o)                      Dense(i -> o) with bias
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

    FLOPs = embeddings(n) + sum_l [attention(a_l) + ffn(f_l)] + exits * head(C)

over the executed blocks l, where a_l / f_l are the tokens entering block l's attention / FFN
sub-layer. The vanilla model has a_l = f_l = n for all L blocks and one head; each method's
`flops` module maps its per-layer lengths (and its own extra layers) onto these primitives.
For BERT-base this gives 3,156*n^2 per layer.
"""
from numbers import Integral

from common.errors import UserError

SOFTMAX_FLOPS = 5
LAYER_NORM_FLOPS = 7
SCORE_FLOPS = 1 + 1 + SOFTMAX_FLOPS
ACTIVATION_FLOPS = {"gelu": 5, "gelu_new": 9, "gelu_pytorch_tanh": 9, "gelu_fast": 9,
                    "relu": 1, "tanh": 1}


def dense_flops(n, d_in, d_out):
    """n tokens through Dense(d_in -> d_out) with bias."""
    return n * (2 * d_in * d_out + d_out)


def embedding_flops(config, n):
    """Embeddings of n tokens: the adds of the lookups (two; DistilBERT, without token types,
    one), LayerNorm, ALBERT's / ELECTRA's projection. RoBERTa's position ids are integer
    bookkeeping, not counted."""
    width = config.embedding_width
    flops = n * width * ((2 if config.has_token_types else 1) + LAYER_NORM_FLOPS)
    if config.projects_embeddings:
        flops += dense_flops(n, width, config.hidden_size)
    return flops


def attention_flops(config, n):
    """Attention sub-layer on n tokens: projections, scores, softmax, mixing, residual + LN."""
    h = config.hidden_size
    return (4 * dense_flops(n, h, h) + 4 * h * n * n
            + SCORE_FLOPS * config.num_attention_heads * n * n + n * h * (1 + LAYER_NORM_FLOPS))


def ffn_flops(config, n):
    """Feed-forward sub-layer on n tokens: two Dense layers, activation, residual + LayerNorm."""
    h, f = config.hidden_size, config.intermediate_size
    return (dense_flops(n, h, f) + ACTIVATION_FLOPS[config.hidden_act] * n * f
            + dense_flops(n, f, h) + n * h * (1 + LAYER_NORM_FLOPS))


def block_flops(config, n_attn, n_ffn=None):
    """One block whose attention sub-layer sees n_attn tokens and its FFN n_ffn (default n_attn)."""
    return attention_flops(config, n_attn) + ffn_flops(config, n_attn if n_ffn is None else n_ffn)


def head_flops(config, num_labels=2):
    """Pooler (Dense H->H + the family's activation) and classifier (Dense H->num_labels) on
    the [CLS] vector."""
    h = config.hidden_size
    return (dense_flops(1, h, h) + ACTIVATION_FLOPS[config.pooler_activation] * h
            + dense_flops(1, h, num_labels))


def check_lengths(name, values, upper=None, count=None):
    """The values as a list of positive integers, each at most `upper`, `count` of them
    (UserError naming `name` otherwise)."""
    values = list(values)
    for value in values:
        if not isinstance(value, Integral) or value < 1:
            raise UserError(f"{name}: {value!r} is not a positive integer")
        if upper is not None and value > upper:
            raise UserError(f"{name} entry {value} exceeds the input length {upper}; give "
                            f"at most {upper} per layer, or a longer input")
    if count is not None and len(values) != count:
        raise UserError(f"{name} needs {count} entries (one per layer), got {len(values)}")
    return values


def forward_flops(config, n, lengths=None, *, ffn_lengths=None, num_labels=2, num_exits=1):
    """FLOPs of one forward pass over an n-token input.

    lengths[l]: tokens entering block l's attention (default n for all layers; fewer entries than
    num_hidden_layers = early exit). ffn_lengths[l]: tokens entering block l's FFN (default
    lengths[l]). num_exits: how many times pooler + classifier run.
    """
    check_lengths("input length", [n])
    check_lengths("num_labels", [num_labels])
    layers = config.num_hidden_layers
    lengths = [n] * layers if lengths is None else check_lengths("lengths", lengths, n)
    if not 1 <= len(lengths) <= layers:
        raise UserError(f"lengths needs 1 to {layers} entries (one per executed layer), "
                        f"got {len(lengths)}")
    if ffn_lengths is None:
        ffn_lengths = lengths
    ffn_lengths = check_lengths("ffn_lengths", ffn_lengths, n, count=len(lengths))
    if any(f > a for f, a in zip(ffn_lengths, lengths)):
        raise UserError("a block's FFN cannot see more tokens than its attention sub-layer")
    return (embedding_flops(config, n)
            + sum(block_flops(config, a, f) for a, f in zip(lengths, ffn_lengths))
            + num_exits * head_flops(config, num_labels))


def check_exit_layer(config, exit_layer):
    """UserError unless `exit_layer` (blocks executed before an exit) is in 1..L."""
    if not isinstance(exit_layer, Integral) or not 1 <= exit_layer <= config.num_hidden_layers:
        raise UserError(f"exit_layer must be an integer in 1..{config.num_hidden_layers}, "
                        f"got {exit_layer!r}")


def vanilla_flops(config, n, num_labels=2):
    """The unmodified model on n tokens."""
    return forward_flops(config, n, num_labels=num_labels)


def speedup(baseline_flops, method_flops):
    """Speed-up of a method over the baseline (for a split: pass sums, a ratio of sums)."""
    return baseline_flops / method_flops

