"""PABEE learns a regression task (issue 14: STS-B reached Spearman 0.03-0.09 at every patience).

Fresh internal classifiers start at output 0 while the scores average ~3; reaching them through
the shared pooler gave every input the same pooled vector, so nothing was learned. A tiny
STS-B-like task whose score counts the positive words of a pair must be learned end to end."""
import random

import pandas as pd

from conftest import FIXTURES
from pabee.cli import main

POSITIVE, OTHER = ("good", "great", "fun"), ("bad", "awful", "boring", "the", "plot", "it")


def pair(rng):
    words = [rng.choice(POSITIVE if rng.random() < 0.5 else OTHER) for _ in range(4)]
    score = 1.0 + sum(w in POSITIVE for w in words)  # 1..5, like STS-B's 0..5
    return " ".join(words[:2]) + " .", " ".join(words[2:]) + " .", score


def write_split(path, rows):
    header = ["index", "genre", "filename", "year", "old_index", "source1", "source2",
              "sentence1", "sentence2", "score"]
    lines = ["\t".join(header)] + ["\t".join(map(str, (i, "g", "f", "y", i, "s", "s", a, b,
                                                        f"{score:.2f}")))
                                   for i, (a, b, score) in enumerate(rows)]
    path.write_text("\n".join(lines) + "\n")


def test_pabee_learns_a_regression_task(tmp_path):
    rng = random.Random(0)
    data = tmp_path / "STS-B"
    data.mkdir()
    write_split(data / "train.tsv", [pair(rng) for _ in range(256)])
    write_split(data / "dev.tsv", [pair(rng) for _ in range(64)])
    out = tmp_path / "out"
    main(["--model_type", "bert", "--model_name_or_path", str(FIXTURES / "tiny_bert"),
          "--task_name", "STS-B", "--do_train", "--do_eval", "--do_lower_case",
          "--data_dir", str(data), "--max_seq_length", "16", "--output_dir", str(out),
          "--per_gpu_train_batch_size", "16", "--per_gpu_eval_batch_size", "16",
          "--learning_rate", "2e-3", "--num_train_epochs", "8", "--logging_steps", "0",
          "--save_steps", "0", "--seed", "1", "--patience", "0,1",
          "--regression_threshold", "0.1"])
    table = pd.read_csv(out / "eval_results_patience.tsv", sep="\t")
    assert (table["spearman"] > 0.7).all(), table[["patience", "spearman"]]
