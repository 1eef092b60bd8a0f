"""PABEE in the Python API (`common.api`): one batch with per-example patience-based early exit
(Zhou et al., 2020, §3.1; `pabee.patience.EarlyExitEngine`), and per example the layers it ran.

`runner(model, source)` -> (run, dynamic): `run(features)` gives `logits` (of the layer each
example exited at) and `layers_run`; the model's `patience` (0: every layer) and the
checkpoint's regression threshold apply; batches are cut to their longest text."""
import numpy as np

from pabee.patience import EarlyExitEngine, ExitRule


def runner(model, source):
    engine = EarlyExitEngine(model)
    threshold = (source.sidecar or {}).get("method_state", {}).get("regression_threshold")
    rule = ExitRule(int(model.patience), float(threshold or 0.0), model.num_labels == 1)

    def run(features):
        if rule.patience < 1:
            logits = engine.full(features)
            return {"logits": logits, "layers_run": np.full(len(logits), model.num_layers)}
        result = engine.run(features, rule)
        return {"logits": result.logits, "layers_run": result.exit_layers.astype(np.int64)}

    return run, True
