"""PABEE's FLOPs on `common.flops`' per-layer primitives.

Exiting after m blocks runs the first m blocks on all n tokens and m heads: every executed layer
runs the shared pooler and its own internal classifier. On a PoWER-BERT model the blocks run as
PoWER-BERT's count has them (retention capped at n, as Extract keeps min(k_l, n)).
"""
from common.flops import check_exit_layer, check_lengths, forward_flops


def pabee_flops(config, n, exit_layer, num_labels=2):
    """PABEE exiting after exit_layer blocks, each followed by the pooler and its classifier."""
    check_exit_layer(config, exit_layer)
    return forward_flops(config, n, [n] * exit_layer, num_labels=num_labels, num_exits=exit_layer)


def powerbert_pabee_flops(config, n, retention, exit_layer, num_labels=2):
    """PABEE exiting after `exit_layer` blocks of a PoWER-BERT model: the blocks run as in
    `powerbert.flops.powerbert_flops` (retention capped at n), each followed by the pooler and
    its classifier."""
    retention = [min(int(k), n) for k in retention]
    check_lengths("retention", retention, n, count=config.num_hidden_layers)
    check_exit_layer(config, exit_layer)
    return forward_flops(config, n, ([n] + retention[:-1])[:exit_layer],
                         ffn_lengths=retention[:exit_layer], num_labels=num_labels,
                         num_exits=exit_layer)
