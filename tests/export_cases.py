"""Tiny checkpoints of the five model kinds that export (tests of `common.export`): the tiny BERT
(3 layers, 35-token vocabulary) with seeded random weights large enough that the methods act:
Extract keeps fewer word-vectors than the texts have, AdapLeR removes tokens, PABEE exits at
different layers for different texts."""
import numpy as np

from common import checkpoints
from common.modeling import SequenceClassifier, dummy_inputs
from common.tokenization import load_tokenizer
from conftest import FIXTURES

TINY = FIXTURES / "tiny_bert"
MAX_LENGTH = 16
RETENTION = [7, 5, 3]
KINDS = ("vanilla", "powerbert", "adapler", "pabee", "powerbert_pabee")
SEEDS = {"pabee": 3, "powerbert_pabee": 3}  # seeds whose SST-2 dev texts exit at both layers


def _shake(model, seed, scale=0.3):
    """Seeded noise on every weight: a random model whose outputs depend on the text."""
    rng = np.random.default_rng(seed)
    for weight in model.weights:
        value = weight.numpy()
        weight.assign((value + rng.normal(scale=scale, size=value.shape)).astype(value.dtype))


def make_checkpoint(kind, folder, seed=None, task="sst-2", num_labels=2):
    """Write a checkpoint of `kind` (one of KINDS; `task` with `num_labels` outputs, for the
    fine-tuned kind) into `folder`; returns the folder."""
    source = checkpoints.resolve_source(str(TINY))
    config = source.config
    meta = {"task": task, "num_labels": num_labels, "max_length": MAX_LENGTH, "lower_case": True}
    if kind == "vanilla":
        model = SequenceClassifier(config, num_labels)
        model(dummy_inputs(8))
        meta["method"] = "vanilla"
    elif kind == "powerbert":
        from powerbert.model import build_powerbert
        model = build_powerbert(config, 2, MAX_LENGTH, retention=RETENTION)
        meta.update(method="powerbert", method_state={"retention_config": RETENTION})
    elif kind == "adapler":
        from adapler.model import build_model
        model = build_model(config, 2, MAX_LENGTH)
        meta["method"] = "adapler"
    else:
        from pabee.model import PabeeClassifier
        retention = RETENTION if kind == "powerbert_pabee" else None
        model = PabeeClassifier(config, 2, retention=retention)
        model(dummy_inputs(8), all_layers=True)
        meta.update(method="pabee", method_state={"patience": 1, "retention_config": retention,
                                                  "head_dropout": 0.1})
    checkpoints.load_backbone_weights(model, source)
    _shake(model, SEEDS.get(kind, 0) if seed is None else seed)
    if kind == "adapler":
        model.eta.assign(np.full(model.eta.shape, 0.9, np.float32))  # removes about half
    checkpoints.save_checkpoint(model, str(folder), meta, tokenizer=load_tokenizer(str(TINY)))
    return str(folder)
