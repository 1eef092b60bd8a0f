"""LTP (ltp/): the method contract (thresholds that remove nothing give the plain classifier's
logits, on every backbone), the kept count follows the input, physical removal equals masking
and batching equals batch 1, the two stages and evaluation end to end, compare, export, the
Python API, FLOPs, and bad flags."""
import json
import os
import random

import numpy as np
import pytest

from common import checkpoints
from common.modeling import SequenceClassifier, dummy_inputs
from common.tokenization import load_tokenizer
from conftest import BACKBONES, FIXTURES
from ltp.model import LtpClassifier, LtpSeam, Pruning, build_model, importance

N = 12


def inputs(lengths, n=N, seed=0):
    rng = np.random.default_rng(seed)
    mask = np.array([[1] * k + [0] * (n - k) for k in lengths], np.int32)
    ids = rng.integers(5, 30, (len(lengths), n)).astype(np.int32) * mask
    ids[:, 0] = 2
    return {"input_ids": ids, "token_type_ids": np.zeros_like(ids), "attention_mask": mask}


def plain_model(folder="tiny_bert"):
    source = checkpoints.resolve_source(str(FIXTURES / folder))
    model = SequenceClassifier(source.config, 2, classifier_dropout=0.0)
    model(dummy_inputs(N))
    checkpoints.load_backbone_weights(model, source)
    kernel = model.classifier.kernel  # an O(1) head, so differences are not scaled away
    kernel.assign(np.random.default_rng(3).normal(size=kernel.shape).astype(np.float32))
    return model


def ltp_from(plain, tmp_path, final=0.01, score_length=128):
    path = str(tmp_path / "plain.weights.h5")
    checkpoints.save_weights(plain, path)
    model = build_model(plain.config, 2, N, final, score_length)
    checkpoints.load_weights(model, path, optional=model.optional_checkpoint_keys)
    return model


@pytest.mark.parametrize("folder, mode", [(folder, "remove") for folder in BACKBONES]
                         + [("tiny_bert", "mask"), ("tiny_bert", "soft")])
def test_thresholds_that_remove_nothing_give_the_plain_classifier(folder, mode, tmp_path):
    plain = plain_model(folder)
    model = ltp_from(plain, tmp_path, final=0.0)
    batch = inputs([12, 9, 5, 3, 1, 12])
    logits, state = model.forward(batch, pruning=Pruning(mode))
    assert np.abs(np.asarray(logits) - np.asarray(plain(batch))).max() <= 1e-5
    lengths = [np.asarray(n).tolist() for n in state.records["lengths"]]
    assert lengths == [[12, 9, 5, 3, 1, 12]] * plain.config.num_hidden_layers


def test_importance_is_the_attention_received_over_heads_and_n():
    probs = np.zeros((1, 2, 3, 3), np.float32)
    probs[0, 0] = [[0.5, 0.5, 0], [0.2, 0.8, 0], [1 / 3] * 3]
    probs[0, 1] = [[1, 0, 0], [0, 1, 0], [1 / 3] * 3]
    query_mask = np.array([[1, 1, 0]], np.float32)  # the third row is not present
    scores = np.asarray(importance(probs, query_mask, np.array([4.0], np.float32)))
    np.testing.assert_allclose(scores, [[(0.7 + 1) / 8, (1.3 + 1) / 8, 0]], rtol=1e-6)


def test_thresholds_start_rising_and_the_first_layer_never_prunes():
    seam = LtpSeam(4, 0.02)
    assert seam.thresholds() == pytest.approx([0, 0.005, 0.01, 0.015])
    assert seam.prunes == [False, True, True, True]


def test_the_kept_count_follows_the_input_length():
    """MiniLM on 64 sentences of the bundled SST-2 sample, fixed thresholds: how many tokens
    the last layer keeps rises with the text's length (the importance sums the attention from
    every present token over a fixed n), and texts lose some but not all of their tokens."""
    from scipy.stats import spearmanr

    from common.data import default_data_dir, default_model_dir, load_split
    from common.tasks import get_task

    source = checkpoints.resolve_source(default_model_dir())
    dev, _ = load_split(get_task("sst-2"), default_data_dir(), "dev",
                        load_tokenizer(source.folder), 64, limit=64, seed=0)
    model = build_model(source.config, 2, 64, final_token_threshold=0.003)
    checkpoints.load_backbone_weights(model, source)
    _, state = model.forward({k: v for k, v in dev.items() if k != "labels"})
    lengths, kept = dev["attention_mask"].sum(axis=1), np.asarray(state.records["lengths"][-1])
    assert spearmanr(lengths, kept)[0] > 0.8
    assert (kept < lengths).mean() > 0.5 and (kept > 1).all()


def test_removal_equals_masking_and_batching_equals_batch_one(tmp_path):
    model = ltp_from(plain_model(), tmp_path, final=0.05)
    lengths = [12, 9, 5, 3, 1, 12, 7]
    batch = inputs(lengths, seed=1)
    removed, state = model.forward(batch, pruning=Pruning("remove"))
    masked, _ = model.forward(batch, pruning=Pruning("mask"))
    assert np.abs(np.asarray(removed) - np.asarray(masked)).max() <= 1e-5
    kept = np.stack([np.asarray(n) for n in state.records["lengths"]], axis=1)
    assert kept[:, -1].min() < kept[:, 0].max()  # it did prune
    for row, n in enumerate(lengths):
        alone = {k: v[row:row + 1, :n] for k, v in batch.items()}
        logits, single = model.forward(alone)
        assert np.abs(np.asarray(logits)[0] - np.asarray(removed)[row]).max() <= 1e-5
        assert [int(np.asarray(k)[0]) for k in single.records["lengths"]] == list(kept[row])
    # [CLS] is always kept, whatever the threshold.
    assert all((np.asarray(p)[:, 0] == 0).all() for p in state.records["positions"])


def test_soft_masks_scale_the_block_output_and_the_regularizer_is_their_mean(tmp_path):
    model = ltp_from(plain_model(), tmp_path, final=0.05, score_length=0)
    batch = inputs([12, 6], seed=2)
    _, state = model.forward(batch, pruning=Pruning("soft", temperature=1e-2))
    masks = [m for m in state.records["soft_masks"] if m is not None]
    assert state.records["soft_masks"][0] is None and len(masks) == 2
    for mask in masks:
        mask = np.asarray(mask)
        assert (mask[:, 0] == 1).all() and (mask[1, 6:] == 0).all()  # [CLS] 1, pads 0
        assert ((mask >= 0) & (mask <= 1)).all()
    expected = sum(np.asarray(m).sum() / 18 for m in masks)  # 12 + 6 tokens (score_length 0)
    assert float(model.seam.regularizer(state)) == pytest.approx(expected, rel=1e-5)


def test_flops_count_the_kept_tokens():
    from common.errors import UserError
    from common.flops import vanilla_flops
    from ltp.flops import ltp_flops

    config = checkpoints.resolve_source(str(FIXTURES / "tiny_bert")).config
    assert ltp_flops(config, 10, [10, 10, 10]) == vanilla_flops(config, 10)
    assert ltp_flops(config, 10, [10, 6, 2]) < ltp_flops(config, 10, [10, 8, 4])
    with pytest.raises(UserError, match="grows"):
        ltp_flops(config, 10, [4, 6, 2])


# ---------------------------------------------------------------- the command line, end to end

POSITIVE, NEGATIVE = ("good", "great", "fun"), ("bad", "awful", "boring")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A saved tiny classifier, a tiny SST-2 folder, and the soft then the hard stage."""
    from ltp.cli import main

    root = tmp_path_factory.mktemp("ltp")
    rng = random.Random(0)
    (root / "SST-2").mkdir()
    for split, count in (("train", 40), ("dev", 16)):
        rows = [f"the movie was {rng.choice(POSITIVE if i % 2 else NEGATIVE)} .\t{i % 2}\n"
                for i in range(count)]
        (root / "SST-2" / f"{split}.tsv").write_text("sentence\tlabel\n" + "".join(rows))
    model, _, _ = checkpoints.load_classifier(str(FIXTURES / "tiny_bert"), 2)
    plain = str(root / "plain")
    checkpoints.save_checkpoint(model, plain, {"task": "sst-2", "num_labels": 2,
                                               "max_length": 16},
                                tokenizer=load_tokenizer(str(FIXTURES / "tiny_bert")))
    common = ["--task", "SST2", "--data_dir", str(root / "SST-2"), "--max_seq_length", "16",
              "--bs", "8", "--allow_collapsed"]
    soft = str(root / "soft")
    main(common + ["--restore", plain, "--masking_mode", "soft", "--lambda_threshold", "0.5",
                   "--lr_threshold", "1e-3", "--final_token_threshold", "0.05", "--epoch", "2",
                   "--no_load", "--output_dir", soft])
    main(common + ["--restore", soft, "--masking_mode", "hard", "--epoch", "1", "--lr", "1e-5"])
    return {"root": root, "plain": plain, "soft": soft, "common": common,
            "hard": os.path.join(soft, "hard", "lr_1e-05")}


def sidecar(folder):
    return checkpoints.resolve_source(folder).sidecar


def test_the_soft_stage_learns_the_thresholds_and_the_hard_stage_keeps_them(run):
    soft, hard = sidecar(run["soft"]), sidecar(run["hard"])
    assert soft["method"] == hard["method"] == "ltp"
    assert soft["method_state"]["stage"] == "soft" and hard["method_state"]["stage"] == "hard"
    start = [0.05 * layer / 3 for layer in range(3)]
    learned = soft["method_state"]["thresholds"]
    assert learned[0] == 0 and learned[1:] != pytest.approx(start[1:], abs=1e-6)
    assert learned[1] > start[1]  # lambda pushes them up
    assert hard["method_state"]["thresholds"] == pytest.approx(learned, abs=1e-7)
    assert hard["training"]["step"] == 5  # 40 rows / 8, one epoch
    assert soft["training"]["step"] == 10  # --no_load: the last step
    assert 0 < hard["training"]["dev"]["flops_speedup"]


def test_eval_prints_and_writes_the_metrics(run, tmp_path, capsys):
    from ltp.cli import main

    main(run["common"] + ["--restore", run["hard"], "--eval", "--output_dir", str(tmp_path)])
    out = capsys.readouterr().out
    assert "dev (SST-2, hard thresholds): acc" in out and "FLOPs speed-up" in out
    with open(tmp_path / "eval_results.json", encoding="utf-8") as handle:
        record = json.load(handle)
    assert record["acc"] == pytest.approx(sidecar(run["hard"])["training"]["dev"]["acc"])
    assert len(record["tokens_kept"]) == 3


def test_the_same_command_gives_the_same_weights(run, tmp_path):
    from ltp.cli import main

    again = str(tmp_path / "again")
    main(run["common"] + ["--restore", run["plain"], "--masking_mode", "soft",
                          "--lambda_threshold", "0.5", "--lr_threshold", "1e-3",
                          "--final_token_threshold", "0.05", "--epoch", "2", "--no_load",
                          "--output_dir", again])
    import h5py

    def arrays(folder):
        found = {}
        with h5py.File(os.path.join(folder, "model.weights.h5"), "r") as data:
            data.visititems(lambda name, obj: found.__setitem__(name, obj[()])
                            if isinstance(obj, h5py.Dataset) else None)
        return found

    first, second = arrays(run["soft"]), arrays(again)
    assert first.keys() == second.keys()
    for key in first:
        np.testing.assert_array_equal(first[key], second[key], err_msg=key)


def test_api_and_export_give_the_toolkit_s_outputs(run, tmp_path):
    from common.api import load
    from common.export import export
    from ltp.model import load_model

    api = load(run["hard"])
    texts = ["the movie was good .", "awful", "the movie was very very boring and bad ."]
    predictions = api.predict(texts)
    assert [len(p["tokens_kept"]) for p in predictions] == [3, 3, 3]
    export(run["hard"], str(tmp_path / "export"), {}, "fp32", "savedmodel", False)
    import tensorflow as tf
    served = tf.saved_model.load(str(tmp_path / "export")).signatures["serving_default"]
    outputs = served(text=tf.constant(texts))
    np.testing.assert_allclose(outputs["probabilities"].numpy(),
                               [list(p["probabilities"].values()) for p in predictions],
                               atol=1e-5)
    np.testing.assert_array_equal(outputs["tokens_kept"].numpy(),
                                  [p["tokens_kept"] for p in predictions])
    scaled = load_model(checkpoints.resolve_source(run["hard"]), threshold_scale=3.0)
    assert scaled.default_pruning.scale == 3.0


def test_compare_draws_ltp_s_front_on_roberta(run, tmp_path, monkeypatch):
    """compare on a non-BERT family: a tiny RoBERTa classifier (byte-level BPE tokenizer)."""
    import csv
    import dataclasses

    from common.compare import engine as compare
    from common.compare import sweep
    from ltp import sweep as ltp_sweep

    quick = sweep.BUDGETS["quick"]
    monkeypatch.setitem(sweep.BUDGETS, "quick", dataclasses.replace(quick, repeats=1))
    monkeypatch.setitem(ltp_sweep.SCALES, "quick", (1.5,))  # one point, through the knob
    roberta = str(FIXTURES / "tiny_roberta")
    model, _, _ = checkpoints.load_classifier(roberta, 2)
    plain = str(tmp_path / "roberta")
    checkpoints.save_checkpoint(model, plain, {"task": "sst-2", "num_labels": 2,
                                               "max_length": 16},
                                tokenizer=load_tokenizer(roberta))
    out = str(tmp_path / "compare")
    compare.main(["--model", plain, "--task", "sst2", "--data_dir",
                  str(run["root"] / "SST-2"), "--output_dir", out, "--methods", "ltp",
                  "--batch_sizes", "4", "--max_length", "16", "--allow_collapsed"])
    with open(os.path.join(out, "results.csv"), encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    points = [r["setting"] for r in rows if r["method"] == "ltp"]
    assert points == ["lambda=0.1 x1.5"]
    assert all(r["detail"].startswith("thresholds ") for r in rows if r["method"] == "ltp")
    assert all(float(r["speedup_vs_dynamic"]) > 0 for r in rows)
    assert ltp_sweep.LAMBDAS["quick"] == (0.1,) and "thresholds " in rows[-1]["detail"]
    # The run as a result file for results/ (docs/results.md).
    with open(os.path.join(out, "result_file.json"), encoding="utf-8") as handle:
        record = json.load(handle)
    assert [row[1] for row in record["figures"]["table"]["rows"] if row[0] == "LTP"] == points
    assert record["figures"]["best"]["rows"][0][0] == "dense (fine-tuned)"
    assert record["machine"]["cores"] >= 1 and record["command"][0].startswith("python")


def test_own_csv_with_named_labels(tmp_path):
    """Fine-tune on a CSV with its own columns and string labels, then LTP's soft stage on the
    same files: the checkpoint keeps the names and the API answers with them."""
    from common.api import load
    from ltp.cli import main
    from tools.finetune import main as finetune

    rng = random.Random(1)
    for split, count in (("train", 24), ("dev", 8)):
        rows = [f"{i},the film was {rng.choice(POSITIVE if i % 2 else NEGATIVE)},"
                f"{'positive' if i % 2 else 'negative'}\n" for i in range(count)]
        (tmp_path / f"{split}.csv").write_text("id,review,sentiment\n" + "".join(rows))
    files = ["--train_file", str(tmp_path / "train.csv"), "--validation_file",
             str(tmp_path / "dev.csv"), "--text_column", "review", "--label_column", "sentiment"]
    finetune(["--model", str(FIXTURES / "tiny_bert"), *files, "--epochs", "1", "--max_length",
              "16", "--output_dir", str(tmp_path / "ft")])
    main([*files, "--restore", str(tmp_path / "ft"), "--masking_mode", "soft",
          "--lambda_threshold", "0.1", "--epoch", "1", "--no_load", "--max_seq_length", "16",
          "--output_dir", str(tmp_path / "soft"), "--allow_collapsed"])
    assert set(sidecar(str(tmp_path / "soft"))["labels"].values()) == {"negative", "positive"}
    prediction = load(str(tmp_path / "soft")).predict(["the film was fun"])[0]
    assert prediction["label"] in {"negative", "positive"} and len(prediction["tokens_kept"]) == 3


def test_bf16_stages_learn_in_float32_thresholds(run, tmp_path):
    """Under mixed bfloat16 the importance and the thresholds stay float32 (the thresholds
    are not autocast): both stages run and the thresholds move."""
    import keras

    from ltp.cli import main

    try:
        main(run["common"] + ["--restore", run["plain"], "--masking_mode", "soft",
                              "--lambda_threshold", "0.5", "--lr_threshold", "1e-3",
                              "--final_token_threshold", "0.05", "--epoch", "1", "--no_load",
                              "--output_dir", str(tmp_path / "soft"), "--bf16"])
    finally:
        keras.mixed_precision.set_global_policy("float32")
    state = sidecar(str(tmp_path / "soft"))["method_state"]
    assert state["thresholds"][1] != pytest.approx(0.05 / 3, abs=1e-7)
    assert all(np.isfinite(state["thresholds"]))


@pytest.mark.parametrize("extra, message", [
    (["--masking_mode", "soft"], "--lambda_threshold"),
    (["--masking_mode", "mixed"], "not implemented"),
    (["--epoch", "0"], "--epoch must be > 0"),
    (["--lr", "-1"], "--lr must be a finite number > 0"),
    (["--score_length", "-1"], "--score_length must be"),
    (["--task", "STSB"], "whose labels differ"),
])
def test_bad_flags_are_one_error_line(run, extra, message, tmp_path, capsys):
    from ltp.cli import main

    argv = run["common"] + ["--restore", run["plain"], "--output_dir", str(tmp_path / "x")]
    with pytest.raises(SystemExit) as exit_info:
        main(argv + extra)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and message in err[0]
    assert not os.path.exists(tmp_path / "x")


def test_a_missing_restore_is_one_error_line(run, capsys):
    from ltp.cli import main

    with pytest.raises(SystemExit):
        main(run["common"] + ["--restore", "/no/such/folder", "--eval"])
    assert "does not exist" in capsys.readouterr().err


def test_the_method_lives_in_its_folder():
    from common import methods

    assert "ltp" in methods.names()
    for part in methods.MODULES:
        assert methods.module("ltp", part) is not None
    assert LtpClassifier.optional_checkpoint_keys == ("ltp_",)
