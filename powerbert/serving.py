"""PoWER-BERT in the Python API (`common.api`): one batch through the Extract model, and per
example the word-vectors each block keeps (Goyal et al., 2020, §3: Extract layer).

`runner(model, source)` -> (run, dynamic): `run(features)` gives `logits` and `tokens_kept`
(examples x layers: the example's real tokens still present after each block's Extract);
`dynamic` says whether batches may be cut to their longest text (the model's own rule)."""
import numpy as np

from common.inference import compile_forward


def runner(model, source):
    if getattr(model, "retention", None) is None:  # stage 1: the plain classifier
        call = compile_forward(model)
        return (lambda features: {"logits": np.asarray(call(features))}), True

    def forward(features):
        logits, state = model.forward(features, training=False)
        return logits, state.records["positions"]

    call = compile_forward(forward)

    def run(features):
        logits, positions = call(features)
        lengths = np.asarray(features["attention_mask"]).sum(axis=1)[:, None]
        kept = np.stack([(np.asarray(p) < lengths).sum(axis=1) for p in positions], axis=1)
        return {"logits": np.asarray(logits), "tokens_kept": kept}

    return run, not model.pads_to_max_length
