"""PowerBertSettings: what `python -m powerbert` was asked to do, filled by `powerbert.cli` from
the reference `main.py`'s flags (flag --FOO is field `foo`; --LAMBDA is `lam`) and read by
`powerbert.pipeline.run`, which never sees argparse."""
import dataclasses

DEFAULT_TASK_CONFIG = "./task_config.json"


@dataclasses.dataclass(frozen=True)
class PowerBertSettings:
    task: str
    data_dir: str
    checkpoint_path: str
    output_dir: str
    epochs: int = 5  # of each of the three stages
    batch_size: int = 32
    lr_bert: float = 3e-5
    lr_soft_extract: float | None = None  # training: required
    lam: float | None = None  # --LAMBDA; training: required
    vocab_path: str | None = None
    cased: bool = False
    bert_config_path: str | None = None
    task_config_path: str = DEFAULT_TASK_CONFIG  # absent at its default: built-in values
    eval_only: bool = False
    predict_only: bool = False
    retention_config: str | None = None  # eval/predict: "k_1,...,k_L" as given
    length_scaled_retention: bool = False
    model_format: str | None = None  # CKPT or HDF5; None: detected
    pred_glue: bool = False
    seed: int = 0
    skip_finetune: bool = False
    overwrite_output_dir: bool = False
    allow_other_task: bool = False
    allow_collapsed: bool = False
    command_line: str = ""  # the parsed flags, as log_file.txt records them (the reference's)

    @property
    def training(self):
        """The three stages (neither --EVAL_ONLY nor --PREDICT_ONLY)."""
        return not (self.eval_only or self.predict_only)


# The inference knobs of a checkpoint (common.methods.knobs): name -> argparse options of
# its `--<name>` flag (bert-speedup-export, the Python API's `load(path, **knobs)`).
KNOBS = {"length_scaled": {"action": "store_true",
                           "help": "keep ceil(k_l * n / N) word-vectors of a batch of width n "
                                   "(default: k_l, as the checkpoint was trained)"}}
