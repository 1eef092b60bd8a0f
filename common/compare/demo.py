"""The README's main job: every method's accuracy-vs-speed front on the bundled SST-2 sample
with MiniLM, offline.

    bert-speedup-demo                      # or: python tools/demo.py
    bert-speedup-demo --work_dir runs/demo --methods powerbert,pabee
    bert-speedup-demo --model path/to/hf_bert_folder --data_dir path/to/SST-2
    bert-speedup-demo --train_file reviews/train.csv --validation_file reviews/dev.csv \
        --text_column review --label_column sentiment

The demo is `bert-speedup-compare --budget quick` on SST-2 into `--work_dir` (it fine-tunes the
backbone, trains each method once, sweeps its operating points, evaluates them on the full dev
set and times them against the dense baselines; see common/compare/engine.py), followed by one short
table: the fine-tuned model and, for each method, its best point, the fastest within one point
of the fine-tuned model's dev accuracy (else the most accurate). Speed-ups are measured at
batch 32 against the dense model on the same length-sorted, dynamically padded batches, with
the papers' baseline (padded to length 64) beside them. The table goes to
`<work_dir>/results.md` and `results.json` (each run's own copy in `results/<run id>/`); the
plot is `<work_dir>/pareto.png`. Your own files (`--train_file` ..., docs/own_data.md) replace
SST-2: they are handed to compare, which hands them to each method's command line.

Like compare, the demo resumes: the same command again skips what a killed run finished.
It is a smoke test: from a fine-tuned model that predicts one class for every dev example it
warns and goes on (compare's --allow_collapsed) instead of stopping.
"""
import json
import os
import shutil

from common import owndata, precision
from common.cli import ArgumentParser, command
from common.compare import engine
from common.compare.report import DENSE, best_points, plot_batch_size
from common.compare.sweep import precision_flag, sweeps
from common.tables import markdown_table

COLUMNS = ("method", "setting", "dev_metric_name", "dev_metric", "flops_speedup",
           "measured_speedup", "speedup_vs_padded", "within_1_point")
MAX_LENGTH = 64


def parse_args(argv):
    parser = ArgumentParser(prog="bert-speedup-demo", description=__doc__.splitlines()[0])
    parser.add_argument("--work_dir", default=os.path.join("runs", "demo"),
                        help="where the models, logs, results.md and pareto.png go "
                             "(default runs/demo)")
    parser.add_argument("--model", help="backbone to fine-tune: HF folder, bert_model.ckpt or "
                                        "our checkpoint (default: the bundled MiniLM)")
    parser.add_argument("--data_dir", help="SST-2 folder with train.tsv and dev.tsv "
                                           "(default: the bundled sample)")
    parser.add_argument("--methods", help="comma list of methods to compare (default: every "
                                          f"method; one of {', '.join(sweeps())})")
    parser.add_argument("--overwrite_output_dir", action="store_true",
                        help="delete --work_dir first and run everything again (default: the "
                             "same command resumes, another one is refused)")
    precision.add_flags(parser)
    owndata.add_data_flags(parser, test=False)
    args = parser.parse_args(argv)
    args.methods = engine.parse_methods(args.methods)
    precision.precision_name(args.bf16, args.fp16)  # both given: UserError
    if args.model:
        from common.checkpoints import check_max_length, resolve_source
        from common.validation import check_model_files

        check_model_files(args.model)  # a damaged model: its own error first
        check_max_length(resolve_source(args.model).config, MAX_LENGTH,
                         fix=f"the demo runs at {MAX_LENGTH} word pieces; run "
                             f"bert-speedup-compare --model {args.model} --max_length <shorter> "
                             "instead")
    return args


def compare_argv(args):
    """The `bert-speedup-compare` command line the demo runs."""
    argv = ["--task", "sst-2", "--output_dir", args.work_dir, "--budget", "quick",
            "--max_length", str(MAX_LENGTH), "--methods", ",".join(args.methods),
            "--allow_collapsed"]  # a smoke test goes on
    argv += ["--model", args.model] if args.model else []
    argv += ["--data_dir", args.data_dir] if args.data_dir else []
    argv += precision_flag(precision.precision_name(args.bf16, args.fp16))
    for name in owndata.FLAGS:
        value = getattr(args, name, None)
        argv += [] if value is None else ["--" + name, value]
    return argv


def table_rows(rows, one_class, methods):
    """The demo's rows from compare's results: the fine-tuned model (the dense reference at the
    largest batch size), then each of `methods`' best point there (above the one-class level,
    as in compare's report)."""
    size = plot_batch_size(rows)
    dense = next(r for r in rows if r["method"] == DENSE and r["batch_size"] == size
                 and r["setting"] == r["reference"])
    result = [{"method": "fine-tuned (dense)", "setting": f"{dense['setting']}, batch {size}",
               "dev_metric_name": dense["metric_name"], "dev_metric": dense["metric"],
               "flops_speedup": 1.0, "measured_speedup": 1.0,
               "speedup_vs_padded": dense["speedup_vs_padded"], "within_1_point": "-"}]
    best = best_points(rows, dense["metric"], one_class)
    titles = {name: sweep.title for name, sweep in sweeps().items()}
    for method in (m for m in methods if m in best):
        row, within = best[method]
        result.append({"method": titles[method], "setting": row["setting"],
                       "dev_metric_name": row["metric_name"], "dev_metric": row["metric"],
                       "flops_speedup": row["flops_speedup"],
                       "measured_speedup": row["speedup_vs_dynamic"],
                       "speedup_vs_padded": row["speedup_vs_padded"],
                       "within_1_point": "yes" if within else "no"})
    return result


def format_table(rows):
    """A markdown table of the demo's rows."""
    def cell(key, value):
        if isinstance(value, float):
            return f"{value:.4f}" if key == "dev_metric" else f"{value:.2f}x"
        return "" if value is None else str(value)
    return markdown_table(COLUMNS, [[cell(c, row.get(c)) for c in COLUMNS] for row in rows])


def run(args, log=print):
    from common.files import write_result_text
    from common.runlog import new_run_id

    if args.overwrite_output_dir and os.path.isdir(args.work_dir):
        shutil.rmtree(args.work_dir)
    argv = compare_argv(args)
    log("bert-speedup-compare " + " ".join(argv))
    compare_args, settings = engine.parse_args(argv)
    rows = table_rows(*engine.run(compare_args, settings, log=log), args.methods)
    table = format_table(rows)
    run_id = new_run_id()  # results.md/json hold the latest run; each run's copy is kept
    write_result_text(os.path.join(args.work_dir, "results.md"), table + "\n", run_id)
    write_result_text(os.path.join(args.work_dir, "results.json"), json.dumps(rows, indent=2),
                      run_id)
    log("\n" + table)
    plot = os.path.abspath(os.path.join(args.work_dir, "pareto.png"))
    log(f"\nthe accuracy-vs-speed plot is {plot}; every point and command: "
        f"{os.path.join(args.work_dir, 'report.md')}")
    return rows


@command
def main(argv=None):
    run(parse_args(argv))

