"""Saliencies: gradient x input of the gold logit at the embedding output
against finite differences; shape, pads, no normalisation; averaging and id alignment of the
files; errors for files that do not match the split."""
import json

import numpy as np
import pytest

from adapler.model import AdapLeRClassifier
from adapler.saliency import (compute_saliencies, ids_file, read_saliencies,
                              write_saliencies)
from adapler.soft_removal import NO_REMOVAL_ETA
from common.checkpoints import load_backbone_weights, resolve_source
from common.errors import UserError
from common.modeling import dummy_inputs
from common.seams import initial_state
from tests.test_adapler_model import TINY, random_batch
from conftest import FIXTURES


@pytest.fixture(scope="module")
def model():
    source = resolve_source(TINY)
    m = AdapLeRClassifier(source.config, 3)
    m(dummy_inputs())
    load_backbone_weights(m, source)
    return m


def test_saliency_matches_finite_differences(model):
    rng = np.random.default_rng(0)
    features = random_batch(rng, batch=3, length=7, pad_to=9)
    labels = np.array([0, 2, 1])
    saliency = compute_saliencies(model, {**features, "labels": labels}, batch_size=2)
    assert saliency.shape == (3, 9) and saliency.dtype == np.float32
    assert (saliency >= 0).all()
    assert (saliency[features["attention_mask"] == 0] == 0).all()
    assert (saliency[features["attention_mask"] == 1] > 0).all()
    assert not np.allclose(saliency.sum(1), 1.0)  # raw magnitudes, no normalisation

    row, step = 1, 1e-2
    example = {k: v[row:row + 1] for k, v in features.items()}
    embedded = model.bert.embeddings(example["input_ids"], example["token_type_ids"]).numpy()
    length, hidden = embedded.shape[1:]
    directions = np.eye(length * hidden, dtype=np.float32).reshape(-1, length, hidden)
    perturbed = np.concatenate([embedded + step * directions, embedded - step * directions])
    mask = np.repeat(example["attention_mask"].astype(np.float32), len(perturbed), 0)
    logits = model.run(initial_state(perturbed, mask), eta=NO_REMOVAL_ETA,
                       sharpness=1e10)["logits"].numpy()
    gold = logits[:, labels[row]]
    gradient = ((gold[:len(directions)] - gold[len(directions):]) / (2 * step)).reshape(
        length, hidden)
    expected = np.linalg.norm(gradient * embedded[0], axis=-1) * example["attention_mask"][0]
    np.testing.assert_allclose(saliency[row], expected, rtol=3e-2, atol=1e-6)


def test_files_average_and_align_by_id(tmp_path):
    ids = ["a", "b", "c", "d"]
    first = np.arange(12, dtype=np.float32).reshape(4, 3)
    second = first[::-1] * 3
    write_saliencies(str(tmp_path / "s_1.npy"), first, ids, {"split": "train"})
    write_saliencies(str(tmp_path / "s_2.npy"), second, ids[::-1], {"split": "train"})
    assert json.load(open(ids_file(str(tmp_path / "s_1.npy"))))["ids"] == ids
    files = [str(tmp_path / "s_1.npy"), str(tmp_path / "s_2.npy")]
    # training order c, a, d, b: each example gets its own rows, averaged over the files
    rows = read_saliencies(files, ["c", "a", "d", "b"], 3)
    by_id = {key: row for key, row in zip(ids, first)}
    by_id_2 = {key: row for key, row in zip(ids[::-1], second)}
    expected = [(by_id[k] + by_id_2[k]) / 2 for k in ["c", "a", "d", "b"]]
    np.testing.assert_allclose(rows, expected)


def test_mismatched_files_are_errors(tmp_path):
    path = str(tmp_path / "s_1.npy")
    write_saliencies(path, np.ones((4, 3), np.float32), ["a", "b", "c", "d"], {})
    # a file of a larger training subset: the examples' own rows, the others left out
    np.testing.assert_array_equal(read_saliencies([path], ["c", "a"], 3), np.ones((2, 3)))
    with pytest.raises(UserError, match=r"no row for 1 of the 2 examples \(ids e\); rerun "
                                        r".*--MAX_TRAIN_EXAMPLES"):
        read_saliencies([path], ["a", "e"], 3)
    with pytest.raises(UserError, match="MAX_LENGTH is 5"):
        read_saliencies([path], ["a", "b", "c", "d"], 5)
    with pytest.raises(UserError, match="no saliency file"):
        read_saliencies([], ["a"], 3)
    legacy = str(tmp_path / "legacy.npy")  # a file of the original: positions only
    np.save(legacy, np.ones((2, 1, 3), np.float32))
    assert read_saliencies([legacy], ["x", "y"], 3).shape == (2, 3)
    with pytest.raises(UserError, match="has 2 rows but the split has 3"):
        read_saliencies([legacy], ["x", "y", "z"], 3)


def test_saliencies_must_come_from_the_stage_a_checkpoint_as_it_is(tmp_path):
    """check_saliency_sources: the checkpoint's fingerprint recorded beside the saliencies must
    still match it; older toolkit files without the record are refused, the original code's
    files (no .ids.json) pass with one warning."""
    from common import checkpoints
    from common.modeling import SequenceClassifier, dummy_inputs
    from adapler.saliency import check_saliency_sources

    tiny = str(FIXTURES / "tiny_bert")
    model = SequenceClassifier(checkpoints.resolve_source(tiny).config, 2)
    model(dummy_inputs(8))
    folder = str(tmp_path / "bert_sst2_1")
    checkpoints.save_checkpoint(model, folder, {"task": "sst-2", "num_labels": 2})
    path = str(tmp_path / "sal_mat_wCLSSEPnoZ_1.npy")
    write_saliencies(path, np.ones((2, 3), np.float32), ["a", "b"], {
        "checkpoint": folder, "checkpoint_fingerprint": checkpoints.fingerprint(folder)})
    check_saliency_sources([path], warn=pytest.fail)  # the same checkpoint: nothing to say

    model.classifier.bias.assign([1.0, -1.0])  # stage A trained again into the same folder
    checkpoints.save_checkpoint(model, folder, {"task": "sst-2", "num_labels": 2})
    with pytest.raises(UserError, match="computed from an earlier stage-A run: .*bert_sst2_1 "
                                        "has been trained again.*store_saliencies.py.*"
                                        "--OVERWRITE_OUTPUT_DIR"):
        check_saliency_sources([path])

    write_saliencies(path, np.ones((2, 3), np.float32), ["a", "b"], {"checkpoint": folder})
    with pytest.raises(UserError, match="does not record the fingerprint.*recompute"):
        check_saliency_sources([path])

    original = str(tmp_path / "sal_mat_wCLSSEPnoZ_2.npy")
    np.save(original, np.ones((2, 3), np.float32))
    warnings = []
    check_saliency_sources([original], warn=warnings.append)
    assert len(warnings) == 1 and "nothing tells which stage-A checkpoint" in warnings[0]
