"""Numeric precision: Keras mixed-precision policies for `--bf16` / `--fp16`.

Variables stay float32 under both policies; matmuls run in bfloat16 or float16. The numerically
fragile parts compute in float32 whatever the policy, each saying so where it happens: the
softmax over masked attention scores (common.modeling), LayerNorm statistics (Keras does this
itself), the classification heads and so the losses, AdapLeR's soft-removal function and
PoWER-BERT's significance sums (both read the float32 attention probabilities). float16 training
needs loss scaling: `training_optimizer` wraps an optimizer in Keras' LossScaleOptimizer then.
"""
import functools
import warnings

from common.errors import UserError

POLICIES = {"fp32": "float32", "bf16": "mixed_bfloat16", "fp16": "mixed_float16"}
NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


def precision_name(bf16=False, fp16=False):
    """'bf16', 'fp16' or 'fp32' from the two flags (UserError when both are given)."""
    if bf16 and fp16:
        raise UserError("--bf16 and --fp16 exclude each other; pick one precision")
    return "bf16" if bf16 else "fp16" if fp16 else "fp32"


def cpu_flags(path="/proc/cpuinfo"):
    """The CPU's feature flags (empty where /proc/cpuinfo is not readable)."""
    try:
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def native_bf16(flags=None):
    """True when this CPU computes bfloat16 in hardware (AVX512_BF16 or AMX)."""
    flags = cpu_flags() if flags is None else flags
    return any(flag in flags for flag in NATIVE_BF16_FLAGS)


def set_precision(name):
    """Set the global Keras policy for 'fp32', 'bf16' or 'fp16' before any model is built."""
    import keras
    import tensorflow as tf
    if name not in POLICIES:
        raise UserError(f"unknown precision {name!r}; use one of {', '.join(POLICIES)}")
    if name == "bf16" and not tf.config.list_physical_devices("GPU") and not native_bf16():
        _warn_slow_bf16()
    keras.mixed_precision.set_global_policy(POLICIES[name])


@functools.cache
def _warn_slow_bf16():
    warnings.warn("this CPU has no native bfloat16 (no AVX512_BF16 or AMX): --bf16 will run "
                  "slower than float32 here", stacklevel=3)


def add_flags(parser, upper=False):
    """--fp16 / --bf16 (--FP16 / --BF16 on the upper-case command lines)."""
    fp16, bf16 = ("--FP16", "--BF16") if upper else ("--fp16", "--bf16")
    parser.add_argument(fp16, action="store_true",
                        help="mixed float16 (Keras mixed_float16; training is loss-scaled); "
                             "for GPUs")
    parser.add_argument(bf16, action="store_true",
                        help="mixed bfloat16 (Keras mixed_bfloat16); fast on CPUs with "
                             "AVX512_BF16/AMX and on recent GPUs, slower on other CPUs")


def apply_flags(args):
    """Set the global policy the parsed flags ask for (before any model is built); its name."""
    name = precision_name(getattr(args, "bf16", False) or getattr(args, "BF16", False),
                          getattr(args, "fp16", False) or getattr(args, "FP16", False))
    set_precision(name)
    return name


def clip_norm(optimizer, max_norm):
    """The global-norm bound for gradients of `optimizer.scale_loss(loss)`: clipping the scaled
    gradients at max_norm x scale is clipping the true ones at max_norm."""
    scale = getattr(optimizer, "dynamic_scale", None)
    return max_norm if scale is None else max_norm * scale


def training_optimizer(optimizer):
    """The optimizer to train with under the global policy: loss-scaled for float16."""
    import keras
    if keras.mixed_precision.global_policy().compute_dtype == "float16":
        return keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer
