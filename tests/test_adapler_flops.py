"""FLOPs, speed-up and outputs of the evaluation: test vectors of the original's fitted formulas,
the ratio of sums, the original's 13-entry count vector, exact counting, the GLUE TSV."""
import numpy as np
import pytest

from adapler.evaluation import batched_outputs, evaluate, write_glue_tsv
from adapler.flops import (adapler_flops, check_counting, fitted_adapler_flops, fitted_bert_flops,
                           per_example_flops, total_speedup)
from adapler.model import AdapLeRClassifier
from common import flops
from common.checkpoints import load_backbone_weights, resolve_source
from common.config import BertConfig
from common.errors import UserError
from common.modeling import dummy_inputs
from common.tasks import get_task
from tests.test_adapler_model import TINY, random_batch

BERT_BASE = BertConfig()


def paper(counts, predictions):
    return per_example_flops(BERT_BASE, "paper", lengths=[c[0] for c in counts], kept=None,
                             num_labels=2, cp_hidden=32, paper_counts=np.asarray(counts),
                             predictions=np.asarray(predictions))


def test_paper_test_vectors():
    bert, adapler = paper([[64] * 13, [10] * 13], [0, 1])
    assert bert == [11_050_164_739, 1_707_137_227]
    assert adapler == [11_088_071_986, 1_713_060_274]
    assert bert[0] / adapler[0] == pytest.approx(0.99658, abs=1e-5)
    # C is estimated as max(prediction) + 1: predictions up to 3 -> C = 4
    bert, adapler = paper([[128, 128] + [64] * 5 + [16] * 6], [3])
    assert bert == [22_409_394_949] and adapler == [7_866_219_380]
    assert bert[0] / adapler[0] == pytest.approx(2.8488, abs=1e-4)


@pytest.mark.parametrize("num_labels", [2, 3])
@pytest.mark.parametrize("n", [8, 16, 32, 64, 128, 256, 512])
def test_agrees_with_adapler_fitted_bert_formula(n, num_labels):
    ours = flops.vanilla_flops(BERT_BASE, n, num_labels)
    fitted = fitted_bert_flops(n, num_labels)
    assert abs(ours / fitted - 1) < 0.01


def test_paper_formula_test_vectors():
    bert, adapler = fitted_bert_flops, fitted_adapler_flops
    assert bert(64, 2) == 11_050_164_739
    assert adapler([64] * 12, 2) == 11_088_071_986
    assert bert(10, 2) == 1_707_137_227
    assert adapler([10] * 12, 2) == 1_713_060_274
    assert bert(128, 4) == 22_409_394_949
    assert adapler([128] + [64] * 5 + [16] * 6, 4) == 7_866_219_380
    assert round(flops.speedup(bert(64, 2), adapler([64] * 12, 2)), 5) == 0.99658
    assert round(flops.speedup(bert(128, 4), adapler([128] + [64] * 5 + [16] * 6, 4)), 4) == 2.8488
    with pytest.raises(UserError):
        adapler([64] * 13, 2)


def test_speedup_is_a_ratio_of_sums():
    bert, adapler = paper([[128, 128] + [64] * 5 + [16] * 6, [10] * 13], [1, 0])
    assert total_speedup(bert, adapler) == pytest.approx(sum(bert) / sum(adapler))
    assert total_speedup(bert, adapler) != pytest.approx(np.mean(np.divide(bert, adapler)))


def test_exact_and_fitted_counts():
    kept = [[20] * 6 + [8] * 6]
    bert, adapler = per_example_flops(BERT_BASE, "exact", [30], kept, 2, 32)
    assert bert == [flops.vanilla_flops(BERT_BASE, 30, 2)]
    assert adapler == [adapler_flops(BERT_BASE, 30, kept[0], 2, 32)]
    bert, adapler = per_example_flops(BERT_BASE, "fitted", [30], kept, 2, 32)
    assert bert == [fitted_bert_flops(30, 2)]
    assert adapler == [fitted_adapler_flops(kept[0], 2)]
    small = BertConfig(num_hidden_layers=6, hidden_size=384, intermediate_size=1536)
    with pytest.raises(UserError, match="12-layer BERT-base"):
        check_counting(small, "paper")


def test_count_vector_of_the_original():
    """c_l = #(p_l > 1e-6) for the 12 (here 3) layers; the last entry compares p_11 with eta_11,
    not eta_11 / n."""
    model = AdapLeRClassifier(resolve_source(TINY).config, 3)
    model(dummy_inputs())
    load_backbone_weights(model, resolve_source(TINY))
    rng = np.random.default_rng(0)
    for predictor in model.predictors:
        predictor.out.kernel.assign(rng.normal(0, 2.0, predictor.out.kernel.shape))
    model.eta.assign(np.array([0.5, 0.6, 0.1], np.float32))
    features = random_batch(rng, batch=5, length=12, pad_to=14)
    outputs = batched_outputs(model, features, batch_size=4)
    shares = model(features, sharpness=1e20, output_explanations=True)["explanations"]
    counts = outputs["paper_counts"]
    np.testing.assert_array_equal(counts[:, 0], features["attention_mask"].sum(1))
    for layer in range(3):
        np.testing.assert_array_equal(counts[:, layer], (shares[layer].numpy() > 1e-6).sum(1))
    np.testing.assert_array_equal(counts[:, 3], (shares[2].numpy() > 0.1).sum(1))
    np.testing.assert_array_equal(counts[:, 1:3], outputs["kept"][:, :2])  # = true lengths
    result = evaluate(model, get_task("sst-2"), {**features, "labels": np.zeros(5, int)},
                      batch_size=4)
    assert result["count"] == 5 and 0 < result["speedup"]
    assert len(result["flops"]["bert"]) == 5


def test_glue_tsv_format(tmp_path):
    path = tmp_path / "out.tsv"
    write_glue_tsv(str(path), get_task("sst2"), ["0", "1", "2"], np.array([1, 0, 1]), "r1")
    assert path.read_text() == "index\tprediction\n0\t1\n1\t0\n2\t1\n"
    write_glue_tsv(str(path), get_task("qnli"), ["0", "1"], np.array([1, 0]), "r2")
    assert path.read_text().splitlines()[1:] == ["0\tnot_entailment", "1\tentailment"]
    write_glue_tsv(str(path), get_task("mnli"), ["7"], np.array([2]), "r3")
    assert path.read_text().splitlines()[1] == "7\tneutral"
    # every run's own copy is kept beside the latest
    assert (tmp_path / "results" / "r1" / "out.tsv").read_text().splitlines()[1] == "0\t1"
    assert (tmp_path / "results" / "r2" / "out.tsv").read_text().splitlines()[1] == (
        "0\tnot_entailment")
