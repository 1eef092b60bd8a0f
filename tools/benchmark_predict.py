"""Rows per second of `bert-speedup-predict` (Apache Beam, DirectRunner) against a plain Python
loop over `common.api.Model.predict`, for a dense model and a method's model, on one file of
`--rows` texts (a task's dev texts repeated), timed by `common.benchmark`.

    python tools/benchmark_predict.py --dense runs/minilm-sst2 --method runs/pabee-sst2 \\
        --data_dir glue/SST-2 --rows 50000 --workers 1,2 --repeats 3 --output results/predict.json

Sides per model: `<model>-loop` (chunks of --batch_size texts through `predict`, the model
loaded beforehand) and `<model>-beam-<N>` (the whole command: launcher, N DirectRunner workers,
model loads, reading and writing the files; N = 1 in this process, N > 1 multi_processing).
Derived per pipeline: `overhead_ms_per_row` (beam time minus loop time, per row) and
`speedup_kept` (the method's speed-up over the dense model in the pipeline, divided by its
speed-up in the loop: the issue asks for >= 0.9).
"""
from common.cli import ArgumentParser, command

def build_parser():
    parser = ArgumentParser(description="Time bert-speedup-predict against a Python loop.")
    parser.add_argument("--dense", required=True, help="the dense model's checkpoint folder")
    parser.add_argument("--method", help="a method's checkpoint folder (compared with --dense; "
                                           "without it: the dense model only)")
    parser.add_argument("--data_dir", help="a folder with the texts' dev file (default: the "
                                           "bundled SST-2 sample)")
    parser.add_argument("--text_column", default="sentence", help="the dev file's text column")
    parser.add_argument("--rows", type=int, default=50000, help="texts in the input file")
    parser.add_argument("--workers", default="1,2", help="DirectRunner worker counts")
    parser.add_argument("--batch_size", type=int, default=64, help="texts per model call")
    parser.add_argument("--repeats", type=int, default=3, help="timed passes per side")
    parser.add_argument("--warmup", type=int, default=1,
                        help="untimed passes per side first (0: every pass timed, the first one "
                             "cold, as a batch job starts)")
    parser.add_argument("--output", help="JSON record of the run (default: none, printed only)")
    return parser


@command
def main(argv=None):
    from common import benchmark
    from common.predict_benchmark import COLUMNS, run

    args = build_parser().parse_args(argv)
    return benchmark.run_tool("tools/benchmark_predict.py", args, argv, run, COLUMNS,
                              args.output)


if __name__ == "__main__":
    main()
