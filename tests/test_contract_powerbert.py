"""The method contract (issue 12): each method at its no-op setting equals the plain
`SequenceClassifier` on the same weights, and its checkpoint round-trips."""
import numpy as np
import pytest

from common import checkpoints
from common.modeling import SequenceClassifier, dummy_inputs
from common.tasks import get_task
from conftest import BACKBONES, FIXTURES

POWERBERT_N = 12


def _powerbert_inputs(lengths, n=POWERBERT_N, seed=0):
    rng = np.random.default_rng(seed)
    mask = np.array([[1] * k + [0] * (n - k) for k in lengths], np.int32)
    ids = rng.integers(5, 35, (len(lengths), n)).astype(np.int32) * mask
    ids[:, 0] = 2
    types = (np.arange(n)[None, :] > np.array(lengths)[:, None] // 2) * mask
    return {"input_ids": ids, "token_type_ids": types.astype(np.int32), "attention_mask": mask}


def _powerbert_plain(folder):
    source = checkpoints.resolve_source(str(FIXTURES / folder))
    model = SequenceClassifier(source.config, 2, classifier_dropout=0.0)
    model(dummy_inputs(POWERBERT_N))
    checkpoints.load_backbone_weights(model, source)
    kernel = model.classifier.kernel  # an O(1) head, so differences are not scaled away
    kernel.assign(np.random.default_rng(3).normal(size=kernel.shape).astype(np.float32))
    return model


def _powerbert_from(plain, tmp_path, **kwargs):
    from powerbert.model import PowerBertClassifier
    path = str(tmp_path / "plain.weights.h5")
    checkpoints.save_weights(plain, path)
    model = PowerBertClassifier(plain.config, plain.num_labels, **kwargs)
    model(dummy_inputs(POWERBERT_N))
    checkpoints.load_weights(model, path, optional=model.optional_checkpoint_keys)
    return model


@pytest.mark.parametrize("folder", BACKBONES)
@pytest.mark.parametrize("mode", ["extract", "soft_extract"])
def test_powerbert_noop_equals_sequence_classifier(folder, mode, tmp_path):
    """Retention N in every block (Extract) or every retention parameter at 1 (Soft-Extract)."""
    plain = _powerbert_plain(folder)
    layers = plain.config.num_hidden_layers
    setting = ({"retention": [POWERBERT_N] * layers} if mode == "extract"
               else {"search_length": POWERBERT_N, "lam": 0.01})
    model = _powerbert_from(plain, tmp_path, **setting)
    inputs = _powerbert_inputs([12, 9, 5, 3, 1, 12])
    logits, state = model.forward(inputs)
    assert np.abs(np.asarray(logits) - np.asarray(plain(inputs))).max() <= 1e-5
    assert state.records["lengths"] == [POWERBERT_N] * layers


def test_powerbert_checkpoint_round_trips(tmp_path):
    from powerbert import pipeline
    from powerbert.model import PowerBertClassifier, build_powerbert, load_stage

    plain = _powerbert_plain("tiny_bert")
    run = pipeline.Run(task=get_task("sst-2"), max_length=POWERBERT_N, config=plain.config,
                       tokenizer=None, output_dir=str(tmp_path), echo=lambda _: None)
    inputs = _powerbert_inputs([12, 10, 7, 4])

    searched = _powerbert_from(plain, tmp_path, search_length=POWERBERT_N, lam=0.01)
    for block, layer in enumerate(searched.soft_extracts, 1):
        layer.retention.assign(np.linspace(1.0, 0.1 * block, POWERBERT_N).astype(np.float32))
    path = run.save(searched, pipeline.SEARCH, retention_config=[9, 6, 3])
    source = checkpoints.resolve_source(path)
    assert source.sidecar["method"] == "powerbert"
    assert source.sidecar["method_state"]["retention_config"] == [9, 6, 3]
    loaded = PowerBertClassifier(source.config, 2, search_length=POWERBERT_N)
    loaded(dummy_inputs(POWERBERT_N))
    assert checkpoints.load_backbone_weights(loaded, source)
    assert loaded.retention_masses() == pytest.approx(searched.retention_masses(), rel=1e-6)
    np.testing.assert_array_equal(np.asarray(loaded(inputs)), np.asarray(searched(inputs)))

    # Stage 3's model from the stage-2 checkpoint (retention parameters absent there), saved
    # and loaded again with the configuration its sidecar names.
    retention = source.sidecar["method_state"]["retention_config"]
    retrained = build_powerbert(source.config, 2, POWERBERT_N, retention=retention)
    load_stage(retrained, path)
    path = run.save(retrained, pipeline.RETRAINED, retention_config=retrained.retention)
    source = checkpoints.resolve_source(path)
    again = build_powerbert(source.config, 2, POWERBERT_N,
                            retention=source.sidecar["method_state"]["retention_config"])
    assert checkpoints.load_backbone_weights(again, source)
    assert again.retention == [9, 6, 3]
    expected = np.asarray(retrained(inputs))
    np.testing.assert_array_equal(np.asarray(again(inputs)), expected)
    assert np.abs(expected - np.asarray(plain(inputs))).max() > 1e-4  # words were dropped
