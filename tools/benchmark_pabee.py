"""Measure PABEE's wall-clock speed against the vanilla model on the same dev inputs.

    python tools/benchmark_pabee.py --model_dir runs/pabee/sst2 --task_name SST-2 \\
        --data_dir runs/pabee/SST-2-8k --patience 1,2 --batch_sizes 1,32 --examples 300

Batch size 1 is the original's setting: per-example latency, PABEE's layer-by-layer loop
against the full forward, interleaved example by example. Larger batch sizes compare the batched
per-example exit (exited rows leave the batch) with vanilla batched inference, and check that its
predictions and exit layers equal the batch-1 ones. Prints a markdown table (medians of
--repeats runs after warm-up) with the layer ratio L/X and the analytic FLOPs ratio beside the
measured speed-up; --output also writes the rows as JSON.
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from common import precision  # noqa: E402
from common.errors import UserError, cli_entry, parse_int_list  # noqa: E402

COLUMNS = (("patience", "t"), ("batch_size", "batch"), ("examples", "examples"),
           ("avg_exit_layer", "avg exit layer"), ("layer_ratio", "L/X"),
           ("flops_ratio", "FLOPs ratio"), ("vanilla_per_second", "vanilla ex/s"),
           ("pabee_per_second", "PABEE ex/s"), ("measured_speedup", "measured speed-up"),
           ("measured_over_layer", "measured / L/X"),
           ("prediction_mismatches", "pred. mismatches vs batch 1"))


def build_parser():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model_dir", required=True, help="a trained PABEE checkpoint folder")
    p.add_argument("--task_name", required=True)
    p.add_argument("--data_dir", required=True, help="folder with the task's dev.tsv")
    p.add_argument("--max_seq_length", type=int, help="default: the checkpoint's max_length")
    p.add_argument("--patience", default="1,2", help="comma list of patience values >= 1")
    p.add_argument("--batch_sizes", default="1,32",
                   help="comma list; 1 = per-example latency (the original's setting)")
    p.add_argument("--examples", type=int, default=200, help="first N dev examples")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--regression_threshold", type=float, default=0.0)
    p.add_argument("--trim_padding", action="store_true",
                   help="run every input (batch) at its real length on both sides")
    p.add_argument("--jit_compile", action="store_true",
                   help="XLA-compile both sides (the full forward and every layer step)")
    p.add_argument("--output", help="also write the result rows to this JSON file")
    precision.add_flags(p)
    return p


def markdown(rows):
    def cell(value):
        if value is None:
            return "-"
        return f"{value:.2f}" if isinstance(value, float) else str(value)
    lines = ["| " + " | ".join(title for _, title in COLUMNS) + " |",
             "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(cell(row.get(key)) for key, _ in COLUMNS) + " |" for row in rows]
    return "\n".join(lines)


def run(args, log=print):
    from common.checkpoints import read_sidecar
    from common.data import encode_examples, read_split
    from common.tasks import get_task
    from common.tokenization import load_tokenizer
    from pabee import speed
    from pabee.patience import EarlyExitEngine, ExitRule, parse_patience_list
    from pabee.pipeline import load_for_eval

    task = get_task(args.task_name)
    patience_list = parse_patience_list(args.patience)
    if 0 in patience_list:
        raise UserError("--patience 0 is the vanilla model itself; benchmark values >= 1")
    batch_sizes = parse_int_list(args.batch_sizes, "--batch_sizes")
    if min(batch_sizes) < 1 or args.examples < 1 or args.repeats < 1:
        raise UserError("--batch_sizes, --examples and --repeats must be positive")
    sidecar = read_sidecar(args.model_dir)
    model = load_for_eval(args.model_dir, task)
    length = args.max_seq_length or sidecar.get("max_length", task.max_length)
    tokenizer = load_tokenizer(args.model_dir, cased=not sidecar.get("do_lower_case", True))
    examples = read_split(task, args.data_dir, "dev")
    arrays = encode_examples(tokenizer, examples, length)
    arrays = {key: value[:args.examples] for key, value in arrays.items()}
    engine = EarlyExitEngine(model, jit_compile=args.jit_compile)
    log(f"{model.num_layers} layers, hidden {model.config.hidden_size}, {len(arrays['labels'])} "
        f"{task.glue_name} dev examples at length {length}"
        f"{' (padding trimmed)' if args.trim_padding else ''}")
    rows = []
    for patience in patience_list:
        rule = ExitRule(patience, args.regression_threshold, task.is_regression)
        summary, reference = speed.latency(engine, arrays, rule, args.repeats,
                                           trim=args.trim_padding)
        results = [summary] if 1 in batch_sizes else []
        for batch_size in (b for b in batch_sizes if b > 1):
            results.append(speed.throughput(engine, arrays, rule, batch_size, args.repeats,
                                            trim=args.trim_padding, reference=reference))
        for row in results:
            row["patience"] = patience
            row["measured_over_layer"] = row["measured_speedup"] / row["layer_ratio"]
            rows.append(row)
            log(markdown([row]).splitlines()[-1])
    table = markdown(rows)
    log(table)
    if args.output:
        os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
        with open(args.output, "w", encoding="utf-8") as out:
            json.dump(rows, out, indent=2)
    return rows


@cli_entry
def main(argv=None):
    args = build_parser().parse_args(argv)
    precision.apply_flags(args)
    run(args)


if __name__ == "__main__":
    main()
