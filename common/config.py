"""BertConfig: the backbone's shape, read from an HF `config.json` (BERT, ALBERT, RoBERTa,
XLM-RoBERTa, DistilBERT, ELECTRA), a Google `bert_config.json` or an ALBERT config, and written
back as a plain dict in our checkpoint sidecars.

One dataclass for every family: a family differs in its embeddings (RoBERTa's position ids start
at `pad_token_id + 1` and it has one token type; DistilBERT has no token types; ALBERT and ELECTRA
project `embedding_size` to `hidden_size`), in the activation of the dense layer its
classification head runs on the first token (`pooler_activation`), and in its HF weight names
(`common.checkpoints`). Any other `model_type` is refused before a weight is read."""
import dataclasses
import json
import os

from common.errors import UserError

SUPPORTED_ACTIVATIONS = ("gelu", "gelu_new", "gelu_pytorch_tanh", "gelu_fast", "relu", "tanh")
MODEL_TYPES = ("bert", "albert", "roberta", "xlm-roberta", "distilbert", "electra")
# DistilBERT's config.json names -> ours; its LayerNorms use eps 1e-12 whatever the config says.
DISTILBERT_KEYS = {"dim": "hidden_size", "n_layers": "num_hidden_layers",
                   "n_heads": "num_attention_heads", "hidden_dim": "intermediate_size",
                   "dropout": "hidden_dropout_prob", "attention_dropout":
                   "attention_probs_dropout_prob", "activation": "hidden_act",
                   "seq_classif_dropout": "classifier_dropout"}
# The dense layer on the first token before the classifier: BERT's and ALBERT's pooler,
# RoBERTa's `classifier.dense`, DistilBERT's `pre_classifier`, ELECTRA's `classifier.dense`.
POOLER_ACTIVATIONS = {"distilbert": "relu", "electra": "gelu"}


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
    model_type: str = "bert"  # one of MODEL_TYPES
    embedding_size: int | None = None  # ALBERT's / ELECTRA's embedding width
    num_hidden_groups: int = 1  # ALBERT: blocks shared within a group
    inner_group_num: int = 1
    pad_token_id: int = 0  # RoBERTa: the padding index its position ids count from
    classifier_dropout: float | None = None  # HF's head dropout (None: hidden_dropout_prob)

    def __post_init__(self):
        for name in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                     "intermediate_size", "max_position_embeddings", "type_vocab_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise UserError(f"config value {name} must be a positive integer, got {value!r}; "
                                "fix the model config")
        if isinstance(self.pad_token_id, bool) or not isinstance(self.pad_token_id, int) or (
                self.pad_token_id < 0):
            raise UserError(f"config value pad_token_id must be a non-negative integer, got "
                            f"{self.pad_token_id!r}; fix the model config")
        for name in ("hidden_dropout_prob", "attention_probs_dropout_prob", "layer_norm_eps",
                     "initializer_range"):
            if isinstance(getattr(self, name), bool) or not isinstance(getattr(self, name),
                                                                       (int, float)):
                raise UserError(f"config value {name} must be a number, got "
                                f"{getattr(self, name)!r}; fix the model config")
        if self.model_type not in MODEL_TYPES:
            raise UserError(unsupported(self.model_type))
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
        if self.max_position_embeddings <= self.position_offset:
            raise UserError(f"max_position_embeddings {self.max_position_embeddings} leaves no "
                            f"position after the padding index {self.pad_token_id}; fix the "
                            "model config")

    @property
    def head_size(self):
        return self.hidden_size // self.num_attention_heads

    @property
    def is_albert(self):
        return self.model_type == "albert"

    @property
    def family(self):
        """The graph: `roberta` for XLM-RoBERTa too, else the model type."""
        return "roberta" if self.model_type == "xlm-roberta" else self.model_type

    @property
    def embedding_width(self):
        """Width of the embedding lookups (ALBERT's / ELECTRA's `embedding_size`, else H)."""
        if self.model_type in ("albert", "electra") and self.embedding_size:
            return self.embedding_size
        return self.hidden_size

    @property
    def projects_embeddings(self):
        """ALBERT always, ELECTRA when `embedding_size` != `hidden_size`: a Dense(E -> H)."""
        return self.is_albert or self.embedding_width != self.hidden_size

    @property
    def has_token_types(self):
        return self.model_type != "distilbert"

    @property
    def position_offset(self):
        """The first position id of a real token: `pad_token_id + 1` for RoBERTa, else 0."""
        return self.pad_token_id + 1 if self.family == "roberta" else 0

    @property
    def max_length(self):
        """The longest input the position table holds."""
        return self.max_position_embeddings - self.position_offset

    @property
    def pooler_activation(self):
        return POOLER_ACTIVATIONS.get(self.model_type, "tanh")

    @classmethod
    def from_dict(cls, values, model_type=None):
        """Build from an HF / Google / ALBERT config dict; unknown keys are ignored."""
        if not isinstance(values, dict):
            raise UserError(f"a model config must be a JSON object, got {type(values).__name__}")
        values = dict(values)
        kind = str(model_type or values.get("model_type") or (
            "albert" if "embedding_size" in values and "num_hidden_groups" in values else "bert"))
        kind = kind.lower().replace("_", "-")
        if kind not in MODEL_TYPES:
            raise UserError(unsupported(kind))
        values["model_type"] = kind
        if "layer_norm_eps" not in values and "layer_norm_epsilon" in values:
            values["layer_norm_eps"] = values["layer_norm_epsilon"]
        if kind == "distilbert":
            for theirs, ours in DISTILBERT_KEYS.items():
                if theirs in values and ours not in values:
                    values[ours] = values[theirs]
            values["layer_norm_eps"] = 1e-12
            values.setdefault("type_vocab_size", 1)  # no token-type table; kept for the check
        if kind in ("roberta", "xlm-roberta"):
            values.setdefault("pad_token_id", 1)
        if values.get("pad_token_id") is None:
            values.pop("pad_token_id", None)
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

    def hf_dict(self):
        """The HF transformers config fields of this shape (`transformers.AutoConfig.for_model(
        config.model_type, **config.hf_dict())`)."""
        values = {name: getattr(self, name) for name in (
            "vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
            "intermediate_size", "hidden_act", "hidden_dropout_prob",
            "attention_probs_dropout_prob", "max_position_embeddings", "type_vocab_size",
            "layer_norm_eps", "initializer_range", "pad_token_id", "classifier_dropout")}
        if self.model_type == "distilbert":
            values = {theirs: values[ours] for theirs, ours in DISTILBERT_KEYS.items()
                      if values[ours] is not None} | {
                key: values[key] for key in ("vocab_size", "max_position_embeddings",
                                             "initializer_range", "pad_token_id")}
        if self.model_type in ("albert", "electra"):
            values["embedding_size"] = self.embedding_width
        if self.is_albert:
            values["num_hidden_groups"] = self.num_hidden_groups
            values.pop("classifier_dropout")
        return values


def unsupported(model_type):
    return (f"model_type '{model_type}' is not supported; supported: {', '.join(MODEL_TYPES)} "
            "(the model folder's config.json names it)")
