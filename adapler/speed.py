"""AdapLeR's timing sides for `common.benchmark`, beside the dense baselines.

The dense sides run the same backbone and head without the contribution predictors. AdapLeR
runs in `lr_mode` (physical removal), one tf.function with data-dependent shapes:

    adapler-unpadded   batch 1, every text alone at its own length (the paper's setting)
    adapler-dynamic    the length-sorted, dynamically padded batches of the dense-dynamic
                       baseline; tokens are dropped row by row and the batch is compacted to its
                       longest survivor before every block (beyond the paper)

At batch 1 the reference (c) is the faster of the dense graph and the dense model XLA-compiled
per text length (the fastest plain model there on small backbones). FLOPs are those of each
text alone with the lengths `lr_mode` keeps (`flops_and_predictions`).
"""
import numpy as np

from adapler.flops import adapler_flops
from adapler.inference import compiled
from common import benchmark, flops


def vanilla_call(model):
    """features -> logits of the backbone and head without predictors."""
    return lambda features: model.classifier(model.bert(features, training=False)["pooled_output"])


def flops_and_predictions(model, arrays):
    """(vanilla FLOPs, AdapLeR FLOPs, lr_mode predictions, mean kept tokens per layer) of every
    text run alone and unpadded."""
    config, labels = model.config, model.num_labels
    vanilla = adapler = 0
    predictions, kept = [], []
    for example in benchmark.unpadded_examples(arrays):
        outputs = model(example, lr_mode=True)
        n = example["input_ids"].shape[1]
        lengths = [int(k[0]) for k in outputs["lengths"]]
        vanilla += flops.vanilla_flops(config, n, labels)
        adapler += adapler_flops(config, n, lengths, labels, model.cp_hidden)
        predictions.append(int(np.argmax(outputs["logits"][0])))
        kept.append(lengths)
    return vanilla, adapler, np.asarray(predictions), np.mean(kept, axis=0).round(1).tolist()


def sides(model, arrays, batch_size):
    """The dense baselines and AdapLeR's side at `batch_size` (see the module docstring)."""
    config, labels = model.config, model.num_labels
    result = benchmark.dense_sides(vanilla_call(model), arrays, batch_size,
                                   lambda n: flops.vanilla_flops(config, n, labels))
    adapler = benchmark.blocking(compiled(model, lr_mode=True))
    if batch_size == 1:
        items = benchmark.unpadded_examples(arrays)
        return result + [benchmark.Side("adapler-unpadded", adapler, items)]
    batches, order = benchmark.dynamic_batches(arrays, batch_size)
    return result + [benchmark.Side("adapler-dynamic", adapler, batches, order=order)]
