"""Compare PoWER-BERT on length-sorted, dynamically padded batches with the run padded to N.

    python tools/powerbert_padding.py --task sst-2 --data_dir $GLUE_DIR/SST-2 --max_length 64 \\
        --retention 41,33,26,18,17,9
    python tools/powerbert_padding.py --task mrpc --data_dir $GLUE_DIR/MRPC --max_length 128 \\
        --retention 90,70,52,36,28,16 --padding_queries real

Both runs see the same dev rows in the same length-sorted batches; the padded run pads every
batch to --max_length, the dynamic run only to the batch's longest row. Without --checkpoint the
bundled MiniLM gets a random classifier seeded by --seed (an equality check needs no training);
with a PoWER-BERT checkpoint of this toolkit (its retention unless --retention is given) the dev
accuracy of both runs is printed too. Prints one JSON object: rows, predictions that differ,
(row, block) pairs whose kept real tokens differ, the largest logit difference, the mean batch
length. No timing: speed goes through the benchmark tools.
"""
import json

import numpy as np

from common.cli import ArgumentParser, command
from common.data import length_sorted_batches
from common.errors import UserError


def build_parser():
    p = ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--task", required=True, help="the task whose dev texts are run")
    p.add_argument("--data_dir", required=True, help="folder with the task's dev file")
    p.add_argument("--checkpoint", help="a PoWER-BERT checkpoint (default: MiniLM, random head)")
    p.add_argument("--max_length", type=int, help="N (default: the checkpoint's, else the task's)")
    p.add_argument("--retention", help="comma-separated word-vectors kept per block (default: "
                                       "the checkpoint's)")
    p.add_argument("--padding_queries", choices=("all", "real"), default="all",
                   help="query rows the significance sums: all (the reference) or real tokens'")
    p.add_argument("--length_scaled", action="store_true",
                   help="keep ceil(k_l * n / N) word-vectors of a batch of length n")
    p.add_argument("--batch_size", type=int, default=32, help="examples per batch")
    p.add_argument("--rows", type=int, help="only the first ROWS dev rows (default: all)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random head")
    return p


def sorted_batches(arrays, batch_size):
    """Length-sorted batches of the features (`common.data.length_sorted_batches`): (row
    indices, padded to N, padded to the batch's longest row)."""
    features = {key: arrays[key] for key in ("input_ids", "token_type_ids", "attention_mask")}
    order, padded = length_sorted_batches(features, batch_size, dynamic=False)
    _, trimmed = length_sorted_batches(features, batch_size)
    starts = range(0, len(order), batch_size)
    for start, full, short in zip(starts, padded, trimmed):
        yield order[start:start + batch_size], full, short


def _kept_real(state, lengths):
    """Per block and row, the set of real positions kept."""
    return [[frozenset(p[p < length].tolist()) for p, length in zip(np.asarray(kept), lengths)]
            for kept in state.records["positions"]]


def compare(model, arrays, batch_size):
    """Logits of the padded and the dynamically padded runs (in row order) and the counts."""
    count = len(arrays["input_ids"])
    padded_logits = np.zeros((count, model.num_labels), np.float32)
    dynamic_logits = np.zeros_like(padded_logits)
    kept_differ = blocks = tokens = 0
    for rows, padded, trimmed in sorted_batches(arrays, batch_size):
        (full, full_state), (short, short_state) = model.forward(padded), model.forward(trimmed)
        padded_logits[rows], dynamic_logits[rows] = np.asarray(full), np.asarray(short)
        real = padded["attention_mask"].sum(1)
        for a, b in zip(_kept_real(full_state, real), _kept_real(short_state, real)):
            kept_differ += sum(x != y for x, y in zip(a, b))
            blocks += len(rows)
        tokens += trimmed["input_ids"].shape[1] * len(rows)
    return {"rows": count,
            "predictions_differ": int((padded_logits.argmax(-1)
                                       != dynamic_logits.argmax(-1)).sum()),
            "row_blocks_keeping_other_tokens": int(kept_differ), "row_blocks": int(blocks),
            "max_logit_diff": float(np.abs(padded_logits - dynamic_logits).max()),
            "mean_batch_length": tokens / count,
            "padded_logits": padded_logits, "dynamic_logits": dynamic_logits}


@command
def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.batch_size < 1 or (args.rows is not None and args.rows < 1):
        raise UserError("--batch_size and --rows must be >= 1")
    from common import checkpoints
    from common.data import default_model_dir, encode_examples, read_split
    from common.tasks import get_task
    from common.tokenization import load_tokenizer
    from powerbert.model import build_powerbert
    from powerbert.retention import parse_retention

    task = get_task(args.task)
    if task.is_regression:
        raise UserError(f"{task.glue_name} is a regression task; pass a classification task")
    source = checkpoints.resolve_source(args.checkpoint or default_model_dir())
    sidecar = source.sidecar or {}
    max_length = args.max_length or sidecar.get("max_length") or task.max_length
    checkpoints.check_max_length(source.config, max_length)
    layers = source.config.num_hidden_layers
    if args.retention:
        retention = parse_retention(args.retention, layers, max_length, "--retention")
    elif sidecar.get("retention_config"):
        retention = sidecar["retention_config"]
    else:
        raise UserError("no retention configuration: pass --retention (one value per block)")
    examples = read_split(task, args.data_dir, "dev")
    arrays = encode_examples(load_tokenizer(source.folder), examples, max_length)
    arrays = {key: value[:args.rows] for key, value in arrays.items()}
    model = build_powerbert(source.config, task.num_labels, max_length,
                            retention=retention, length_scaled=args.length_scaled,
                            padding_queries=args.padding_queries == "all")
    trained = checkpoints.load_backbone_weights(model, source)
    if not trained:
        kernel = model.classifier.kernel
        kernel.assign(np.random.default_rng(args.seed).normal(size=kernel.shape)
                      .astype(np.float32))
    result = compare(model, arrays, args.batch_size)
    padded, dynamic = result.pop("padded_logits"), result.pop("dynamic_logits")
    if trained and "labels" in arrays and not task.is_regression:
        for name, logits in (("padded_acc", padded), ("dynamic_acc", dynamic)):
            result[name] = float((logits.argmax(-1) == arrays["labels"]).mean())
    print(json.dumps({"task": task.name, "max_length": max_length, "retention": retention,
                      "padding_queries": args.padding_queries,
                      "length_scaled": args.length_scaled, **result}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
