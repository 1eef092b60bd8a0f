"""`bert-speedup-predict`: score the rows of files with a trained model, on Apache Beam's
RunInference (the pipeline is `common.predict`).

    bert-speedup-predict --model runs/reviews --input 'data/*.csv' --text_column review \\
        --id_column id --output predictions.jsonl
    bert-speedup-predict ... --runner DirectRunner --direct_num_workers 2 \\
        --direct_running_mode multi_processing

Rows that cannot be scored go to `<output stem>.rejected.jsonl` with their id and the reason.
Flags this command does not know are Beam's pipeline options (`--runner FlinkRunner ...`).
"""
import json

from common.cli import ArgumentParser, command
from common.errors import UserError


def build_parser():
    parser = ArgumentParser(prog="bert-speedup-predict", description=(
        "Predict the rows of CSV / TSV / JSON lines / parquet files with a checkpoint of this "
        "toolkit, on Apache Beam (DirectRunner in this process unless --runner says otherwise; "
        "other flags go to Beam's pipeline options)."))
    parser.add_argument("--model", required=True, help="a checkpoint folder of this toolkit")
    parser.add_argument("--input", required=True, help="a file or a glob ('data/*.csv')")
    parser.add_argument("--text_column", required=True, help="the column holding the text")
    parser.add_argument("--text_pair_column", help="the second text's column (pair tasks; default: "
                                                       "none, single texts)")
    parser.add_argument("--id_column", help="the column whose value identifies a row in the "
                                            "output (default: the row number, 0-based; "
                                            "<file>:<row> for several files)")
    parser.add_argument("--output", required=True, help="a .jsonl, .csv or .parquet file")
    parser.add_argument("--batch_size", type=int, default=64,
                        help="largest batch Beam hands the model")
    parser.add_argument("--knob", action="append", default=[], metavar="NAME=VALUE",
                        help="an inference knob of the model's method, e.g. patience=3 (PABEE), "
                             "eta_offset=0.01 (AdapLeR), length_scaled=true (PoWER-BERT)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing output and rejected-rows file")
    return parser


def knobs(pairs):
    """{'patience': 3} from ['patience=3'] (values read as JSON, else kept as text)."""
    parsed = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise UserError(f"--knob {pair}: write it as NAME=VALUE, e.g. patience=3")
        try:
            parsed[name] = json.loads(value)
        except ValueError:
            parsed[name] = value
    return parsed


@command
def main(argv=None):
    args, beam_args = build_parser().parse_known_args(argv)
    if args.batch_size < 1:
        raise UserError(f"--batch_size must be >= 1, got {args.batch_size}")
    from common import predict

    predict.run(model=args.model, pattern=args.input, output=args.output,
                text_column=args.text_column, pair_column=args.text_pair_column,
                id_column=args.id_column, knobs=knobs(args.knob), batch_size=args.batch_size,
                beam_args=beam_args, overwrite=args.overwrite,
                quiet=not getattr(args, "verbose", False))


if __name__ == "__main__":
    main()
