"""PoWER-BERT (Goyal et al., ICML 2020): progressive word-vector elimination for faster BERT
inference.

Between each block's attention sub-layer and its feed-forward sub-layer, the word-vectors are
scored by the attention they receive (`significance`); Soft-Extract scales them by learnable
rank-indexed retention parameters during the configuration search, Extract keeps only the top
`retention[l]` of them (plus [CLS]) afterwards (`extract`); `model.PowerBertSeam` does both in
the shared encoder loop's `between` seam. `pipeline` runs the three stages
(fine-tune, configuration search, re-train), `cli` is the `python -m powerbert` command line.
"""
