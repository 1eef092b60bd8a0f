"""PABEE's operating points for `bert-speedup-compare` (`common.compare.sweep`): PABEE trained
once from the fine-tuned model, every patience 1..L-1 a point; and the combination
`powerbert+pabee`, PABEE trained on the PoWER-BERT model of the budget's largest LAMBDA.
"""
import os

import numpy as np

from common.compare.sweep import EVAL_BATCH, SEED, Command, Group, Sweep, python, script

TRAINING = {"batch_size": 32, "learning_rate": 1e-4}


def pabee_groups(context, method="pabee", start=None, before=()):
    """PABEE trained once from `start` (default the fine-tuned model) after the commands
    `before`; every patience 1..L-1 is a point."""
    budget = context.budget
    if context.pooling == "mean":
        context.log("PABEE: --pooling mean (the sentence-transformers pooling config of the "
                    "backbone says mean; its [CLS] vector below the last layer carries little "
                    "of the input)")
    folder = os.path.join(context.runs, method, "model")
    argv = python(script("run_files", "run_glue_with_pabee.py"), "--model_type",
                  context.config.model_type, "--model_name_or_path",
                  start or context.finetuned, *context.data_flags("--task_name", "--data_dir"),
                  "--do_train", "--max_seq_length", context.max_length,
                  "--per_gpu_train_batch_size", TRAINING["batch_size"], "--learning_rate",
                  TRAINING["learning_rate"], "--num_train_epochs", budget.method_epochs,
                  "--logging_steps", 0, "--save_steps", 0, "--seed", SEED,
                  "--output_dir", folder) + ([] if context.cased else ["--do_lower_case"]) + (
                      context.collapsed_flag("--allow_collapsed")) + context.precision_flag() + (
                          ["--pooling", context.pooling] if context.pooling else [])
    settings = {f"patience={t}": t for t in range(1, context.config.num_hidden_layers)}
    return [Group(method, "model", [*before, Command(method, argv, folder)], list(settings),
                  lambda ctx: PabeePoints(ctx, folder, settings))]


def powerbert_pabee_groups(context):
    """PABEE on the PoWER-BERT model of the budget's largest LAMBDA (the most word-vectors
    removed; trained once, shared with the powerbert method's point of the same LAMBDA)."""
    from powerbert import pipeline
    from powerbert.sweep import powerbert_groups

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


SWEEPS = {"pabee": Sweep("PABEE", pabee_groups),
          "powerbert+pabee": Sweep("PABEE on PoWER-BERT", powerbert_pabee_groups)}
