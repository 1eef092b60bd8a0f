"""The methods as `bert-speedup-compare` sweeps them: how each one trains (its own command line,
run in a subprocess, flags as in the README), and how its operating points are evaluated on dev
and timed (through the methods' public model APIs and `common.benchmark`).

A `Group` is one trained model and the operating points read from it:

    powerbert   one group per LAMBDA (configuration search + re-training from the fine-tuned
                model); one point each, Extract with the learned retention
    adapler     one group per PHI (saliencies of the fine-tuned model, once; then training);
                points: the learned per-layer thresholds eta shifted by each offset at inference
    pabee       one group (training from the fine-tuned model); points: every patience 1..L-1

`Group.load(context)` returns a `Points` object: `evaluate()` -> {setting: (metric, FLOPs
speed-up on the real lengths, detail)} and `sides(batch_size)` -> (the dense baselines of the
same backbone and head without the method, {setting: [candidate sides]}), built by the
methods' timing modules for `common.benchmark`; compare counts the fastest candidate of each
setting (PoWER-BERT has two when batched: XLA per shape and one graph).
"""
import dataclasses
import json
import os
import shutil
import sys
from typing import Callable

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
METHODS = ("powerbert", "adapler", "pabee", "powerbert+pabee")
SEED = 42  # AdapLeR's DATA_SEED and PABEE's --seed
ADAPLER_SAVE_NAME = "compare"


@dataclasses.dataclass(frozen=True)
class Budget:
    finetune_epochs: int
    finetune_learning_rate: float  # peak AdamW learning rate of the fine-tuning (batch 32)
    method_epochs: int
    train_limit: int | None  # default training subset (None: every row)
    lambdas: tuple  # PoWER-BERT LAMBDA values
    phis: tuple  # AdapLeR PHI values
    eta_offsets: tuple  # added to AdapLeR's learned eta at inference
    timing_examples: int  # dev rows every point is timed on
    repeats: int
    batch_sizes: tuple  # timed batch sizes unless --batch_sizes says otherwise


# quick (the demo, about 10 minutes on 2 CPU cores with MiniLM): few points, one epoch of each
# method on a 1,000-row training subset, timed at batch 32 only.
BUDGETS = {
    "quick": Budget(finetune_epochs=2, finetune_learning_rate=2e-4, method_epochs=1,
                    train_limit=1000, lambdas=(0.0002,), phis=(0.05,),
                    eta_offsets=(-0.2, 0.0, 0.1), timing_examples=64, repeats=3,
                    batch_sizes=(32,)),
    "full": Budget(finetune_epochs=3, finetune_learning_rate=1e-4, method_epochs=2,
                   train_limit=None,
                   lambdas=(0.0001, 0.0002, 0.0005, 0.001, 0.002, 0.005), phis=(0.01, 0.05, 0.2),
                   eta_offsets=(-0.1, 0.0, 0.1, 0.2, 0.3, 0.5), timing_examples=256, repeats=5,
                   batch_sizes=(1, 32)),
}
POWERBERT = {"batch_size": 32, "lr_bert": 5e-5, "lr_soft_extract": 0.1}
ADAPLER = {"gamma": 0.005, "batch_size": 4, "learning_rate": 2e-5, "head_learning_rate": 1e-3,
           "eta_learning_rate": 3e-3}
PABEE = {"batch_size": 32, "learning_rate": 1e-4}
EVAL_BATCH = 64


@dataclasses.dataclass
class Context:
    """What every method needs: the task, the fine-tuned checkpoint and its sidecar, data."""
    task: object  # common.tasks.Task
    finetuned: str  # checkpoint folder of the fine-tuned model
    cased: bool
    config: object  # BertConfig of the backbone
    max_length: int
    train_dir: str  # data folder the trainings read (the training subset, full dev)
    runs: str  # output_dir/runs
    budget: Budget
    dev: dict  # encoded full dev split (labels included)
    finetuned_scores: dict  # dev metrics of the fine-tuned model
    timing: dict  # the first `timing_examples` dev rows
    allow_collapsed: bool = False  # --allow_collapsed: pass it on to every method
    precision: str = "fp32"  # --bf16 / --fp16: every training runs in it
    pabee_pooling: str | None = None  # "mean" for a backbone trained with mean pooling

    def collapsed_flag(self, flag):
        """[flag] when the methods may start from a collapsed fine-tuned model, else []."""
        return [flag] if self.allow_collapsed else []

    def precision_flag(self, upper=False):
        """[--bf16] / [--fp16] (upper-case on PoWER-BERT's and AdapLeR's command lines), or []."""
        return precision_flag(self.precision, upper)


@dataclasses.dataclass
class Command:
    """One training run of a method's command line. `folder` holds its DONE marker (and, for
    most methods, its output); `prepare()` runs before it."""
    label: str
    argv: list
    folder: str
    cwd: str | None = None
    prepare: Callable | None = None


@dataclasses.dataclass
class Group:
    method: str
    name: str
    commands: list
    settings: list
    load: Callable  # context -> Points


def precision_flag(precision, upper=False):
    """[--bf16] / [--fp16] for 'bf16' / 'fp16' (upper-case when `upper`), [] for 'fp32'."""
    return [] if precision == "fp32" else [f"--{precision.upper() if upper else precision}"]


def python(*args):
    return [sys.executable, *map(str, args)]


def groups(method, context):
    """The training groups of `method`, each with the operating points it sweeps."""
    return {"powerbert": powerbert_groups, "adapler": adapler_groups, "pabee": pabee_groups,
            "powerbert+pabee": powerbert_pabee_groups}[method](context)


def _split_sides(all_sides, names):
    """(the dense sides, the sides named in `names`) of a timing module's sides."""
    return ([side for side in all_sides if side.name.startswith("dense")],
            [side for side in all_sides if side.name in names])


# ---------------------------------------------------------------- PoWER-BERT

def powerbert_groups(context):
    task, budget = context.task, context.budget
    task_config = os.path.join(context.runs, "powerbert", "task_config.json")

    def write_task_config():
        with open(task_config, "w", encoding="utf-8") as out:
            json.dump({task.name: {"seq_len": context.max_length,
                                   "num_classes": task.num_labels}}, out)

    result = []
    for lam in budget.lambdas:
        setting = f"LAMBDA={lam:g}"
        folder = os.path.join(context.runs, "powerbert", setting)
        argv = python("-m", "powerbert", "--TASK", task.name, "--CHECKPOINT_PATH",
                      context.finetuned, "--SKIP_FINETUNE", "--DATA_DIR", context.train_dir,
                      "--TASK_CONFIG_PATH", task_config, "--EPOCHS", budget.method_epochs,
                      "--BATCH_SIZE", POWERBERT["batch_size"], "--LR_BERT", POWERBERT["lr_bert"],
                      "--LR_SOFT_EXTRACT", POWERBERT["lr_soft_extract"], "--LAMBDA", lam,
                      "--OUTPUT_DIR", folder) + (["--CASED"] if context.cased else []) + (
                          context.collapsed_flag("--ALLOW_COLLAPSED")) + (
                          context.precision_flag(upper=True))
        result.append(Group("powerbert", setting,
                            [Command(f"powerbert {setting}", argv, folder,
                                     prepare=write_task_config)],
                            [setting, f"{setting} length-scaled"],
                            lambda ctx, folder=folder, setting=setting:
                            PowerBertPoints(ctx, folder, setting)))
    return result


class PowerBertPoints:
    """The retrained model of one LAMBDA, twice: Extract keeping min(k_l, n) word-vectors in a
    batch of width n, and the length-scaled retention keeping ceil(k_l n / N) (same weights)."""

    def __init__(self, context, folder, setting):
        from common.checkpoints import load_backbone_weights, resolve_source
        from powerbert import pipeline

        self.context = context
        retrained = resolve_source(os.path.join(folder, pipeline.RETRAINED))
        self.retention = retrained.sidecar["method_state"]["retention_config"]
        labels = context.task.num_labels
        self.vanilla = pipeline.build_plain(context.config, labels, context.max_length)
        load_backbone_weights(self.vanilla, resolve_source(context.finetuned))
        self.models = {}
        for name, scaled in ((setting, False), (f"{setting} length-scaled", True)):
            model = pipeline.build_powerbert(context.config, labels, context.max_length,
                                             retention=self.retention, length_scaled=scaled)
            self.models[name] = pipeline.load_stage(model, retrained.folder)

    def evaluate(self):
        from common.benchmark import dynamic_batches, padded_batches
        from common.flops import speedup
        from common.training import evaluate_classifier
        from powerbert.speed import items_flops, scaling_length

        ctx, result = self.context, {}
        for setting, model in self.models.items():
            metrics = evaluate_classifier(model, ctx.task, ctx.dev, EVAL_BATCH)
            # FLOPs of the batches the metric came from (a length-scaled retention keeps more
            # word-vectors in wider batches), every row on its real length.
            batches = (padded_batches(ctx.dev, EVAL_BATCH) if model.pads_to_max_length
                       else dynamic_batches(ctx.dev, EVAL_BATCH)[0])
            scaled = scaling_length(model)
            vanilla, method = items_flops(ctx.config, self.retention, batches,
                                          ctx.task.num_labels, scaled)
            detail = "retention " + ",".join(map(str, self.retention)) + (
                f", scaled by batch length / {scaled}" if scaled else "")
            result[setting] = (metrics[ctx.task.metric], speedup(vanilla, method), detail)
        return result

    def sides(self, batch_size):
        """Batched: XLA per batch shape and one graph, the faster counts (as for the dense
        reference); batch 1: XLA per text length."""
        from powerbert.speed import sides

        names = (("powerbert-unpadded",) if batch_size == 1
                 else ("powerbert-dynamic", "powerbert-dynamic-graph"))
        dense, methods = None, {}
        for setting, model in self.models.items():
            found, methods[setting] = _split_sides(
                sides(self.vanilla, model, self.context.timing, batch_size), names)
            dense = dense or found
        return dense, methods


# ---------------------------------------------------------------- AdapLeR

def _adapler_dirs(context):
    from adapler import paths
    return paths.TaskDirs(context.task.name, SEED,
                          root=os.path.join(context.runs, "adapler", paths.ROOT))


def adapler_groups(context):
    """Stage A is the fine-tuned model itself: it is placed in AdapLeR's folder tree as the one
    fine-tuned epoch (with its ft_logs.json entry), so stages B and C start from the same model
    as every other method."""
    from adapler import paths
    from adapler.stages import selection_metric

    task, budget = context.task, context.budget
    cwd = os.path.join(context.runs, "adapler")
    dirs = _adapler_dirs(context)
    common_flags = ["--TASK", task.name, "--MAX_LENGTH", context.max_length, "--DATA_SEED",
                    SEED, "--MODEL_NAME_OR_PATH", context.finetuned, "--DATA_DIR",
                    context.train_dir, *context.collapsed_flag("--ALLOW_COLLAPSED"),
                    *context.precision_flag(upper=True)]

    def place_finetuned():
        target = dirs.finetuned(1)
        if os.path.isdir(target):
            shutil.rmtree(target)
        shutil.copytree(context.finetuned, target)
        score = context.finetuned_scores[selection_metric(task)]
        os.makedirs(dirs.logs, exist_ok=True)
        with open(dirs.ft_logs, "w", encoding="utf-8") as out:
            json.dump([{"validation": {selection_metric(task): score}}], out)

    saliencies = Command("adapler saliencies",
                         python(os.path.join(REPO, "tools", "store_saliencies.py"),
                                *common_flags, "--BATCH_SIZE", 32),
                         os.path.join(cwd, "saliencies"), cwd=cwd, prepare=place_finetuned)
    result = []
    for phi in budget.phis:
        name = f"PHI={phi:g}"
        argv = python(os.path.join(REPO, "run_files", "run_glue_w_lr.py"), *common_flags,
                      "--SAVE_NAME", ADAPLER_SAVE_NAME, "--GAMMA", ADAPLER["gamma"], "--PHI", phi,
                      "--EPOCHS", budget.method_epochs, "--BATCH_SIZE", ADAPLER["batch_size"],
                      "--LEARNING_RATE", ADAPLER["learning_rate"], "--HEAD_LEARNING_RATE",
                      ADAPLER["head_learning_rate"], "--ETA_LEARNING_RATE",
                      ADAPLER["eta_learning_rate"], "--INITIAL_MODEL_PATH", "")
        model_path = dirs.adapler_model(paths.stem(ADAPLER_SAVE_NAME, ADAPLER["gamma"], phi))
        settings = {f"{name} eta{offset:+g}": offset for offset in budget.eta_offsets}
        result.append(Group("adapler", name,
                            [saliencies, Command(f"adapler {name}", argv,
                                                 os.path.join(cwd, name), cwd=cwd)],
                            list(settings), lambda ctx, path=model_path, settings=settings:
                            AdapLeRPoints(ctx, path, settings)))
    return result


class AdapLeRPoints:
    """One model per eta offset (same weights, eta + offset, at least 0)."""

    def __init__(self, context, model_path, offsets):
        from adapler.stages import load_for_evaluation

        self.context, self.models = context, {}
        for setting, offset in offsets.items():
            # Notes on the checkpoint (e.g. it missed the checkpoint rule) are printed once.
            model, _ = load_for_evaluation(model_path, context.task, context.max_length,
                                           lr_model=True,
                                           log=print if not self.models else lambda line: None)
            model.eta.assign(np.maximum(model.eta.numpy() + offset, 0.0).astype(np.float32))
            self.models[setting] = model

    def evaluate(self):
        from adapler.evaluation import evaluate

        ctx, result = self.context, {}
        for setting, model in self.models.items():
            scores = evaluate(model, ctx.task, ctx.dev, EVAL_BATCH)
            detail = "eta " + ",".join(f"{v:.3f}" for v in model.eta.numpy())
            result[setting] = (scores["metrics"][ctx.task.metric], scores["speedup"], detail)
        return result

    def sides(self, batch_size):
        from adapler.benchmark import sides

        name = "adapler-unpadded" if batch_size == 1 else "adapler-dynamic"
        dense, methods = None, {}
        for setting, model in self.models.items():
            found, methods[setting] = _split_sides(sides(model, self.context.timing,
                                                         batch_size), (name,))
            dense = dense or found
        return dense, methods


# ---------------------------------------------------------------- PABEE

def pabee_groups(context, method="pabee", start=None, before=()):
    """PABEE trained once from `start` (default the fine-tuned model) after the commands
    `before`; every patience 1..L-1 is a point."""
    task, budget = context.task, context.budget
    folder = os.path.join(context.runs, method, "model")
    argv = python(os.path.join(REPO, "run_files", "run_glue_with_pabee.py"), "--model_type",
                  context.config.model_type, "--model_name_or_path",
                  start or context.finetuned, "--task_name", task.name, "--do_train", "--data_dir",
                  context.train_dir, "--max_seq_length", context.max_length,
                  "--per_gpu_train_batch_size", PABEE["batch_size"], "--learning_rate",
                  PABEE["learning_rate"], "--num_train_epochs", budget.method_epochs,
                  "--logging_steps", 0, "--save_steps", 0, "--seed", SEED,
                  "--output_dir", folder) + ([] if context.cased else ["--do_lower_case"]) + (
                      context.collapsed_flag("--allow_collapsed")) + context.precision_flag() + (
                          ["--pooling", context.pabee_pooling] if context.pabee_pooling else [])
    settings = {f"patience={t}": t for t in range(1, context.config.num_hidden_layers)}
    return [Group(method, "model", [*before, Command(method, argv, folder)], list(settings),
                  lambda ctx: PabeePoints(ctx, folder, settings))]


def powerbert_pabee_groups(context):
    """PABEE on the PoWER-BERT model of the budget's largest LAMBDA (the most word-vectors
    removed; trained once, shared with the powerbert method's point of the same LAMBDA)."""
    from powerbert import pipeline

    powerbert = powerbert_groups(context)[-1]
    folder = powerbert.commands[-1].folder
    return pabee_groups(context, "powerbert+pabee", os.path.join(folder, pipeline.RETRAINED),
                        before=powerbert.commands)


class PabeePoints:
    """Every patience from the per-layer logits of one pass over dev (the exit rule reads only
    those), timed through the early-exit engine (batch 1: each text alone, unpadded, the exit
    loop XLA-compiled per text length like the dense reference and PoWER-BERT's batch-1 side;
    batched: per-example exit on length-sorted, dynamically padded batches, one graph)."""

    def __init__(self, context, folder, patience):
        from pabee.patience import EarlyExitEngine, ExitRule
        from pabee.pipeline import load_for_eval

        self.context = context
        self.model = load_for_eval(folder, context.task)
        self.engine = EarlyExitEngine(self.model)
        self.single_engine = EarlyExitEngine(self.model, jit_compile=True)
        regression = context.task.is_regression
        # Regression exits on outputs closer than 0.1 (the value PABEE's README suggests).
        self.rules = {setting: ExitRule(t, 0.1 if regression else 0.0, regression)
                      for setting, t in patience.items()}

    def evaluate(self):
        from common.data import real_lengths
        from common.metrics import compute_metrics
        from pabee.patience import INPUT_KEYS, exit_statistics, map_batches, simulate

        ctx, model = self.context, self.model
        features = {key: ctx.dev[key] for key in INPUT_KEYS}
        layer_logits = np.concatenate(map_batches(self.engine.all_layers, features, EVAL_BATCH),
                                      axis=1)
        result = {}
        for setting, rule in self.rules.items():
            exits = simulate(layer_logits, rule)
            predictions = (exits.logits[:, 0] if ctx.task.is_regression
                           else np.argmax(exits.logits, -1))
            metric = compute_metrics(ctx.task, predictions, ctx.dev["labels"])[ctx.task.metric]
            stats = exit_statistics(model.config, exits.exit_layers, real_lengths(ctx.dev),
                                    model.num_labels, model.retention)
            result[setting] = (metric, stats["flops_ratio"],
                               f"avg exit layer {stats['avg_exit_layer']:.2f} of "
                               f"{model.num_layers}")
        return result

    def sides(self, batch_size):
        from pabee.speed import side_name, sides

        patience = {setting: rule.patience for setting, rule in self.rules.items()}
        engine = self.single_engine if batch_size == 1 else self.engine
        found = sides(engine, self.context.timing, batch_size,
                      {rule.patience: rule for rule in self.rules.values()})
        dense = [side for side in found if side.name.startswith("dense")]
        named = {side.name: side for side in found}
        return dense, {setting: [named[side_name(batch_size, t)]]
                       for setting, t in patience.items()}
