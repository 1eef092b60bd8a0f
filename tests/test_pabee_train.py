"""PABEE's training loop (the original's run_glue.py `train`): the LR each update uses,
the extra max_steps update, update counts with accumulation, seeding, resuming from a checkpoint."""
import numpy as np
import pytest

from common import checkpoints
from common.errors import UserError
from common.training import set_seed
from conftest import FIXTURES
from pabee.model import build_model, load_weights, loss_fn
from pabee.settings import PabeeSettings
from pabee.train import load_optimizer, param_group, save_optimizer, schedule_length, train


def arrays(count=20, length=8, seed=0):
    rng = np.random.default_rng(seed)
    ids = rng.integers(5, 35, (count, length)).astype(np.int32)
    ids[:, 0] = 2
    labels = (ids[:, 1] % 2).astype(np.int64)
    return {"input_ids": ids, "token_type_ids": np.zeros_like(ids),
            "attention_mask": np.ones_like(ids), "labels": labels}


def albert_model(seed=0, head_dropout=0.0):
    """Tiny ALBERT (no encoder dropout); head dropout off makes training deterministic."""
    set_seed(seed)
    source = checkpoints.resolve_source(str(FIXTURES / "tiny_albert"))
    model = build_model(source, 2)
    load_weights(model, source)
    for head in model.classifiers:
        head.dropout.rate = head_dropout
    return model


def weights_of(model):
    return [v.numpy().copy() for v in model.weights]


def quiet(*_):
    pass


def fit(model, data, batch_size, grad_accum=1, start_step=0, optimizer_state=None, on_log=None,
        on_save=None, **flags):
    """`pabee.train.train` with the PabeeSettings of these flags."""
    settings = PabeeSettings("", "albert", "", "SST-2", "", per_gpu_train_batch_size=batch_size,
                             gradient_accumulation_steps=grad_accum, **flags)
    return train(model, data, settings, start_step=start_step, optimizer_state=optimizer_state,
                 on_log=on_log, on_save=on_save, log=quiet)


def test_schedule_length_as_the_original():
    assert schedule_length(100, 10, 1, 3.0, -1) == (30, 3, 10)
    assert schedule_length(95, 10, 1, 2.5, -1) == (25, 2, 10)  # loop 2 epochs, T from 2.5
    assert schedule_length(100, 10, 3, 2.0, -1) == (6, 2, 3)
    assert schedule_length(100, 10, 1, 3.0, 25) == (25, 3, 10)  # 25 // 10 + 1 epochs
    with pytest.raises(UserError, match="gradient_accumulation_steps"):
        schedule_length(10, 10, 2, 1.0, -1)


def test_learning_rate_per_update_and_extra_max_steps_update():
    model = albert_model()
    start = weights_of(model)
    logged, saved = {}, {}
    step, _ = fit(model, arrays(), batch_size=4, learning_rate=1e-3, num_train_epochs=1,
                  max_steps=10, warmup_steps=2, logging_steps=1, save_steps=1,
                  on_log=lambda s, r: logged.__setitem__(s, r["learning_rate"]),
                  on_save=lambda s, _: saved.setdefault(s, weights_of(model)))
    assert step == 11  # stops once more than max_steps updates are done
    # LR of update k (1-based) = the LR logged after update k-1; update 1 uses 0 (warm-up).
    expected = [0, 5e-4, 1e-3, 8.75e-4, 7.5e-4, 6.25e-4, 5e-4, 3.75e-4, 2.5e-4, 1.25e-4, 0]
    assert [0.0] + [logged[k] for k in range(1, 11)] == pytest.approx(expected, abs=1e-9)
    for before, after in zip(start, saved[1]):
        np.testing.assert_array_equal(before, after)  # the LR-0 first update changes nothing
    assert any(np.abs(a - b).max() > 0 for a, b in zip(saved[1], saved[2]))


def test_accumulation_counts_and_leftover_batches():
    model = albert_model()
    updates = []
    # 5 batches per epoch, ga = 2: updates after batches 2 and 4; batch 5 joins the next
    # epoch's first update; T = (5 // 2) * 2 = 4.
    step, _ = fit(model, arrays(20), batch_size=4, learning_rate=1e-3, num_train_epochs=2,
                  grad_accum=2, logging_steps=1,
                  on_log=lambda s, r: updates.append((s, r["learning_rate"])))
    assert step == 4
    assert [lr for _, lr in updates] == pytest.approx([7.5e-4, 5e-4, 2.5e-4, 0.0], abs=1e-9)


def test_same_seed_same_model_and_loss_decreases():
    data = arrays(24)
    runs = []
    for _ in range(2):
        model = albert_model(seed=3, head_dropout=0.1)
        losses = []
        fit(model, data, batch_size=8, learning_rate=3e-3, num_train_epochs=4, seed=3,
            logging_steps=3, on_log=lambda s, r: losses.append(r["loss"]))
        runs.append((weights_of(model), losses))
    for a, b in zip(runs[0][0], runs[1][0]):
        np.testing.assert_array_equal(a, b)
    assert runs[0][1] == runs[1][1]
    assert runs[0][1][-1] < runs[0][1][0]
    final = float(loss_fn(model, {k: v for k, v in data.items() if k != "labels"},
                          data["labels"], training=False))
    assert final < 0.692


def test_resume_from_checkpoint_continues_the_same_run(tmp_path):
    data = arrays(20)
    stored = {}

    def on_save(step, optimizer):
        if step == 5:
            checkpoints.save_weights(model, str(tmp_path / "model.weights.h5"))
            save_optimizer(optimizer, str(tmp_path / "optimizer.weights.h5"))

    model = albert_model()
    fit(model, data, batch_size=4, learning_rate=1e-3, num_train_epochs=2, save_steps=5,
        on_save=on_save)
    stored["straight"] = weights_of(model)
    model = albert_model(seed=9)  # different fresh heads: everything must come from the files
    checkpoints.load_weights(model, str(tmp_path / "model.weights.h5"))
    step, _ = fit(model, data, batch_size=4, learning_rate=1e-3, num_train_epochs=2,
                  start_step=5, optimizer_state=str(tmp_path / "optimizer.weights.h5"))
    assert step == 10
    for a, b in zip(stored["straight"], weights_of(model)):
        np.testing.assert_allclose(a, b, atol=1e-6)
    other = build_model(checkpoints.resolve_source(str(FIXTURES / "tiny_bert")), 2)
    optimizer = param_group(other, PabeeSettings("", "bert", "", "SST-2", "")).build_optimizer(
        10, 0)
    optimizer.build(other.trainable_variables)
    with pytest.raises(UserError, match="optimizer state"):
        load_optimizer(optimizer, str(tmp_path / "optimizer.weights.h5"))
