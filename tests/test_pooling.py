"""`--pooling cls|mean` (issue 13 item 3): the backbone's mean pooling over real tokens, the
choice read from a sentence-transformers folder and from our sidecar, PABEE's flag, and the
warning for a classifier that predicts one class for every example."""
import json
import random
import shutil

import numpy as np
import pytest

from common import checkpoints
from common.metrics import collapse, collapse_warning
from common.errors import UserError
from common.modeling import SequenceClassifier, dummy_inputs
from common.tasks import get_task
from conftest import FIXTURES
from pabee.cli import main
from pabee.pipeline import _score


def inputs(length=10):
    rng = np.random.default_rng(0)
    ids = rng.integers(5, 35, (4, length)).astype(np.int32)
    ids[:, 0] = 2
    mask = np.ones_like(ids)
    mask[1, 5:] = 0
    mask[2, 3:] = 0
    return {"input_ids": ids, "token_type_ids": np.zeros_like(ids), "attention_mask": mask}


def st_folder(tmp_path, mean=True):
    """tiny_bert as a sentence-transformers folder whose pooling config says mean (or cls)."""
    folder = tmp_path / "st_model"
    shutil.copytree(FIXTURES / "tiny_bert", folder)
    (folder / "1_Pooling").mkdir()
    (folder / "1_Pooling" / "config.json").write_text(json.dumps(
        {"pooling_mode_cls_token": not mean, "pooling_mode_mean_tokens": mean}))
    return folder


def test_mean_pooling_reads_the_mean_of_real_tokens_only():
    model, _, _ = checkpoints.load_classifier(str(FIXTURES / "tiny_bert"), 2, pooling="mean")
    assert model.bert.pooling == "mean"
    features = inputs()
    state = model.bert.encode(features)
    mask = features["attention_mask"][:, :, None]
    mean = (np.asarray(state.hidden) * mask).sum(1) / mask.sum(1)
    expected = np.tanh(mean @ model.bert.pooler.kernel.numpy() + model.bert.pooler.bias.numpy())
    np.testing.assert_allclose(model.bert.pool(state.hidden, state.mask), expected, atol=1e-5)
    # More padding does not change a mean-pooled prediction.
    longer = {key: np.pad(value, ((0, 0), (0, 6))) for key, value in features.items()}
    np.testing.assert_allclose(model(longer), model(features), atol=1e-5)
    cls, _, _ = checkpoints.load_classifier(str(FIXTURES / "tiny_bert"), 2)
    assert cls.bert.pooling == "cls"
    assert np.abs(np.asarray(cls.bert.pool(state.hidden, state.mask))
                  - expected).max() > 1e-3


def test_sidecar_records_pooling_and_reloads_it(tmp_path):
    model = SequenceClassifier(checkpoints.resolve_source(str(FIXTURES / "tiny_bert")).config, 2,
                               pooling="mean")
    model(dummy_inputs())
    checkpoints.save_checkpoint(model, str(tmp_path / "ckpt"), {"task": "sst-2"})
    assert json.loads((tmp_path / "ckpt" / "config.json").read_text())["pooling"] == "mean"
    loaded, _, _ = checkpoints.load_classifier(str(tmp_path / "ckpt"))
    assert loaded.bert.pooling == "mean"
    np.testing.assert_allclose(loaded(inputs()), model(inputs()), atol=1e-6)
    sidecar = json.loads((tmp_path / "ckpt" / "config.json").read_text())
    sidecar["pooling"] = "max"
    (tmp_path / "ckpt" / "config.json").write_text(json.dumps(sidecar))
    with pytest.raises(UserError, match="records pooling 'max'"):
        checkpoints.load_classifier(str(tmp_path / "ckpt"))


def test_pooling_chosen_from_a_sentence_transformers_folder(tmp_path):
    lines = []
    source = checkpoints.resolve_source(str(st_folder(tmp_path)))
    assert checkpoints.choose_pooling(source, None, lines.append) == "mean"
    assert len(lines) == 1 and lines[0].startswith("pooling: mean")
    assert checkpoints.choose_pooling(source, "cls", lines.append) == "cls"  # the flag wins
    plain = checkpoints.resolve_source(str(FIXTURES / "tiny_bert"))
    assert checkpoints.choose_pooling(plain, None, lines.append) == "cls"
    assert len(lines) == 1
    (tmp_path / "st_model" / "1_Pooling" / "config.json").write_text("{not json")
    assert checkpoints.recorded_pooling(source) is None


def write_sst2(root, count):
    rng = random.Random(0)
    root.mkdir(parents=True, exist_ok=True)
    for split in ("train", "dev"):
        rows = [("the movie was " + rng.choice(("good", "great", "fun")) + " .", 1)
                if i % 2 else ("it was " + rng.choice(("bad", "awful", "boring")) + " .", 0)
                for i in range(count)]
        (root / f"{split}.tsv").write_text(
            "sentence\tlabel\n" + "".join(f"{s}\t{label}\n" for s, label in rows))


def test_pabee_pooling_flag_auto_choice_and_reload(tmp_path, capsys):
    data = tmp_path / "SST-2"
    write_sst2(data, 32)
    out = tmp_path / "out"
    common = ["--model_type", "bert", "--task_name", "SST-2", "--do_lower_case",
              "--data_dir", str(data), "--max_seq_length", "12", "--output_dir", str(out)]
    main(common + ["--model_name_or_path", str(st_folder(tmp_path)), "--do_train", "--do_eval",
                   "--per_gpu_train_batch_size", "16", "--num_train_epochs", "1",
                   "--logging_steps", "0", "--save_steps", "0", "--patience", "0,1"])
    assert capsys.readouterr().out.count("pooling: mean (the sentence-transformers") == 1
    assert json.loads((out / "config.json").read_text())["pooling"] == "mean"
    main(common + ["--model_name_or_path", str(out), "--do_eval", "--patience", "1"])
    with pytest.raises(SystemExit) as exit_info:
        main(common + ["--model_name_or_path", str(out), "--do_eval", "--pooling", "cls"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "trained with --pooling mean" in err[0]


def test_collapse_warning():
    assert collapse_warning(collapse("sst-2", np.array([1, 1, 1])), "layer 2").startswith(
        "warning: layer 2 predicts class 1 for all 3 SST-2 examples")
    assert collapse("sst-2", np.array([1, 0, 1])) is None
    # a constant regression output is a collapse too; a varying one is not
    assert collapse_warning(collapse("sts-b", np.array([2.0, 2.0]))).startswith(
        "warning: the classifier predicts the same score 2 for all 2 STS-B examples")
    assert collapse("sts-b", np.array([2.0, 2.5])) is None
    lines = []
    metrics = _score(get_task("sst-2"), np.array([[0.0, 1.0], [0.2, 0.9]]), np.array([0, 1]),
                     2, lines.append, "internal classifier 1")
    assert metrics["acc"] == 0.5
    assert len(lines) == 1 and "internal classifier 1 predicts class 1" in lines[0]
