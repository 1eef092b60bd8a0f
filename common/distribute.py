"""Scale-out on tf.distribute: the --strategy flag, the global batch and the replicated step.

`--strategy auto` (the default) picks MultiWorkerMirroredStrategy when TF_CONFIG names a
cluster, MirroredStrategy over all visible GPUs when there is more than one, else none
(TensorFlow's default strategy: one device). A command runs entirely inside `scope(...)`, so its
models and optimizers are created mirrored. Batch-size flags are per device, as the originals'
`per_gpu_*` flags: the global batch is the per-device batch x replicas.

A training step splits the global batch into equal slices, one per replica (`split`), computes
each replica's loss and gradients and averages them over the replicas in one all-reduce
(`mean_over_replicas`); the loops then clip and apply the averaged gradients once
(`apply_gradients`), so the update is the one-device update on the global batch. Saving and
logging happen on the chief only: other workers write into a throwaway folder
(`chief_folder`) and print nothing (`quiet_unless_chief`). TensorFlow is imported inside the
functions that use it: the command lines add --strategy before parsing, without TensorFlow.
"""
import atexit
import contextlib
import json
import os
import shutil
import sys
import tempfile

from common.errors import UserError

STRATEGIES = ("auto", "none", "mirrored", "multi_worker")


def add_flag(parser, flag="--strategy"):
    parser.add_argument(flag, choices=STRATEGIES, default="auto",
                        help="tf.distribute strategy of training: auto (multi_worker when "
                             "TF_CONFIG names a cluster, mirrored over all GPUs when there are "
                             "several, else none), none, mirrored or multi_worker; batch sizes "
                             "are per device")


def tf_config(environ=None):
    """The parsed TF_CONFIG ({'cluster': ..., 'task': ...}) or None; UserError when it is bad."""
    text = (os.environ if environ is None else environ).get("TF_CONFIG", "").strip()
    if not text:
        return None
    try:
        config = json.loads(text)
    except json.JSONDecodeError as err:
        raise UserError(f"TF_CONFIG does not parse as JSON ({err})") from None
    cluster = config.get("cluster") if isinstance(config, dict) else None
    task = config.get("task") if isinstance(config, dict) else None
    if not isinstance(cluster, dict) or not all(isinstance(v, list) for v in cluster.values()):
        raise UserError("TF_CONFIG needs a 'cluster' object of address lists, e.g. "
                        '{"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
                        '"task": {"type": "worker", "index": 0}}')
    if (not isinstance(task, dict) or task.get("type") not in cluster
            or not isinstance(task.get("index"), int)
            or not 0 <= task["index"] < len(cluster[task["type"]])):
        raise UserError(f"TF_CONFIG's task {task} is not one of its cluster's tasks; give "
                        '"task": {"type": <a job of the cluster>, "index": <0-based position>}')
    addresses = [address for job in cluster.values() for address in job]
    twice = sorted({a for a in addresses if addresses.count(a) > 1})
    if twice:
        raise UserError(f"TF_CONFIG names {', '.join(twice)} more than once; give every task "
                        "its own host:port")
    return config


def make_strategy(name="auto"):
    """The tf.distribute.Strategy that `name` (one of STRATEGIES) asks for."""
    import tensorflow as tf

    config = tf_config()
    if name == "multi_worker" and config is None:
        raise UserError("--strategy multi_worker needs TF_CONFIG naming the cluster and this "
                        "task (see docs/commands/precision.md: several machines)")
    if name == "auto":  # physical devices: listing them does not start TensorFlow's runtime
        name = ("multi_worker" if config else
                "mirrored" if len(tf.config.list_physical_devices("GPU")) > 1 else "none")
    if name == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "mirrored":
        # All GPUs; on a CPU-only host all logical CPU devices (one unless configured).
        devices = (tf.config.list_logical_devices("GPU")
                   or tf.config.list_logical_devices("CPU"))
        return tf.distribute.MirroredStrategy([d.name for d in devices])
    # One device: one inter-op thread, as the benchmarks run (common.inference). With several,
    # independent ops run in a varying order and bf16 training rounds differently from run to
    # run (docs/reliability.md, "Reproducible runs"); the strategies' collectives need several, so they keep
    # TensorFlow's default. Once TensorFlow runs (a caller started it) its pools stay as they are.
    with contextlib.suppress(RuntimeError):
        tf.config.threading.set_inter_op_parallelism_threads(1)
    return tf.distribute.get_strategy()


@contextlib.contextmanager
def scope(name="auto"):
    """Run the body under the strategy `name` asks for (models and optimizers built mirrored)."""
    strategy = make_strategy(name)
    quiet_unless_chief()
    with strategy.scope():
        yield strategy


def replicas():
    import tensorflow as tf

    return tf.distribute.get_strategy().num_replicas_in_sync


def global_batch(per_device):
    """The global batch of a per-device batch: per-device x replicas."""
    return per_device * replicas()


def check_batches(count, batch_size):
    """UserError unless every batch of `count` examples (global `batch_size`, the last partial
    batch kept) splits evenly over the replicas."""
    count_replicas, rest = replicas(), count % batch_size
    if count_replicas > 1 and rest % count_replicas:
        raise UserError(
            f"the last batch of {rest} of the {count} training examples does not split evenly "
            f"over {count_replicas} replicas (global batch {batch_size} = "
            f"{batch_size // count_replicas} per device x {count_replicas}); pick a per-device "
            f"batch size for which {count} mod (batch x {count_replicas}) is a multiple of "
            f"{count_replicas}")


def split(*arrays):
    """The global batch (nested numpy arrays, rows first) as one equal slice per replica; the
    arrays themselves with one replica. Returns a tuple to unpack into a replicated step."""
    import tensorflow as tf

    strategy = tf.distribute.get_strategy()
    count = strategy.num_replicas_in_sync
    if count == 1:
        return arrays
    rows = len(tf.nest.flatten(arrays)[0])
    if rows % count:
        raise UserError(f"a batch of {rows} rows does not split over {count} replicas")
    size = rows // count
    parts = [tf.nest.map_structure(lambda a, i=i: a[i * size:(i + 1) * size], arrays)
             for i in range(count)]
    return tuple(strategy.experimental_distribute_values_from_function(
        lambda context: parts[context.replica_id_in_sync_group]))


def mean_over_replicas(fn, *args):
    """`fn(*args)` on every replica's slice, its (nested) outputs averaged over the replicas
    (None entries stay None); plainly `fn(*args)` with one replica. Use inside a tf.function."""
    import tensorflow as tf

    strategy = tf.distribute.get_strategy()
    if strategy.num_replicas_in_sync == 1:
        return fn(*args)

    structure = []

    def replica_fn(*replica_args):
        outputs = fn(*replica_args)
        structure[:] = [outputs]
        flat = tf.nest.flatten(outputs)
        present = [i for i, value in enumerate(flat) if value is not None]
        reduced = tf.distribute.get_replica_context().all_reduce(
            tf.distribute.ReduceOp.MEAN, [tf.convert_to_tensor(flat[i]) for i in present])
        for i, value in zip(present, reduced):
            flat[i] = value
        return flat

    flat = strategy.run(replica_fn, args=args)
    first = [None if v is None else strategy.experimental_local_results(v)[0] for v in flat]
    return tf.nest.pack_sequence_as(structure[0], first)


def apply_gradients(optimizer, grads_and_vars):
    """Apply gradients that are already averaged over the replicas (call in cross-replica
    context: the step function, outside `mean_over_replicas`)."""
    import tensorflow as tf

    pairs = list(grads_and_vars)
    count = replicas()
    if count == 1:
        return optimizer.apply_gradients(pairs)
    variables = [v for _, v in pairs]

    def replica_apply(*grads):
        # Keras sums the replicas' gradients inside apply_gradients: every replica holds the
        # averaged gradient, so each passes its 1/count share (computed on its own device).
        optimizer.apply_gradients(zip([g / count for g in grads], variables))

    tf.distribute.get_strategy().run(replica_apply, args=tuple(g for g, _ in pairs))


def task():
    """(type, index) of this process in TF_CONFIG's cluster; ('chief', 0) without one."""
    config = tf_config()
    if config is None:
        return "chief", 0
    return config["task"]["type"], config["task"]["index"]


def is_chief():
    """The chief saves and logs: the 'chief' task, else worker 0, else the only process."""
    config = tf_config()
    kind, index = task()
    if config is None or kind == "chief":
        return True
    return kind == "worker" and index == 0 and "chief" not in config["cluster"]


def chief_folder(path):
    """`path` on the chief; elsewhere a throwaway folder (removed at exit) of the same role."""
    if is_chief() or path is None:
        return path
    kind, index = task()
    scratch = tempfile.mkdtemp(prefix=f"{kind}{index}-")
    atexit.register(shutil.rmtree, scratch, ignore_errors=True)
    return os.path.join(scratch, os.path.basename(os.path.normpath(str(path))) or "out")


def quiet_unless_chief():
    """Send this process's standard output to /dev/null unless it is the chief (errors on
    stderr stay)."""
    if not is_chief():
        sys.stdout = open(os.devnull, "w", encoding="utf-8")  # noqa: SIM115 (process-long)
