"""`bert-speedup-compare` (tools/compare.py): every method's accuracy-vs-speed front on one task,
in one command.

    bert-speedup-compare --task sst-2 --output_dir runs/compare/sst2 --budget quick
    python tools/compare.py --model runs/sst2 --task sst-2 --data_dir $GLUE_DIR/SST-2 \
        --output_dir runs/compare/sst2-full --budget full --methods powerbert,pabee

Fine-tunes `--model` on the task (or reuses it when it is a checkpoint of this toolkit fine-tuned
on the task), then trains each method through its own command line (subprocesses; see
each method's `sweep` module for the sweep of each budget), evaluates every operating point on dev
with the task's metric and times it with `common.benchmark` against the dense baselines at each
batch size. `--bf16` / `--fp16` run every training, evaluation and timed side in that precision;
a backbone pooled by the mean (sentence-transformers MiniLM) gets PABEE `--pooling mean`.
`bert-speedup-demo` is this command with the quick budget on SST-2. Writes to `--output_dir`:

    results.csv    one row per point and batch size (common/compare/report.py), row by row
    result_file.json  the run as a result file for results/ (docs/results.md)
    pareto.png     metric vs measured and vs FLOPs speed-up, fronts drawn
    report.md      best point per method within one point of the fine-tuned model, the plot,
                   the table and every command run
    settings.json, stages.log, logs/ (one log per training), runs/ (the trained models),
                   finetune/ (unless --model is reused), data/ (the training subset)

Resumable: the same command again skips finished trainings (a DONE.json in their folder) and
rows already in results.csv; an output folder made by another command is refused.
"""
import json
import os
import shlex
import shutil
import subprocess
import sys
import time

from common import owndata, precision
from common.cli import ArgumentParser, command
from common.compare import report
from common.compare.sweep import (BUDGETS, REPO, Command, Context, data_flags, groups,
                                  precision_flag, python, script, sweeps)
from common.errors import UserError, parse_int_list
from common.validation import (check_model_files, check_not_collapsed, check_numbers,
                               refuse_collapsed)

ORDERED_METRICS = ("acc", "f1", "mcc", "spearman")  # higher is better on each
SETTINGS_FILE, STAGES_FILE, DONE_FILE = "settings.json", "stages.log", "DONE.json"
# What makes two runs the same command (settings.json).
SETTINGS_KEYS = ("task", "model", "data_dir", "data_files", "methods", "budget", "max_length",
                 "train_limit", "batch_sizes", "precision", "finetune_epochs",
                 "finetune_learning_rate")
# settings.json written before the key existed (None: the budget's recipe; a GLUE folder)
OLD_DEFAULTS = {"precision": "fp32", "finetune_epochs": None, "finetune_learning_rate": None,
                "data_files": None}
FINETUNE_BATCH = 32


def build_parser():
    p = ArgumentParser(prog="bert-speedup-compare", description=__doc__.splitlines()[0])
    p.add_argument("--model", help="model to fine-tune, or a checkpoint of this toolkit already "
                                   "fine-tuned on --task (default: the bundled MiniLM)")
    p.add_argument("--task", default="sst-2", help="GLUE task (default sst-2; own data: "
                                                   "--train_file and --validation_file)")
    p.add_argument("--data_dir", help="task folder (default: the bundled SST-2 sample)")
    p.add_argument("--output_dir", required=True, help="where results and models go")
    p.add_argument("--methods", help="comma list of the registered methods and combinations "
                                     f"({', '.join(sweeps())}; default: every method, no "
                                     "combination)")
    p.add_argument("--budget", default="quick", help="quick (minutes) or full (more points)")
    p.add_argument("--max_length", type=int, help="default: the reused checkpoint's, else the "
                                                  "task's")
    p.add_argument("--train_limit", type=int, help="train every stage on a fixed, seeded "
                   "subset of this many rows (default: 1000 with quick, all with full)")
    p.add_argument("--batch_sizes", help="timed batch sizes (default: 32 with quick, whose "
                   "batch-1 timing would compile XLA once per text length and side; 1,32 "
                   "with full)")
    p.add_argument("--finetune_epochs", type=int, help="epochs of compare's own fine-tuning "
                   "(default: the budget's, 2 with quick, 3 with full)")
    p.add_argument("--finetune_learning_rate", type=float, help="peak learning rate of "
                   "compare's own fine-tuning, batch 32 (default: the budget's, 2e-4 with "
                   "quick, 1e-4 with full)")
    p.add_argument("--allow_collapsed", action="store_true",
                   help="go on from a fine-tuned model whose dev predictions are all one class "
                        "(refused otherwise: a reused --model whose config.json records it "
                        "before anything runs, any other once its dev evaluation finds it; the "
                        "same command with the flag resumes)")
    precision.add_flags(p)  # every training, evaluation and timing side runs in it
    owndata.add_data_flags(p, test=False)  # passed on to each method in its own flag style
    return p


def parse_args(argv):
    """Parse and check every flag; nothing is written. Returns (args, settings)."""
    from common.checkpoints import check_max_length, recorded_pooling, resolve_source
    from common.data import default_data_dir, default_model_dir, split_path
    from common.tasks import get_task

    args = build_parser().parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # for the report
    own = owndata.apply_data_flags(args, default_task="sst-2")
    if own is not None and not {"train", "dev"} <= set(own.files):
        raise UserError("compare trains on --train_file and scores every point on "
                        "--validation_file; pass both")
    # Absolute: AdapLeR's commands run inside the output folder and get paths under it.
    args.output_dir = os.path.abspath(args.output_dir)
    methods = parse_methods(args.methods)
    if args.budget not in BUDGETS:
        raise UserError(f"--budget must be quick or full, got '{args.budget}'")
    task = get_task(args.task)
    if task.metric not in ORDERED_METRICS or task.layout is None or "dev" not in task.files:
        raise UserError(f"task {task.glue_name} has no labelled dev split scored by a metric "
                        f"the plot can order ({', '.join(ORDERED_METRICS)}); pick a GLUE task "
                        "with a dev set")
    if task.reader not in ("glue_tsv", owndata.READER):
        raise UserError(f"task {task.glue_name} is not in GLUE's TSV format, which every "
                        "method's command line reads; pick a GLUE task, or pass its files "
                        "with --train_file and --validation_file")
    data_dir = os.path.abspath(args.data_dir or default_data_dir())
    if own is None:
        for split in ("train", "dev"):
            split_path(task, data_dir, split)
    budget = BUDGETS[args.budget]
    batch_sizes = (parse_int_list(args.batch_sizes, "--batch_sizes") if args.batch_sizes
                   else list(budget.batch_sizes))
    check_numbers(args, rates=("finetune_learning_rate",), counts=("finetune_epochs",))
    for name, value in [("max_length", args.max_length), ("train_limit", args.train_limit)] + [
            ("batch_sizes", size) for size in batch_sizes]:
        if value is not None and value < 1:
            raise UserError(f"--{name} must be positive, got {value}")
    model = args.model or default_model_dir()
    check_model_files(model)
    source = resolve_source(model)
    sidecar = source.sidecar or {}
    reuse = (source.kind == "own" and sidecar.get("task") == task.name
             and sidecar.get("num_labels") == task.num_labels)
    max_length = args.max_length or (reuse and sidecar.get("max_length")) or task.max_length
    if max_length < 3:
        raise UserError(f"--max_length must be at least 3, got {max_length}")
    check_max_length(source.config, max_length)
    if reuse:
        check_not_collapsed(sidecar, model, args.allow_collapsed,
                            retrain=collapse_way_out(None, finetuned_here=False))
    settings = {"task": task.name, "model": os.path.abspath(model) if os.path.exists(model)
                else model, "data_dir": data_dir, "data_files": own and data_files(own),
                "methods": methods, "budget": args.budget,
                "max_length": max_length,
                "train_limit": args.train_limit or budget.train_limit,
                "batch_sizes": batch_sizes,
                "precision": precision.precision_name(args.bf16, args.fp16),
                "finetune_epochs": args.finetune_epochs,
                "finetune_learning_rate": args.finetune_learning_rate}
    check_output_dir(args.output_dir, settings)
    # A method whose heads read the pooled vector below the last layer needs what the backbone
    # was trained to pool: a sentence-transformers folder pooled by the mean (MiniLM).
    pooling = recorded_pooling(source) if source.kind != "own" else None
    return args, dict(settings, reuse=reuse, cased=not sidecar.get("lower_case", True),
                      pooling=pooling if pooling == "mean" else None)


def data_files(task):
    """What names an own-data task's training data: its spec (columns, kind, labels, metric)
    and its files (absolute)."""
    return dict(task.spec(), **{split: os.path.abspath(task.split_files(split)[0])
                                for split in ("train", "dev")})


def parse_methods(text):
    """The sweeps named in the comma list `text` (None: every registered method, no
    combination); UserError for an unknown one."""
    known = sweeps()
    if text is None:
        return [name for name in known if "+" not in name]
    methods = list(dict.fromkeys(m.strip() for m in text.split(",") if m.strip()))
    unknown = [m for m in methods if m not in known]
    if unknown or not methods:
        raise UserError(f"unknown method(s) {', '.join(unknown) or '(none given)'}; choose from "
                        f"{', '.join(known)}")
    return methods


def check_output_dir(folder, settings):
    """UserError when `folder` holds another task's results or another command's settings."""
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise UserError(f"--output_dir {folder} exists and is not a folder")
    path = os.path.join(folder, SETTINGS_FILE)
    if not os.path.isfile(path):
        if os.path.isfile(os.path.join(folder, "results.csv")):
            raise UserError(f"{folder} holds a results.csv but no {SETTINGS_FILE}; pass another "
                            "--output_dir")
        return
    with open(path, encoding="utf-8") as handle:
        old = json.load(handle)
    if old.get("task") != settings["task"]:
        raise UserError(f"{folder} holds results of task {old.get('task')}, not "
                        f"{settings['task']}; pass another --output_dir")
    old = {key: old.get(key, OLD_DEFAULTS.get(key)) for key in SETTINGS_KEYS}
    changed = [key for key in SETTINGS_KEYS if _same(key, old[key]) != _same(key, settings[key])]
    if changed:
        differences = ", ".join(f"{key} {old[key]}, not {settings[key]}" for key in changed)
        raise UserError(f"{folder} was made by another command ({differences}); rerun that "
                        "command to resume, or pass another --output_dir")


def _same(key, value):
    """A setting as compared between runs: the methods in any order (the default list was
    ordered differently in earlier versions)."""
    return sorted(value) if key == "methods" and isinstance(value, list) else value


class Progress:
    """Plain progress lines: stage k of n, what it does, overall time; and the stage log."""

    def __init__(self, output_dir, total, log):
        self.path, self.total, self.log = os.path.join(output_dir, STAGES_FILE), total, log
        self.count, self.started = 0, time.time()

    def stage(self, name, event):
        if event in ("start", "skipped"):
            self.count += 1
        minutes = (time.time() - self.started) / 60
        self.log(f"[{self.count}/{self.total}] {name}: {event} ({minutes:.1f} min elapsed)")
        with open(self.path, "a", encoding="utf-8") as out:
            out.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S')}\t{name}\t{event}\n")


def command_text(command):
    text = shlex.join(command.argv)
    return f"(cd {shlex.quote(command.cwd)} && {text})" if command.cwd else text


def train(command, output_dir, progress):
    """Run one training command unless its DONE marker exists; returns its seconds."""
    marker = os.path.join(command.folder, DONE_FILE)
    if os.path.isfile(marker):
        progress.stage(command.label, "skipped")
        with open(marker, encoding="utf-8") as handle:
            return json.load(handle)["seconds"]
    progress.stage(command.label, "start")
    if os.path.isdir(command.folder):  # a killed run's leftovers
        shutil.rmtree(command.folder)
    os.makedirs(command.folder)
    if command.cwd:
        os.makedirs(command.cwd, exist_ok=True)
    if command.prepare:
        command.prepare()
    started = time.time()
    log_path = os.path.join(output_dir, "logs", command.label.replace(" ", "_") + ".log")
    os.makedirs(os.path.dirname(log_path), exist_ok=True)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(  # each command quiets TensorFlow itself
        [REPO] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
    with open(log_path, "w", encoding="utf-8") as out:
        out.write(command_text(command) + "\n")
        out.flush()
        code = subprocess.call(command.argv, stdout=out, stderr=subprocess.STDOUT,
                               cwd=command.cwd or REPO, env=env)
    if code != 0:
        with open(log_path, encoding="utf-8", errors="replace") as handle:
            lines = [line.strip() for line in handle if line.strip()]
        reason = next((line for line in reversed(lines) if line.startswith("error:")), lines[-1])
        raise UserError(f"{command.label} failed (exit code {code}): {reason} (log: {log_path})")
    seconds = time.time() - started
    with open(marker + ".tmp", "w", encoding="utf-8") as out:
        json.dump({"seconds": seconds, "argv": command.argv}, out)
    os.replace(marker + ".tmp", marker)
    progress.stage(command.label, f"done in {seconds:.0f} s")
    return seconds


def training_data(settings, output_dir):
    """The folder every training reads: the data folder itself, or with a training limit a
    copy holding a seeded subset of its train rows (header kept) and its full dev file.
    Own data: the training file, or its subset as a JSON lines file named as the training file
    (so the task keeps its name); the dev file stays where it is. Sets settings['train_rows']."""
    import numpy as np
    from common.data import split_path
    from common.tasks import get_task

    task, limit = get_task(settings["task"]), settings["train_limit"]
    if settings["data_files"]:
        return own_training_data(task, settings, output_dir)
    train_path = split_path(task, settings["data_dir"], "train")
    with open(train_path, encoding="utf-8") as handle:
        lines = handle.readlines()
    header, rows = (lines[:1], lines[1:]) if task.layout.header else ([], lines)
    settings["train_rows"] = min(len(rows), limit or len(rows))
    if limit is None or limit >= len(rows):
        return settings["data_dir"]
    folder = os.path.join(output_dir, "data", task.folder)
    os.makedirs(folder, exist_ok=True)
    keep = np.sort(np.random.default_rng(0).permutation(len(rows))[:limit])
    with open(os.path.join(folder, os.path.basename(train_path)), "w", encoding="utf-8") as out:
        out.writelines(header + [rows[i] for i in keep])
    dev_path = split_path(task, settings["data_dir"], "dev")
    shutil.copyfile(dev_path, os.path.join(folder, os.path.basename(dev_path)))
    return folder


def own_training_data(task, settings, output_dir):
    """`training_data` of an own-data task: the training file, or its seeded subset; UserError
    when the subset lacks one of the file's labels (the label set is the training file's)."""
    import numpy as np
    from common.data import read_table

    files, limit = settings["data_files"], settings["train_limit"]
    table = read_table(files["train"])
    settings["train_rows"] = min(len(table), limit or len(table))
    if limit is None or limit >= len(table):
        return files["train"]
    keep = np.sort(np.random.default_rng(0).permutation(len(table))[:limit])
    subset = table.iloc[keep]
    if task.labels:
        lacking = set(task.labels) - set(map(owndata.label_name, subset[files["label_column"]]))
        if lacking:
            raise UserError(f"the {limit} training rows --train_limit keeps lack the label(s) "
                            f"{', '.join(sorted(lacking))} of {files['train']}; pass a larger "
                            "--train_limit")
    parent, name = os.path.split(files["train"])
    folder = os.path.join(output_dir, "data", os.path.basename(parent))
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, os.path.splitext(name)[0] + ".jsonl")
    subset.to_json(path + ".tmp", orient="records", lines=True, force_ascii=False)
    os.replace(path + ".tmp", path)
    return path


def finetune_recipe(settings):
    """(epochs, peak learning rate) of compare's own fine-tuning: the flags, else the budget's."""
    budget = BUDGETS[settings["budget"]]
    return (settings["finetune_epochs"] or budget.finetune_epochs,
            settings["finetune_learning_rate"] or budget.finetune_learning_rate)


def collapse_way_out(settings, finetuned_here):
    """How to get a model that reads its input, in compare's own terms (`finetuned_here`:
    compare fine-tuned it itself, with `settings`' recipe)."""
    if not finetuned_here:
        return ("fine-tune --model again (bert-speedup-finetune with more --epochs or another "
                "--learning_rate) and pass its --output_dir as --model")
    epochs, learning_rate = finetune_recipe(settings)
    data = ("the same --train_file, --validation_file and column flags" if
            settings.get("data_files") else f"--task {settings['task']} --data_dir <data>")
    return (f"fine-tune it differently in a new --output_dir (this run: {epochs} epochs at "
            f"{learning_rate:g}; e.g. --finetune_epochs {epochs + 1} --finetune_learning_rate "
            f"{learning_rate / 2:g}), or fine-tune with bert-speedup-finetune {data} "
            "--output_dir <folder> and pass that folder as --model")


def finetune_command(settings, task, data_dir, output_dir):
    folder = os.path.join(output_dir, "finetune")
    epochs, learning_rate = finetune_recipe(settings)
    argv = python(script("tools", "finetune.py"), "--model", settings["model"],
                  *data_flags(task, data_dir, "--task", "--data_dir"), "--output_dir", folder,
                  "--epochs", epochs, "--max_length", settings["max_length"],
                  "--learning_rate", learning_rate, "--batch_size", FINETUNE_BATCH)
    return Command("fine-tuning", argv + precision_flag(settings["precision"]), folder)


def load_finetuned(path, settings):
    """(fine-tuned SequenceClassifier, its dev metrics, config, dev arrays)."""
    from common.checkpoints import load_classifier
    from common.data import encode_examples, read_split
    from common.tasks import get_task
    from common.tokenization import load_tokenizer
    from common.training import evaluate_classifier

    task = get_task(settings["task"])
    model, source, _ = load_classifier(path, task.num_labels, max_length=settings["max_length"])
    tokenizer = load_tokenizer(source.folder, cased=settings["cased"])
    dev = encode_examples(tokenizer, read_split(task, settings["data_dir"], "dev"),
                          settings["max_length"])
    scores = evaluate_classifier(model, task, dev, 64)
    return model, scores, source.config, dev


def measure(points, wanted, batch_size, repeats):
    """Time the dense baselines and the points' sides of the settings in `wanted` together;
    returns ({side name or setting: harness row}, the sides, seconds). A setting with several
    candidate sides (e.g. XLA and one graph) gets the row of the fastest, as the dense
    reference is the faster of its two; its `timed_as` names it. The one place compare times
    anything: the sides come from the methods' timing modules, all timing is
    `common.benchmark`."""
    import dataclasses

    from common import benchmark

    started = time.time()
    dense, methods = points.sides(batch_size)
    sides, candidates = list(dense), {}  # {setting: {timed name: the side's own name}}
    for setting, found in methods.items():
        if setting in wanted:
            candidates[setting] = {f"{setting} [{side.name}]": side.name for side in found}
            sides += [dataclasses.replace(side, name=name)
                      for side, name in zip(found, candidates[setting])]
    rows, measurement = benchmark.run_sides(sides, repeats=repeats, warmup=1,
                                            references=benchmark.REFERENCES,
                                            headline=benchmark.headline(batch_size))
    load = measurement["environment"]["background_cpu_share"]
    named = {row["side"]: dict(row, background_load=load) for row in rows}
    timed = {side.name: named[side.name] for side in dense}
    for setting, names in candidates.items():
        fastest = max(names, key=lambda name: named[name]["speedup"])
        timed[setting] = dict(named[fastest], timed_as=names[fastest])
    return timed, sides, time.time() - started


class DensePoints:
    """The fine-tuned model itself: its sides are the baselines."""

    def __init__(self, model, timing):
        self.model, self.timing = model, timing

    def sides(self, batch_size):
        from common import benchmark
        return benchmark.dense_sides(self.model, self.timing, batch_size), {}


def result_row(task, method, setting, metric, flops_speedup, timed, batch_size, seconds,
               detail=None):
    head = "unpadded" if batch_size == 1 else "dynamic"
    return {"task": task.name, "method": method, "setting": setting,
            "metric_name": task.metric, "metric": metric, "flops_speedup": flops_speedup,
            "speedup_vs_padded": timed.get("speedup_vs_padded"),
            "speedup_vs_dynamic": timed.get(f"speedup_vs_{head}"),
            "reference": timed.get(f"reference_{head}"), "batch_size": batch_size,
            "ms_per_example": timed["ms_per_example"], "seconds": seconds, "detail": detail,
            "background_load": timed.get("background_load")}


def dense_flops_speedup(config, num_labels, timing, side):
    """FLOPs of the timed rows at their real lengths over those of the side as it runs them."""
    from common import benchmark
    from common.data import real_lengths
    from common.flops import vanilla_flops

    real = sum(vanilla_flops(config, int(n), num_labels) for n in real_lengths(timing))
    run = sum(vanilla_flops(config, int(n), num_labels)
              for n in benchmark.item_lengths(side.items))
    return real / run


def baseline_rows(results, model, context, settings, metric):
    """The dense baselines' rows at every batch size not yet in results.csv."""
    done = {key[2] for key in report.done_keys(report.read_rows(results))
            if key[0] == report.DENSE}
    for size in settings["batch_sizes"]:
        if size in done:
            continue
        timed, sides, seconds = measure(DensePoints(model, context.timing), (), size,
                                        BUDGETS[settings["budget"]].repeats)
        report.append_rows(results, [result_row(
            context.task, report.DENSE, side.name, metric,
            dense_flops_speedup(context.config, context.task.num_labels, context.timing, side),
            timed[side.name], size, seconds / len(sides)) for side in sides])


def group_rows(results, group, context, settings, missing, seconds, log):
    """Evaluate a group's points and time the `missing` ones ({batch size: settings})."""
    task, started = context.task, time.time()
    points = group.load(context)
    evaluated = points.evaluate()
    share = (seconds + time.time() - started) / len(group.settings)
    for size, wanted in missing.items():
        if not wanted:
            continue
        timed, _, measured = measure(points, wanted, size, BUDGETS[settings["budget"]].repeats)
        for setting in wanted:
            metric, flops_speedup, detail = evaluated[setting]
            detail = f"{detail}; timed as {timed[setting]['timed_as']}"
            report.append_rows(results, [result_row(
                task, group.method, setting, metric, flops_speedup, timed[setting], size,
                share + measured / len(wanted), detail)])
            log(f"  {group.method} {setting} batch {size}: {task.metric} {metric:.4f}, "
                f"{timed[setting]['speedup']:.2f}x measured, {flops_speedup:.2f}x FLOPs")


def restart_if_maps_run_low(log):
    """Batch-1 timing XLA-compiles every side once per text length, and XLA keeps that code for
    the life of the process (`common.inference.memory_maps`): past a quarter of the kernel's
    limit, the same command starts again in a fresh process, which resumes (every finished
    stage and row is skipped)."""
    from common.inference import memory_maps

    maps = memory_maps()
    if maps and maps[0] > maps[1] // 4:
        log(f"restarting in a fresh process to free XLA's compiled code ({maps[0]} of the "
            f"kernel's {maps[1]} memory maps in use); the run resumes")
        sys.stdout.flush()
        sys.stderr.flush()
        os.execv(sys.executable, sys.orig_argv)


def run(args, settings, log=print, restartable=False):
    """Every stage in order, skipping what an earlier run of the same command finished;
    `restartable` (a command line of its own): see `restart_if_maps_run_low`. Returns
    results.csv's rows and the dev metric of answering one class for every example."""
    from common.checkpoints import resolve_source
    from common.metrics import one_class_metric
    from common.tasks import get_task

    task, budget, output_dir = get_task(settings["task"]), BUDGETS[settings["budget"]], \
        args.output_dir
    precision.set_precision(settings["precision"])
    data_dir = training_data(settings, output_dir)  # refuses a subset lacking a label first
    os.makedirs(output_dir, exist_ok=True)
    settings_path = os.path.join(output_dir, SETTINGS_FILE)
    if not os.path.isfile(settings_path):
        with open(settings_path + ".tmp", "w", encoding="utf-8") as out:
            json.dump({k: settings[k] for k in SETTINGS_KEYS}, out, indent=2)
        os.replace(settings_path + ".tmp", settings_path)
    results = os.path.join(output_dir, "results.csv")
    if settings["data_files"]:  # every training reads the subset and scores on the dev file
        task = task.with_files(train=data_dir, dev=settings["data_files"]["dev"])
        data_dir = os.path.dirname(data_dir)
    commands = ["python tools/compare.py " + shlex.join(args.argv)]
    finetune = None if settings["reuse"] else finetune_command(settings, task, data_dir,
                                                               output_dir)
    finetuned = settings["model"] if finetune is None else finetune.folder
    # Dev data and scores join the context once the fine-tuned model exists.
    context = Context(task=task, finetuned=finetuned, cased=settings["cased"],
                      config=resolve_source(settings["model"]).config,
                      max_length=settings["max_length"], train_dir=data_dir,
                      runs=os.path.join(output_dir, "runs"), budget=budget, dev=None,
                      finetuned_scores=None, timing=None, allow_collapsed=args.allow_collapsed,
                      precision=settings["precision"], pooling=settings["pooling"], log=log)
    planned = [group for method in settings["methods"] for group in groups(method, context)]
    trainings = {c.folder for group in planned for c in group.commands}
    progress = Progress(output_dir, 2 + len(trainings) + len(planned) + (finetune is not None),
                        log)
    if finetune is not None:
        train(finetune, output_dir, progress)
        commands.append(command_text(finetune))
    else:
        log(f"reusing {finetuned}: a checkpoint fine-tuned on {task.glue_name}")

    progress.stage("fine-tuned model on dev", "start")
    model, scores, context.config, context.dev = load_finetuned(finetuned, settings)
    context.finetuned_scores = scores
    # Every method would refuse a model that predicts one class for all of dev: stop before
    # them (a fine-tuning of compare's own is kept; the command with the flag resumes).
    refuse_collapsed(scores.get("collapsed"), finetuned, args.allow_collapsed, warn=log,
                     retrain=collapse_way_out(settings, finetune is not None))
    context.timing = {k: v[:budget.timing_examples] for k, v in context.dev.items()}
    metric = scores[task.metric]
    one_class = one_class_metric(task, context.dev["labels"])
    progress.stage("fine-tuned model on dev", f"{task.metric} {metric:.4f}")

    def write_outputs():
        rows = report.read_rows(results)
        report.write_plot(os.path.join(output_dir, "pareto.png"), rows, metric, task.metric,
                          one_class)
        report.write_report(os.path.join(output_dir, "report.md"), rows, settings, metric,
                            commands, one_class)
        report.write_record(os.path.join(output_dir, report.RECORD_FILE), output_dir, rows,
                            settings, metric, commands, one_class,
                            {name: sweep.title for name, sweep in sweeps().items()})

    progress.stage("dense baselines", "start")
    baseline_rows(results, model, context, settings, metric)
    progress.stage("dense baselines", "done")
    trained = set()  # a command shared by groups (AdapLeR's saliencies) runs and counts once
    for group in planned:
        seconds = 0.0
        for training in group.commands:
            if training.folder not in trained:
                trained.add(training.folder)
                seconds += train(training, output_dir, progress)
                commands.append(command_text(training))
        label = f"{group.method} {group.name}: points"
        done = report.done_keys(report.read_rows(results))
        missing = {size: [s for s in group.settings if (group.method, s, size) not in done]
                   for size in settings["batch_sizes"]}
        if not any(missing.values()):
            progress.stage(label, "skipped")
            continue
        if restartable:
            restart_if_maps_run_low(log)
        progress.stage(label, "start")
        group_rows(results, group, context, settings, missing, seconds, log)
        progress.stage(label, "done")
        write_outputs()
    write_outputs()
    log(f"wrote {results}, {os.path.join(output_dir, 'pareto.png')}, "
        f"{os.path.join(output_dir, 'report.md')} and "
        f"{os.path.join(output_dir, report.RECORD_FILE)}")
    return report.read_rows(results), one_class


@command
def main(argv=None):
    args, settings = parse_args(argv)
    # Only a process whose own command line this is may start itself again.
    run(args, settings, restartable=argv == sys.argv[1:])

