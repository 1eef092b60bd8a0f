"""Every method on every backbone family (issue 31): PoWER-BERT, AdapLeR and PABEE on the tiny
RoBERTa, XLM-RoBERTa, DistilBERT and ELECTRA classifiers, on the ids their own tokenizers gave
(tests/fixtures/*/reference.npz): a few training steps lower the method's loss, and its inference
mode does what it promises (Extract keeps k_l word-vectors, AdapLeR's batched removal equals the
one-by-one removal, PABEE's batched exit equals the batch-1 exit). BERT and ALBERT are covered by
each method's own tests; the no-op contract of every family by tests/test_contract_*.py; a
command line per method on RoBERTa below."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from common import checkpoints
from common.modeling import dummy_inputs
from conftest import BACKBONES, FIXTURES

FAMILIES = BACKBONES[2:]
LENGTH = 16  # the fixtures' inputs are padded to 16
FEATURES = ("input_ids", "token_type_ids", "attention_mask")


def family_batch(name):
    """The fixture's 10 rows (5 pairs, 5 single texts) and fixed labels 0, 1, 2."""
    reference = np.load(FIXTURES / name / "reference.npz")
    features = {key: reference[key].astype(np.int32) for key in FEATURES}
    return features, np.arange(len(features["input_ids"])) % 3


def loss_drop(model, loss, variables=None, steps=4, rate=1e-2):
    """(loss before, loss after) `steps` Adam updates on one batch; `loss(training)`, measured
    without dropout."""
    keras.utils.set_random_seed(0)
    optimizer = keras.optimizers.Adam(rate)
    variables = variables or model.trainable_variables
    before = float(loss(False))
    for _ in range(steps):
        with tf.GradientTape() as tape:
            value = loss(True)
        optimizer.apply_gradients(zip(tape.gradient(value, variables), variables))
    return before, float(loss(False))


def source_of(name):
    return checkpoints.resolve_source(str(FIXTURES / name))


@pytest.mark.parametrize("name", FAMILIES)
def test_powerbert_on_each_family(name):
    from common.training import classification_loss
    from powerbert.model import build_powerbert
    from powerbert.pipeline import search_loss

    source = source_of(name)
    features, labels = family_batch(name)
    search = build_powerbert(source.config, 3, LENGTH, search_length=LENGTH, lam=1e-3)
    assert checkpoints.load_backbone_weights(search, source)  # the family's HF head too
    masses = search.retention_masses()
    before, after = loss_drop(search, lambda training: search_loss(search, features, labels,
                                                                   training))
    assert after < before and search.retention_masses() != masses

    extract = build_powerbert(source.config, 3, LENGTH, retention=[12, 7, 3])
    checkpoints.load_backbone_weights(extract, source)
    logits, state = extract.forward(features)
    assert state.records["lengths"] == [12, 7, 3] and np.isfinite(np.asarray(logits)).all()
    before, after = loss_drop(extract, lambda training: classification_loss(
        extract(features, training=training), labels, 3))
    assert after < before


@pytest.mark.parametrize("name", FAMILIES)
def test_adapler_on_each_family(name):
    from adapler.model import AdapLeRClassifier
    from common.training import classification_loss

    source = source_of(name)
    features, labels = family_batch(name)
    model = AdapLeRClassifier(source.config, 3)
    model(dummy_inputs(LENGTH))
    assert checkpoints.load_backbone_weights(model, source)
    rng = np.random.default_rng(0)
    for predictor in model.predictors:  # CPs that tell tokens apart, thresholds that remove some
        predictor.out.kernel.assign(rng.normal(0, 2.0, predictor.out.kernel.shape))
    model.eta.assign([0.6, 0.8, 0.9])
    batched = model(features, lr_mode=True)
    tokens = features["attention_mask"].sum(axis=1)
    kept = np.stack([np.rint(np.asarray(n)) for n in batched["lengths"]], axis=1)
    assert (kept[:, -1] < tokens).any() and (kept <= tokens[:, None]).all()
    for row in range(len(tokens)):
        one = {key: value[row:row + 1, :tokens[row]] for key, value in features.items()}
        single = model(one, lr_mode=True)
        np.testing.assert_allclose(np.asarray(single["logits"])[0],
                                   np.asarray(batched["logits"])[row], atol=1e-5)
        assert [int(k.shape[1]) for k in single["kept"]] == kept[row].astype(int).tolist()
    before, after = loss_drop(model, lambda training: classification_loss(
        model(features, training=training)["logits"], labels, 3), model.main_variables)
    assert after < before


@pytest.mark.parametrize("name", FAMILIES)
def test_pabee_on_each_family(name):
    from pabee.model import build_model, load_weights, loss_fn
    from pabee.patience import EarlyExitEngine, ExitRule

    source = source_of(name)
    features, labels = family_batch(name)
    model = build_model(source, 3)
    assert load_weights(model, source) == 0  # an HF classifier: fresh internal classifiers
    before, after = loss_drop(model, lambda training: loss_fn(model, features, labels, training))
    assert after < before
    engine = EarlyExitEngine(model)
    rule = ExitRule(1)
    batched, single = engine.run(features, rule), engine.run_all(features, rule, batch_size=1)
    np.testing.assert_array_equal(batched.exit_layers, single.exit_layers)
    np.testing.assert_allclose(batched.logits, single.logits, atol=1e-5)
    assert (batched.exit_layers >= 2).all() and (batched.exit_layers <= 3).all()


def test_pabee_command_line_on_roberta(tmp_path):
    """run_glue_with_pabee --model_type roberta: trains, saves the byte-level BPE tokenizer with
    the checkpoint, and evaluates from it."""
    from pabee.cli import main

    data = tmp_path / "SST-2"
    data.mkdir()
    rows = ["the movie was good\t1", "a great film\t1", "it was boring\t0", "an awful plot\t0"]
    for split in ("train", "dev"):
        (data / f"{split}.tsv").write_text("sentence\tlabel\n" + "\n".join(rows * 2) + "\n")
    out = tmp_path / "out"
    main(["--model_type", "roberta", "--model_name_or_path", str(FIXTURES / "tiny_roberta"),
          "--task_name", "SST-2", "--data_dir", str(data), "--max_seq_length", "16",
          "--output_dir", str(out), "--do_train", "--do_eval", "--per_gpu_train_batch_size", "8",
          "--max_steps", "1", "--logging_steps", "0", "--save_steps", "0", "--patience", "1"])
    sidecar = checkpoints.read_sidecar(str(out))
    assert sidecar["method"] == "pabee" and sidecar["backbone"]["model_type"] == "roberta"
    assert (out / "tokenizer.json").is_file() and (out / "eval_results_patience.tsv").is_file()
