"""Settings of the AdapLeR stages: what each command line was asked to do, filled by `adapler.cli`
(flag --FOO fills field `foo`, with the flag's default) and read by `adapler.pipeline` and
`adapler.training`, which never see argparse. Frozen and keyword-only: a setting that does not
exist cannot be given, and none changes once a stage has started.

    StageSettings           every stage
      SeededSettings        stages A-C (the seeded training split, the task's folder tree)
        FinetuneSettings    A  run_classification_bert.py, run_glue_bert.py
        SaliencySettings    B  tools/store_saliencies.py
        TrainSettings       C  run_classification_w_lr.py
          GlueTrainSettings C  run_glue_w_lr.py (other defaults)
      EvaluationSettings    D  run_classification_evaluation.py, run_glue_prediction.py
"""
import dataclasses
from typing import ClassVar

DEFAULT_MODEL = "bert-base-uncased"
ORIGINAL_ETA_LEARNING_RATE = 5e-4  # hard-coded in the original; --ETA_LEARNING_RATE changes it


@dataclasses.dataclass(frozen=True, kw_only=True)
class StageSettings:
    task: str  # the task key as given, e.g. sst2 (also the folder name)
    max_length: int = 128
    batch_size: int = 32
    model_name_or_path: str = DEFAULT_MODEL  # HF folder, hub id or Google checkpoint folder
    data_dir: str | None = None  # the CLI fills in the folder it resolved (None: ./data)
    multi_gpu: bool = False  # accepted for compatibility; no effect
    gpu: int = 0  # accepted for compatibility; no effect
    fp16: bool = False  # applied by the CLI (Keras mixed precision) before any model is built
    bf16: bool = False

    def flags(self):
        """The settings under their flag names: the `arguments:` line of a stage's log."""
        return {field.name.upper(): getattr(self, field.name)
                for field in dataclasses.fields(self)}


@dataclasses.dataclass(frozen=True, kw_only=True)
class SeededSettings(StageSettings):
    data_seed: int = 42  # shuffle + RNG seed and folder name (the same in stages A-C)
    max_train_examples: int | None = None  # the first N examples of the seeded shuffle
    overwrite_output_dir: bool = False  # checked by the CLI


@dataclasses.dataclass(frozen=True, kw_only=True)
class FinetuneSettings(SeededSettings):
    learning_rate: float = 2e-5
    warmup_ratio: float = 0.06
    epochs: int = 5
    strategy: str = "auto"  # tf.distribute scope, entered by the CLI


@dataclasses.dataclass(frozen=True, kw_only=True)
class SaliencySettings(SeededSettings):
    allow_collapsed: bool = False  # read stage-A checkpoints whose dev predictions were one class
    batch_size: int = 4
    split: str = "train"  # the CLI reads the original's "val" as "dev"


@dataclasses.dataclass(frozen=True, kw_only=True)
class TrainSettings(SeededSettings):
    allow_collapsed: bool = False  # start from a checkpoint whose dev predictions were one class
    gamma: float = 1.0  # weight of the saliency (KL) loss of the network and CPs
    phi: float = 10.0  # weight of the length loss of eta
    epochs: int = 5  # also selects the lambda schedule
    initial_model_path: str = "pretrain"  # "pretrain", "" (best fine-tuned epoch) or a folder
    save_name: str = "znorm_l2"
    warmup_ratio: float = 0.06
    learning_rate: float = 3e-5
    eval_batch_size: int = 32
    acc_steps: int = 1  # gradient accumulation micro-batches per update
    js_based_ratio: bool = False  # Jensen-Shannon instead of KL for the CP loss
    soft_extract_type: str = "relu"  # the only soft-removal function (S_lambda)
    head_learning_rate: float = 0.0  # a separate CP learning rate; 0: the main one
    eta_learning_rate: float | None = None  # None: ORIGINAL_ETA_LEARNING_RATE
    paper_flops: bool = False  # count FLOPs as the original, bugs included
    strategy: str = "auto"  # tf.distribute scope, entered by the CLI
    eval_current_lambda: ClassVar[bool] = False  # also evaluate each epoch at the current lambda

    @property
    def counting(self):
        return "paper" if self.paper_flops else "exact"

    @property
    def divergence(self):
        return "js" if self.js_based_ratio else "kl"

    @property
    def eta_rate(self):
        """The peak Adam rate of eta and theta."""
        if self.eta_learning_rate is None:
            return ORIGINAL_ETA_LEARNING_RATE
        return self.eta_learning_rate


@dataclasses.dataclass(frozen=True, kw_only=True)
class GlueTrainSettings(TrainSettings):
    batch_size: int = 16
    gamma: float = 1e-3
    phi: float = 0.002
    eval_current_lambda: ClassVar[bool] = True


@dataclasses.dataclass(frozen=True, kw_only=True)
class EvaluationSettings(StageSettings):
    batch_size: int = 48
    model_path: str  # checkpoint folder (or its X.h5)
    lr_model: bool = False  # an AdapLeR checkpoint; else a fine-tuned BERT, nothing removed
    allow_other_task: bool = False
    paper_flops: bool = False  # count FLOPs as the original, bugs included
    split: str = "test"  # run_glue_prediction.py always predicts the test split

    @property
    def counting(self):
        return "paper" if self.paper_flops else "exact"


# The inference knobs of a checkpoint (common.methods.knobs): name -> argparse options of
# its `--<name>` flag (bert-speedup-export, the Python API's `load(path, **knobs)`).
KNOBS = {"eta_offset": {"type": float, "help": "added to the learned per-layer thresholds eta "
                                               "(kept at least 0; default: none added)"}}
