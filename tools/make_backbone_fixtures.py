"""Write the tiny RoBERTa, XLM-RoBERTa, DistilBERT and ELECTRA fixtures of tests/fixtures/.

Needs torch and transformers (the tests do not). For each family it writes an HF
`*ForSequenceClassification` folder (config.json, model.safetensors, tokenizer files) of a tiny
random model and `reference.npz`: the ids HF's tokenizer gives `TEXTS_A` paired with `TEXTS_B`
(`pair_input_ids`, `pair_token_type_ids`, `pair_attention_mask`) and `TEXTS_A` alone (`single_*`),
padded to `LENGTH`; and HF's outputs on both (`input_ids`, ... = the pairs, then the singles): every
hidden state (`hidden_0` = the embeddings, after ELECTRA's projection) and the classification
logits. The RoBERTa tokenizer is a byte-level BPE (vocab.json + merges.txt and tokenizer.json) and
the XLM-RoBERTa one a Unigram model, both trained here on `CORPUS`; DistilBERT and ELECTRA use a
WordPiece vocab.txt.

    python tools/make_backbone_fixtures.py [--out tests/fixtures]
"""
import json
import os
import shutil

import numpy as np

from common.cli import ArgumentParser, command
from tools.make_fixtures import TINY_VOCAB

LENGTH = 16
NUM_LABELS = 3
CORPUS = ["the movie was good", "the film was not very fun", "a great plot, awful acting!",
          "i liked it, but the story is boring?", "this is a bad film.", "it was very good"] * 4
TEXTS_A = ["the movie was good", "A great plot, awful acting!", "it is   not fun", "Café naïve",
           "the film was not very fun but the acting is great and the story too"]
TEXTS_B = ["it was boring?", "i liked it", "", "the plot", "this is bad"]
SHAPE = dict(hidden_size=16, num_hidden_layers=3, num_attention_heads=4, intermediate_size=32,
             initializer_range=0.2, attn_implementation="eager")


def _bpe_tokenizer(folder):
    """RoBERTa's byte-level BPE (vocab.json + merges.txt), as transformers builds it."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers import RobertaTokenizer
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(CORPUS, vocab_size=280, min_frequency=2, show_progress=False,
                            special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
    bpe.save_model(folder)
    return RobertaTokenizer.from_pretrained(folder)


def _unigram_tokenizer():
    """XLM-RoBERTa's tokenizer on a Unigram vocabulary: <s> <pad> </s> <unk> first, <mask> last."""
    from tokenizers import SentencePieceUnigramTokenizer
    from transformers import XLMRobertaTokenizer
    unigram = SentencePieceUnigramTokenizer()
    unigram.train_from_iterator(CORPUS, vocab_size=60, show_progress=False, unk_token="<unk>",
                                special_tokens=["<s>", "<pad>", "</s>", "<unk>"])
    vocab = json.loads(unigram.to_str())["model"]["vocab"]
    # The trainer's scores differ in their last digits, and its order of near-ties, from run to
    # run: round them and sort, so that the fixture is the same every time.
    special = [tuple(entry) for entry in vocab[:4]]
    pieces = sorted(((piece, round(score, 2)) for piece, score in vocab[4:]),
                    key=lambda entry: (-entry[1], entry[0]))
    return XLMRobertaTokenizer(vocab=special + pieces + [("<mask>", 0.0)])


def _wordpiece_tokenizer(kind, folder):
    with open(os.path.join(folder, "vocab.txt"), "w", encoding="utf-8") as out:
        out.write("\n".join(TINY_VOCAB) + "\n")
    return kind.from_pretrained(folder)


def _encode(tokenizer):
    """HF's ids of the pairs (`pair_*`) and of the first texts alone (`single_*`)."""
    arrays = {}
    for name, texts_b in (("pair", TEXTS_B), ("single", None)):
        encoded = tokenizer(TEXTS_A, texts_b, padding="max_length", truncation="longest_first",
                            max_length=LENGTH, return_token_type_ids=True, return_tensors="np")
        for key in ("input_ids", "token_type_ids", "attention_mask"):
            arrays[f"{name}_{key}"] = encoded[key].astype(np.int64)
    return arrays


def _write(model, tokenizer, folder, token_types=True):
    import torch
    arrays = _encode(tokenizer)
    for key in ("input_ids", "token_type_ids", "attention_mask"):  # the model's inputs: both
        arrays[key] = np.concatenate([arrays[f"pair_{key}"], arrays[f"single_{key}"]])
    feed = {"input_ids": torch.tensor(arrays["input_ids"]),
            "attention_mask": torch.tensor(arrays["attention_mask"])}
    if token_types:
        feed["token_type_ids"] = torch.tensor(arrays["token_type_ids"])
    with torch.no_grad():
        out = model(**feed, output_hidden_states=True)
    arrays["logits"] = out.logits.numpy()
    arrays.update({f"hidden_{i}": h.numpy() for i, h in enumerate(out.hidden_states)})
    arrays["texts_a"], arrays["texts_b"] = np.array(TEXTS_A), np.array(TEXTS_B)
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    np.savez_compressed(os.path.join(folder, "reference.npz"), **arrays)


def _fresh(folder):
    if os.path.isdir(folder):
        shutil.rmtree(folder)
    os.makedirs(folder)
    return folder


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
    folder = _fresh(os.path.join(args.out, "tiny_roberta"))
    # vocab.json + merges.txt stay beside tokenizer.json (the tests also read them alone).
    roberta_tokenizer = _bpe_tokenizer(folder)
    config = tr.RobertaConfig(vocab_size=len(roberta_tokenizer), max_position_embeddings=LENGTH + 2,
                              type_vocab_size=1, num_labels=NUM_LABELS, **SHAPE)
    _write(tr.RobertaForSequenceClassification(config).eval(), roberta_tokenizer, folder)

    xlmr_tokenizer = _unigram_tokenizer()
    folder = _fresh(os.path.join(args.out, "tiny_xlm_roberta"))
    config = tr.XLMRobertaConfig(vocab_size=len(xlmr_tokenizer),
                                 max_position_embeddings=LENGTH + 2, type_vocab_size=1,
                                 num_labels=NUM_LABELS, **SHAPE)
    _write(tr.XLMRobertaForSequenceClassification(config).eval(), xlmr_tokenizer, folder)

    folder = _fresh(os.path.join(args.out, "tiny_distilbert"))
    config = tr.DistilBertConfig(vocab_size=len(TINY_VOCAB), dim=16, n_layers=3, n_heads=4,
                                 hidden_dim=32, max_position_embeddings=LENGTH,
                                 num_labels=NUM_LABELS, initializer_range=0.2,
                                 attn_implementation="eager")
    _write(tr.DistilBertForSequenceClassification(config).eval(),
           _wordpiece_tokenizer(tr.DistilBertTokenizer, folder), folder, token_types=False)

    folder = _fresh(os.path.join(args.out, "tiny_electra"))
    config = tr.ElectraConfig(vocab_size=len(TINY_VOCAB), embedding_size=8,
                              max_position_embeddings=LENGTH, num_labels=NUM_LABELS, **SHAPE)
    _write(tr.ElectraForSequenceClassification(config).eval(),
           _wordpiece_tokenizer(tr.ElectraTokenizer, folder), folder)
    print(f"fixtures written to {os.path.abspath(args.out)}")


if __name__ == "__main__":
    main()
