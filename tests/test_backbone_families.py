"""The backbone families (issue 31): each HF config's keys, the refusal of any other model type
before a weight is read, and our checkpoints of each family round-tripping."""
import json
import shutil

import numpy as np
import pytest

from common import checkpoints
from common.config import MODEL_TYPES, BertConfig
from common.errors import UserError
from conftest import FIXTURES

FAMILIES = ["tiny_roberta", "tiny_xlm_roberta", "tiny_distilbert", "tiny_electra"]


def test_distilbert_keys():
    config = BertConfig.from_json(str(FIXTURES / "tiny_distilbert"))
    assert (config.hidden_size, config.num_hidden_layers, config.num_attention_heads,
            config.intermediate_size) == (16, 3, 4, 32)
    assert config.classifier_dropout == 0.2 and config.layer_norm_eps == 1e-12
    assert not config.has_token_types and config.pooler_activation == "relu"
    assert config.max_length == 16 and not config.projects_embeddings


def test_roberta_positions_start_after_the_padding_index():
    for name, model_type in (("tiny_roberta", "roberta"), ("tiny_xlm_roberta", "xlm-roberta")):
        config = BertConfig.from_json(str(FIXTURES / name))
        assert config.model_type == model_type and config.family == "roberta"
        assert (config.pad_token_id, config.position_offset, config.max_length) == (1, 2, 16)
        assert config.type_vocab_size == 1 and config.pooler_activation == "tanh"
    with pytest.raises(UserError, match="over the model's position table \\(16\\)"):
        checkpoints.load_classifier(str(FIXTURES / "tiny_roberta"), 3, max_length=17)


def test_electra_projects_its_embeddings():
    config = BertConfig.from_json(str(FIXTURES / "tiny_electra"))
    assert (config.embedding_width, config.hidden_size) == (8, 16)
    assert config.projects_embeddings and config.pooler_activation == "gelu"
    same = BertConfig.from_dict({**config.to_dict(), "embedding_size": 16})
    assert not same.projects_embeddings


@pytest.mark.parametrize("model_type", ["gpt2", "t5", "deberta-v2", "mpnet"])
def test_other_model_types_are_refused_before_any_weight_is_read(model_type, tmp_path):
    folder = tmp_path / model_type
    shutil.copytree(FIXTURES / "tiny_bert", folder)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "model_type": model_type}))
    (folder / "model.safetensors").write_bytes(b"not a weights file")
    with pytest.raises(UserError) as error:
        checkpoints.resolve_source(str(folder))
    assert f"model_type '{model_type}' is not supported" in str(error.value)
    assert all(name in str(error.value) for name in MODEL_TYPES)


def test_refusal_is_one_line_and_exit_2(tmp_path, capsys):
    from tools.finetune import main
    folder = tmp_path / "gpt2"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "gpt2", "n_embd": 16}))
    with pytest.raises(SystemExit) as stop:
        main(["--model", str(folder), "--eval_only"])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and "Traceback" not in err
    assert [line for line in err.splitlines() if "error:" in line] == [
        f"error: model_type 'gpt2' is not supported; supported: {', '.join(MODEL_TYPES)} "
        "(the model folder's config.json names it)"]


@pytest.mark.parametrize("name", FAMILIES)
def test_own_checkpoint_of_each_family_round_trips(name, tmp_path):
    model, source, _ = checkpoints.load_classifier(str(FIXTURES / name), 3)
    checkpoints.save_checkpoint(model, str(tmp_path / "own"), {"num_labels": 3})
    again, own, head_loaded = checkpoints.load_classifier(str(tmp_path / "own"))
    assert head_loaded and own.config == source.config
    ref = np.load(FIXTURES / name / "reference.npz")
    inputs = {k: ref[k].astype(np.int32) for k in ("input_ids", "token_type_ids",
                                                   "attention_mask")}
    np.testing.assert_array_equal(np.asarray(again(inputs)), np.asarray(model(inputs)))


def test_base_model_without_head_keeps_a_fresh_pooler(tmp_path):
    """A RoBERTa base folder (no `classifier.*`): the backbone loads, pooler and head stay fresh."""
    from safetensors.numpy import load_file, save_file
    folder = tmp_path / "base"
    shutil.copytree(FIXTURES / "tiny_roberta", folder)
    tensors = load_file(str(folder / "model.safetensors"))
    save_file({k: v for k, v in tensors.items() if not k.startswith("classifier.")},
              str(folder / "model.safetensors"))
    _, _, head_loaded = checkpoints.load_classifier(str(folder), 3)
    assert not head_loaded
    del tensors["roberta.embeddings.word_embeddings.weight"]
    save_file(tensors, str(folder / "model.safetensors"))
    with pytest.raises(UserError, match="embeddings.word_embeddings.weight missing"):
        checkpoints.load_classifier(str(folder), 3)


def test_config_contradicting_its_weights_is_one_line(tmp_path):
    folder = tmp_path / "distilbert"
    shutil.copytree(FIXTURES / "tiny_distilbert", folder)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "hidden_dim": 48}))
    with pytest.raises(UserError, match=r"transformer.layer.0.ffn.lin1.weight in .* has shape "
                                        r"\(32, 16\) but the model expects \(48, 16\)"):
        checkpoints.load_classifier(str(folder), 3)


def test_finetune_command_line_on_distilbert(tmp_path):
    """tools/finetune on a DistilBERT folder: trains, saves its tokenizer, and the registry's
    `load_model` (the Python API's loader) gives the saved model back."""
    from common import methods
    from common.tokenization import encode, load_tokenizer
    from tools.finetune import main

    data = tmp_path / "SST-2"
    data.mkdir()
    rows = ["the movie was good\t1", "a great film\t1", "it was boring\t0", "an awful plot\t0"]
    for split in ("train", "dev"):
        (data / f"{split}.tsv").write_text("sentence\tlabel\n" + "\n".join(rows * 2) + "\n")
    out = tmp_path / "out"
    main(["--model", str(FIXTURES / "tiny_distilbert"), "--data_dir", str(data), "--output_dir",
          str(out), "--epochs", "1", "--batch_size", "4", "--max_length", "16"])
    model, source = methods.load_model(str(out))
    assert source.config.model_type == "distilbert" and source.sidecar["method"] == "vanilla"
    features = encode(load_tokenizer(str(out)), ["a great film"], max_length=16)
    trained, _, _ = checkpoints.load_classifier(str(out))
    np.testing.assert_allclose(np.asarray(model(features)), np.asarray(trained(features)),
                               atol=1e-6)
