"""LTP's operating points for `bert-speedup-compare` (`common.compare.sweep`): one group per
--lambda_threshold (the soft stage from the fine-tuned model, then the hard stage from it), and
from each trained model its learned thresholds and the same thresholds scaled up (the
`threshold_scale` knob: more pruning, no training).

The stages run as the README's commands do, with two choices of ours for the short budgets:
the thresholds get their own learning rate (`--lr_threshold`; at the README's 2e-5 a threshold
moves about 2e-5 per update, too little in the budgets' 32 (quick) to some 250 (full, 2,000
rows) updates: 1e-3 and 1e-4, so a threshold can travel a few times its starting value), and
the hard stage
runs at 2e-5, the top of the README's range. The thresholds start from a final threshold of
0.003: the README's 0.01 is for RoBERTa-base's 12 layers, and in MiniLM's 6 (thresholds rising
twice as fast) it prunes every token but [CLS] of most sentences before any training.
"""
import os

from common.compare.sweep import EVAL_BATCH, SEED, Command, Group, Sweep, python, split_sides

LAMBDAS = {"quick": (0.1,), "full": (0.01, 0.05, 0.1, 0.2, 0.5)}
SCALES = {"quick": (1.0, 1.5), "full": (1.0, 1.5, 2.0)}
TRAINING = {"batch_size": 32, "lr_soft": 2e-5, "lr_hard": 2e-5, "temperature": 1e-3,
            "final_token_threshold": 0.003}
LR_THRESHOLD = {"quick": 1e-3, "full": 1e-4}


def ltp_groups(context):
    budget = context.budget
    result = []
    for lam in LAMBDAS[budget.name]:
        setting = f"lambda={lam:g}"
        folder = os.path.join(context.runs, "ltp", setting)
        soft, hard = os.path.join(folder, "soft"), os.path.join(folder, "hard")
        common = [*context.data_flags("--task", "--data_dir"), "--max_seq_length",
                  context.max_length, "--bs", TRAINING["batch_size"], "--epoch",
                  budget.method_epochs, "--seed", SEED] + context.collapsed_flag(
                      "--allow_collapsed") + context.precision_flag()
        soft_argv = python("-m", "ltp", "--restore", context.finetuned, "--masking_mode", "soft",
                           "--lr", TRAINING["lr_soft"], "--lr_threshold",
                           LR_THRESHOLD[budget.name], "--temperature", TRAINING["temperature"],
                           "--lambda_threshold", lam, "--final_token_threshold",
                           TRAINING["final_token_threshold"], "--no_load", "--output_dir", soft,
                           *common)
        hard_argv = python("-m", "ltp", "--restore", soft, "--masking_mode", "hard", "--lr",
                           TRAINING["lr_hard"], "--output_dir", hard, *common)
        names = {f"{setting} x{scale:g}" if scale != 1 else setting: scale
                 for scale in SCALES[budget.name]}
        result.append(Group("ltp", setting,
                            [Command(f"ltp {setting} soft", soft_argv, soft),
                             Command(f"ltp {setting} hard", hard_argv, hard)],
                            list(names),
                            lambda ctx, hard=hard, names=names: LtpPoints(ctx, hard, names)))
    return result


class LtpPoints:
    """The hard-stage model of one lambda at each threshold scale (same weights)."""

    def __init__(self, context, folder, scales):
        from common.checkpoints import resolve_source
        from common.methods import load_model

        self.context = context
        source = resolve_source(folder)
        self.models = {name: load_model(source.folder, threshold_scale=scale)[0]
                       for name, scale in scales.items()}

    def evaluate(self):
        from common.training import evaluate_classifier
        from ltp.speed import dev_flops

        ctx, result = self.context, {}
        for setting, model in self.models.items():
            metrics = evaluate_classifier(model, ctx.task, ctx.dev, EVAL_BATCH)
            vanilla, method, kept = dev_flops(model, ctx.dev, EVAL_BATCH)
            detail = ("thresholds " + ",".join(f"{t * model.default_pruning.scale:.4g}"
                                                for t in model.thresholds())
                      + "; mean tokens kept " + ",".join(f"{k:.1f}" for k in kept))
            result[setting] = (metrics[ctx.task.metric], vanilla / method, detail)
        return result

    def sides(self, batch_size):
        from ltp.speed import sides

        names = ("ltp-unpadded",) if batch_size == 1 else ("ltp-dynamic",)
        dense, methods = None, {}
        for setting, model in self.models.items():
            found, methods[setting] = split_sides(sides(model, self.context.timing, batch_size),
                                                  names)
            dense = dense or found
        return dense, methods


SWEEPS = {"ltp": Sweep("LTP", ltp_groups)}
