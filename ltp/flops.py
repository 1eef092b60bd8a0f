"""LTP's FLOPs on `common.flops`' per-layer primitives.

The pruner sits between a block's attention and feed-forward sub-layers, so block l attends over
the tokens the previous block kept (n for the first) and its feed-forward sub-layer sees the ones
it keeps: a_l = kept[l-1], f_l = kept[l], as the original's FLOPs count
(`Trainer.compute_macs`: attention on the pre-pruning length, the FFN on the post-pruning one).
The importance scores and comparisons, like all selection bookkeeping, are not counted.
"""
from common.errors import UserError
from common.flops import check_lengths, forward_flops


def ltp_flops(config, n, kept, num_labels=2):
    """LTP on one input of n tokens whose blocks keep `kept` tokens (one count per block)."""
    kept = check_lengths("kept", kept, n, count=config.num_hidden_layers)
    if any(after > before for before, after in zip(kept, kept[1:])):
        raise UserError(f"kept {kept} grows from one layer to the next; a pruned token does "
                        "not come back, so give non-increasing counts")
    return forward_flops(config, n, [n] + kept[:-1], ffn_lengths=kept, num_labels=num_labels)
