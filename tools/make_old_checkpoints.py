"""Write one tiny checkpoint of every kind the toolkit writes, for the "old checkpoints still load"
test (tests/test_old_checkpoints.py).

Each kind comes from the real command line on tests/fixtures/tiny_bert cut to 2 layers and a
24-row SST-2 set in the tiny vocabulary, one short epoch:

    finetune/                 tools/finetune.py
    powerbert/<stage>/        python -m powerbert (finetune, configuration_search_model, retrained)
    adapler/finetuned/        run_classification_bert.py (stage A, one epoch)
    adapler/adapler/          run_classification_w_lr.py (stage C)
    pabee/ , pabee/checkpoint-2/   run_glue_with_pabee.py --do_train --save_steps 2

Beside each checkpoint `expected.npz` holds fixed inputs and the logits the checkpoint gave
when it was written (PABEE: every internal classifier's logits), so a loader can be checked
against them. The fixtures of tests/fixtures/old_checkpoints were written at commit 7a496d2
(before the shared checkpoint convention); running this script today writes the current format.

    python tools/make_old_checkpoints.py [--out tests/fixtures/old_checkpoints]
"""
import contextlib
import json
import os
import random
import shutil
import sys
import tempfile

import numpy as np

from common.cli import ArgumentParser, command

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = os.path.join(REPO, "tests", "fixtures", "tiny_bert")
LENGTH = 16
WORDS = ("the a movie film was is very plot acting story it this that and , .").split()
KEEP = ("config.json", "vocab.txt", "tokenizer.json", "tokenizer_config.json",
        "special_tokens_map.json")


def _sentence(rng, label):
    words = [rng.choice(WORDS) for _ in range(rng.randint(2, 6))]
    words.insert(rng.randint(0, len(words)),
                 rng.choice(("good", "great", "fun") if label else ("bad", "awful", "boring")))
    return " ".join(words)


def write_data(folder):
    rng = random.Random(0)
    os.makedirs(folder, exist_ok=True)
    for split, count in (("train", 24), ("dev", 8)):
        rows = [f"{_sentence(rng, i % 2)}\t{i % 2}" for i in range(count)]
        with open(os.path.join(folder, f"{split}.tsv"), "w", encoding="utf-8") as out:
            out.write("sentence\tlabel\n" + "\n".join(rows) + "\n")


def write_model(folder):
    shutil.copytree(TINY, folder)
    os.remove(os.path.join(folder, "reference.npz"))
    path = os.path.join(folder, "config.json")
    with open(path, encoding="utf-8") as handle:
        config = json.load(handle)
    with open(path, "w", encoding="utf-8") as out:
        json.dump({**config, "num_hidden_layers": 2}, out)


def inputs():
    rng = np.random.default_rng(0)
    ids = rng.integers(5, 35, size=(3, LENGTH)).astype(np.int32)
    mask = np.zeros((3, LENGTH), np.int32)
    for row, n in enumerate((LENGTH, 9, 4)):
        mask[row, :n] = 1
        ids[row, 0], ids[row, n - 1], ids[row, n:] = 2, 3, 0
    return {"input_ids": ids, "token_type_ids": np.zeros_like(ids), "attention_mask": mask}


def copy_checkpoint(source, target, logits):
    """The checkpoint's own files (weights, sidecar, tokenizer) and expected.npz."""
    os.makedirs(target, exist_ok=True)
    for name in sorted(os.listdir(source)):
        if name.endswith(".h5") or name in KEEP:
            shutil.copy2(os.path.join(source, name), os.path.join(target, name))
    np.savez_compressed(os.path.join(target, "expected.npz"), logits=logits, **inputs())


def plain_logits(folder, model_class=None):
    from common import checkpoints
    from common.modeling import SequenceClassifier, dummy_inputs
    source = checkpoints.resolve_source(folder)
    model = (model_class or SequenceClassifier)(source.config, source.sidecar["num_labels"])
    model(dummy_inputs())
    checkpoints.load_weights(model, source.path)
    return np.asarray(model(inputs(), training=False))


def powerbert_logits(folder):
    from common import checkpoints
    from powerbert.model import build_powerbert
    source = checkpoints.resolve_source(folder)
    sidecar = source.sidecar
    kwargs = ({"retention": sidecar["retention_config"]} if sidecar["stage"] == "retrained" else
              {"search_length": LENGTH} if sidecar["stage"] == "configuration_search_model"
              else {"retention": [LENGTH] * source.config.num_hidden_layers})
    model = build_powerbert(source.config, sidecar["num_labels"], LENGTH, **kwargs)
    checkpoints.load_weights(model, source.path, optional=model.optional_checkpoint_keys
                             if sidecar["stage"] == "finetune" else ())
    return np.asarray(model(inputs(), training=False))


def adapler_logits(folder):
    from adapler.model import build_model, load_checkpoint_into
    from common import checkpoints
    source = checkpoints.resolve_source(folder)
    model = build_model(source.config, source.sidecar["num_labels"], LENGTH)
    load_checkpoint_into(model, folder, require_adapler=True)
    return np.asarray(model(inputs(), training=False)["logits"])


def pabee_logits(folder):
    from common import checkpoints
    from pabee.model import build_model, load_weights
    source = checkpoints.resolve_source(folder)
    model = build_model(source, source.sidecar["num_labels"])
    load_weights(model, source, require_heads=True)
    return np.stack([np.asarray(z) for z in model(inputs(), training=False, all_layers=True)])


@command
def main(argv=None):
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=os.path.join(REPO, "tests", "fixtures",
                                                      "old_checkpoints"),
                        help="folder that receives the old-layout checkpoints")
    out = os.path.abspath(parser.parse_args(argv).out)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from adapler.cli import finetune_main, saliency_main, train_main
    from pabee.cli import main as pabee_main
    from powerbert.cli import main as powerbert_main
    from tools import finetune

    work = tempfile.mkdtemp()
    previous = os.getcwd()
    try:
        os.chdir(work)
        write_data("data/SST-2")
        write_model("tiny")
        with contextlib.redirect_stdout(sys.stderr):
            finetune.main(["--model", "tiny", "--task", "sst-2", "--data_dir", "data/SST-2",
                           "--output_dir", "ft", "--epochs", "1", "--batch_size", "8",
                           "--max_length", str(LENGTH), "--learning_rate", "1e-3", "--seed", "1"])
            with open("task_config.json", "w", encoding="utf-8") as handle:
                json.dump({"sst-2": {"seq_len": LENGTH, "num_classes": 2}}, handle)
            powerbert_main(["--TASK", "sst-2", "--CHECKPOINT_PATH", "tiny", "--DATA_DIR",
                            "data/SST-2", "--TASK_CONFIG_PATH", "task_config.json", "--EPOCHS",
                            "1", "--BATCH_SIZE", "8", "--LR_BERT", "1e-3", "--LR_SOFT_EXTRACT",
                            "0.05", "--LAMBDA", "0.01", "--OUTPUT_DIR", "pb", "--SEED", "1"])
            common = ["--TASK", "sst2", "--MAX_LENGTH", str(LENGTH), "--DATA_SEED", "1",
                      "--MODEL_NAME_OR_PATH", "tiny", "--DATA_DIR", "data/SST-2"]
            finetune_main(common + ["--EPOCHS", "1", "--BATCH_SIZE", "8", "--LEARNING_RATE",
                                    "1e-3"])
            saliency_main(common + ["--BATCH_SIZE", "8"])
            train_main(common + ["--GAMMA", "0.005", "--PHI", "0.0005", "--SAVE_NAME", "old",
                                 "--BATCH_SIZE", "8", "--EPOCHS", "1", "--LEARNING_RATE", "1e-3"])
            try:
                pabee_main(["--model_type", "bert", "--model_name_or_path", "tiny",
                            "--task_name", "SST-2", "--do_lower_case", "--data_dir",
                            "data/SST-2", "--max_seq_length", str(LENGTH), "--output_dir", "pa",
                            "--do_train", "--per_gpu_train_batch_size", "8", "--learning_rate",
                            "1e-3", "--num_train_epochs", "1", "--logging_steps", "0",
                            "--save_steps", "2", "--seed", "1"])
            except SystemExit as stop:
                if stop.code:
                    raise
        if os.path.isdir(out):
            shutil.rmtree(out)
        copy_checkpoint("ft", os.path.join(out, "finetune"), plain_logits("ft"))
        for stage in ("finetune", "configuration_search_model", "retrained"):
            folder = os.path.join("pb", stage)
            copy_checkpoint(folder, os.path.join(out, "powerbert", stage),
                            powerbert_logits(folder))
        task_dir = os.path.join("directory", "bert", "1", "sst2", "models")
        finetuned = os.path.join(task_dir, "bert_sst2_1")
        copy_checkpoint(finetuned, os.path.join(out, "adapler", "finetuned"),
                        plain_logits(finetuned))
        stage_c = os.path.join(task_dir, "adaptive_lr", "old_GAMMA0.005_PHI0.0005_lr")
        copy_checkpoint(stage_c, os.path.join(out, "adapler", "adapler"),
                        adapler_logits(stage_c))
        copy_checkpoint("pa", os.path.join(out, "pabee"), pabee_logits("pa"))
        copy_checkpoint(os.path.join("pa", "checkpoint-2"),
                        os.path.join(out, "pabee", "checkpoint-2"),
                        pabee_logits(os.path.join("pa", "checkpoint-2")))
    finally:
        os.chdir(previous)
        shutil.rmtree(work, ignore_errors=True)
    print(f"old checkpoints written to {out}")


if __name__ == "__main__":
    main()
