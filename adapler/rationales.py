"""Human rationales as model inputs (the original's utils/rationale_utils.py): annotated documents
cut into windows.

* ERASER movie reviews (`movies/{train,val,test}.jsonl` + `movies/docs/<docid>`): each
  annotation's evidence spans (document token offsets) mark the words with a 1-based evidence id;
  annotations without evidences are skipped.
* HateXplain (`adapler.tasks.read_hatexplain_rationales`): a word is a rationale when at least
  half of the annotators who gave rationales marked it (the majority rule of the HateXplain
  authors); posts without rationales (the "normal" ones) are skipped.

Every word is word-piece tokenised on its own and its pieces inherit its evidence id. The pieces
are cut into consecutive windows of MAX_LENGTH - 2 (windows without any rationale piece are
dropped, as in the original), each becoming `[CLS] pieces [SEP] pads`. The evaluation against
these windows is `adapler.rationale_evaluation`.
"""
import dataclasses
import json
import os

import numpy as np

from common.data import split_path
from common.errors import UserError


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


def encode_windows(documents, tokenizer, max_length, require_rationale=True):
    """(arrays, meta): model inputs + labels, and per position `evidence` (-1 at [CLS]/[SEP]/
    pads), `word_index` (-1 likewise), `doc_index`, `start` (piece offset), `length` (real
    tokens) and window `ids`."""
    width = max_length - 2
    if width < 1:
        raise UserError(f"MAX_LENGTH {max_length} leaves no room for text")
    cls, sep, pad = tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.pad_token_id
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
