"""LTP, Learned Token Pruning (Kim et al., KDD 2022): a threshold per layer on the attention a
token receives; tokens below it leave, so the number kept follows each input.

`model.LtpSeam` scores the tokens between each block's attention and feed-forward sub-layers and
prunes them (soft masks while the thresholds are learned, hard thresholds after); `pipeline`
runs the original's two stages (soft threshold, hard threshold) and evaluation, `cli` is the
`python -m ltp` command line (the original `run.py`'s flags).
"""
