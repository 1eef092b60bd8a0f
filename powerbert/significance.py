"""The significance score of a word-vector: the attention it receives from the other word-vectors
in the same block, averaged over heads (the reference's `atten_col`)."""
from keras import ops


def significance(probs, query_mask=None):
    """Attention probabilities (batch, heads, queries, keys) -> scores (batch, keys).

    sig[b, j] = mean_h sum_{i != j} probs[b, h, i, j]: column sums over every query row (padded
    rows included, as in the reference code) minus the diagonal (a vector's attention to itself).
    Padded keys get probability 0 in every row, so their score is exactly 0.

    With `query_mask` (batch, queries) of 1/0, only the rows of real tokens count, so a score no
    longer depends on how many padding rows the batch carries."""
    if query_mask is None:
        received = ops.sum(probs, axis=2)
    else:
        received = ops.einsum("bhqk,bq->bhk", probs, ops.cast(query_mask, probs.dtype))
    to_itself = ops.diagonal(probs, axis1=2, axis2=3)
    return ops.mean(received - to_itself, axis=1)
