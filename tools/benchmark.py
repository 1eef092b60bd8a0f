"""Latency and throughput of the vanilla model against HF transformers' PyTorch model and ONNX
Runtime: same weights, same inputs, same thread count, one run.

    python tools/benchmark.py                                    # BERT-base shape, 32x128 and 1x128
    python tools/benchmark.py --model tests/fixtures/tiny_bert --shapes 8x32,1x16 --repeats 20
    python tools/benchmark.py --rounds 3 --json bench.json --docs docs/benchmarks.md
    python tools/benchmark.py --model $MINILM --shapes 32x64 --task sst-2 --data_dir $GLUE/SST-2
    python tools/benchmark.py --precisions fp32,bf16 --jit_compile both     # bf16 against fp32

Our side is the classifier (`SequenceClassifier`: backbone, pooler, head) run through
`common.inference.compile_forward`, the function the methods and `predict` use; the weights are
random (BERT-base shape unless --config, which may be any family's HF config.json: RoBERTa,
DistilBERT, ELECTRA...) or loaded with --model (an HF folder, a Google TF1 checkpoint or our own
checkpoint). The PyTorch side is the family's `*ForSequenceClassification` holding a copy of the
same weights; the ONNX Runtime side is that model exported with torch.onnx.export
(skipped, with the reason, when the export fails: it needs the `onnx` package). The PyTorch and
ONNX Runtime sides live in a worker process (`common.benchmark.Remote`: TensorFlow and PyTorch
in one process crashed with a segmentation fault with PyPI's default torch build); a missing
package skips them with one line saying what to install. Before timing, every side's logits (and
PyTorch's last hidden state) must match ours to 1e-3. With --precisions our side is built and timed
once per precision (Keras mixed-precision policies, same weights) in the same run, with its
speed-up over our fastest fp32 side; bf16/fp16 sides' gaps to fp32 are reported, not checked.

Inputs: random full-length BATCHxLENGTH batches, or with --task/--data_dir the first --examples
real texts of the split encoded at LENGTH, in length-sorted dynamically padded batches of BATCH
(every side gets the same batches). Timing is `common.benchmark`'s: each side is warmed up, then
the sides' calls are interleaved (the order rotates) so background load hits all of them alike;
the table gives the median, p10 and p90 time of one pass, sequences/s, achieved GFLOP/s
(analytic FLOPs, `common.flops`), the ratio of medians to PyTorch, the median of the paired
ratios, and with --rounds > 1 the range of the per-round ratios. It also reports the background
load and the CPU flags. All sides get --threads intra-op threads and one inter-op thread.
"""
import os
import shlex
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from common import precision
from common.backbone_benchmark import SECTION, run_and_report
from common.cli import ArgumentParser, command


def build_parser():
    p = ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", help="HF model folder, Google bert_model.ckpt or our *.weights.h5 "
                                   "(default: random weights)")
    p.add_argument("--config", help="config.json / bert_config.json for random weights "
                                    "(default BERT-base shape)")
    p.add_argument("--num_labels", type=int, help="classifier outputs (default: the "
                                                  "checkpoint's, else 2)")
    p.add_argument("--shapes", default="32x128,1x128", help="comma-separated BATCHxLENGTH")
    p.add_argument("--warmup", type=int, default=2, help="untimed calls per side first")
    p.add_argument("--repeats", type=int, default=10, help="timed calls per side and round")
    p.add_argument("--rounds", type=int, default=1,
                   help="repeat the whole interleaved measurement; reports the spread")
    p.add_argument("--threads", type=int, help="intra-op threads of every side "
                                               "(default: the cores this process may use)")
    p.add_argument("--compare", default="pytorch,onnxruntime",
                   help="comma-separated other sides: pytorch, onnxruntime, or none")
    p.add_argument("--jit_compile", choices=("off", "on", "both"), default="off",
                   help="our side as a graph (off, what the toolkit uses), XLA-compiled, or both")
    p.add_argument("--task", help="time real texts of this task (with --data_dir) instead of "
                                  "random ids (default: random ids)")
    p.add_argument("--data_dir", help="the task's data folder (required with --task)")
    p.add_argument("--split", default="dev", help="--task: the split whose texts are timed")
    p.add_argument("--examples", type=int, default=256, help="real texts: the first N")
    p.add_argument("--seed", type=int, default=0, help="seed of the random weights and ids")
    p.add_argument("--precisions", help="comma list of fp32, bf16, fp16: time our side in each, "
                                        "in the same run (default: the one --bf16/--fp16 sets, "
                                        "else fp32)")
    p.add_argument("--json", help="also write settings and results to this JSON file (default: "
                                  "no file)")
    p.add_argument("--docs", help="write the table into this markdown file, between "
                                  f"<!-- BEGIN {SECTION} --> and <!-- END {SECTION} --> "
                                  "(default: no file)")
    precision.add_flags(p)
    return p


@command
def main(argv=None):
    args = build_parser().parse_args(argv)
    run_and_report(args, "python tools/benchmark.py "
                   + shlex.join(sys.argv[1:] if argv is None else argv))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
