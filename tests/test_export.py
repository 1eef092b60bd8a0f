"""Export (common.export, tools/export.py): each of the five model kinds exports to a SavedModel
whose string signature gives the toolkit's own evaluation of the same checkpoint (logits within
1e-5, the same labels and per-example costs) batched and at batch 1, which loads in a Python
that cannot import this repository, and whose request payload `saved_model_cli run` accepts."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from common import methods
from common.data import (default_data_dir, map_length_sorted, read_split, real_lengths,
                         restore_order)
from common.export import export
from common.tokenization import encode, load_tokenizer
from export_cases import KINDS, MAX_LENGTH, RETENTION, make_checkpoint

TEXTS = read_split("sst-2", default_data_dir(), "dev").text_a[:24] + [
    "", "good " * 40, "a good movie", "not bad at all, a great fun film !"]
BATCH = 8


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """kind -> (checkpoint folder, export folder)."""
    root = tmp_path_factory.mktemp("export")
    folders = {}
    for kind in KINDS:
        checkpoint = make_checkpoint(kind, root / f"{kind}_ckpt")
        export(checkpoint, str(root / kind))
        folders[kind] = (checkpoint, str(root / kind))
    return folders


def toolkit_outputs(kind, checkpoint, batch):
    """(logits, costs) of the toolkit's own evaluation: length-sorted batches of `batch`."""
    from common.training import predict

    model, source = methods.load_model(checkpoint)
    arrays = encode(load_tokenizer(checkpoint), TEXTS, None, MAX_LENGTH)
    if kind in ("vanilla", "powerbert"):
        return predict(model, arrays, batch), {}
    if kind == "adapler":
        lengths = predict(model, arrays, batch, call=lambda m, f: tf.stack(
            m(f, lr_mode=True)["lengths"], axis=1))
        logits = predict(model, arrays, batch, call=lambda m, f: m(f, lr_mode=True)["logits"])
        return logits, {"tokens_kept": np.round(lengths).astype(np.int32)}
    from pabee.patience import EarlyExitEngine, ExitRule

    engine, rule = EarlyExitEngine(model), ExitRule(model.patience)

    def run(rows):
        result = engine.run(rows, rule)
        return result.logits, result.exit_layers

    logits, exits = map_length_sorted(run, arrays, batch)
    return logits, {"layers_run": exits}


_LOADED = {}


def serve(folder, texts, batch, order=None):
    """The string signature's outputs on `texts`, `batch` at a time, in the row `order` given
    (the toolkit's length-sorted order: PoWER-BERT's Extract under PABEE depends on the width
    of the batch), returned in the texts' order."""
    if folder not in _LOADED:
        _LOADED[folder] = tf.saved_model.load(folder).signatures["serving_default"]
    function = _LOADED[folder]
    order = np.arange(len(texts)) if order is None else order
    rows = [texts[i] for i in order]
    outputs = [function(text=tf.constant(rows[i:i + batch])) for i in range(0, len(rows), batch)]
    return restore_order({key: np.concatenate([o[key].numpy() for o in outputs])
                          for key in outputs[0]}, order)


@pytest.mark.parametrize("kind", KINDS)
def test_exported_equals_the_toolkit(exported, kind):
    checkpoint, folder = exported[kind]
    arrays = encode(load_tokenizer(checkpoint), TEXTS, None, MAX_LENGTH)
    order = np.argsort(real_lengths(arrays), kind="stable")
    for batch in (BATCH, 1):
        logits, costs = toolkit_outputs(kind, checkpoint, batch)
        served = serve(folder, TEXTS, batch, order)
        assert np.abs(served["logits"] - logits).max() <= 1e-5, batch
        assert (served["label_id"] == logits.argmax(-1)).all()
        labels = np.asarray([b"negative", b"positive"])[logits.argmax(-1)]
        assert (served["label"] == labels).all()
        np.testing.assert_allclose(served["probabilities"].sum(-1), 1.0, rtol=1e-6)
        for key, value in costs.items():
            np.testing.assert_array_equal(served[key], value)
    # The methods act on these models: otherwise the comparison above would prove little.
    if kind in ("pabee", "powerbert_pabee"):
        assert set(served["layers_run"]) == {2, 3}
    if kind in ("powerbert", "powerbert_pabee"):
        kept = served["tokens_kept"]
        assert kept.shape == (len(TEXTS), 3) and (kept <= np.asarray(RETENTION)).all()
        assert (kept[:, 0] == RETENTION[0]).any()
        layers_run = served.get("layers_run", np.full(len(TEXTS), 3))
        assert ((kept >= 1) == (np.arange(3) < layers_run[:, None])).all()  # 0: not run
    if kind == "adapler":
        assert (served["tokens_kept"][:, -1] < arrays["attention_mask"].sum(1)).mean() > 0.5


def test_metadata_and_signatures(exported):
    checkpoint, folder = exported["powerbert_pabee"]
    with open(os.path.join(folder, "assets", "bert_speedup.json"), encoding="utf-8") as handle:
        meta = json.load(handle)
    assert meta["method"] == "pabee" and meta["task"] == "sst-2"
    assert meta["setting"] == {"patience": 1, "regression_threshold": 0.0, "retention": RETENTION}
    assert meta["labels"] == ["negative", "positive"] and meta["max_length"] == MAX_LENGTH
    assert meta["precision"] == "fp32" and meta["toolkit_version"]
    loaded = tf.saved_model.load(folder)
    ids = encode(load_tokenizer(checkpoint), TEXTS[:5], None, MAX_LENGTH)
    by_ids = loaded.signatures["token_ids"](**{k: tf.constant(v) for k, v in ids.items()})
    by_text = loaded.signatures["serving_default"](text=tf.constant(TEXTS[:5]))
    np.testing.assert_allclose(by_ids["logits"], by_text["logits"], atol=1e-6)
    assert sorted(by_text) == ["label", "label_id", "layers_run", "logits", "probabilities",
                               "tokens_kept"]


@pytest.mark.parametrize("kind", KINDS)
def test_an_empty_request_gives_no_rows(exported, kind):
    function = tf.saved_model.load(exported[kind][1]).signatures["serving_default"]
    outputs = function(text=tf.constant([], tf.string))
    assert outputs["logits"].shape == (0, 2) and outputs["label"].shape == (0,)


BARE = """
import json, sys
import tensorflow as tf
import tensorflow_text  # noqa: F401  (registers the tokenizer's ops)
try:
    import common
    sys.exit("the repository is importable")
except ImportError:
    pass
out = {}
for kind, folder in json.loads(sys.argv[1]).items():
    result = tf.saved_model.load(folder).signatures["serving_default"](
        text=tf.constant(json.loads(sys.argv[2])))
    out[kind] = result["logits"].numpy().tolist()
print(json.dumps(out))
"""


def test_loads_without_the_toolkit(exported, tmp_path):
    """A Python whose path holds site-packages only (no .pth files: not the develop-mode
    install, not this repository) loads and runs exports (the two with the most graph code:
    the batch-1 conditionals and PABEE's loop over PoWER-BERT)."""
    import sysconfig

    folders = {kind: exported[kind][1] for kind in ("adapler", "powerbert_pabee")}
    code = (f"import sys; sys.path[:] = [p for p in sys.path if p]; "
            f"sys.path.append({sysconfig.get_paths()['purelib']!r}); " + BARE)
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    done = subprocess.run([sys.executable, "-S", "-c", code, json.dumps(folders),
                           json.dumps(TEXTS[:6])], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    logits = json.loads(done.stdout.strip().splitlines()[-1])
    for kind, folder in folders.items():
        np.testing.assert_allclose(logits[kind], serve(folder, TEXTS[:6], 6)["logits"],
                                   atol=1e-6)


def test_pair_regression_task(tmp_path):
    """STS-B: `text` and `text_pair` in, `score` out, equal to the toolkit's predictions; the
    `tokenize` signature gives the toolkit's ids of the pairs (truncated longest-first)."""
    from common.training import predict

    checkpoint = make_checkpoint("vanilla", tmp_path / "ckpt", task="sts-b", num_labels=1)
    export(checkpoint, str(tmp_path / "exported"))
    loaded = tf.saved_model.load(str(tmp_path / "exported"))
    first, second = TEXTS[:12], TEXTS[12:24][::-1]
    pair = {"text": tf.constant(first), "text_pair": tf.constant(second)}
    served = loaded.signatures["serving_default"](**pair)
    assert "probabilities" not in served and served["score"].shape == (12,)
    model, _ = methods.load_model(checkpoint)
    arrays = encode(load_tokenizer(checkpoint), first, second, MAX_LENGTH)
    np.testing.assert_allclose(served["score"], predict(model, arrays, 4)[:, 0], atol=1e-5)
    ids = loaded.signatures["tokenize"](**pair)
    width = ids["input_ids"].shape[1]
    for key in ("input_ids", "token_type_ids", "attention_mask"):
        np.testing.assert_array_equal(ids[key], arrays[key][:, :width])
