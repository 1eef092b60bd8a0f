"""PoWER-BERT's FLOPs on `common.flops`' per-layer primitives.

Extract sits after a block's attention sub-layer (its residual + LayerNorm), so block l attends
over the word-vectors the previous block kept and its feed-forward sub-layer sees the ones it
keeps: a_l = retention[l-1] (n for the first block), f_l = retention[l]. The significance sums,
like all selection bookkeeping, are not counted.
"""
from common.errors import UserError
from common.flops import check_lengths, forward_flops


def powerbert_flops(config, n, retention, num_labels=2):
    """PoWER-BERT on n tokens: block l attends over retention[l-1] (n first); its FFN sees
    retention[l]."""
    retention = check_lengths("retention", retention, n, count=config.num_hidden_layers)
    if any(after > before for before, after in zip(retention, retention[1:])):
        raise UserError(f"retention {retention} grows from one layer to the next; an eliminated "
                        "word-vector does not come back, so give non-increasing lengths")
    return forward_flops(config, n, [n] + retention[:-1], ffn_lengths=retention,
                         num_labels=num_labels)
