"""Export a checkpoint of the toolkit for serving: a TensorFlow SavedModel whose `serving_default`
signature takes strings (WordPiece in the graph) and runs the method's fast path in the graph,
plus a `token_ids` signature; `--format onnx` also converts the token-id signature to ONNX.
See docs/export.md.

    bert-speedup-export --model <checkpoint folder> --output_dir exported/powerbert
"""
from common import methods
from common.cli import ArgumentParser, command
from common.export import FORMATS, export
from common.validation import check_numbers


def build_parser():
    parser = ArgumentParser(prog="bert-speedup-export", description=__doc__)
    parser.add_argument("--model", required=True,
                        help="a checkpoint folder of the toolkit: fine-tuned or any method's "
                             "model (its inference knobs below)")
    parser.add_argument("--output_dir", required=True,
                        help="the folder to write (new or empty); it appears when complete")
    parser.add_argument("--format", choices=FORMATS, default="savedmodel",
                        help="savedmodel (default), or onnx: the SavedModel plus model.onnx "
                             "of its token-id signature (needs `pip install -e .[onnx]`)")
    methods.add_knob_flags(parser)
    parser.add_argument("--bf16", action="store_true",
                        help="compute in mixed bfloat16 (fast on CPUs with AVX512_BF16/AMX)")
    parser.add_argument("--overwrite_output_dir", action="store_true",
                        help="replace an earlier export in --output_dir")
    return parser


@command
def main(argv=None):
    args = build_parser().parse_args(argv)
    check_numbers(args, non_negative=("patience",))
    knobs = {name: getattr(args, name) for name in methods.add_knob_flags(ArgumentParser())}
    meta = export(args.model, args.output_dir, knobs, "bf16" if args.bf16 else "fp32",
                  args.format, args.overwrite_output_dir)
    print(f"exported {meta['method']} model ({meta['task']}, {meta['precision']}) to "
          f"{args.output_dir}: signatures {', '.join(meta['signatures'])}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
