"""Bad input to every command line (issue 14 item 5): flags, data, checkpoints, folders, a full
disk. Each case runs the command's main() in-process and asserts exit code 2, exactly one
`error:` line naming the cause, no traceback, and no file created or changed beside the ones
the case allows."""
import errno
import json
import os
import re
import shutil

import pytest

from conftest import FIXTURES

TINY = str(FIXTURES / "tiny_bert")
GOOD = ["the movie was good .", "a great film", "it is fun", "this plot was very good !"]
BAD = ["the movie was bad .", "an awful film", "it is boring", "this acting was very bad"]
STSB_HEADER = "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore"


def _sst2_rows():
    return [f"{text}\t1" for text in GOOD] + [f"{text}\t0" for text in BAD]


def _write(folder, files):
    os.makedirs(folder, exist_ok=True)
    for name, lines in files.items():
        with open(os.path.join(folder, name), "w", encoding="utf-8") as out:
            out.write("\n".join(lines) + "\n")
    return str(folder)


def _stsb(folder, score):
    rows = [f"{i}\tg\tf\ty\t{i}\ts\ts\t{a}\t{b}\t{score if i == 2 else '2.5'}"
            for i, (a, b) in enumerate(zip(GOOD, BAD))]
    return _write(folder, {"train.tsv": [STSB_HEADER] + rows, "dev.tsv": [STSB_HEADER] + rows})


def _truncate(path, keep=None):
    with open(path, "rb") as handle:
        data = handle.read()
    with open(path, "wb") as handle:
        handle.write(data[: len(data) // 2 if keep is None else keep])


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Data folders, our checkpoints (good, other tasks, damaged) and damaged HF folders."""
    from common import checkpoints
    from common.modeling import SequenceClassifier, dummy_inputs
    from common.tokenization import load_tokenizer

    root = tmp_path_factory.mktemp("bad_input")
    w = {"root": str(root), "tiny": TINY}
    header = ["sentence\tlabel"]
    w["sst2"] = _write(root / "SST-2", {"train.tsv": header + _sst2_rows(),
                                         "dev.tsv": header + _sst2_rows(),
                                         "test.tsv": ["index\tsentence"] +
                                         [f"{i}\t{t}" for i, t in enumerate(GOOD)]})
    w["sst2_no_header"] = _write(root / "no_header", {"train.tsv": _sst2_rows(),
                                                     "dev.tsv": _sst2_rows()})
    w["sst2_numbers"] = _write(root / "numbers", {
        "train.tsv": header + [f"{i}\t{i % 2}" for i in range(6)],
        "dev.tsv": header + [f"{i}\t{i % 2}" for i in range(6)]})
    w["sst2_label7"] = _write(root / "label7", {"train.tsv": header + ["a good movie\t7"],
                                               "dev.tsv": header + _sst2_rows()})
    w["cola"] = _write(root / "CoLA", {
        split: [f"gj04\t{i % 2}\t\t{t}" for i, t in enumerate(GOOD + BAD)]
        for split in ("train.tsv", "dev.tsv")})
    w["stsb_high"] = _stsb(root / "stsb_high", "7.0")
    w["stsb_nan"] = _stsb(root / "stsb_nan", "nan")
    w["stsb_word"] = _stsb(root / "stsb_word", "high")
    with open(root / "task_config.json", "w") as out:
        json.dump({"sst-2": {"seq_len": 16, "num_classes": 2}}, out)
    w["task_config"] = str(root / "task_config.json")
    (root / "garbage.json").write_text("{not json")
    w["garbage_json"] = str(root / "garbage.json")
    (root / "afile").write_text("a file, not a folder")
    w["afile"] = str(root / "afile")

    config = checkpoints.resolve_source(TINY).config
    tokenizer = load_tokenizer(TINY)
    for name, task, labels in (("ckpt", "sst-2", 2), ("ckpt_cola", "cola", 2),
                               ("ckpt_mnli", "mnli", 3)):
        model = SequenceClassifier(config, labels)
        model(dummy_inputs(8))
        checkpoints.save_checkpoint(model, str(root / name), {
            "task": task, "num_labels": labels, "max_length": 16, "method": "finetune"},
            tokenizer=tokenizer)
        w[name] = str(root / name)

    # A fine-tuned checkpoint that collapsed: its head says class 0 (negative) whatever the
    # input; the dev evaluation finds that and the checkpoint's sidecar records it.
    from common.data import load_split
    from common.tasks import get_task
    from common.training import evaluate_classifier

    model = SequenceClassifier(config, 2)
    model(dummy_inputs(8))
    model.classifier.bias.assign([50.0, -50.0])
    dev, _ = load_split(get_task("sst-2"), w["sst2"], "dev", tokenizer, 16)
    metrics = evaluate_classifier(model, get_task("sst-2"), dev, log=lambda line: None)
    checkpoints.save_checkpoint(model, str(root / "ckpt_collapsed"), {
        "task": "sst-2", "num_labels": 2, "max_length": 16, "method": "vanilla", "epoch": 1,
        "dev": metrics}, tokenizer=tokenizer)
    w["ckpt_collapsed"] = str(root / "ckpt_collapsed")

    def variant(name, base, damage):
        shutil.copytree(w[base], root / name)
        damage(str(root / name))
        w[name] = str(root / name)

    variant("h5_truncated", "ckpt", lambda d: _truncate(f"{d}/model.weights.h5"))
    variant("h5_empty", "ckpt", lambda d: _truncate(f"{d}/model.weights.h5", 0))
    variant("h5_garbage", "ckpt",
            lambda d: open(f"{d}/model.weights.h5", "wb").write(b"garbage" * 99))
    variant("sidecar_garbage", "ckpt", lambda d: open(f"{d}/config.json", "w").write("{x"))

    def mistyped(d):
        sidecar = json.load(open(f"{d}/config.json"))
        sidecar["backbone"]["hidden_size"] = "big"
        json.dump(sidecar, open(f"{d}/config.json", "w"))
    variant("sidecar_mistyped", "ckpt", mistyped)

    def empty_vocab(d):
        for name in os.listdir(d):
            if name.startswith("tokenizer"):
                os.remove(os.path.join(d, name))
        open(f"{d}/vocab.txt", "w").close()
    variant("vocab_empty", "ckpt", empty_vocab)
    variant("tokenizer_json_empty", "ckpt", lambda d: open(f"{d}/tokenizer.json", "w").close())
    variant("st_truncated", "tiny", lambda d: _truncate(f"{d}/model.safetensors"))
    variant("st_garbage", "tiny",
            lambda d: open(f"{d}/model.safetensors", "wb").write(b"\x00" * 64))
    variant("hf_config_garbage", "tiny", lambda d: open(f"{d}/config.json", "w").write("]"))

    def hf_mistyped(d):
        values = json.load(open(f"{d}/config.json"))
        json.dump({**values, "num_hidden_layers": "three"}, open(f"{d}/config.json", "w"))
    variant("hf_config_mistyped", "tiny", hf_mistyped)
    variant("hf_vocab_empty", "tiny", lambda d: open(f"{d}/vocab.txt", "w").close())
    return w


# ---------------------------------------------------------------- the commands

def _main(name):
    import adapler.cli
    import adapler.inference
    import pabee.cli
    import powerbert.cli
    from tools import demo, finetune, flops_calculator, make_default_data, rationale_eval

    return {"finetune": finetune.main, "demo": demo.main, "flops": flops_calculator.main,
            "rationale_eval": rationale_eval.main, "make_default_data": make_default_data.main,
            "powerbert": powerbert.cli.main, "pabee": pabee.cli.main,
            "adapler_finetune": adapler.cli.finetune_main,
            "adapler_saliencies": adapler.cli.saliency_main,
            "adapler_train": adapler.cli.train_main,
            "adapler_glue_train": adapler.cli.glue_train_main,
            "adapler_evaluate": adapler.cli.evaluation_main,
            "adapler_glue_predict": adapler.cli.glue_prediction_main,
            "adapler_infer": adapler.inference.main}[name]


FT = ["--model", "{tiny}", "--data_dir", "{sst2}", "--output_dir", "{out}", "--max_length", "16",
      "--epochs", "1"]
FT_EVAL = ["--data_dir", "{sst2}", "--eval_only", "--max_length", "16"]
PB = ["--TASK", "sst-2", "--CHECKPOINT_PATH", "{ckpt}", "--DATA_DIR", "{sst2}",
      "--TASK_CONFIG_PATH", "{task_config}", "--OUTPUT_DIR", "{out}"]
PB_TRAIN = PB + ["--LR_SOFT_EXTRACT", "0.01", "--LAMBDA", "0.01"]
PA = ["--model_type", "bert", "--model_name_or_path", "{tiny}", "--task_name", "SST-2",
      "--do_lower_case", "--data_dir", "{sst2}", "--max_seq_length", "16",
      "--output_dir", "{out}"]
PA_TRAIN = PA + ["--do_train"]
AD = ["--TASK", "sst2", "--MAX_LENGTH", "16", "--DATA_SEED", "22",
      "--MODEL_NAME_OR_PATH", "{tiny}", "--DATA_DIR", "{sst2}"]
AD_EVAL = ["--TASK", "sst2", "--MAX_LENGTH", "16", "--DATA_DIR", "{sst2}"]
TASK_DIR = os.path.join("directory", "bert", "22", "sst2")


def _filled(out_dir, *files):
    """Setup: a non-empty folder at `out_dir` (relative to the case's work folder)."""
    def setup(work):
        for name in files:
            path = os.path.join(work, out_dir, name)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w") as handle:
                handle.write("earlier result\n")
    return setup


RATE = "must be a finite number > 0"
COUNT = "must be at least 1"
SEED = r"must be in 0\.\.4294967295"
DAMAGED = r"is (damaged|incomplete) \("  # incomplete: the file does not match its sidecar's digest
# (id, command, argv, message regex, setup)
CASES = [
    # ---- tools/finetune.py: flags
    ("ft-lr-nan", "finetune", FT + ["--learning_rate", "nan"], "--learning_rate " + RATE, None),
    ("ft-lr-negative", "finetune", FT + ["--learning_rate=-1e-5"], RATE, None),
    ("ft-lr-zero", "finetune", FT + ["--learning_rate", "0"], RATE, None),
    ("ft-lr-inf", "finetune", FT + ["--learning_rate", "inf"], RATE, None),
    ("ft-epochs-0", "finetune", FT + ["--epochs", "0"], "--epochs " + COUNT, None),
    ("ft-batch-0", "finetune", FT + ["--batch_size", "0"], "--batch_size " + COUNT, None),
    ("ft-train-limit-0", "finetune", FT + ["--train_limit", "0"], "--train_limit " + COUNT, None),
    ("ft-seed-negative", "finetune", FT + ["--seed", "-1"], "--seed " + SEED, None),
    ("ft-seed-too-big", "finetune", FT + ["--seed", str(2 ** 32)], SEED, None),
    ("ft-max-length-over-positions", "finetune", FT + ["--max_length", "4096"],
     "position table", None),
    ("ft-bad-int", "finetune", FT + ["--epochs", "two"], "invalid int value", None),
    ("ft-unknown-flag", "finetune", FT + ["--lr", "1"], "unrecognized arguments", None),
    ("ft-unknown-task", "finetune", FT + ["--task", "sst3"], "unknown task 'sst3'", None),
    # ---- tools/finetune.py: data
    ("ft-cola-folder-for-sst2", "finetune", FT[:2] + ["--data_dir", "{cola}"] + FT[4:],
     "is a data row, but SST-2 files start with a header", None),
    ("ft-missing-header", "finetune", FT[:2] + ["--data_dir", "{sst2_no_header}"] + FT[4:],
     "header", None),
    ("ft-numbers-as-text", "finetune", FT[:2] + ["--data_dir", "{sst2_numbers}"] + FT[4:],
     "have no text where SST-2 expects the sentence", None),
    ("ft-label-out-of-set", "finetune", FT[:2] + ["--data_dir", "{sst2_label7}"] + FT[4:],
     "label '7' is not a SST-2 label", None),
    ("ft-stsb-score-above-5", "finetune",
     FT[:2] + ["--task", "sts-b", "--data_dir", "{stsb_high}"] + FT[4:],
     "score 7.0 is outside STS-B's range 0-5", None),
    ("ft-stsb-score-nan", "finetune",
     FT[:2] + ["--task", "sts-b", "--data_dir", "{stsb_nan}"] + FT[4:], "outside", None),
    ("ft-stsb-score-word", "finetune",
     FT[:2] + ["--task", "sts-b", "--data_dir", "{stsb_word}"] + FT[4:],
     "score 'high' is not a number", None),
    ("ft-no-data-folder", "finetune", FT[:2] + ["--data_dir", "{root}/nowhere"] + FT[4:],
     "data folder not found", None),
    # ---- tools/finetune.py: folders
    ("ft-output-not-empty", "finetune", FT, "is not empty .*--overwrite_output_dir",
     _filled("out", "model.weights.h5")),
    ("ft-output-is-a-file", "finetune", FT[:4] + ["--output_dir", "{afile}"] + FT[6:],
     "exists and is not a folder", None),
    ("ft-output-under-a-file", "finetune", FT[:4] + ["--output_dir", "{afile}/sub"] + FT[6:],
     "is a file", None),
    ("ft-eval-results-exist", "finetune",
     ["--model", "{ckpt}", "--output_dir", "{out}"] + FT_EVAL,
     "eval_results.json already exists", _filled("out", "eval_results.json")),
    # ---- tools/finetune.py: checkpoints
    ("ft-other-task-same-labels", "finetune", ["--model", "{ckpt_cola}"] + FT_EVAL,
     "trained on CoLA, not SST-2 .*--allow_other_task", None),
    ("ft-other-task-other-labels", "finetune", ["--model", "{ckpt_mnli}"] + FT_EVAL,
     "labels differ", None),
    ("ft-h5-truncated", "finetune", ["--model", "{h5_truncated}"] + FT_EVAL, DAMAGED, None),
    ("ft-h5-empty", "finetune", ["--model", "{h5_empty}"] + FT_EVAL, DAMAGED, None),
    ("ft-h5-garbage", "finetune", ["--model", "{h5_garbage}"] + FT_EVAL, DAMAGED, None),
    ("ft-sidecar-garbage", "finetune", ["--model", "{sidecar_garbage}"] + FT_EVAL,
     "not found or not recognised|cannot read|config.json is missing or unreadable", None),
    ("ft-sidecar-mistyped", "finetune", ["--model", "{sidecar_mistyped}"] + FT_EVAL,
     "hidden_size must be a positive integer", None),
    # In a checkpoint of this toolkit the sidecar's file list catches a changed tokenizer first.
    ("ft-vocab-empty", "finetune", ["--model", "{vocab_empty}"] + FT_EVAL,
     r"empty or has no \[UNK\]|tokenizer.json is missing", None),
    ("ft-tokenizer-json-empty", "finetune", ["--model", "{tokenizer_json_empty}"] + FT_EVAL,
     "cannot read the tokenizer files|tokenizer.json does not match", None),
    ("ft-safetensors-truncated", "finetune", ["--model", "{st_truncated}"] + FT[2:],
     DAMAGED + "truncated", None),
    ("ft-safetensors-garbage", "finetune", ["--model", "{st_garbage}"] + FT[2:],
     DAMAGED + "unreadable safetensors header", None),
    ("ft-hf-config-garbage", "finetune", ["--model", "{hf_config_garbage}"] + FT[2:],
     "cannot read model config", None),
    ("ft-hf-config-mistyped", "finetune", ["--model", "{hf_config_mistyped}"] + FT[2:],
     "num_hidden_layers must be a positive integer", None),
    ("ft-hf-vocab-empty", "finetune", ["--model", "{hf_vocab_empty}"] + FT[2:],
     r"empty or has no \[UNK\]", None),
    # ---- python -m powerbert
    ("pb-lr-bert-nan", "powerbert", PB_TRAIN + ["--LR_BERT", "nan"], "--LR_BERT " + RATE, None),
    ("pb-lr-soft-extract-negative", "powerbert", PB + ["--LR_SOFT_EXTRACT", "-1", "--LAMBDA",
                                                       "0.1"], "--LR_SOFT_EXTRACT " + RATE, None),
    ("pb-lambda-negative", "powerbert", PB + ["--LR_SOFT_EXTRACT", "0.1", "--LAMBDA", "-0.1"],
     "--LAMBDA must be a finite number >= 0", None),
    ("pb-epochs-0", "powerbert", PB_TRAIN + ["--EPOCHS", "0"], "--EPOCHS " + COUNT, None),
    ("pb-batch-0", "powerbert", PB + ["--EVAL_ONLY", "--BATCH_SIZE", "0"], "--BATCH_SIZE " + COUNT,
     None),
    ("pb-seed-negative", "powerbert", PB_TRAIN + ["--SEED", "-1"], "--SEED " + SEED, None),
    ("pb-output-not-empty", "powerbert", PB_TRAIN, "not empty .*--OVERWRITE_OUTPUT_DIR",
     _filled("out", "log_file.txt")),
    ("pb-output-is-a-file", "powerbert", PB[:-1] + ["{afile}", "--EVAL_ONLY"],
     "exists and is not a folder", None),
    ("pb-other-task", "powerbert", ["--CHECKPOINT_PATH", "{ckpt_cola}", "--EVAL_ONLY"] + PB[:2]
     + PB[4:], "--ALLOW_OTHER_TASK", None),
    ("pb-h5-truncated", "powerbert", ["--CHECKPOINT_PATH", "{h5_truncated}", "--EVAL_ONLY"]
     + PB[:2] + PB[4:], DAMAGED, None),
    ("pb-task-config-garbage", "powerbert", PB[:6] + ["--TASK_CONFIG_PATH", "{garbage_json}",
                                                      "--EVAL_ONLY", "--OUTPUT_DIR", "{out}"],
     "cannot read task config", None),
    ("pb-cola-folder-for-sst2", "powerbert", PB[:4] + ["--DATA_DIR", "{cola}"] + PB[6:]
     + ["--EVAL_ONLY"], "is a data row", None),
    # ---- run_glue_with_pabee.py
    ("pabee-lr-nan", "pabee", PA_TRAIN + ["--learning_rate", "nan"], "--learning_rate " + RATE,
     None),
    ("pabee-epochs-0", "pabee", PA_TRAIN + ["--num_train_epochs", "0"],
     "--num_train_epochs " + RATE, None),
    ("pabee-batch-0", "pabee", PA_TRAIN + ["--per_gpu_train_batch_size", "0"],
     "--per_gpu_train_batch_size " + COUNT, None),
    ("pabee-seed-negative", "pabee", PA_TRAIN + ["--seed", "-1"], "--seed " + SEED, None),
    ("pabee-patience-negative", "pabee", PA + ["--do_eval", "--patience", "1,-1"],
     "--patience values must be >= 0", None),
    ("pabee-weight-decay-negative", "pabee", PA_TRAIN + ["--weight_decay", "-0.1"],
     "--weight_decay must be a finite number >= 0", None),
    ("pabee-adam-epsilon-0", "pabee", PA_TRAIN + ["--adam_epsilon", "0"], "--adam_epsilon " + RATE,
     None),
    ("pabee-output-not-empty", "pabee", PA_TRAIN, "not empty .*--overwrite_output_dir",
     _filled("out", "pabee.weights.h5")),
    ("pabee-safetensors-truncated", "pabee",
     PA_TRAIN[:2] + ["--model_name_or_path", "{st_truncated}"] + PA_TRAIN[4:], DAMAGED, None),
    ("pabee-eval-other-task", "pabee", PA[:-1] + ["{ckpt_cola}", "--do_eval"],
     "--allow_other_task", None),
    ("pabee-eval-h5-truncated", "pabee", PA[:-1] + ["{h5_truncated}", "--do_eval"], DAMAGED,
     None),
    ("pabee-stsb-out-of-range", "pabee", PA_TRAIN[:4] + ["--task_name", "STS-B", "--do_lower_case",
                                                         "--data_dir", "{stsb_high}"]
     + PA_TRAIN[9:], "outside STS-B's range", None),
    # ---- AdapLeR stages (folders relative to the working directory)
    ("adapler-a-lr-nan", "adapler_finetune", AD + ["--LEARNING_RATE", "nan"],
     "--LEARNING_RATE " + RATE, None),
    ("adapler-a-warmup-2", "adapler_finetune", AD + ["--WARMUP_RATIO", "2"],
     "--WARMUP_RATIO must be between 0 and 1", None),
    ("adapler-a-batch-0", "adapler_finetune", AD + ["--BATCH_SIZE", "0"], "--BATCH_SIZE " + COUNT,
     None),
    ("adapler-a-seed-negative", "adapler_finetune", AD[:4] + ["--DATA_SEED", "-1"] + AD[6:],
     "--DATA_SEED " + SEED, None),
    ("adapler-a-earlier-run", "adapler_finetune", AD, "ft_logs.json already exists; pass "
     "--OVERWRITE_OUTPUT_DIR", _filled(TASK_DIR, "logs/ft_logs.json")),
    ("adapler-a-safetensors-garbage", "adapler_finetune",
     AD[:6] + ["--MODEL_NAME_OR_PATH", "{st_garbage}"] + AD[8:], DAMAGED, None),
    ("adapler-b-earlier-run", "adapler_saliencies", AD, "saliency folder .* not empty",
     _filled(TASK_DIR, "data/sals/train/sal_mat_wCLSSEPnoZ_1.npy")),
    ("adapler-c-gamma-negative", "adapler_train", AD + ["--GAMMA", "-1"],
     "--GAMMA must be a finite number >= 0", None),
    ("adapler-c-eta-rate-0", "adapler_train", AD + ["--ETA_LEARNING_RATE", "0"],
     "--ETA_LEARNING_RATE " + RATE, None),
    ("adapler-c-acc-steps-0", "adapler_train", AD + ["--ACC_STEPS", "0"], "--ACC_STEPS " + COUNT,
     None),
    ("adapler-c-epochs-0", "adapler_train", AD + ["--EPOCHS", "0"], "--EPOCHS " + COUNT, None),
    ("adapler-c-earlier-run", "adapler_train", AD + ["--SAVE_NAME", "r"],
     "r_GAMMA1.0_PHI10.0.log already exists",
     _filled(TASK_DIR, "logs/r_GAMMA1.0_PHI10.0.log")),
    ("adapler-glue-c-head-lr-negative", "adapler_glue_train",
     AD + ["--HEAD_LEARNING_RATE", "-1"], "--HEAD_LEARNING_RATE must be a finite number >= 0",
     None),
    ("adapler-d-h5-truncated", "adapler_evaluate", AD_EVAL + ["--MODEL_PATH", "{h5_truncated}"],
     DAMAGED, None),
    ("adapler-d-other-task", "adapler_evaluate",
     AD_EVAL + ["--MODEL_PATH", "{ckpt_cola}", "--SPLIT", "dev"], "--ALLOW_OTHER_TASK", None),
    ("adapler-d-batch-0", "adapler_evaluate",
     AD_EVAL + ["--MODEL_PATH", "{ckpt}", "--BATCH_SIZE", "0"], "--BATCH_SIZE " + COUNT, None),
    ("adapler-glue-d-sidecar-mistyped", "adapler_glue_predict",
     AD_EVAL + ["--MODEL_PATH", "{sidecar_mistyped}"], "hidden_size must be a positive integer",
     None),
    ("adapler-infer-h5-garbage", "adapler_infer", ["--MODEL_PATH", "{h5_garbage}", "--TEXT", "hi"],
     DAMAGED, None),
    ("adapler-infer-max-length-0", "adapler_infer",
     ["--MODEL_PATH", "{ckpt}", "--TEXT", "hi", "--MAX_LENGTH", "0"], "--MAX_LENGTH " + COUNT,
     None),
    # ---- other tools
    ("flops-max-length-0", "flops", ["--max_length", "0"], "--max_length " + COUNT, None),
    ("flops-lengths-not-integers", "flops", ["--lengths", "3,x"],
     "--lengths must be comma-separated integers", None),
    ("demo-both-precisions", "demo", ["--work_dir", "{out}", "--bf16", "--fp16"],
     "--bf16 and --fp16 exclude each other", None),
    ("demo-work-dir-of-another-run", "demo", ["--work_dir", "{out}"], "holds a results.csv but "
     "no settings.json", _filled("out", "results.csv")),
    ("demo-model-truncated", "demo", ["--work_dir", "{out}", "--model", "{st_truncated}"],
     DAMAGED, None),
    ("rationale-eval-layer-0", "rationale_eval",
     ["--TASK", "movie_rationales", "--MODEL_PATH", "{ckpt}", "--LAYER", "0"],
     "--LAYER " + COUNT, None),
    ("make-default-data-missing", "make_default_data", ["{root}/nowhere/train.tsv", "--out",
                                                        "{out}"], "not found", None),
]


def _snapshot(*roots):
    """Every path under `roots` with its kind, size, mtime and mode."""
    seen = {}
    for root in roots:
        for folder, dirs, files in os.walk(root):
            for name in dirs + files:
                path = os.path.join(folder, name)
                info = os.lstat(path)
                seen[path] = (os.path.isdir(path), info.st_size, info.st_mtime_ns, info.st_mode)
    return seen


def run_bad(main, argv, capsys, roots, allowed=()):
    """Run `main(argv)`; assert the bad-input contract; return the error line."""
    before = _snapshot(*roots)
    with pytest.raises(SystemExit) as stop:
        main(argv)
    captured = capsys.readouterr()
    assert stop.value.code == 2, captured.err
    errors = [line for line in captured.err.splitlines() if "error:" in line]
    assert len(errors) == 1 and errors[0].startswith("error: "), captured.err
    assert "Traceback" not in captured.err + captured.out
    after = _snapshot(*roots)
    changed = {p for p in set(before) | set(after) if before.get(p) != after.get(p)}
    assert changed <= set(allowed), sorted(changed - set(allowed))
    return errors[0]


def test_there_are_at_least_60_cases():
    assert len(CASES) >= 60 and len({case[0] for case in CASES}) == len(CASES)


@pytest.mark.parametrize("name, command, argv, message, setup", CASES,
                         ids=[case[0] for case in CASES])
def test_bad_input(name, command, argv, message, setup, world, tmp_path, monkeypatch, capsys):
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)  # AdapLeR's folder tree is relative to the working directory
    if setup is not None:
        setup(str(work))
    paths = {**world, "out": str(work / "out")}
    line = run_bad(_main(command), [arg.format(**paths) for arg in argv], capsys,
                   [world["root"], str(tmp_path)])
    assert re.search(message, line), line


def test_disk_full_while_saving(world, tmp_path, monkeypatch, capsys):
    """A full disk while the checkpoint is written: one line, and only the output folder (the
    run created it) is new; no half-written file stays behind."""
    import h5py

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", args[0] if args else None)

    monkeypatch.setattr(h5py, "File", full)
    out = tmp_path / "out"
    argv = [arg.format(**world, out=str(out)) for arg in FT + ["--batch_size", "8"]]
    line = run_bad(_main("finetune"), argv, capsys, [world["root"], str(tmp_path)],
                   allowed={str(out)})
    assert "No space left on device" in line
    assert os.listdir(out) == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_output_folder(world, tmp_path, capsys):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    argv = [arg.format(**world, out=str(locked / "out")) for arg in FT]
    line = run_bad(_main("finetune"), argv, capsys, [world["root"], str(tmp_path)])
    assert "is not writable" in line


# ---------------------------------------------------------------- collapsed checkpoints

COLLAPSED = r"{path}: its dev predictions are all class 0 \(8 SST-2 examples\).*" \
            r"too few epochs.*too high a learning rate.*\[CLS\].*pass {flag} to start from it"


def _collapse_case(world, tmp_path, monkeypatch, capsys, command, argv, flag,
                   path="ckpt_collapsed"):
    """`argv` is refused with one line naming the checkpoint (`path`), the class, the causes
    and `flag`; with `flag` it runs (exit 0) and says that it goes on."""
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    monkeypatch.chdir(work)
    argv = [arg.format(**world, out=str(work / "out")) for arg in argv]
    line = run_bad(_main(command), argv, capsys, [world["root"], str(tmp_path)])
    assert re.search(COLLAPSED.format(path=path, flag=flag), line), line
    assert _main(command)(argv + [flag]) in (0, None)
    captured = capsys.readouterr()
    assert "error:" not in captured.err
    assert f"starting from it anyway ({flag})" in captured.out + captured.err


def test_collapse_is_recorded_in_the_sidecar(world):
    from common import checkpoints

    recorded = checkpoints.read_sidecar(world["ckpt_collapsed"])["training"]
    assert recorded["collapsed"] == {"prediction": "class 0", "examples": 8, "task": "SST-2"}
    assert "collapsed" not in recorded["dev"] and recorded["dev"]["acc"] == 0.5
    assert "collapsed" not in checkpoints.read_sidecar(world["ckpt"])["training"]


def test_powerbert_search_refuses_a_collapsed_finetuned_model(world, tmp_path, monkeypatch,
                                                              capsys):
    argv = [a.replace("{ckpt}", "{ckpt_collapsed}") for a in PB_TRAIN] + [
        "--SKIP_FINETUNE", "--EPOCHS", "1", "--BATCH_SIZE", "8"]
    _collapse_case(world, tmp_path, monkeypatch, capsys, "powerbert", argv, "--ALLOW_COLLAPSED")


def test_pabee_refuses_to_train_from_a_collapsed_model(world, tmp_path, monkeypatch, capsys):
    argv = [a.replace("{tiny}", "{ckpt_collapsed}") for a in PA_TRAIN] + [
        "--max_steps", "1", "--save_steps", "0", "--logging_steps", "0"]
    _collapse_case(world, tmp_path, monkeypatch, capsys, "pabee", argv, "--allow_collapsed")


def test_adapler_stages_b_and_c_refuse_a_collapsed_stage_a(world, tmp_path, monkeypatch,
                                                            capsys):
    """Stage A's best epoch collapsed: stage B (saliencies) and stage C started from it
    (--INITIAL_MODEL_PATH "") refuse; with --ALLOW_COLLAPSED both run."""
    task_dir = tmp_path / "work" / TASK_DIR
    shutil.copytree(world["ckpt_collapsed"], task_dir / "models" / "bert_sst2_1")
    (task_dir / "logs").mkdir(parents=True)
    (task_dir / "logs" / "ft_logs.json").write_text('[{"validation": {"acc": 0.5}}]')
    _collapse_case(world, tmp_path, monkeypatch, capsys, "adapler_saliencies",
                   AD + ["--BATCH_SIZE", "8"], "--ALLOW_COLLAPSED", path="bert_sst2_1")
    _collapse_case(world, tmp_path, monkeypatch, capsys, "adapler_train",
                   AD + ["--INITIAL_MODEL_PATH", "", "--EPOCHS", "1", "--BATCH_SIZE", "8",
                         "--SAVE_NAME", "c"], "--ALLOW_COLLAPSED", path="bert_sst2_1")


def test_compare_refuses_a_collapsed_model_before_anything_runs(world, tmp_path, monkeypatch,
                                                                capsys):
    from common.compare import engine as compare

    monkeypatch.chdir(tmp_path)
    argv = ["--model", world["ckpt_collapsed"], "--task", "sst-2", "--data_dir", world["sst2"],
            "--output_dir", str(tmp_path / "out"), "--max_length", "16"]
    line = run_bad(compare.main, argv, capsys, [world["root"], str(tmp_path)])
    assert re.search(COLLAPSED.format(path="ckpt_collapsed", flag="--allow_collapsed"),
                     line), line
    args, _ = compare.parse_args(argv + ["--allow_collapsed"])  # the flag lets it go on
    assert args.allow_collapsed
