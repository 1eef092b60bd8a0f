"""Human rationales and the rationale evaluation of spec §9.

Data:
* ERASER movie reviews (`movies/{train,val,test}.jsonl` + `movies/docs/<docid>`): each
  annotation's evidence spans (document token offsets) mark the words with a 1-based evidence id;
  annotations without evidences are skipped.
* HateXplain (`dataset.json` + `post_id_divisions.json`): a word is a rationale when at least half
  of the annotators who gave rationales marked it (the majority rule of the HateXplain authors);
  posts without rationales (the "normal" ones) are skipped.

Every word is word-piece tokenised on its own and its pieces inherit its evidence id. The pieces
are cut into consecutive windows of MAX_LENGTH - 2 (windows without any rationale piece are
dropped, as in the original), each becoming `[CLS] pieces [SEP] pads`.

Evaluation (§9.3, a reconstruction): for each window K = the tokens AdapLeR keeps before a given
layer (the last by default) in `lr_mode`, [CLS]/[SEP]/pads excluded. Each baseline selects the top
|K| tokens of the same window by gradient x input saliency, by last-layer attention from [CLS],
by attention rollout from [CLS], or at random. With R = rationale pieces and R' = the other real
pieces: FPR = |K & R'| / |R'|, recall = |K & R| / |R|, precision = |K & R| / |K|, micro-averaged
over windows.
"""
import dataclasses
import json
import os

import numpy as np
import pandas as pd
from keras import ops

from common.data import split_path
from common.errors import UserError
from common.training import predict


@dataclasses.dataclass
class Document:
    id: str
    words: list
    evidence: np.ndarray  # per word: 0 = not a rationale, k > 0 = evidence id
    label: int


def read_eraser(task, data_dir, split):
    """The annotated documents of one ERASER split (train / dev = val / test)."""
    path = split_path(task, data_dir, split)
    docs = os.path.join(os.path.dirname(path), "docs")
    documents = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                annotation = json.loads(line)
                evidences = [e for group in annotation.get("evidences") or [] for e in group]
                label = task.labels.index(annotation["classification"])
            except (json.JSONDecodeError, KeyError, ValueError, TypeError) as err:
                raise UserError(f"{path} line {number} is not an ERASER annotation with "
                                f"classification {'/'.join(task.labels)} ({err})") from None
            if not evidences:
                continue
            docid = evidences[0].get("docid") or annotation.get("annotation_id")
            doc_path = os.path.join(docs, docid)
            if not os.path.isfile(doc_path):
                raise UserError(f"ERASER document {doc_path} not found; keep docs/ next to "
                                f"{os.path.basename(path)}")
            with open(doc_path, encoding="utf-8") as doc:
                words = doc.read().split()
            evidence = np.zeros(len(words), np.int64)
            for index, span in enumerate(evidences, 1):
                evidence[int(span["start_token"]):int(span["end_token"])] = index
            documents.append(Document(str(annotation.get("annotation_id", docid)), words,
                                      evidence, label))
    return documents


def read_hatexplain_rationales(data_dir, split):
    """HateXplain posts of one split that carry rationales, with the majority rationale."""
    from adapler.tasks import hatexplain_label, hatexplain_posts
    from common.tasks import get_task

    labels = get_task("hatexplain").labels
    documents = []
    for post_id, post in hatexplain_posts(data_dir, split):
        marks = post.get("rationales") or []
        if not marks:
            continue
        if any(len(m) != len(post["post_tokens"]) for m in marks):
            raise UserError(f"HateXplain post {post_id}: a rationale's length differs from "
                            "its post_tokens; use an unmodified dataset.json")
        evidence = (np.mean(np.asarray(marks, np.float64), axis=0) >= 0.5).astype(np.int64)
        if evidence.any():
            documents.append(Document(post_id, list(post["post_tokens"]), evidence,
                                      hatexplain_label(post, labels)))
    return documents


def encode_windows(documents, tokenizer, max_length, require_rationale=True):
    """(arrays, meta): model inputs + labels, and per position `evidence` (-1 at [CLS]/[SEP]/
    pads), `word_index` (-1 likewise), `doc_index`, `start` (piece offset), `length` (real
    tokens) and window `ids`."""
    width = max_length - 2
    if width < 1:
        raise UserError(f"MAX_LENGTH {max_length} leaves no room for text")
    cls, sep, pad = (tokenizer.convert_tokens_to_ids(t) for t in ("[CLS]", "[SEP]", "[PAD]"))
    rows = {key: [] for key in ("input_ids", "evidence", "word_index")}
    meta = {"doc_index": [], "start": [], "ids": [], "length": []}
    labels = []
    for doc_index, doc in enumerate(documents):
        if not doc.words:
            continue
        pieces = tokenizer(doc.words, add_special_tokens=False)["input_ids"]
        ids = np.concatenate([np.asarray(p, np.int64) for p in pieces] or [[]])
        words = np.repeat(np.arange(len(pieces)), [len(p) for p in pieces])
        for start in range(0, len(ids), width):
            chunk = slice(start, start + width)
            evidence = doc.evidence[words[chunk]]
            if require_rationale and not (evidence > 0).any():
                continue
            fill = width - len(evidence)
            rows["input_ids"].append(np.concatenate([[cls], ids[chunk], [sep], [pad] * fill]))
            rows["evidence"].append(np.concatenate([[-1], evidence, [-1] * (fill + 1)]))
            rows["word_index"].append(np.concatenate([[-1], words[chunk], [-1] * (fill + 1)]))
            meta["doc_index"].append(doc_index)
            meta["start"].append(start)
            meta["length"].append(len(evidence) + 2)
            meta["ids"].append(f"{doc.id}:{start}")
            labels.append(doc.label)
    if not labels:
        raise UserError("no window with a rationale; check the rationale files")
    input_ids = np.asarray(rows["input_ids"], np.int32)
    mask = (np.arange(max_length)[None, :] < np.asarray(meta["length"])[:, None]).astype(np.int32)
    arrays = {"input_ids": input_ids, "token_type_ids": np.zeros_like(input_ids),
              "attention_mask": mask, "labels": np.asarray(labels, np.int64)}
    meta.update(evidence=np.asarray(rows["evidence"], np.int64),
                word_index=np.asarray(rows["word_index"], np.int64))
    return arrays, meta


# ---------------------------------------------------------------- importance of each position

def kept_positions(model, arrays, layer=-1, batch_size=32):
    """(N, T) 1/0: the positions AdapLeR keeps before block `layer` in lr_mode."""
    features = {k: arrays[k] for k in ("input_ids", "token_type_ids", "attention_mask")}
    length = features["input_ids"].shape[1]

    def call(m, batch):
        positions = m(batch, lr_mode=True)["kept"][layer]
        hits = ops.one_hot(ops.where(positions < 0, length, positions), length + 1)
        return ops.max(hits, axis=1)[:, :length]

    return predict(model, features, batch_size, call=call)


def attention_scores(model, arrays, batch_size=32):
    """(last-layer attention from [CLS], attention rollout from [CLS]), both (N, T), head-averaged,
    from the vanilla forward of `model.bert` (rollout: add the identity, row-normalise, multiply
    layer by layer)."""
    features = {k: arrays[k] for k in ("input_ids", "token_type_ids", "attention_mask")}

    def call(m, batch):
        attentions = m.bert(batch, output_attentions=True)["attentions"]
        averaged = [ops.mean(a, axis=1) for a in attentions]
        size = ops.shape(averaged[0])[-1]
        rollout = None
        for matrix in averaged:
            matrix = matrix + ops.eye(size)[None]
            matrix = matrix / ops.sum(matrix, axis=-1, keepdims=True)
            rollout = matrix if rollout is None else ops.matmul(matrix, rollout)
        return {"last": averaged[-1][:, 0], "rollout": rollout[:, 0]}

    outputs = predict(model, features, batch_size, call=call, dynamic=False)  # per position
    return outputs["last"], outputs["rollout"]


def _top_k(scores, candidates, counts):
    selected = np.zeros_like(candidates)
    for row, (score, k) in enumerate(zip(scores, counts)):
        order = np.argsort(-np.where(candidates[row] > 0, score, -np.inf), kind="stable")
        selected[row, order[:int(k)]] = 1
    return selected * candidates


def rationale_rates(selected, evidence):
    """Micro-averaged FPR, recall and precision of `selected` (N, T) against `evidence`."""
    rationale = evidence > 0
    other = evidence == 0
    chosen = selected > 0
    hits = np.sum(chosen & rationale)
    return {"FPR": float(np.sum(chosen & other) / max(np.sum(other), 1)),
            "recall": float(hits / max(np.sum(rationale), 1)),
            "precision": float(hits / max(np.sum(chosen), 1)),
            "tokens per window": float(chosen.sum() / len(chosen))}


def compare(kept, evidence, baselines, seed=0):
    """The comparison table: AdapLeR's kept tokens vs top-|K| of each baseline score map."""
    candidates = (evidence >= 0).astype(np.int64)
    kept = kept.astype(np.int64) * candidates
    counts = kept.sum(axis=1)
    rows = {"AdapLeR (kept tokens)": rationale_rates(kept, evidence)}
    random = np.random.default_rng(seed).random(evidence.shape)
    for name, scores in {**baselines, "random": random}.items():
        rows[f"top-k {name}"] = rationale_rates(_top_k(scores, candidates, counts), evidence)
    return pd.DataFrame(rows).T


def read_documents(task, data_dir, split):
    """Rationale documents of a task: ERASER movie reviews or HateXplain."""
    if task.name == "hatexplain":
        return read_hatexplain_rationales(data_dir, split)
    if task.name == "movie_rationales":
        return read_eraser(task, data_dir, split)
    raise UserError(f"task {task.name} has no human rationales; use movie_rationales or "
                    "hatexplain")


def evaluate_rationales(model, baseline, documents, tokenizer, max_length, layer=-1,
                        batch_size=16):
    """The §9.3 table for AdapLeR `model`; `baseline` (an AdapLeR-shaped model with fine-tuned
    weights) gives the saliency and attention maps."""
    from adapler.saliency import compute_saliencies

    arrays, meta = encode_windows(documents, tokenizer, max_length)
    kept = kept_positions(model, arrays, layer, batch_size)
    last, rollout = attention_scores(baseline, arrays, batch_size)
    saliency = compute_saliencies(baseline, arrays, batch_size)
    table = compare(kept, meta["evidence"], {"saliency": saliency,
                                             "attention (last layer, from CLS)": last,
                                             "attention rollout (from CLS)": rollout})
    return table, len(arrays["input_ids"])
