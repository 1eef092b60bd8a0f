"""PABEE on top of PoWER-BERT (issue 12 item 4): the two seams in one loop. Extract drops
word-vectors between each block's sub-layers and each layer's internal classifier reads what is
left; with no early exit the model is exactly the PoWER-BERT model it was built from."""
import json
import random

import numpy as np

from common import checkpoints, flops
from pabee.flops import powerbert_pabee_flops
from powerbert.flops import powerbert_flops
from common.tasks import get_task
from conftest import FIXTURES
from pabee.cli import main as pabee_main
from pabee.model import PabeeClassifier, build_model
from pabee.patience import EarlyExitEngine, ExitRule, exit_statistics
from pabee.pipeline import load_for_eval
from powerbert.model import PowerBertClassifier

RETENTION = [7, 5, 3]  # tiny_bert has 3 layers


def inputs(count=6, length=10, seed=0):
    rng = np.random.default_rng(seed)
    ids = rng.integers(5, 35, (count, length)).astype(np.int32)
    ids[:, 0] = 2
    mask = np.ones_like(ids)
    mask[1, 6:] = 0
    mask[4, 4:] = 0
    return {"input_ids": ids, "token_type_ids": np.zeros_like(ids), "attention_mask": mask}


def powerbert_model(seed=0):
    source = checkpoints.resolve_source(str(FIXTURES / "tiny_bert"))
    model = PowerBertClassifier(source.config, 2, retention=RETENTION, max_length=10)
    model(inputs())
    checkpoints.load_backbone_weights(model, source)
    rng = np.random.default_rng(seed)
    model.classifier.kernel.assign(rng.normal(size=model.classifier.kernel.shape).astype("float32"))
    return model, source


def combined_twin(powerbert):
    """PABEE with Extract under its exits, on the PoWER-BERT model's weights; the last internal
    classifier is the PoWER-BERT head, the others random."""
    model = PabeeClassifier(powerbert.config, 2, retention=RETENTION, head_dropout=0.0)
    model(inputs(), all_layers=True)
    for target, value in zip(model.bert.weights, powerbert.bert.weights):
        target.assign(value)
    rng = np.random.default_rng(1)
    for head in model.classifiers[:-1]:
        head.kernel.assign(rng.normal(size=head.kernel.shape).astype("float32"))
    model.classifiers[-1].kernel.assign(powerbert.classifier.kernel)
    model.classifiers[-1].bias.assign(powerbert.classifier.bias)
    return model


def test_without_exit_equals_powerbert():
    powerbert, _ = powerbert_model()
    model = combined_twin(powerbert)
    features = inputs()
    expected, reference_state = powerbert.forward(features)
    np.testing.assert_allclose(model(features), expected, atol=1e-5)  # patience 0
    engine = EarlyExitEngine(model)
    for patience in (3, 5):
        rule = ExitRule(patience)
        for result in (engine.run(features, rule), engine.run_all(features, rule, batch_size=1)):
            assert (result.exit_layers == 3).all()
            np.testing.assert_allclose(result.logits, expected, atol=1e-5)
    state = model.forward(features)[1]
    assert state.records["lengths"] == reference_state.records["lengths"] == RETENTION
    assert len(state.records["logits"]) == 3


def test_early_exit_reads_the_reduced_sequence():
    """Each exit's logits are its classifier on the pooled output of the word-vectors Extract
    left, and the per-example exit gives the same answers batched and at batch 1."""
    powerbert, _ = powerbert_model()
    model = combined_twin(powerbert)
    features = inputs(count=8, seed=3)
    layer_logits = np.stack(model(features, all_layers=True))
    engine = EarlyExitEngine(model)
    rule = ExitRule(1)
    batched = engine.run(features, rule)
    single = engine.run_all(features, rule, batch_size=1)
    np.testing.assert_array_equal(batched.exit_layers, single.exit_layers)
    np.testing.assert_allclose(batched.logits, single.logits, atol=1e-5)
    for row, layer in enumerate(batched.exit_layers):
        np.testing.assert_allclose(batched.logits[row], layer_logits[layer - 1, row], atol=1e-5)


def test_combined_flops():
    config = checkpoints.resolve_source(str(FIXTURES / "tiny_bert")).config
    n = 9
    full = powerbert_pabee_flops(config, n, RETENTION, 3)
    pabee_exit_head = flops.head_flops(config) * 2  # two extra exits over PoWER-BERT's one head
    assert full == powerbert_flops(config, n, [min(k, n) for k in RETENTION]) + pabee_exit_head
    assert powerbert_pabee_flops(config, n, RETENTION, 1) < full
    stats = exit_statistics(config, [1, 3], n, 2, retention=RETENTION)
    plain = exit_statistics(config, [1, 3], n, 2)
    assert stats["flops_ratio"] > plain["flops_ratio"] > 1


def test_run_glue_with_pabee_on_a_powerbert_checkpoint(tmp_path, capsys):
    powerbert, source = powerbert_model()
    folder = tmp_path / "retrained"
    checkpoints.save_checkpoint(powerbert, str(folder), {
        "method": "powerbert", "task": "sst-2", "num_labels": 2, "max_length": 16,
        "method_state": {"stage": "retrained", "retention_config": RETENTION}})
    for name in ("vocab.txt",):
        (folder / name).write_bytes((FIXTURES / "tiny_bert" / name).read_bytes())
    data = tmp_path / "SST-2"
    data.mkdir()
    rng = random.Random(0)
    for split, count in (("train", 32), ("dev", 16)):
        rows = [f"{rng.choice(('good', 'bad', 'fine'))} movie .\t{i % 2}" for i in range(count)]
        (data / f"{split}.tsv").write_text("sentence\tlabel\n" + "\n".join(rows) + "\n")
    out = tmp_path / "pabee"
    pabee_main(["--model_type", "bert", "--model_name_or_path", str(folder), "--task_name",
                "SST-2", "--do_lower_case", "--data_dir", str(data), "--max_seq_length", "16",
                "--output_dir", str(out), "--do_train", "--do_eval", "--patience", "1,2",
                "--per_gpu_train_batch_size", "16", "--max_steps", "2", "--logging_steps", "0",
                "--save_steps", "0", "--seed", "3", "--allow_collapsed"])
    sidecar = json.loads((out / "config.json").read_text())
    assert sidecar["method"] == "pabee"
    assert sidecar["method_state"]["retention_config"] == RETENTION
    model = load_for_eval(str(out), get_task("sst-2"), log=lambda *_: None)
    assert model.retention == RETENTION
    assert model.forward(inputs())[1].records["lengths"] == RETENTION
    # A plain PABEE source has no Extract under its exits.
    plain = build_model(source, 2)
    assert plain.retention is None and plain.below is None
