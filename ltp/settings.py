"""LtpSettings: what `python -m ltp` was asked to do, filled by `ltp.cli` from the original
`run.py`'s flags (same names; `--final_token_threshold` and the other keys the original reads
from the checkpoint's config.json are flags here) and read by `ltp.pipeline.run`, which never
sees argparse."""
import dataclasses


@dataclasses.dataclass(frozen=True)
class LtpSettings:
    task: str  # a task name of common.tasks (the original's SST2 / STSB / ... are mapped)
    data_dir: str
    restore: str  # the model to start from (soft, hard) or to evaluate (--eval)
    output_dir: str  # resolved by the CLI (the original's layout when --output_dir is absent)
    masking_mode: str = "hard"  # soft: learn the thresholds; hard: fine-tune with them fixed
    lr: float = 4e-5
    bs: int = 32
    epoch: float = 10
    temperature: float = 1e-3
    lambda_threshold: float | None = None  # soft: required
    lr_threshold: float | None = None  # None: --lr
    weight_decay_threshold: float = 0.0
    weight_decay: float = 0.0
    final_token_threshold: float | None = None  # None: the checkpoint's, else 0.01
    max_seq_length: int = 128
    score_length: int | None = None  # None: the checkpoint's, else 128
    save_steps: int | None = None  # evaluate every N updates instead of every epoch
    no_load: bool = False  # keep the last model instead of the best evaluated one
    eval: bool = False
    seed: int = 0
    overwrite_output_dir: bool = False
    allow_other_task: bool = False
    allow_collapsed: bool = False
    command_line: str = ""

    @property
    def training(self):
        return not self.eval


# The inference knobs of a checkpoint (common.methods.knobs): name -> argparse options of
# its `--<name>` flag (bert-speedup-export, the Python API's `load(path, **knobs)`).
KNOBS = {"threshold_scale": {"type": float, "help": "multiplies every learned threshold "
                                                    "(default 1: as learned; larger prunes "
                                                    "more)"}}
