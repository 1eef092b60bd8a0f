"""The inference entry point: thread set-up and the one compiled forward pass everything times.

* `configure_threads(threads)` gives TensorFlow's intra-op pool `threads` threads (default: the
  cores this process may use) and one inter-op thread. A BERT forward pass is a chain of ops with
  nothing to run side by side, so a second inter-op thread only competes with the matmuls for the
  same cores. Call it before the first TensorFlow op (TF fixes its pools then).
* `compile_forward(model)` wraps `model(inputs, training=False)` (or any callable of the input dict)
  in one `tf.function`, called through its concrete function (`Compiled`). It runs as a plain graph
  by default: on CPU, TensorFlow's oneDNN kernels fuse every 2-D matmul of the backbone with its
  bias, GELU and residual add (`common.modeling.to_rows`), and that graph measured faster than the
  XLA-compiled one at batch 32 x 128 and on par at 1 x 128 (docs/benchmarks.md, section "backbone").
  A graph also accepts the changing lengths of AdapLeR and PoWER-BERT without a recompile per shape.
  `jit_compile=True` asks for XLA instead.

`tools/benchmark.py` times exactly this function against HF transformers' PyTorch model.
"""
import os

import keras
import tensorflow as tf


def available_cores():
    """Cores this process may run on (its CPU affinity), at least 1."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def configure_threads(threads=None, inter_op=1):
    """Set TensorFlow's intra-op (`threads`, default all available cores) and inter-op pools.

    Returns `thread_settings()`. Raises RuntimeError when TensorFlow already runs with other
    values (its pools are fixed at the first op)."""
    threads = threads or available_cores()
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(inter_op)
    except RuntimeError:  # TF already runs; fine if its pools are what we asked for
        current = thread_settings()
        if current["intra_op"] != threads:
            raise RuntimeError(f"TensorFlow already started with {current}; call "
                               "configure_threads() before the first TensorFlow op") from None
    return thread_settings()


def thread_settings():
    """The thread pools TensorFlow uses (0 in tf.config means 'one per core') and oneDNN's state."""
    from tensorflow.python.util import _pywrap_util_port

    cores = available_cores()
    return {"intra_op": tf.config.threading.get_intra_op_parallelism_threads() or cores,
            "inter_op": tf.config.threading.get_inter_op_parallelism_threads() or cores,
            "onednn": bool(_pywrap_util_port.IsMklEnabled())}


def compile_forward(model, jit_compile=False, per_shape=False):
    """`model(inputs, training=False)` as one compiled function of the input dict.

    `model` is a Keras layer/model, or any callable of the input dict (a method's own inference
    call, which then sets its own flags). One shape-generic trace serves every batch size and
    length (XLA still compiles once per input shape); `per_shape` traces once per input shape
    instead, so a graph sees static shapes too."""
    if isinstance(model, keras.layers.Layer):
        layer = model
        call = lambda inputs: layer(inputs, training=False)  # noqa: E731
    else:
        call = model
    return Compiled(call, jit_compile, per_shape=per_shape)


class Compiled:
    """`fn` as a tf.function called through its concrete function: much less per-call overhead
    than tf.function's dispatcher (a noticeable part of a MiniLM call at batch 1), so every
    side of a benchmark gets it, not only the methods that loop over layers.

    The trace follows `signature` (TensorSpecs of the arguments) when given, else it is
    shape-generic (every dimension None; one trace per rank and dtype of the arguments), or with
    `per_shape` one trace per argument shape, for code that needs static shapes. AutoGraph is
    off (`autograph=False`) where nothing branches on tensors: AutoGraph re-reads source files,
    which breaks long runs when a file is edited meanwhile."""

    def __init__(self, fn, jit_compile=False, signature=None, per_shape=False, autograph=True):
        self._function = tf.function(fn, jit_compile=jit_compile, autograph=autograph)
        self._signature, self._per_shape = signature, per_shape
        self._concrete = {}

    def __call__(self, *args):
        args = tf.nest.map_structure(tf.convert_to_tensor, args)
        # The trace a call needs; its specs are built only when that trace does not exist yet.
        key = None if self._signature else tuple(
            (tuple(t.shape) if self._per_shape else t.shape.rank, t.dtype)
            for t in tf.nest.flatten(args))
        concrete = self._concrete.get(key)
        if concrete is None:
            specs = self._signature or tf.nest.map_structure(self._spec, args)
            concrete = self._concrete[key] = self._function.get_concrete_function(*specs)
        return concrete(*args)

    def _spec(self, tensor):
        shape = tensor.shape if self._per_shape else [None] * tensor.shape.rank
        return tf.TensorSpec(shape, tensor.dtype)


def memory_maps():
    """(memory maps this process holds, the kernel's limit per process), or None where /proc
    does not tell. XLA keeps the code of every shape it compiled for the life of the process,
    about 100 maps per MiniLM forward; a process that reaches `vm.max_map_count` dies in a
    segmentation fault."""
    try:
        with open("/proc/self/maps", encoding="utf-8") as maps:
            used = sum(1 for _ in maps)
        with open("/proc/sys/vm/max_map_count", encoding="utf-8") as limit:
            return used, int(limit.read())
    except (OSError, ValueError):
        return None
