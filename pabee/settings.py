"""PabeeSettings: what `run_glue_with_pabee.py` was asked to do, filled by `pabee.cli` from the
original's flags (same names) and read by `pabee.pipeline`, which never sees argparse."""
import dataclasses


@dataclasses.dataclass(frozen=True)
class PabeeSettings:
    data_dir: str
    model_type: str  # common.config.MODEL_TYPES, lower-cased by the CLI
    model_name_or_path: str
    task_name: str
    output_dir: str
    patience: str = "0"  # as given, e.g. "3,4,5"; parsed into patience_list
    regression_threshold: float | None = None  # resolved to 0.0 for regression by the CLI
    config_name: str = ""
    tokenizer_name: str = ""
    max_seq_length: int = 128
    pooling: str | None = None  # "cls" or "mean"; None: the checkpoint's or the folder's own
    do_train: bool = False
    do_eval: bool = False
    evaluate_during_training: bool = False
    do_lower_case: bool = False
    eval_each_layer: bool = False
    per_gpu_train_batch_size: int = 8
    per_gpu_eval_batch_size: int = 1
    gradient_accumulation_steps: int = 1
    learning_rate: float = 5e-5
    weight_decay: float = 0.0
    adam_epsilon: float = 1e-8
    max_grad_norm: float = 1.0
    num_train_epochs: float = 3.0
    max_steps: int = -1
    warmup_steps: int = 0
    logging_steps: int = 500
    save_steps: int = 500
    eval_all_checkpoints: bool = False
    no_cuda: bool = False
    overwrite_output_dir: bool = False
    allow_other_task: bool = False
    allow_collapsed: bool = False  # train from a checkpoint whose dev predictions were one class
    seed: int = 42
    jit_compile: bool = False
    fp16: bool = False  # Keras mixed_float16 with loss scaling
    bf16: bool = False  # Keras mixed_bfloat16
    strategy: str = "auto"  # tf.distribute: auto, none, mirrored or multi_worker
    # accepted for compatibility with the original and ignored
    overwrite_cache: bool = False
    cache_dir: str = ""
    fp16_opt_level: str = "O1"
    local_rank: int = -1
    server_ip: str = ""
    server_port: str = ""
    # derived by the CLI
    patience_list: tuple = (0,)

    def flags(self):
        """The flags as given (training_args.json, the start-up log line)."""
        values = dataclasses.asdict(self)
        values.pop("patience_list")
        return values


# The inference knobs of a checkpoint (common.methods.knobs): name -> argparse options of
# its `--<name>` flag (bert-speedup-export, the Python API's `load(path, **knobs)`).
KNOBS = {"patience": {"type": int, "help": "exit once this many internal classifiers in a row "
                                           "agree (0: all layers; default: the checkpoint's)"}}
