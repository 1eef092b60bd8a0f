"""PoWER-BERT's operating points for `bert-speedup-compare` (`common.compare.sweep`): one
group per LAMBDA (configuration search + re-training from the fine-tuned model), one point each,
Extract with the learned retention, as it is and length-scaled.
"""
import json
import os

from common.compare.sweep import EVAL_BATCH, Command, Group, Sweep, python, split_sides

LAMBDAS = {"quick": (0.0002,), "full": (0.0001, 0.0002, 0.0005, 0.001, 0.002, 0.005)}
TRAINING = {"batch_size": 32, "lr_bert": 5e-5, "lr_soft_extract": 0.1}


def powerbert_groups(context):
    """One group per LAMBDA: the configuration search and re-training from the fine-tuned
    model (`python -m powerbert --SKIP_FINETUNE`)."""
    task, budget = context.task, context.budget
    task_config = os.path.join(context.runs, "powerbert", "task_config.json")

    def write_task_config():
        with open(task_config, "w", encoding="utf-8") as out:
            json.dump({task.name: {"seq_len": context.max_length,
                                   "num_classes": task.num_labels}}, out)

    result = []
    for lam in LAMBDAS[budget.name]:
        setting = f"LAMBDA={lam:g}"
        folder = os.path.join(context.runs, "powerbert", setting)
        argv = python("-m", "powerbert", *context.data_flags("--TASK", "--DATA_DIR", upper=True),
                      "--CHECKPOINT_PATH", context.finetuned, "--SKIP_FINETUNE",
                      "--TASK_CONFIG_PATH", task_config, "--EPOCHS", budget.method_epochs,
                      "--BATCH_SIZE", TRAINING["batch_size"], "--LR_BERT", TRAINING["lr_bert"],
                      "--LR_SOFT_EXTRACT", TRAINING["lr_soft_extract"], "--LAMBDA", lam,
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
        from powerbert.model import build_plain, build_powerbert, load_stage

        self.context = context
        retrained = resolve_source(os.path.join(folder, pipeline.RETRAINED))
        self.retention = retrained.sidecar["method_state"]["retention_config"]
        labels = context.task.num_labels
        self.vanilla = build_plain(context.config, labels, context.max_length)
        load_backbone_weights(self.vanilla, resolve_source(context.finetuned))
        self.models = {}
        for name, scaled in ((setting, False), (f"{setting} length-scaled", True)):
            model = build_powerbert(context.config, labels, context.max_length,
                                    retention=self.retention, length_scaled=scaled)
            self.models[name] = load_stage(model, retrained.folder)

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
            found, methods[setting] = split_sides(
                sides(self.vanilla, model, self.context.timing, batch_size), names)
            dense = dense or found
        return dense, methods


SWEEPS = {"powerbert": Sweep("PoWER-BERT", powerbert_groups)}
