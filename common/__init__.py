"""Shared foundation of bert-speedup: config, backbone, checkpoints, data, metrics, FLOPs, training."""
import os

# oneDNN keeps compiled matmul kernels per shape in a cache of 1,024 entries by default. Length
# reduction (AdapLeR's lr_mode, per-example lengths) meets a new shape in nearly every layer, and
# on a dev set the default cache thrashes: lr_mode then ran slower than the full model although it
# does 1.27x fewer FLOPs (docs/benchmarks.md). Read by oneDNN at its first kernel, so set here.
os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "8192")
