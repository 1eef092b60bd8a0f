"""The outputs of `bert-speedup-compare`: results.csv (appended row by row, atomically), the
Pareto plot pareto.png, report.md and result_file.json (the run as a result file for
results/, docs/results.md).

A row is one operating point of one method at one batch size. `speedup_vs_dynamic` is the
unqualified speed-up of the toolkit: against the dense model with length-sorted dynamic padding
(baseline b) when batched, against the dense model on the unpadded text (baseline c) at batch 1;
`reference` names the dense side it was measured against. `flops_speedup` counts every dev
example at its real length; `background_load` is the share of all cores other processes kept
busy while the row was timed (the harness's load report).

`one_class` is the metric of the best constant answer on dev (common.metrics.one_class_metric;
None for regression): a point at or below it reads nothing from its input, so it is drawn as a
line and such a point never counts as a best point or as reaching the aim.
"""
import csv
import io
import os

from common.files import write_text
from common.tables import markdown_table

COLUMNS = ("method", "setting", "metric_name", "metric", "flops_speedup", "speedup_vs_padded",
           "speedup_vs_dynamic", "batch_size", "ms_per_example", "seconds", "reference", "detail",
           "task", "background_load")
DENSE = "dense"
RECORD_FILE = "result_file.json"
WITHIN = 0.01  # "within one point" of the fine-tuned model, on metrics in [0, 1]
AIM = 2.0  # the speed-up (measured, against baseline b or c) the report checks for


def read_rows(path):
    """The rows of results.csv (numbers as floats, batch size as int); [] if it does not exist."""
    if not os.path.isfile(path):
        return []
    with open(path, encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:
        for key in ("metric", "flops_speedup", "speedup_vs_padded", "speedup_vs_dynamic",
                    "ms_per_example", "seconds", "background_load"):
            row[key] = float(row[key]) if row.get(key) not in ("", None) else None
        row["batch_size"] = int(row["batch_size"])
    return rows


def _csv_text(rows):
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({key: _cell(row.get(key)) for key in COLUMNS})
    return buffer.getvalue()


def _cell(value):
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return value


def append_rows(path, rows):
    """Add rows to results.csv: the whole file is rewritten to a temporary file and renamed, so
    a killed run leaves either the old file or the new one, never half a row."""
    write_text(path, _csv_text(read_rows(path) + list(rows)))


def done_keys(rows):
    """{(method, setting, batch size)} already in results.csv."""
    return {(row["method"], row["setting"], row["batch_size"]) for row in rows}


def plot_batch_size(rows):
    """The batch size the plot's measured panel shows: the largest one measured."""
    return max(row["batch_size"] for row in rows)


def pareto_front(points):
    """The (x, y) points no other point beats on both (higher is better on both), by x."""
    front, best = [], float("-inf")
    for x, y in sorted(points, key=lambda p: (-p[0], -p[1])):
        if y > best:
            front.append((x, y))
            best = y
    return sorted(front)


def write_plot(path, rows, finetuned_metric, metric_name, one_class=None):
    """pareto.png: metric vs measured speed-up (against baseline b batched, c at batch 1) and
    metric vs FLOPs speed-up; one series per method, dense baselines marked, fronts drawn over
    the points above the one-class level, that level as a line where points come near it."""
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib import pyplot

    size = plot_batch_size(rows)
    shown = [r for r in rows if r["batch_size"] == size and r["metric"] is not None]
    methods = sorted({r["method"] for r in shown if r["method"] != DENSE})
    reference = "dense, length-sorted dynamic padding" if size > 1 else "dense, unpadded"
    figure, axes = pyplot.subplots(1, 2, figsize=(12, 4.8))
    panels = (("speedup_vs_dynamic", f"measured speed-up vs {reference} (batch {size})"),
              ("flops_speedup", "FLOPs speed-up (real lengths)"))
    for axis, (key, label) in zip(axes, panels):
        front = []
        for method in methods:
            points = [(r[key], r["metric"]) for r in shown
                      if r["method"] == method and r[key] is not None]
            front += [p for p in points if _reads_input(p[1], one_class)]
            if points:
                axis.scatter(*zip(*points), label=method, s=30)
        marks = {}  # baselines at the same spot share one cross and one label
        for r in shown:
            if r["method"] == DENSE and r[key] is not None:
                spot = (round(r[key], 2), round(r["metric"], 4))
                marks.setdefault(spot, []).append(r["setting"].removeprefix("dense-"))
        for k, ((x, y), names) in enumerate(sorted(marks.items())):
            axis.scatter(x, y, marker="x", color="black", s=50)
            # Staggered: the baselines often sit close together at the same accuracy.
            axis.annotate("dense " + " = ".join(names), (x, y), fontsize=7,
                          textcoords="offset points", xytext=(4, 4 + 9 * k))
        if front:
            axis.plot(*zip(*pareto_front(front)), color="grey", linestyle="--", linewidth=1,
                      marker="o", markersize=9, markerfacecolor="none", label="Pareto front")
        axis.axhline(finetuned_metric - WITHIN, color="red", linewidth=0.8, linestyle=":",
                     label="fine-tuned - 1 point")
        # Drawn where points come near it; far below them it would only squeeze the plot.
        if one_class is not None and one_class >= min(r["metric"] for r in shown) - WITHIN:
            axis.axhline(one_class, color="grey", linewidth=0.8, linestyle="-.",
                         label="one class for every example")
        axis.set_xlabel(label)
        axis.set_ylabel(f"dev {metric_name}")
        axis.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path + ".tmp.png", dpi=110)
    pyplot.close(figure)
    os.replace(path + ".tmp.png", path)


def _reads_input(metric, one_class):
    """Whether a point's metric is above the one-class level (always, when there is none)."""
    return one_class is None or metric > one_class + 1e-9


def _close(points, finetuned_metric, one_class):
    """The points within one point of the fine-tuned model and above the one-class level."""
    return [r for r in points if r["metric"] >= finetuned_metric - WITHIN - 1e-9
            and _reads_input(r["metric"], one_class)]


def best_points(rows, finetuned_metric, one_class=None):
    """{method: (row, within)}: the fastest point (measured, at the plot's batch size) within
    one point of the fine-tuned model (within True), else the most accurate one (False)."""
    size = plot_batch_size(rows)
    result = {}
    for method in sorted({r["method"] for r in rows if r["method"] != DENSE}):
        points = [r for r in rows if r["method"] == method and r["batch_size"] == size]
        close = _close(points, finetuned_metric, one_class)
        if close:
            result[method] = (max(close, key=lambda r: r["speedup_vs_dynamic"] or 0.0), True)
        elif points:
            result[method] = (max(points, key=lambda r: r["metric"]), False)
    return result


def describe(row, within):
    """One line about a method's best point."""
    text = (f"{row['setting']} ({row['metric_name']} {row['metric']:.4f}, "
            f"{row['speedup_vs_dynamic']:.2f}x measured, {row['flops_speedup']:.2f}x FLOPs)")
    return text if within else "no point within 1 point; the most accurate is " + text


def aim_line(rows, finetuned_metric, one_class=None):
    """Whether any point reaches AIM measured speed-up within one point; if none does, which
    comes closest and what the faster points cost in accuracy."""
    size = plot_batch_size(rows)
    points = [r for r in rows if r["method"] != DENSE and r["batch_size"] == size
              and r["speedup_vs_dynamic"] is not None]
    close = _close(points, finetuned_metric, one_class)
    if not close:
        return f"No point of any method is within 1 point of the fine-tuned model (batch {size})."
    best = max(close, key=lambda r: r["speedup_vs_dynamic"])
    name = f"{best['method']} {best['setting']} ({best['speedup_vs_dynamic']:.2f}x)"
    if best["speedup_vs_dynamic"] >= AIM:
        return f"Aim ({AIM:g}x measured within 1 point, batch {size}) reached: {name}."
    faster = [r for r in points if r["speedup_vs_dynamic"] > best["speedup_vs_dynamic"]]
    why = "no point of any method is faster"
    if faster and one_class is not None:
        faster = [r for r in faster if _reads_input(r["metric"], one_class)]
        why = "every faster point is at or below the one-class level"
    if faster:
        cost = max(faster, key=lambda r: r["metric"])
        why = (f"the most accurate faster point, {cost['method']} {cost['setting']} "
               f"({cost['speedup_vs_dynamic']:.2f}x), loses "
               f"{100 * (finetuned_metric - cost['metric']):.1f} points")
    return (f"Aim ({AIM:g}x measured within 1 point, batch {size}) not reached; closest: {name}; "
            f"{why}.")


def machine_line(rows):
    """The CPU, its kernel-deciding flags and the background load over the timed rows."""
    from common.benchmark import CPU_FLAGS, machine

    m = machine()
    loads = [r["background_load"] for r in rows if r.get("background_load") is not None]
    low, high = (f"{100 * value:.0f}" for value in (min(loads), max(loads))) if loads else ("", "")
    load = (f"other processes kept {low if low == high else low + '-' + high}% of all cores "
            "busy while the points were timed" if loads else "background load not recorded")
    return (f"Machine: {m['available_cores']} of {m['nproc']} CPUs ({m['cpu']}; flags "
            f"{' '.join(m['cpu_flags']) or 'none of ' + ', '.join(CPU_FLAGS)}); {load}.")


def write_report(path, rows, settings, finetuned_metric, commands, one_class=None):
    """report.md: settings, the best point per method, the plot, the table, the commands."""
    size = plot_batch_size(rows)
    metric_name = rows[0]["metric_name"]
    lines = [f"# Speed-up comparison on {settings['task']}", "",
             f"Model `{settings['model']}`, data `{settings['data_dir']}`, budget "
             f"{settings['budget']}, max length {settings['max_length']}, "
             f"{settings['train_rows']} training rows, batch sizes "
             f"{','.join(map(str, settings['batch_sizes']))}.", "",
             f"Fine-tuned model: dev {metric_name} {finetuned_metric:.4f}."
             + ("" if one_class is None else
                f" One class for every dev example scores {metric_name} {one_class:.4f}: a "
                "point at or below that level reads nothing from its input and never counts "
                "as a best point."), "",
             machine_line(rows), "",
             f"## Best point within 1 point of the fine-tuned model (batch {size})", ""]
    for method, (row, within) in best_points(rows, finetuned_metric, one_class).items():
        lines.append(f"- **{method}**: {describe(row, within)}")
    lines += ["", aim_line(rows, finetuned_metric, one_class), "",
              "## Plot", "", "![Pareto fronts](pareto.png)", "",
              "Left: measured speed-up against the dense model with length-sorted dynamic "
              "padding (batched) or on the unpadded text (batch 1); right: FLOPs speed-up on "
              "the real lengths. Crosses: the dense baselines"
              + ("" if one_class is None else "; dash-dotted line (where points come near it): one "
                 "class for every example")
              + ".", "", "## All points", "",
              markdown_table(COLUMNS, [[_cell(row.get(k)) for k in COLUMNS] for row in rows])]
    lines += ["", "## Commands", "", "```bash"] + commands + ["```", ""]
    write_text(path, "\n".join(lines))


RECORD_COLUMNS = ["method", "setting", "batch", "dev metric", "FLOPs speed-up",
                  "speed-up vs (b) dynamic / (c) unpadded", "vs (a) padded", "within 1 point",
                  "background load"]


def _record_row(row, finetuned_metric, one_class, method_titles):
    within = "-" if row["method"] == DENSE else (
        "yes" if _close([row], finetuned_metric, one_class) else "no")
    load = row.get("background_load")
    return [method_titles.get(row["method"], row["method"]), row["setting"], row["batch_size"],
            f"{row['metric']:.4f}", f"{row['flops_speedup']:.2f}",
            f"{row['speedup_vs_dynamic']:.2f}" if row["speedup_vs_dynamic"] else "-",
            f"{row['speedup_vs_padded']:.2f}" if row.get("speedup_vs_padded") else "-", within,
            "-" if load is None else f"{100 * load:.0f}%"]


def portable(command):
    """A command line without this machine's paths: the Python executable as `python`, the
    bundled MiniLM as `$M` and the folder `$GLUE_DIR` names (when set) as `$GLUE_DIR` (the
    README's variables), the working folder's prefix dropped."""
    import sys

    from common.data import default_model_dir

    glue = os.environ.get("GLUE_DIR")
    for path, name in ((sys.executable, "python"), (default_model_dir(), "$M"),
                       *([(os.path.abspath(glue), "$GLUE_DIR")] if glue else []),
                       (os.getcwd() + os.sep, "")):
        command = command.replace(path, name)
    return command


def model_name(path):
    """A model folder's name without the machine's path (a package's `model/` folder: the
    package's name)."""
    parts = [part for part in os.path.normpath(path).split(os.sep) if part]
    return next((part for part in reversed(parts) if part != "model"), path)


def stage_minutes(output_dir):
    """Minutes from the first to the last line of stages.log (None without one)."""
    import datetime

    path = os.path.join(output_dir, "stages.log")
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as handle:
        stamps = [datetime.datetime.fromisoformat(line.split("\t", 1)[0])
                  for line in handle if line.strip()]
    return round((stamps[-1] - stamps[0]).total_seconds() / 60, 1) if stamps else None


def write_record(path, output_dir, rows, settings, finetuned_metric, commands, one_class=None,
                 method_titles=None):
    """result_file.json: the run as a result file (docs/results.md): the commands, the git commit,
    the machine and its flags, the background load each point was timed under, the date, and
    the figures: `table` (every point), `best` (per method the fastest point within one point
    of the fine-tuned model, else its most accurate), `minutes`, `aim`."""
    import time

    from common.benchmark import git_commit, machine
    from common.files import write_json

    titles = {DENSE: "dense (fine-tuned)", **(method_titles or {})}
    m = machine()
    loads = [r["background_load"] for r in rows if r.get("background_load") is not None]
    size = plot_batch_size(rows)
    dense = [r for r in rows if r["method"] == DENSE and r["batch_size"] == size]
    best = [r for r in dense if r["setting"] == r["reference"]][:1]  # the reference side
    best += [row for row, _ in best_points(rows, finetuned_metric, one_class).values()]
    write_json(path, {
        "title": f"bert-speedup-compare on {settings['task']}, budget {settings['budget']}, "
                 f"{settings['precision']}",
        "command": [portable(command) for command in commands], "commit": git_commit(),
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "machine": {"cpu": m["cpu"], "cores": m["available_cores"],
                    "cpu_flags": m["cpu_flags"]},
        "load": (f"other processes kept {100 * min(loads):.0f}-{100 * max(loads):.0f}% of the "
                 "cores busy while the points were timed (each row's share in the table)"
                 if loads else None),
        "precision": settings["precision"], "runs": 1,
        "statistic": "per point: the ratio of the dense reference's median pass time to the "
                     "point's, interleaved repeats of one run (common.benchmark)",
        "provenance": "written by bert-speedup-compare (common/compare/report.py)",
        "notes": f"model {model_name(settings['model'])}, "
                 f"{settings.get('train_rows', settings.get('train_limit'))} training rows, "
                 f"max length {settings['max_length']}; fine-tuned dev metric "
                 f"{finetuned_metric:.4f}",
        "figures": {
            "finetuned_metric": round(finetuned_metric, 4),
            "minutes": stage_minutes(output_dir),
            "aim": aim_line(rows, finetuned_metric, one_class),
            "table": {"columns": RECORD_COLUMNS,
                      "rows": [_record_row(r, finetuned_metric, one_class, titles)
                               for r in rows]},
            "best": {"columns": RECORD_COLUMNS,
                     "rows": [_record_row(r, finetuned_metric, one_class, titles)
                              for r in best]}}})
