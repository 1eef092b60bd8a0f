"""Tests of common/flops.py and tools/flops_calculator.py: hand counts on a tiny model, the n^2
term of AdapLeR's fitted formula, monotonicity, CLI errors (the fitted formulas themselves:
tests/test_adapler_flops.py)."""
import json

import pytest

from adapler.flops import adapler_flops
from common import flops
from common.config import BertConfig
from common.errors import UserError
from ltp.flops import ltp_flops
from pabee.flops import pabee_flops
from powerbert.flops import powerbert_flops
from tools import flops_calculator

BERT_BASE = BertConfig(vocab_size=30522, hidden_size=768, num_hidden_layers=12,
                       num_attention_heads=12, intermediate_size=3072)


def tiny(layers=1, **overrides):
    return BertConfig(vocab_size=10, hidden_size=4, num_hidden_layers=layers,
                      num_attention_heads=2, intermediate_size=8, max_position_embeddings=16,
                      **overrides)


# Hand count, H=4, A=2 (head size 2), F=8, n=3, C=2, gelu.
EMBEDDINGS = 2 * 3 * 4 + 7 * 3 * 4             # two adds + LayerNorm                 = 108
ATTENTION_3 = (3 * (3 * 2 * 4 * 4 + 3 * 4)     # Q, K, V with biases                  = 324
               + 2 * 3 * 3 * 2 * 2             # QK^T: 2 heads x 9 scores x 2 MACs    = 72
               + 2 * 9 * (1 + 1 + 5)           # scale, mask, softmax                 = 126
               + 2 * 3 * 2 * 3 * 2             # AV: 2 heads x 3x2 outputs x 3 MACs   = 72
               + 3 * 2 * 4 * 4 + 3 * 4         # output projection                    = 108
               + 3 * 4 + 7 * 3 * 4)            # residual + LayerNorm                 = 96
FFN_3 = (3 * 2 * 4 * 8 + 3 * 8                 # Dense 4->8                           = 216
         + 5 * 3 * 8                           # gelu                                 = 120
         + 3 * 2 * 8 * 4 + 3 * 4               # Dense 8->4                           = 204
         + 3 * 4 + 7 * 3 * 4)                  # residual + LayerNorm                 = 96
HEAD = (2 * 4 * 4 + 4 + 4                      # pooler Dense 4->4 + tanh             = 40
        + 2 * 4 * 2 + 2)                       # classifier Dense 4->2                = 18


def test_hand_count_tiny_model():
    assert (EMBEDDINGS, ATTENTION_3, FFN_3, HEAD) == (108, 798, 636, 58)
    assert flops.vanilla_flops(tiny(1), 3, 2) == 108 + 798 + 636 + 58 == 1600
    assert flops.vanilla_flops(tiny(2), 3, 2) == 108 + 2 * (798 + 636) + 58 == 3034
    assert flops.embedding_flops(tiny(), 3) == EMBEDDINGS
    assert flops.block_flops(tiny(), 3) == ATTENTION_3 + FFN_3
    assert flops.head_flops(tiny(), 2) == HEAD


def test_hand_count_tiny_methods():
    # attention on 2 tokens: QKV 3*(2*32+8), QK^T 2*4*4, score ops 7*2*4, AV 2*4*4, out 2*32+8,
    # residual + LN 2*4*8
    attention_2 = 216 + 32 + 56 + 32 + 72 + 64
    ffn_2 = (2 * 64 + 16) + 5 * 16 + (2 * 64 + 8) + 64
    attention_1 = 3 * (32 + 4) + 8 + 14 + 8 + (32 + 4) + 32
    ffn_1 = (64 + 8) + 40 + (64 + 4) + 32
    # PoWER-BERT keeps 2 then 1: block 1 attends over 3, FFN on 2; block 2 attends over 2, FFN on 1
    assert powerbert_flops(tiny(2), 3, [2, 1]) == (
        108 + ATTENTION_3 + ffn_2 + attention_2 + ffn_1 + 58)
    # AdapLeR keeps 2 then 1; CPs score 3 then 2 tokens. CP per token: Dense 4->32, gelu on 32,
    # Dense 32->1, softmax share.
    cp = (2 * 4 * 32 + 32) + 5 * 32 + (2 * 32 + 1) + 5
    assert cp == 518
    assert adapler_flops(tiny(2), 3, [2, 1]) == (
        108 + 3 * cp + 2 * cp + attention_2 + ffn_2 + attention_1 + ffn_1 + 58)
    # PABEE pays the pooler + classifier after every executed layer
    assert pabee_flops(tiny(2), 3, 1) == 108 + 798 + 636 + 58
    assert pabee_flops(tiny(2), 3, 2) == 108 + 2 * (798 + 636) + 2 * 58


def test_albert_counts_the_embedding_projection():
    same_width = tiny(model_type="albert", embedding_size=4)
    projection = 3 * 2 * 4 * 4 + 3 * 4
    assert flops.vanilla_flops(same_width, 3) - flops.vanilla_flops(tiny(), 3) == projection
    narrow = tiny(model_type="albert", embedding_size=2)
    assert flops.embedding_flops(narrow, 3) == 3 * 2 * 2 + 7 * 3 * 2 + (3 * 2 * 2 * 4 + 3 * 4)


def test_quadratic_term_matches_the_fit_exactly():
    # second difference of the per-layer cost = 2 * 3,156 (the n^2 term of AdapLeR's fitted FLOPs)
    per_layer = [flops.block_flops(BERT_BASE, n) for n in (10, 11, 12)]
    assert per_layer[2] - 2 * per_layer[1] + per_layer[0] == 2 * 3_156


def test_adapler_without_removal_costs_slightly_more_than_bert():
    # the CP overhead alone: the paper's "speedup" of an unreduced model is about 0.9965
    ratio = flops.speedup(flops.vanilla_flops(BERT_BASE, 64),
                          adapler_flops(BERT_BASE, 64, [64] * 12))
    assert 0.995 < ratio < 0.998


def test_fewer_tokens_fewer_flops():
    values = [flops.vanilla_flops(BERT_BASE, n) for n in range(1, 65)]
    assert all(a < b for a, b in zip(values, values[1:]))
    full = [64] * 12
    for layer in range(12):
        shorter = full[:layer] + [32] * (12 - layer)
        for count in (powerbert_flops, adapler_flops):
            assert count(BERT_BASE, 64, shorter) < count(BERT_BASE, 64, full)
    pabee = [pabee_flops(BERT_BASE, 64, m) for m in range(1, 13)]
    assert all(a < b for a, b in zip(pabee, pabee[1:]))


def test_no_reduction_equals_vanilla():
    assert powerbert_flops(BERT_BASE, 100, [100] * 12) == flops.vanilla_flops(BERT_BASE, 100)
    assert flops.forward_flops(BERT_BASE, 100, [100] * 12, ffn_lengths=[100] * 12) == \
        flops.vanilla_flops(BERT_BASE, 100)


@pytest.mark.parametrize("kwargs", [
    {"lengths": [3, 0]}, {"lengths": [3, 2.0]}, {"lengths": [3, 4]}, {"lengths": [3, 3, 3]},
    {"lengths": []}, {"ffn_lengths": [3]}, {"lengths": [2, 2], "ffn_lengths": [3, 2]},
    {"num_labels": 0},
])
def test_bad_lengths_raise_user_error(kwargs):
    with pytest.raises(UserError):
        flops.forward_flops(tiny(2), 3, **kwargs)


def test_method_wrappers_need_one_length_per_layer():
    with pytest.raises(UserError):
        powerbert_flops(tiny(2), 3, [2])
    with pytest.raises(UserError):
        adapler_flops(tiny(2), 3, [2, 2, 2])
    with pytest.raises(UserError):  # a block cannot see more tokens than its predictor scored
        adapler_flops(tiny(2), 3, [2, 3])
    with pytest.raises(UserError):
        pabee_flops(tiny(2), 3, 3)


def test_cli_prints_flops_and_speedup(capsys, tmp_path):
    assert flops_calculator.main(["--max_length", "128", "--exit_layer", "6"]) == 0
    out = capsys.readouterr().out
    assert f"{flops.vanilla_flops(BERT_BASE, 128):,}" in out
    assert f"{pabee_flops(BERT_BASE, 128, 6):,}" in out and "speed-up" in out

    config = tmp_path / "config.json"
    config.write_text(json.dumps(tiny(2).to_dict()))
    assert flops_calculator.main(["--config", str(config), "--max_length", "3",
                                  "--lengths", "2, 1", "--method", "adapler"]) == 0
    assert f"{adapler_flops(tiny(2), 3, [2, 1]):,}" in capsys.readouterr().out
    assert flops_calculator.main(["--config", str(config), "--max_length", "3",
                                  "--lengths", "2,1", "--method", "ltp"]) == 0
    assert f"ltp: {ltp_flops(tiny(2), 3, [2, 1]):,}" in capsys.readouterr().out


@pytest.mark.parametrize("argv", [
    ["--lengths", "128,x"],
    ["--lengths", ",".join(["128"] * 11)],
    ["--lengths", ",".join(["128"] * 11 + ["0"])],
    ["--lengths", ",".join(["128"] * 11 + ["129"])],
    ["--max_length", "-1"],
    ["--exit_layer", "13"],
    ["--config", "/nonexistent/config.json"],
])
def test_cli_bad_input_exits_2(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        flops_calculator.main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1


def test_each_family_shape():
    """DistilBERT: one add fewer in the embeddings, ReLU head; ELECTRA: the E->H projection
    when E != H and a GELU head; RoBERTa: BERT's count."""
    assert flops.vanilla_flops(tiny(model_type="roberta"), 3) == flops.vanilla_flops(tiny(), 3)
    distil = tiny(model_type="distilbert")
    assert flops.embedding_flops(distil, 3) == EMBEDDINGS - 3 * 4
    assert flops.head_flops(distil, 2) == HEAD  # ReLU and tanh: 1 FLOP each
    electra = tiny(model_type="electra", embedding_size=2)
    assert flops.embedding_flops(electra, 3) == 3 * 2 * 2 + 7 * 3 * 2 + (3 * 2 * 2 * 4 + 3 * 4)
    assert flops.head_flops(electra, 2) == HEAD + 4 * 4  # GELU 5 FLOPs instead of tanh's 1
    assert flops.embedding_flops(tiny(model_type="electra", embedding_size=4), 3) == EMBEDDINGS
    six = BertConfig.from_dict({"model_type": "distilbert", "dim": 768, "n_layers": 6,
                                "n_heads": 12, "hidden_dim": 3072, "vocab_size": 30522})
    bert6 = BertConfig(num_hidden_layers=6)
    assert flops.vanilla_flops(six, 128) == flops.vanilla_flops(bert6, 128) - 128 * 768
