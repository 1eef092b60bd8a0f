"""The rationale evaluation (a reconstruction): AdapLeR's kept tokens against human
rationales.

For each window (`adapler.rationales`) K = the tokens AdapLeR keeps before a given layer (the
last by default) in `lr_mode`, [CLS]/[SEP]/pads excluded. Each baseline selects the top |K|
tokens of the same window by gradient x input saliency, by last-layer attention from [CLS], by
attention rollout from [CLS], or at random. With R = rationale pieces and R' = the other real
pieces: FPR = |K & R'| / |R'|, recall = |K & R| / |R|, precision = |K & R| / |K|,
micro-averaged over windows.
"""
import numpy as np
import pandas as pd
from keras import ops

from adapler.data import default_data_dir_for
from adapler.inference import load_model
from adapler.model import build_model, load_checkpoint_into
from adapler.paths import checkpoint_folder
from adapler.rationales import encode_windows, read_eraser
from adapler.saliency import compute_saliencies
from adapler.tasks import read_hatexplain_rationales
from common.checkpoints import resolve_source
from common.errors import UserError
from common.tasks import get_task
from common.training import predict
from common.validation import check_model_files


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
    """The rationale table for AdapLeR `model`; `baseline` (an AdapLeR-shaped model with fine-tuned
    weights) gives the saliency and attention maps."""
    arrays, meta = encode_windows(documents, tokenizer, max_length)
    kept = kept_positions(model, arrays, layer, batch_size)
    last, rollout = attention_scores(baseline, arrays, batch_size)
    saliency = compute_saliencies(baseline, arrays, batch_size)
    table = compare(kept, meta["evidence"], {"saliency": saliency,
                                             "attention (last layer, from CLS)": last,
                                             "attention rollout (from CLS)": rollout})
    return table, len(arrays["input_ids"])


def run(args):
    """What `tools/rationale_eval.py` does with its parsed flags: load the AdapLeR checkpoint
    (and the baseline one), evaluate on the split's documents, print the table (and write
    --OUTPUT as CSV)."""
    for path in filter(None, (args.MODEL_PATH, args.BASELINE_MODEL_PATH)):
        check_model_files(checkpoint_folder(path))
    task = get_task(args.TASK)
    model, tokenizer, sidecar = load_model(args.MODEL_PATH)
    layers = model.config.num_hidden_layers
    layer = args.LAYER or layers
    if not 1 <= layer <= layers:
        raise UserError(f"--LAYER must be in 1..{layers}")
    max_length = args.MAX_LENGTH or sidecar.get("max_length") or 128
    if args.BASELINE_MODEL_PATH:
        folder = checkpoint_folder(args.BASELINE_MODEL_PATH)
        baseline = build_model(resolve_source(folder).config, model.num_labels, max_length)
        load_checkpoint_into(baseline, folder)
    else:
        baseline = model
    split = "dev" if args.SPLIT == "val" else args.SPLIT
    documents = read_documents(task, args.DATA_DIR or default_data_dir_for(task), split)
    table, windows = evaluate_rationales(model, baseline, documents, tokenizer, max_length,
                                         layer - 1, args.BATCH_SIZE)
    print(f"{task.glue_name} {split}: {len(documents)} documents, {windows} windows, tokens kept "
          f"before layer {layer}")
    print(table.to_string(float_format=lambda v: f"{v:.4f}"))
    if args.OUTPUT:
        table.to_csv(args.OUTPUT)
