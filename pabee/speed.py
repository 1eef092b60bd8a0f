"""PABEE's timing sides for `common.benchmark`, beside the dense baselines.

The dense sides run the plain backbone with no seam (embeddings, all L layers, pooler, last
classifier: a plain BERT classifier, which is PABEE's patience-0 path; on PABEE over PoWER-BERT
the same weights without Extract). PABEE runs through `EarlyExitEngine`:

    pabee-unpadded-t<P>   batch 1, every text alone at its own length, patience P
    pabee-dynamic-t<P>    batched per-example exit (exited rows leave the batch) on the
                          length-sorted, dynamically padded batches of the dense-dynamic baseline

`exit_summary` gives the exit statistics on the real lengths (L/X and the analytic FLOPs ratio)
and checks that the batched predictions and exit layers equal the batch-1 ones.
"""
import numpy as np

from common import benchmark
from pabee.patience import exit_statistics


def side_name(batch_size, patience):
    return f"pabee-{'unpadded' if batch_size == 1 else 'dynamic'}-t{patience}"


def sides(engine, arrays, batch_size, rules):
    """Dense baselines and one PABEE side per rule ({patience: ExitRule}) at `batch_size`."""
    model = engine.model
    result = benchmark.dense_sides(
        lambda features: model.classify(model.bert.encode(features), training=False), arrays,
        batch_size)
    if batch_size == 1:
        items, order = benchmark.unpadded_examples(arrays), None
    else:
        items, order = benchmark.dynamic_batches(arrays, batch_size)
    for patience, rule in rules.items():
        result.append(benchmark.Side(side_name(batch_size, patience),
                                     lambda item, rule=rule: engine.run(item, rule), items,
                                     order=order))
    return result


def exit_summary(side, model, arrays, reference=None):
    """Exit statistics of `side` on the real lengths, its logits, and with `reference` (the
    batch-1 side) the prediction and exit-layer mismatches against it."""
    logits = benchmark.outputs_in_order(side, lambda result: result.logits)
    exits = benchmark.outputs_in_order(side, lambda result: result.exit_layers)
    stats = exit_statistics(model.config, exits, benchmark.real_lengths(arrays),
                            model.num_labels, model.retention)
    summary = {"avg_exit_layer": stats["avg_exit_layer"], "layer_ratio": stats["layer_ratio"],
               "flops_speedup": stats["flops_ratio"], "logits": logits, "exits": exits}
    if reference is not None:
        if model.num_labels > 1:
            same = np.argmax(logits, -1) == np.argmax(reference["logits"], -1)
        else:
            same = np.isclose(logits[:, 0], reference["logits"][:, 0], atol=1e-4)
        summary["prediction_mismatches"] = int((~same).sum())
        summary["exit_layer_mismatches"] = int((exits != reference["exits"]).sum())
    return summary
