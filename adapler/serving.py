"""AdapLeR in the Python API (`common.api`): one batch with physical token removal (`lr_mode`,
Modarressi et al., 2022, §3), and per example the tokens each layer runs on.

`runner(model, source)` -> (run, dynamic): `run(features)` gives `logits` and `tokens_kept`
(examples x layers: the tokens left after each layer's removal); batches are cut to their
longest text (`dynamic`)."""
import numpy as np

from common.inference import compile_forward


def runner(model, source):
    call = compile_forward(lambda features: model(features, training=False, lr_mode=True))

    def run(features):
        outputs = call(features)
        kept = np.stack([np.asarray(n) for n in outputs["lengths"]], axis=1)
        return {"logits": np.asarray(outputs["logits"]), "tokens_kept": kept.astype(np.int64)}

    return run, True
