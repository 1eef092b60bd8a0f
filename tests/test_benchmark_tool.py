"""tools/benchmark.py runs end to end on a tiny model (1 repeat) and rejects bad input cleanly;
its sides (common/backbone_benchmark.py) copy the weights into PyTorch."""
import importlib.util
import json
import tempfile

import numpy as np
import pytest

from common import backbone_benchmark
from common import benchmark as benchmark_harness
from conftest import FIXTURES, REPO

spec = importlib.util.spec_from_file_location("benchmark_tool", REPO / "tools" / "benchmark.py")
benchmark = importlib.util.module_from_spec(spec)
spec.loader.exec_module(benchmark)

HAS_TORCH = all(importlib.util.find_spec(m) for m in ("torch", "transformers"))


def test_tiny_run_writes_json_and_docs(tmp_path, capsys):
    docs = tmp_path / "benchmarks.md"
    docs.write_text("# Benchmarks\n\n<!-- BEGIN other -->\nkeep me\n<!-- END other -->\n")
    out = tmp_path / "bench.json"
    argv = ["--model", str(FIXTURES / "tiny_bert"), "--shapes", "2x8,1x4", "--warmup", "1",
            "--repeats", "1", "--json", str(out), "--docs", str(docs)]
    assert benchmark.main(argv) == 0
    result = json.loads(out.read_text())
    sides = {(row["shape"], row["side"]) for row in result["rows"]}
    assert {("2x8", "tensorflow"), ("1x4", "tensorflow")} <= sides
    assert (("2x8", "pytorch") in sides) == HAS_TORCH
    for row in result["rows"]:
        assert row["median_ms"] > 0 and row["sequences_per_s"] > 0 and row["gflops_per_s"] > 0
        assert (row["ratio"] is not None) == HAS_TORCH and len(row["times_ms"]) == 1
    assert set(result["environments"]) == {"2x8", "1x4"}
    assert {"cpu_flags", "cpu", "versions"} <= set(result["machine"])
    assert result["commit"] == benchmark_harness.git_commit()
    assert {"loadavg_before", "loadavg_after", "background_cpu_share",
            "busy_processes"} <= set(result["environments"]["2x8"])
    if HAS_TORCH:
        assert max(result["agreement"]["2x8"].values()) <= backbone_benchmark.TOLERANCE
    text = docs.read_text()
    assert "keep me" in text and text.count("<!-- BEGIN backbone -->") == 1
    assert "| 2x8 | tensorflow |" in text and result["command"] in text
    assert "| 2x8 | tensorflow |" in capsys.readouterr().out
    # A second run replaces the section instead of appending another one.
    benchmark.main(argv[:-2] + ["--compare", "none", "--docs", str(docs)])
    assert docs.read_text().count("<!-- BEGIN backbone -->") == 1


@pytest.mark.skipif(not HAS_TORCH, reason="torch / transformers not installed")
@pytest.mark.parametrize("name", ["tiny_albert", "tiny_roberta", "tiny_distilbert", "tiny_electra"])
def test_weights_copy_into_pytorch(name):
    from common.benchmark import Remote, run_sides

    args = benchmark.build_parser().parse_args(["--model", str(FIXTURES / name)])
    model, _ = backbone_benchmark.load_model(args, 8)
    items = [backbone_benchmark.make_inputs(model.config, 2, 8, 0)]
    with tempfile.TemporaryDirectory() as tmp:
        state = f"{tmp}/w.npz"
        np.savez(state, **backbone_benchmark.hf_state(model))
        model_type, shape = backbone_benchmark.hf_shape(model)
        remote = Remote("common.backbone_benchmark:torch_sides", dict(
            model_type=model_type, shape=shape, state_file=state, items=items, threads=1,
            onnx=False))
        _, measurement = run_sides(
            backbone_benchmark.tensorflow_sides({"fp32": model}, [False], items), [remote],
            repeats=1, warmup=0, check=backbone_benchmark.check_agreement)
    assert set(measurement["check"]) == {"tensorflow", "pytorch", "pytorch last hidden state"}


@pytest.mark.parametrize("name", ["tiny_roberta", "tiny_xlm_roberta", "tiny_distilbert",
                                  "tiny_electra"])
def test_pytorch_side_gets_each_familys_names_and_shape(name):
    """Without torch: our weights under the HF names are exactly the HF classifier's tensors
    (the fixture's model.safetensors), and the shape is the HF config's."""
    from safetensors.numpy import load_file

    args = benchmark.build_parser().parse_args(["--model", str(FIXTURES / name),
                                                "--num_labels", "3"])
    model, _ = backbone_benchmark.load_model(args, 8)
    state = backbone_benchmark.hf_state(model)
    stored = load_file(str(FIXTURES / name / "model.safetensors"))
    assert set(state) == set(stored)
    for key, value in stored.items():
        np.testing.assert_array_equal(state[key], value, err_msg=key)
    model_type, shape = backbone_benchmark.hf_shape(model)
    config = json.loads((FIXTURES / name / "config.json").read_text())
    assert model_type == config["model_type"]
    assert all(config[key] == value for key, value in shape.items()
               if key in config and key not in ("classifier_dropout",)), shape
    ids = backbone_benchmark.make_inputs(model.config, 2, 8, 0)["input_ids"]
    assert ids.min() > model.config.pad_token_id


def test_random_roberta_shaped_model(tmp_path):
    """--config of a RoBERTa config.json builds a random RoBERTa-shaped model and times it."""
    out = tmp_path / "bench.json"
    argv = ["--config", str(FIXTURES / "tiny_roberta" / "config.json"), "--shapes", "2x8",
            "--warmup", "1", "--repeats", "1", "--compare", "none", "--json", str(out)]
    assert benchmark.main(argv) == 0
    result = json.loads(out.read_text())
    assert "random weights, shape of" in result["settings"]["weights"]
    assert [row["side"] for row in result["rows"]] == ["tensorflow"]
    args = benchmark.build_parser().parse_args(argv)
    model, _ = backbone_benchmark.load_model(args, 8)
    assert model.config.model_type == "roberta" and model.bert.embeddings.position_offset == 2


@pytest.mark.parametrize("argv, message", [
    (["--shapes", "32by128"], "is not BATCHxLENGTH"),
    (["--shapes", "0x128"], "positive batch size"),
    (["--repeats", "0"], "--repeats must be positive"),
    (["--task", "sst-2"], "--task needs --data_dir"),
    (["--model", str(FIXTURES / "tiny_bert"), "--shapes", "2x8", "--task", "sst-2",
      "--data_dir", str(FIXTURES)],
     "dev file not found"),
    (["--compare", "jax"], "unknown side(s) jax"),
    (["--compare", "onnxruntime"], "add pytorch"),
    (["--model", "/no/such/model"], "not found"),
    (["--precisions", "fp32,int8"], "--precisions: give distinct names"),
    (["--precisions", "fp32,fp32"], "--precisions: give distinct names"),
    (["--precisions", "fp32,bf16", "--bf16"], "leave out --bf16/--fp16"),
    (["--config", str(FIXTURES / "tiny_bert"), "--shapes", "1x64"], "position table"),
])
def test_bad_input_is_one_line_and_exit_2(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        benchmark.main(argv + ["--compare", "none"] if "--compare" not in argv else argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and "\n" not in err


def test_real_texts_run_in_length_sorted_batches(tmp_path):
    data = tmp_path / "SST-2"
    data.mkdir()
    (data / "dev.tsv").write_text("sentence\tlabel\n" + "".join(
        f"{'a fine film ' * (i % 3 + 1)}\t{i % 2}\n" for i in range(5)))
    out = tmp_path / "bench.json"
    benchmark.main(["--model", str(FIXTURES / "tiny_bert"), "--shapes", "2x16", "--repeats", "1",
                    "--warmup", "0", "--compare", "none", "--task", "sst-2", "--data_dir",
                    str(data), "--json", str(out)])
    result = json.loads(out.read_text())
    assert result["settings"]["inputs"].startswith("sst-2 dev texts")
    (row,) = result["rows"]
    assert row["side"] == "tensorflow" and row["sequences_per_s"] > 0


def test_precisions_time_each_precision_in_one_run(tmp_path):
    out = tmp_path / "bench.json"
    benchmark.main(["--model", str(FIXTURES / "tiny_bert"), "--shapes", "2x8", "--repeats", "2",
                    "--warmup", "1", "--compare", "none", "--precisions", "fp32,bf16",
                    "--json", str(out)])
    result = json.loads(out.read_text())
    rows = {row["side"]: row for row in result["rows"]}
    assert set(rows) == {"tensorflow", "tensorflow-bf16"}
    assert rows["tensorflow"]["vs_fp32"] == pytest.approx(1.0)
    assert rows["tensorflow-bf16"]["vs_fp32"] == pytest.approx(
        rows["tensorflow"]["median_ms"] / rows["tensorflow-bf16"]["median_ms"])
    gap = result["agreement"]["2x8"]["tensorflow-bf16"]
    assert 0 < gap < 0.5  # bf16 rounds, but the same weights give nearly the same logits
    import keras
    assert keras.mixed_precision.global_policy().name == "float32"
