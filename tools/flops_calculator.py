"""Print the analytic FLOPs of one forward pass: vanilla at --max_length and, given per-layer
--lengths (read as PoWER-BERT retention, AdapLeR or LTP kept lengths) or a PABEE --exit_layer, the
method's FLOPs and its speed-up. Without --config the shape is BERT-base."""
from adapler.flops import adapler_flops
from common import flops
from common.checkpoints import check_max_length
from common.cli import ArgumentParser, command
from common.config import BertConfig
from common.errors import UserError, parse_int_list
from common.validation import check_numbers
from ltp.flops import ltp_flops
from pabee.flops import pabee_flops
from powerbert.flops import powerbert_flops

COUNTS = {"powerbert": powerbert_flops, "adapler": adapler_flops, "ltp": ltp_flops}


def build_parser():
    parser = ArgumentParser(description=__doc__)
    parser.add_argument("--config", help="model config.json / bert_config.json or its folder "
                                         "(default: BERT-base shape)")
    parser.add_argument("--max_length", type=int, default=128,
                        help="input length n, no padding (default 128)")
    parser.add_argument("--lengths", help="comma-separated per-layer lengths, one per layer "
                                          "(without it and --exit_layer: vanilla only)")
    parser.add_argument("--method", choices=tuple(COUNTS), default="powerbert",
                        help="how --lengths is read: PoWER-BERT retention after each layer's "
                             "attention, AdapLeR tokens kept before each layer, or LTP tokens "
                             "kept after each layer's attention")
    parser.add_argument("--exit_layer", type=int, help="PABEE: number of layers executed "
                                                       "(without it and --lengths: vanilla only)")
    parser.add_argument("--num_labels", type=int, default=2, help="classifier outputs")
    return parser


@command
def main(argv=None):
    args = build_parser().parse_args(argv)
    check_numbers(args, counts=("max_length", "num_labels", "exit_layer"))
    config = BertConfig.from_json(args.config) if args.config else BertConfig()
    check_max_length(config, args.max_length)
    if args.lengths is not None and args.exit_layer is not None:
        raise UserError("give either --lengths or --exit_layer, not both")
    n, labels = args.max_length, args.num_labels
    baseline = flops.vanilla_flops(config, n, labels)
    method = None
    if args.lengths is not None:
        lengths = parse_int_list(args.lengths, "--lengths")
        method, name = COUNTS[args.method](config, n, lengths, labels), args.method
    elif args.exit_layer is not None:
        method, name = pabee_flops(config, n, args.exit_layer, labels), "pabee"
    print(f"vanilla (n={n}, {config.num_hidden_layers} layers): {baseline:,} FLOPs")
    if method is not None:
        print(f"{name}: {method:,} FLOPs")
        print(f"speed-up: {flops.speedup(baseline, method):.4f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
