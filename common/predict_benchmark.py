"""The predict benchmark behind `tools/benchmark_predict.py`: rows per second of
`bert-speedup-predict` (Apache Beam, DirectRunner, 1 or N workers) against a plain Python loop
over `common.api.Model.predict`, for a dense model and a method's model, on the harness
(`common.benchmark`); `run` gives the JSON record."""
import csv
import os
import tempfile

from common.errors import UserError, parse_int_list

COLUMNS = [("side", "side"), ("examples", "rows"), ("median_ms", "ms per pass"),
           ("examples_per_s", "rows / s"), ("overhead_ms_per_row", "overhead ms / row"),
           ("speedup_vs_dense", "vs dense (same runner)"), ("speedup_kept", "speed-up kept")]


def _texts(args):
    from common.data import default_data_dir, read_table

    folder = args.data_dir or default_data_dir()
    path = next((os.path.join(folder, name) for name in ("dev.tsv", "dev.csv", "dev.jsonl")
                 if os.path.isfile(os.path.join(folder, name))), None)
    if path is None:
        raise UserError(f"no dev.tsv, dev.csv or dev.jsonl in {folder}")
    table = read_table(path)
    if args.text_column not in table.columns:
        raise UserError(f"{path} has no column '{args.text_column}'; pass --text_column")
    texts = [t for t in table[args.text_column].astype(str) if t.strip()]
    return [texts[i % len(texts)] for i in range(args.rows)]


def _sides(name, path, texts, input_file, folder, args, workers):
    from common import benchmark, predict
    from common.api import load

    model = load(path)
    chunks = [texts[i:i + args.batch_size] for i in range(0, len(texts), args.batch_size)]

    def loop(_):
        for chunk in chunks:
            model.predict(chunk, batch_size=args.batch_size)

    sides = [benchmark.Side(f"{name}-loop", loop, [None], examples=len(texts))]
    for count in workers:
        beam_args = [] if count == 1 else [
            "--runner", "DirectRunner", "--direct_num_workers", str(count),
            "--direct_running_mode", "multi_processing"]
        output = os.path.join(folder, f"{name}-{count}.jsonl")

        def pipeline(_, beam_args=beam_args, output=output):
            predict.run(model=path, pattern=input_file, output=output,
                        text_column="text", batch_size=args.batch_size, beam_args=beam_args,
                        overwrite=True, log=lambda line: None)

        sides.append(benchmark.Side(f"{name}-beam-{count}", pipeline, [None],
                                    examples=len(texts)))
    return sides


def _derive(rows, names, workers):
    """Overhead per row of each pipeline; the method's speed-up kept by each pipeline."""
    by_side = {row["side"]: row for row in rows}
    for name in names:
        loop = by_side[f"{name}-loop"]
        for count in workers:
            row = by_side[f"{name}-beam-{count}"]
            row["overhead_ms_per_row"] = (row["median_ms"] - loop["median_ms"]) / row["examples"]
    if "method" in names:
        for runner in ["loop"] + [f"beam-{count}" for count in workers]:
            method, dense = by_side[f"method-{runner}"], by_side[f"dense-{runner}"]
            method["speedup_vs_dense"] = dense["median_ms"] / method["median_ms"]
        loop_speedup = by_side["method-loop"]["speedup_vs_dense"]
        for count in workers:
            row = by_side[f"method-beam-{count}"]
            row["speedup_kept"] = row["speedup_vs_dense"] / loop_speedup


def run(args, command_line):
    """Time every side; the JSON record, with each pipeline's overhead per row and the speed-up
    the method keeps in it."""
    from common import benchmark

    workers = parse_int_list(args.workers, "--workers", minimum=1)
    benchmark.check_counts(rows=args.rows, batch_size=args.batch_size, repeats=args.repeats,
                           warmup=args.warmup)
    texts = _texts(args)
    models = {"dense": args.dense, **({"method": args.method} if args.method else {})}
    with tempfile.TemporaryDirectory() as folder:
        input_file = os.path.join(folder, "input.csv")
        with open(input_file, "w", encoding="utf-8", newline="") as out:
            writer = csv.writer(out)
            writer.writerow(["text"])
            writer.writerows([text] for text in texts)
        sides = [side for name, path in models.items()
                 for side in _sides(name, path, texts, input_file, folder, args, workers)]
        rows, measurement = benchmark.run_sides(sides, repeats=args.repeats,
                                                warmup=args.warmup)
    _derive(rows, list(models), workers)
    settings = {**models, "rows": args.rows, "workers": workers, "batch_size": args.batch_size,
                "repeats": args.repeats, "warmup": args.warmup}
    return benchmark.record(command_line, settings, [
        {"batch_size": args.batch_size, "environment": measurement["environment"],
         "notes": measurement["notes"], "rows": rows}])
