"""BertConfig: the backbone's shape, read from an HF `config.json`, a Google `bert_config.json`
or an ALBERT config, and written back as a plain dict in our checkpoint sidecars."""
import dataclasses
import json
import os

from common.errors import UserError

SUPPORTED_ACTIVATIONS = ("gelu", "gelu_new", "gelu_pytorch_tanh", "gelu_fast", "relu", "tanh")


@dataclasses.dataclass
class BertConfig:
    vocab_size: int = 30522
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu"
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12
    initializer_range: float = 0.02
    model_type: str = "bert"  # "bert" or "albert"
    embedding_size: int | None = None  # ALBERT's factorised embedding width
    num_hidden_groups: int = 1  # ALBERT: blocks shared within a group
    inner_group_num: int = 1

    def __post_init__(self):
        for name in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                     "intermediate_size", "max_position_embeddings", "type_vocab_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise UserError(f"config value {name} must be a positive integer, got {value!r}; "
                                "fix the model config")
        for name in ("hidden_dropout_prob", "attention_probs_dropout_prob", "layer_norm_eps",
                     "initializer_range"):
            if isinstance(getattr(self, name), bool) or not isinstance(getattr(self, name),
                                                                       (int, float)):
                raise UserError(f"config value {name} must be a number, got "
                                f"{getattr(self, name)!r}; fix the model config")
        if self.model_type not in ("bert", "albert"):
            raise UserError(f"model_type '{self.model_type}' is not supported; use bert or albert")
        if self.hidden_size % self.num_attention_heads:
            raise UserError(
                f"hidden_size {self.hidden_size} is not divisible by num_attention_heads "
                f"{self.num_attention_heads}; fix the model config")
        if self.hidden_act not in SUPPORTED_ACTIVATIONS:
            raise UserError(f"hidden_act '{self.hidden_act}' is not supported; "
                            f"use one of {', '.join(SUPPORTED_ACTIVATIONS)}")
        if self.model_type == "albert":
            if self.embedding_size is None:
                self.embedding_size = 128
            if self.inner_group_num != 1:
                raise UserError("ALBERT configs with inner_group_num != 1 are not supported")
            if self.num_hidden_layers % self.num_hidden_groups:
                raise UserError("ALBERT num_hidden_layers must be a multiple of num_hidden_groups")

    @property
    def head_size(self):
        return self.hidden_size // self.num_attention_heads

    @property
    def is_albert(self):
        return self.model_type == "albert"

    @classmethod
    def from_dict(cls, values, model_type=None):
        """Build from an HF / Google / ALBERT config dict; unknown keys are ignored."""
        if not isinstance(values, dict):
            raise UserError(f"a model config must be a JSON object, got {type(values).__name__}")
        values = dict(values)
        kind = model_type or values.get("model_type") or (
            "albert" if "embedding_size" in values and "num_hidden_groups" in values else "bert")
        # Sentence-transformers and other BERT variants (e.g. "bert" derivatives) share the layout.
        values["model_type"] = "albert" if "albert" in str(kind).lower() else "bert"
        if "layer_norm_eps" not in values and "layer_norm_epsilon" in values:
            values["layer_norm_eps"] = values["layer_norm_epsilon"]
        fields = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in fields})

    @classmethod
    def from_json(cls, path, model_type=None):
        """Read `config.json` / `bert_config.json`; `path` may be the file or its folder."""
        if os.path.isdir(path):
            for name in ("config.json", "bert_config.json", "albert_config.json"):
                if os.path.isfile(os.path.join(path, name)):
                    path = os.path.join(path, name)
                    break
            else:
                raise UserError(f"no config.json or bert_config.json in {path}; "
                                "pass the model folder or the config file")
        if not os.path.isfile(path):
            raise UserError(f"model config not found: {path}")
        try:
            with open(path, encoding="utf-8") as handle:
                values = json.load(handle)
        except (OSError, json.JSONDecodeError) as err:
            raise UserError(f"cannot read model config {path}: {err}") from None
        return cls.from_dict(values, model_type=model_type)

    def to_dict(self):
        return dataclasses.asdict(self)
