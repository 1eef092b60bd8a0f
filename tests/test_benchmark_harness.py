"""common/benchmark: interleaving, ratio logic, worker sides, load report, JSON, bad input; the
length-sorted dynamic batching every evaluation uses; a tiny run of the PoWER-BERT tool."""
import json
import re
import time

import numpy as np
import pytest

from common import benchmark, files
from common.data import length_sorted_batches, map_length_sorted, restore_order
from common.errors import UserError
from conftest import FIXTURES


def sleeper(seconds):
    return lambda item: time.sleep(seconds)


def sleeping_sides(seconds, items=2):
    """Worker factory: one side per (name, seconds)."""
    return [benchmark.Side(name, sleeper(s), [None] * items) for name, s in seconds.items()]


def missing_torch():
    raise ModuleNotFoundError("No module named 'torch'")


def test_interleaving_rotates_per_item_and_repeat():
    calls = []
    sides = [benchmark.Side(name, lambda item, name=name: calls.append(name), [None])
             for name in "abc"]
    result = benchmark.measure(sides, repeats=3, warmup=0)
    assert calls == list("abcbcacab")
    assert all(len(t) == 3 for t in result["times"].values())


def test_paired_ratio_of_known_sleeps():
    sides = [benchmark.Side("fast", sleeper(0.02), [None] * 2),
             benchmark.Side("slow-a", sleeper(0.06), [None] * 2),
             benchmark.Side("slow-b", sleeper(0.1), [None] * 2)]
    rows, measurement = benchmark.run_sides(
        sides, repeats=3, warmup=0, references={"slow": ["slow-b", "slow-a"]}, headline="slow")
    fast = benchmark.row_of(rows, "fast")
    # The fastest of the named references is the reference: 0.06 s per call, 3x the fast one
    # (sleep overshoots by a little on a busy machine).
    assert fast["reference_slow"] == "slow-a"
    assert 2.4 < fast["speedup_vs_slow"] < 3.2 and 2.4 < fast["paired_speedup_vs_slow"] < 3.2
    assert fast["speedup"] == fast["speedup_vs_slow"]
    assert 38 < fast["median_ms"] < 60 and fast["examples"] == 2 and fast["repeats"] == 3
    assert abs(fast["ms_per_example"] * 2 - fast["median_ms"]) < 1e-9
    assert benchmark.row_of(rows, "slow-a")["speedup_vs_slow"] == 1.0
    assert len(measurement["times"]["fast"]) == 3


def test_worker_side_is_timed_beside_local_ones_and_missing_packages_skip():
    notes = []
    remote = [benchmark.Remote("test_benchmark_harness:sleeping_sides",
                               {"seconds": {"remote-slow": 0.06}}),
              benchmark.Remote("test_benchmark_harness:missing_torch", {})]
    rows, measurement = benchmark.run_sides(
        [benchmark.Side("local-fast", sleeper(0.02), [None] * 2)], remote, repeats=2,
        warmup=1, references={"remote": ["remote-slow"]}, notes=notes, rounds=2)
    assert {row["side"] for row in rows} == {"local-fast", "remote-slow"}
    fast = benchmark.row_of(rows, "local-fast")
    assert 2.4 < fast["speedup_vs_remote"] < 3.2 and len(fast["round_speedups_vs_remote"]) == 2
    assert len(measurement["times"]["remote-slow"]) == 4  # 2 rounds x 2 repeats
    assert notes == ["test_benchmark_harness:missing_torch: skipped (torch is not installed; "
                     "`pip install torch transformers` enables it)"]


def test_over_batch_sizes_keeps_the_named_sides():
    def make(size):
        return [benchmark.Side(f"dense-{'unpadded' if size == 1 else 'dynamic-xla'}",
                               sleeper(0.002), [None]), benchmark.Side("m", sleeper(0.001), [None])]
    groups = benchmark.over_batch_sizes([1, 4], make, 1, 0, log=lambda line: None,
                                        only=["m", "dense-unpadded"])
    assert [[r["side"] for r in g["rows"]] for g in groups] == [["dense-unpadded", "m"], ["m"]]
    assert groups[0]["rows"][1]["speedup"] > 1 and groups[1]["rows"][0]["speedup"] is None
    with pytest.raises(UserError, match="unknown side"):
        benchmark.over_batch_sizes([1], make, 1, 0, only=["x"])


def test_overhead_is_far_below_one_percent_of_a_forward():
    # A MiniLM batch-32 forward takes well over 50 ms on any CPU this runs on; 1% = 0.5 ms.
    per_call, inside = benchmark.overhead_per_call(500)
    assert per_call < 5e-4 and inside < 5e-5


def test_environment_record_and_json(tmp_path):
    rows, measurement = benchmark.run_sides([benchmark.Side("a", sleeper(0.001), [None])],
                                            repeats=1, warmup=0)
    env = measurement["environment"]
    assert set(env) == {"loadavg_before", "loadavg_after", "background_cpu_share", "seconds",
                        "busy_processes"}
    record = benchmark.record("cmd", {"x": np.int64(3)}, [{"batch_size": 1, "environment": env,
                                                           "notes": [], "rows": rows}])
    path = tmp_path / "sub" / "r.json"
    files.write_json(str(path), record, indent=2)
    loaded = json.loads(path.read_text())
    assert set(loaded) == {"command", "commit", "date", "machine", "settings", "runs", "statistic",
                           "groups"}
    # None only outside a git checkout
    assert loaded["commit"] is None or re.fullmatch(r"[0-9a-f]{40}(\+dirty)?", loaded["commit"])
    assert set(loaded["machine"]) >= {"cpu", "cpu_flags", "nproc", "available_cores", "versions"}
    assert loaded["settings"]["x"] == 3
    assert "load average" in benchmark.report(loaded, benchmark.COLUMNS)


@pytest.mark.parametrize("call, message", [
    (lambda: benchmark.check_counts(repeats=0), "--repeats must be >= 1"),
    (lambda: benchmark.check_counts(warmup=-1), "--warmup must be >= 0"),
    (lambda: benchmark.over_batch_sizes([0], None, 1), "--batch_size must be >= 1"),
    (lambda: length_sorted_batches({"attention_mask": np.ones((2, 2))}, 0), "batch size"),
])
def test_bad_counts_are_user_errors(call, message):
    with pytest.raises(UserError, match=message):
        call()


def test_a_data_folder_without_the_split_is_a_user_error(tmp_path):
    from common.tasks import get_task
    (tmp_path / "train.tsv").write_text("sentence\tlabel\nok\t1\n")
    with pytest.raises(UserError, match="dev file not found"):
        benchmark.real_inputs(get_task("sst-2"), str(tmp_path), "dev", None, 16)


def test_length_sorted_batches_cut_to_the_longest_row_and_restore_order():
    mask = np.array([[1, 1, 1, 0], [1, 0, 0, 0], [1, 1, 1, 1], [1, 1, 0, 0]], np.int32)
    arrays = {"input_ids": mask * 7, "token_type_ids": 0 * mask, "attention_mask": mask,
              "labels": np.arange(4)}
    order, batches = length_sorted_batches(arrays, 2)
    assert order.tolist() == [1, 3, 0, 2]
    assert [b["input_ids"].shape for b in batches] == [(2, 2), (2, 4)]
    assert batches[0]["labels"].tolist() == [1, 3]
    assert restore_order(np.array([10, 30, 0, 20]), order).tolist() == [0, 10, 20, 30]
    widths = map_length_sorted(lambda b: np.full(len(b["input_ids"]), b["input_ids"].shape[1]),
                               arrays, 2)
    assert widths.tolist() == [4, 2, 4, 2]


def test_dynamic_evaluation_equals_padded_evaluation():
    from common import checkpoints
    from common.tasks import get_task
    from common.training import evaluate_classifier, predict

    model, _, _ = checkpoints.load_classifier(str(FIXTURES / "tiny_bert"), 2, max_length=16)
    arrays = benchmark.random_inputs(model.config, 13, 16, seed=1, min_length=3)
    arrays["labels"] = np.arange(13) % 2
    dynamic = predict(model, arrays, batch_size=4)
    padded = predict(model, arrays, batch_size=4, dynamic=False)
    np.testing.assert_allclose(dynamic, padded, atol=1e-5)
    assert (dynamic.argmax(-1) == padded.argmax(-1)).all()
    task = get_task("sst-2")
    a = evaluate_classifier(model, task, arrays, 4)
    b = evaluate_classifier(model, task, arrays, 4, dynamic=False)
    assert a["acc"] == b["acc"] and abs(a["eval_loss"] - b["eval_loss"]) < 1e-5


def test_powerbert_tool_tiny_run(tmp_path, capsys):
    from tools import benchmark_powerbert

    output = tmp_path / "pb.json"
    assert benchmark_powerbert.main([
        "--config", str(FIXTURES / "tiny_bert" / "config.json"), "--max_length", "16",
        "--retention", "12,8,4", "--examples", "6", "--min_length", "13", "--batch_sizes", "1,3",
        "--repeats", "2", "--warmup", "1", "--output", str(output)]) == 0
    record = json.loads(output.read_text())
    single, batched = ({r["side"]: r for r in g["rows"]} for g in record["groups"])
    assert set(single) == {"dense-padded", "dense-unpadded", "dense-unpadded-xla",
                           "powerbert-unpadded"}
    assert set(batched) == {"dense-padded", "dense-dynamic-graph", "dense-dynamic-xla",
                            "powerbert-padded", "powerbert-dynamic", "powerbert-dynamic-graph"}
    for rows, headline in ((single, "unpadded"), (batched, "dynamic")):
        for row in rows.values():
            assert row["median_ms"] > 0 and row["examples"] == 6 and len(row["times_ms"]) == 2
            assert row["speedup"] == row[f"speedup_vs_{headline}"] > 0
            assert row["speedup_vs_padded"] > 0 and row["paired_speedup"] > 0
            assert row["measured_over_flops"] == row["speedup"] / row["flops_speedup"]
    settings = record["settings"]
    assert settings["retention"] == [12, 8, 4] and 13 <= settings["mean_length"] <= 16
    # FLOPs on the real lengths: below the padded count (12,8,4 of 16) when texts are shorter.
    from common import flops
    from powerbert.flops import powerbert_flops
    from common.config import BertConfig
    config = BertConfig.from_json(str(FIXTURES / "tiny_bert" / "config.json"))
    padded = flops.vanilla_flops(config, 16) / powerbert_flops(config, 16, [12, 8, 4])
    assert 1.0 < settings["flops_speedup_on_real_lengths"] < padded
    assert batched["powerbert-dynamic"]["flops_speedup"] == settings[
        "flops_speedup_on_real_lengths"]
    assert "| 3 | powerbert-dynamic |" in capsys.readouterr().out


def test_powerbert_tool_real_texts_give_the_metric(tmp_path):
    from tools import benchmark_powerbert

    data = tmp_path / "SST-2"
    data.mkdir()
    (data / "dev.tsv").write_text("sentence\tlabel\n" + "".join(
        f"{'a good film ' * (i % 2 + 1)}\t{i % 2}\n" for i in range(8)))
    output = tmp_path / "pb.json"
    benchmark_powerbert.main([
        "--model", str(FIXTURES / "tiny_bert"), "--max_length", "16", "--retention", "12,8,4",
        "--task", "sst-2", "--data_dir", str(data), "--batch_sizes", "4", "--repeats", "1",
        "--warmup", "1", "--output", str(output)])
    rows = json.loads(output.read_text())["groups"][0]["rows"]
    metrics = {row["side"]: row["metric"] for row in rows}
    assert all(0 <= value <= 1 for value in metrics.values()) and len(metrics) == 6
    # Dense outputs do not depend on the padding; PoWER-BERT's real tokens kept do not either.
    assert metrics["dense-padded"] == metrics["dense-dynamic-graph"] == metrics["dense-dynamic-xla"]
    assert (metrics["powerbert-padded"] == metrics["powerbert-dynamic"]
            == metrics["powerbert-dynamic-graph"])


@pytest.mark.parametrize("argv, message", [
    (["--batch_sizes", "0"], "--batch_sizes must be >= 1"),
    (["--repeats", "0"], "--repeats must be >= 1"),
    (["--examples", "0"], "--examples must be >= 1"),
    (["--task", "sst-2"], "--task needs --data_dir"),
    (["--sides", "dense-padded,turbo"], "unknown side(s) turbo; at these batch sizes"),
])
def test_powerbert_tool_bad_input(argv, message, capsys):
    from tools import benchmark_powerbert

    with pytest.raises(SystemExit) as exit_info:
        benchmark_powerbert.main(["--config", str(FIXTURES / "tiny_bert" / "config.json"),
                                  "--max_length", "16", "--retention", "12,8,4", *argv])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and "\n" not in err
