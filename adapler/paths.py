"""The experiment folder tree of the original (directories.py), relative to the working directory:

    directory/bert/<seed>/<task>/
        models/bert_<task>_<epoch>/                     fine-tuned checkpoint of each epoch
        models/adaptive_lr/<SAVE_NAME>_GAMMA<g>_PHI<p>_lr/  the AdapLeR checkpoint
        logs/      ft_logs.json, <stem>.log, <stem>.pkl, flops_per_example.pickle, GLUE TSVs
        data/sals/{train,val,test}/sal_mat_wCLSSEPnoZ_<epoch>.npy (+ .ids.json)
        data/attn/{train,val,test}/

Each checkpoint is a folder holding `model.weights.h5` + `config.json` (+ tokenizer files): the
toolkit's checkpoint format keeps one sidecar per folder. A path `X.h5` given on the command line
is read as the folder `X` when that exists, so the original commands keep working.
`directory/build_task_dirs.sh bert <task> <seed>` creates the tree; the stages also create any
folder they write to.
"""
import os

ROOT = "directory"
SPLIT_FOLDERS = {"train": "train", "dev": "val", "test": "test"}
SALIENCY_PREFIX = "sal_mat_wCLSSEPnoZ_"


def stem(save_name, gamma, phi):
    """`<SAVE_NAME>_GAMMA<gamma>_PHI<phi>` with Python's str(float), e.g. GAMMA1e-05."""
    return f"{save_name}_GAMMA{float(gamma)}_PHI{float(phi)}"


class TaskDirs:
    """Paths of one (task, seed) experiment under `root`/bert/<seed>/<task>."""

    def __init__(self, task, seed, root=ROOT, backbone="bert"):
        self.task = str(task)
        self.base = os.path.join(root, backbone, str(seed), self.task)

    @property
    def models(self):
        return os.path.join(self.base, "models")

    @property
    def adaptive_lr(self):
        return os.path.join(self.models, "adaptive_lr")

    @property
    def logs(self):
        return os.path.join(self.base, "logs")

    @property
    def ft_logs(self):
        return os.path.join(self.logs, "ft_logs.json")

    def finetuned(self, epoch):
        return os.path.join(self.models, f"bert_{self.task}_{epoch}")

    def adapler_model(self, run_stem):
        return os.path.join(self.adaptive_lr, f"{run_stem}_lr")

    def log_file(self, run_stem, suffix=".log"):
        return os.path.join(self.logs, run_stem + suffix)

    def saliency_dir(self, split):
        return os.path.join(self.base, "data", "sals", SPLIT_FOLDERS.get(split, split))

    def saliency_file(self, split, epoch):
        return os.path.join(self.saliency_dir(split), f"{SALIENCY_PREFIX}{epoch}.npy")


def checkpoint_folder(path):
    """A checkpoint argument as our folder: `X.h5` -> `X` when `X` is a folder."""
    if path.endswith(".h5") and not path.endswith(".weights.h5") and os.path.isdir(path[:-3]):
        return path[:-3]
    return path


def logs_dir_for(model_path):
    """Where evaluation writes next to a checkpoint: `<task dir>/logs` when the checkpoint lives
    under a `models` folder (fine-tuned or AdapLeR), else the checkpoint's own folder. (The
    original took 'path minus 3 components', wrong for fine-tuned checkpoints.)"""
    folder = os.path.abspath(model_path if os.path.isdir(model_path)
                             else os.path.dirname(model_path))
    parts = folder.split(os.sep)
    if "models" in parts:
        index = len(parts) - 1 - parts[::-1].index("models")
        return os.sep.join(parts[:index] + ["logs"])
    return folder
