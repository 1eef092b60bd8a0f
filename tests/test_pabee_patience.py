"""PABEE's exit rule (the original's `BertModel.forward`): hand-made logit sequences, the live
engine against offline simulation, batched per-example exit against batch size 1, statistics."""
import numpy as np
import pytest

from common import checkpoints
from common.config import BertConfig
from common.errors import UserError
from conftest import FIXTURES
from pabee.model import build_model, load_weights
from pabee.patience import (EarlyExitEngine, ExitRule, exit_statistics, parse_patience_list,
                            simulate, stats_line)


def one_hot_sequence(argmaxes, classes=3):
    """(L, 1, C) logits whose argmax per layer is `argmaxes`."""
    logits = np.zeros((len(argmaxes), 1, classes), np.float32)
    for layer, label in enumerate(argmaxes):
        logits[layer, 0, label] = 1.0
    return logits


def regression_sequence(values):
    return np.asarray(values, np.float32)[:, None, None]


@pytest.mark.parametrize("argmaxes, patience, exit_layer, answer", [
    ([0, 1, 1, 0, 0, 0], 1, 3, 1),
    ([0, 1, 1, 0, 0, 0], 2, 6, 0),  # counters 0,0,1,0,1,2
    ([0, 0, 1, 1, 1, 0], 2, 5, 1),
    ([0, 1, 0, 1, 0, 1], 3, 6, 1),  # never: the last layer answers
    ([2, 2, 2, 2, 2, 2], 1, 2, 2),
    ([0, 0, 1, 1, 2, 2], 2, 6, 2),  # a reset goes to 0, not 1 (else: exit at layer 4)
])
def test_classification_rule(argmaxes, patience, exit_layer, answer):
    result = simulate(one_hot_sequence(argmaxes), ExitRule(patience))
    assert result.exit_layers.tolist() == [exit_layer]
    assert int(np.argmax(result.logits[0])) == answer


@pytest.mark.parametrize("values, threshold, patience, exit_layer, answer", [
    ([1.0, 1.5, 1.55, 1.58, 3.0, 3.01], 0.1, 2, 4, 1.58),  # the exit layer's own value
    ([1.0, 1.5, 1.55, 1.58, 3.0, 3.01], 0.0, 1, 6, 3.01),  # threshold 0 never exits
    ([1.0, 1.5, 1.55, 1.58, 3.0, 3.01], 0.0, 4, 6, 3.01),
    ([1.0, 1.5, 1.55, 1.58, 3.0, 3.01], 1e9, 3, 4, 1.58),  # = t + 1
    ([1.0, 1.25, 1.5], 0.25, 1, 3, 1.5),  # |delta| == threshold does not count (strict <)
    ([1.0, 1.08, 1.16, 1.24], 0.1, 3, 4, 1.24),  # drift accumulates: compared to the previous
])
def test_regression_rule(values, threshold, patience, exit_layer, answer):
    result = simulate(regression_sequence(values), ExitRule(patience, threshold, True))
    assert result.exit_layers.tolist() == [exit_layer]
    assert result.logits[0, 0] == pytest.approx(answer)


def test_exit_layer_bounds_and_large_patience():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(6, 200, 2)).astype(np.float32)
    logits[:, :100] += np.array([3.0, 0.0], np.float32)  # half the rows agree early
    for patience in range(1, 5):
        exits = simulate(logits, ExitRule(patience)).exit_layers
        assert exits.min() >= patience + 1 and exits.max() <= 6
    assert simulate(logits, ExitRule(1)).exit_layers.min() == 2
    for patience in (5, 6, 9):  # t >= L - 1: every input uses all layers, output = patience 0
        result = simulate(logits, ExitRule(patience))
        assert (result.exit_layers == 6).all()
        np.testing.assert_array_equal(result.logits, simulate(logits, ExitRule(0)).logits)


def test_patience_list_parsing():
    assert parse_patience_list("3,4,5") == [3, 4, 5]
    assert parse_patience_list(" 3, 0") == [3, 0]
    for bad in ("3.5", "a", "3,,4", "-1", "2,-3", ""):
        with pytest.raises(UserError, match="patience"):
            parse_patience_list(bad)


def test_statistics_and_printed_line():
    config = BertConfig(num_hidden_layers=12)
    stats = exit_statistics(config, [7, 8, 8, 12], 128, 2)
    assert stats["avg_exit_layer"] == pytest.approx(8.75)
    assert stats["speed_up"] == pytest.approx(1 - 8.75 / 12)
    assert stats["layer_ratio"] == pytest.approx(12 / 8.75)
    assert 1 < stats["flops_ratio"] < stats["layer_ratio"]  # embeddings + extra heads cost
    assert stats["exit_histogram"][6:8] == [1, 2] and sum(stats["exit_histogram"]) == 4
    assert stats_line(6, stats) == ("*** Patience = 6 Avg. Inference Layers = 8.75 "
                                    "Speed Up = 0.27 ***")


# ---------------------------------------------------------------- through a model

@pytest.fixture(scope="module", params=["tiny_bert", "tiny_albert"])
def model_and_inputs(request):
    """A tiny PABEE model whose heads give clear (non-tied) decisions, and 40 mixed inputs."""
    source = checkpoints.resolve_source(str(FIXTURES / request.param))
    model = build_model(source, 3)
    load_weights(model, source)
    rng = np.random.default_rng(1)
    ids = rng.integers(5, 35, (40, 12)).astype(np.int32)
    ids[:, 0] = 2
    mask = np.ones_like(ids)
    mask[::3, 8:] = 0
    features = {"input_ids": ids, "token_type_ids": np.zeros_like(ids), "attention_mask": mask}
    # Related heads, centred on this sample: rows split between classes and between agreeing
    # and disagreeing layers, so exit layers mix.
    shared = rng.normal(size=model.classifiers[0].kernel.shape)
    for head in model.classifiers:
        head.kernel.assign((shared + rng.normal(scale=0.5, size=shared.shape)).astype(np.float32))
    for head, logits in zip(model.classifiers, model(features, all_layers=True)):
        logits = np.asarray(logits)
        scale = 1.0 / logits.std(axis=0).mean()
        head.kernel.assign(head.kernel.numpy() * scale)
        head.bias.assign(-logits.mean(axis=0) * scale)
    return model, features


# The fixture's heads amplify tiny differences between pooled vectors ~1000x, so float noise
# between batch shapes (~1e-7) shows up as ~1e-4 in its logits.
LOGIT_TOLERANCE = 5e-4


def test_engine_matches_offline_simulation_and_batch_one(model_and_inputs):
    model, features = model_and_inputs
    engine = EarlyExitEngine(model)
    layer_logits = np.stack([np.asarray(z) for z in model(features, all_layers=True)])
    margins = np.sort(layer_logits, -1)
    assert (margins[..., -1] - margins[..., -2]).min() > 2e-3  # no near-ties in this sample
    exits_seen = set()
    for patience in (1, 2):
        rule = ExitRule(patience)
        offline = simulate(layer_logits, rule)
        single = engine.run_all(features, rule, batch_size=1)
        np.testing.assert_array_equal(single.exit_layers, offline.exit_layers)
        np.testing.assert_allclose(single.logits, offline.logits, atol=LOGIT_TOLERANCE)
        for batch_size in (2, 7, 32):
            batched = engine.run_all(features, rule, batch_size=batch_size)
            np.testing.assert_array_equal(batched.exit_layers, single.exit_layers)
            np.testing.assert_array_equal(np.argmax(batched.logits, -1),
                                          np.argmax(single.logits, -1))
            np.testing.assert_allclose(batched.logits, single.logits, atol=LOGIT_TOLERANCE)
        order = np.random.default_rng(patience).permutation(40)
        shuffled = engine.run_all({k: v[order] for k, v in features.items()}, rule, 7)
        np.testing.assert_array_equal(shuffled.exit_layers, single.exit_layers[order])
        exits_seen.update(single.exit_layers.tolist())
    assert len(exits_seen) >= 2  # the sample really mixes exit layers


def test_engine_is_deterministic_and_large_patience_is_full_model(model_and_inputs):
    model, features = model_and_inputs
    engine = EarlyExitEngine(model)
    first = engine.run(features, ExitRule(1))
    second = engine.run(features, ExitRule(1))
    np.testing.assert_array_equal(first.exit_layers, second.exit_layers)
    np.testing.assert_array_equal(first.logits, second.logits)
    full = np.asarray(model(features))
    late = engine.run(features, ExitRule(model.num_layers - 1))
    assert (late.exit_layers == model.num_layers).all()
    np.testing.assert_allclose(late.logits, full, atol=LOGIT_TOLERANCE)
    few = {k: v[:6] for k, v in features.items()}
    for patience in (model.num_layers - 1, model.num_layers + 3):  # the batch-1 loop too
        late = engine.run_all(few, ExitRule(patience), batch_size=1)
        assert (late.exit_layers == model.num_layers).all()
        np.testing.assert_allclose(late.logits, full[:6], atol=LOGIT_TOLERANCE)


def test_regression_engine_threshold(model_and_inputs):
    model, features = model_and_inputs
    engine = EarlyExitEngine(model)
    layer_logits = np.stack([np.asarray(z) for z in model(features, all_layers=True)])[..., :1]
    gaps = np.abs(np.diff(layer_logits[..., 0], axis=0))
    threshold = float(np.median(gaps))
    # A 1-output view of the same model: the regression rule reads column 0 only.
    for value, patience in ((0.0, 1), (threshold, 1), (1e9, 1)):
        rule = ExitRule(patience, value, is_regression=True)
        offline = simulate(layer_logits, rule)
        for batch_size in (1, 5):
            live = engine.run_all(features, rule, batch_size=batch_size)
            np.testing.assert_array_equal(live.exit_layers, offline.exit_layers)
    assert (simulate(layer_logits, ExitRule(1, 0.0, True)).exit_layers == model.num_layers).all()
    assert (simulate(layer_logits, ExitRule(1, 1e9, True)).exit_layers == 2).all()
