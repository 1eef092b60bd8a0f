"""One training stage on the tiny model, for the strategy tests (run in its own process):

    python tests/strategy_case.py DEVICES STRATEGY[,STRATEGY...] [STAGE ...]

splits the CPU into DEVICES logical devices (before TensorFlow starts), runs each STAGE
(default all: finetune, powerbert_search, adapler, pabee) for a few steps under each STRATEGY
(none, mirrored, multi_worker) in turn, with dropout off and a global batch of all ROWS examples
(the per-device batch is ROWS / replicas), and prints one JSON line
{STRATEGY: {"replicas": n, STAGE: [losses...], ...}, ...} (with finetune: also "finetune_fp16",
the same stage under mixed_float16 with loss scaling). One process runs several strategies to
save TensorFlow's start-up: with two logical devices, `none` trains on the first one only.
"""
import dataclasses
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

TINY = os.path.join(REPO, "tests", "fixtures", "tiny_bert")
ROWS, LENGTH, STEPS = 16, 12, 3


def arrays(seed=0):
    rng = np.random.default_rng(seed)
    ids = rng.integers(5, 30, size=(ROWS, LENGTH)).astype(np.int32)
    mask = np.ones_like(ids)
    for row, length in enumerate(rng.integers(4, LENGTH + 1, size=ROWS)):
        mask[row, length:] = 0
        ids[row, length:] = 0
    return {"input_ids": ids, "token_type_ids": np.zeros_like(ids), "attention_mask": mask,
            "labels": (ids[:, 1] % 2).astype(np.int64)}


def config():
    from common.checkpoints import resolve_source
    source = resolve_source(TINY)
    return source, dataclasses.replace(source.config, hidden_dropout_prob=0.0,
                                       attention_probs_dropout_prob=0.0)


def tiny_classifier(cls, **kwargs):
    from common.checkpoints import assign_hf_tensors
    from common.modeling import dummy_inputs
    source, cfg = config()
    tf.keras.utils.set_random_seed(0)
    model = cls(cfg, 2, **kwargs)
    model(dummy_inputs(LENGTH))
    if hasattr(model, "classifiers"):  # PABEE: build every head
        model(dummy_inputs(LENGTH), all_layers=True)
    assign_hf_tensors(model.bert, source.tensors())
    return model


def per_step(model, groups, loss_fn, batch, max_grad_norm=None):
    """STEPS updates (one epoch = one global batch = one step); the loss of each."""
    from common.training import TrainLoop, train
    history = train(model, arrays(), TrainLoop(STEPS, batch, 1, max_grad_norm=max_grad_norm),
                    groups, loss_fn, log=lambda *_: None)
    return [record["train_loss"] for record in history]


def finetune(batch):
    from common.modeling import SequenceClassifier
    from common.training import ParamGroup, classification_loss
    model = tiny_classifier(SequenceClassifier, classifier_dropout=0.0)
    return per_step(model, [ParamGroup("main", model.trainable_variables, 1e-3, 0.01)],
                    lambda m, f, y, t: classification_loss(m(f, training=t), y, 2), batch,
                    max_grad_norm=1.0)


def powerbert_search(batch):
    from powerbert import pipeline
    from powerbert.model import PowerBertClassifier
    model = tiny_classifier(PowerBertClassifier, search_length=LENGTH, lam=0.01)
    return per_step(model, pipeline.search_groups(model, 1e-3, 2e-2), pipeline.search_loss,
                    batch)


def adapler(batch):
    from adapler.model import AdapLeRClassifier
    from adapler.settings import TrainSettings
    from adapler.training import AdapLeRTrainer
    model = tiny_classifier(AdapLeRClassifier, classifier_dropout=0.0)
    settings = TrainSettings(task="sst2", epochs=STEPS, learning_rate=1e-3, gamma=0.1, phi=0.01,
                             warmup_ratio=0.0, eta_learning_rate=1e-2)
    trainer = AdapLeRTrainer(model, settings, batch_size=batch * distribute_replicas(),
                             steps_per_epoch=1)
    data = arrays()
    saliency = np.random.default_rng(1).random(data["input_ids"].shape) * data["attention_mask"]
    history = trainer.fit(data, saliency.astype(np.float32), log=lambda *_: None)
    return history["loss"] + history["head_loss"] + [float(v) for v in model.eta.numpy()]


def pabee(batch):
    """Two micro-batches per update (accumulation) and clipping; one update per epoch."""
    from pabee.model import PabeeClassifier
    from pabee.settings import PabeeSettings
    from pabee.train import train
    model = tiny_classifier(PabeeClassifier, head_dropout=0.0)
    losses = []
    settings = PabeeSettings("", "bert", "", "SST-2", "", per_gpu_train_batch_size=batch // 2,
                             learning_rate=1e-3, num_train_epochs=STEPS,
                             gradient_accumulation_steps=2, max_grad_norm=0.5, logging_steps=1,
                             save_steps=0, seed=1)
    train(model, arrays(), settings, on_log=lambda step, record: losses.append(record["loss"]),
          log=lambda *_: None)
    return losses


def distribute_replicas():
    from common import distribute
    return distribute.replicas()


STAGES = ("finetune", "powerbert_search", "adapler", "pabee")


def main():
    devices, strategies = int(sys.argv[1]), sys.argv[2].split(",")
    stages = sys.argv[3:] or STAGES
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(devices)])
    from common import distribute, precision
    results = {}
    for strategy in strategies:
        precision.set_precision("fp32")
        with distribute.scope(strategy):
            result = results[strategy] = {"replicas": distribute.replicas()}
            for stage in stages:
                result[stage] = [float(v) for v in globals()[stage](ROWS // result["replicas"])]
            if "finetune" in stages:  # loss-scaled float16 under the strategy too
                precision.set_precision("fp16")
                result["finetune_fp16"] = [float(v) for v in finetune(ROWS // result["replicas"])]
    print(json.dumps(results))


if __name__ == "__main__":
    main()
