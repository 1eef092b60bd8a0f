"""Export a checkpoint of the toolkit for serving: a TensorFlow SavedModel whose `serving_default`
signature takes strings (WordPiece in the graph) and runs the method's fast path in the graph,
plus a `token_ids` signature; `--format onnx` also converts the token-id signature to ONNX.
See docs/export.md.

    bert-speedup-export --model <checkpoint folder> --output_dir exported/powerbert
"""
from common.cli import ArgumentParser, command
from common.export import FORMATS, export
from common.validation import check_numbers


def build_parser():
    parser = ArgumentParser(prog="bert-speedup-export", description=__doc__)
    parser.add_argument("--model", required=True,
                        help="a checkpoint folder of the toolkit: fine-tuned, PoWER-BERT "
                             "re-trained, AdapLeR, PABEE, PABEE on PoWER-BERT")
    parser.add_argument("--output_dir", required=True,
                        help="the folder to write (new or empty); it appears when complete")
    parser.add_argument("--format", choices=FORMATS, default="savedmodel",
                        help="savedmodel (default), or onnx: the SavedModel plus model.onnx "
                             "of its token-id signature (needs `pip install -e .[onnx]`)")
    parser.add_argument("--patience", type=int, default=None,
                        help="PABEE: exit once this many internal classifiers in a row agree "
                             "(0: all layers; default: the checkpoint's)")
    parser.add_argument("--eta_offset", type=float, default=None,
                        help="AdapLeR: added to the learned per-layer thresholds eta (default: none "
                             "added)")
    parser.add_argument("--length_scaled", action="store_true", default=None,
                        help="PoWER-BERT: keep ceil(k_l * n / N) word-vectors of a request of "
                             "width n, run on the request's own width (without it: k_l, as the "
                             "checkpoint was trained)")
    parser.add_argument("--bf16", action="store_true",
                        help="compute in mixed bfloat16 (fast on CPUs with AVX512_BF16/AMX)")
    parser.add_argument("--overwrite_output_dir", action="store_true",
                        help="replace an earlier export in --output_dir")
    return parser


@command
def main(argv=None):
    args = build_parser().parse_args(argv)
    check_numbers(args, non_negative=("patience",))
    knobs = {"patience": args.patience, "eta_offset": args.eta_offset,
             "length_scaled": args.length_scaled}
    meta = export(args.model, args.output_dir, knobs, "bf16" if args.bf16 else "fp32",
                  args.format, args.overwrite_output_dir)
    print(f"exported {meta['method']} model ({meta['task']}, {meta['precision']}) to "
          f"{args.output_dir}: signatures {', '.join(meta['signatures'])}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
