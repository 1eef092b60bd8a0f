"""Prediction over files on Apache Beam's RunInference (the engine of `bert-speedup-predict`).

    rows of the input files (CSV, TSV, JSON lines, parquet; a glob)
      -> (id, {"text", "pair"})     or a rejected row (empty or blank text, a missing cell,
                                    undecodable bytes) with its id and the reason
      -> RunInference(KeyedModelHandler(ToolkitModelHandler))   Beam batches the rows; each
                                    batch runs `common.api.Model.predict` (length-sorted,
                                    the method's fast path); the key keeps each row's id
      -> one output file (.jsonl, .csv or .parquet) + `<stem>.rejected.jsonl`

Both files are written under staging names beside the output and renamed when the pipeline has
finished; rows in = rows out + rejected rows. Any Beam runner runs it: the DirectRunner in this
process by default, `--direct_num_workers N --direct_running_mode multi_processing` on one
machine, Flink / Spark / Dataflow with their own pipeline options.
"""
import csv
import io
import json
import logging
import os
import sys
import time

from common.errors import UserError

FORMATS = (".jsonl", ".csv", ".parquet")
INPUTS = (".csv", ".tsv", ".jsonl", ".json", ".parquet")
PROGRESS_SECONDS = 10.0


def _import_beam():
    """apache_beam, imported without its import-time log lines (missing cloud clients)."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        import apache_beam
    except ImportError:
        raise UserError("bert-speedup-predict needs Apache Beam: pip install apache-beam") \
            from None
    finally:
        root.setLevel(level)
    return apache_beam


beam = _import_beam()
from apache_beam import pvalue  # noqa: E402
from apache_beam.io import fileio  # noqa: E402
from apache_beam.io.filesystems import FileSystems  # noqa: E402
from apache_beam.ml.inference.base import (KeyedModelHandler, ModelHandler,  # noqa: E402
                                           PredictionResult, RunInference)


def rejected_path(output):
    """`<output stem>.rejected.jsonl` beside the output."""
    return os.path.splitext(output)[0] + ".rejected.jsonl"


# ---------------------------------------------------------------- reading rows

def _bad_bytes(text):
    try:
        text.encode("utf-8")
        return False
    except UnicodeEncodeError:  # surrogate-escaped bytes that were not UTF-8
        return True


def _records(name, data):
    """(row number, {column: cell} or None when the row cannot be parsed, reason) of one file."""
    kind = os.path.splitext(name)[1].lower()
    if kind in (".csv", ".tsv"):
        text = data.decode("utf-8", errors="surrogateescape").lstrip("\ufeff")
        options = {"delimiter": "\t", "quoting": csv.QUOTE_NONE} if kind == ".tsv" else {}
        reader = csv.reader(io.StringIO(text, newline=""), **options)
        header = next(reader, [])
        for number, row in enumerate(r for r in reader if r):
            yield number, {column: row[i] for i, column in enumerate(header) if i < len(row)}, None
    elif kind == ".parquet":
        import pyarrow.parquet as pq

        for number, row in enumerate(pq.read_table(io.BytesIO(data)).to_pylist()):
            yield number, row, None
    else:
        for number, line in enumerate(line for line in data.splitlines() if line.strip()):
            try:
                row = json.loads(line.decode("utf-8"))
            except UnicodeDecodeError:
                yield number, None, "undecodable bytes (the line is not UTF-8)"
                continue
            except ValueError:
                yield number, None, "not a JSON object"
                continue
            yield (number, row, None) if isinstance(row, dict) else (
                number, None, "not a JSON object")


def _cell(row, column):
    """(text, None) or (None, reason)."""
    if column not in row or row[column] is None:
        return None, f"missing cell in column '{column}'"
    value = row[column]
    if not isinstance(value, str):
        value = str(value)
    if _bad_bytes(value):
        return None, f"undecodable bytes in column '{column}' (not UTF-8)"
    if not value.strip():
        return None, f"empty text in column '{column}'"
    return value, None


def parse_file(readable, columns, several):
    """Rows of one matched file: (id, example) for the model, or TaggedOutput('rejected', {id,
    file, reason})."""
    name = readable.metadata.path
    base = os.path.basename(name)
    text_column, pair_column, id_column = columns
    for number, row, reason in _records(name, readable.read()):
        row_id = f"{base}:{number}" if several else str(number)
        if row is not None and id_column and row.get(id_column) is not None:
            row_id = str(row[id_column])
        if reason is None:
            text, reason = _cell(row, text_column)
            pair = None
            if reason is None and pair_column:
                pair, reason = _cell(row, pair_column)
        if reason is not None:
            yield pvalue.TaggedOutput("rejected", {"id": row_id, "file": name, "row": number,
                                                   "reason": reason})
        else:
            yield row_id, {"text": text, "pair": pair}


def check_inputs(pattern, text_column, pair_column, id_column):
    """The matched files (UserError when none, when a file type is unknown or a file lacks a
    column); the launcher checks this before the pipeline starts."""
    try:
        matched = [m.path for result in FileSystems.match([pattern]) for m in result.metadata_list]
    except Exception as err:  # Beam raises BeamIOError for a pattern it cannot read
        raise UserError(f"cannot read --input {pattern}: {str(err).splitlines()[0]}") from None
    if not matched:
        raise UserError(f"--input {pattern} matches no file")
    for path in matched:
        if os.path.splitext(path)[1].lower() not in INPUTS:
            raise UserError(f"{path}: unknown file type; use {', '.join(INPUTS)}")
        columns = _header(path)
        wanted = [c for c in (text_column, pair_column, id_column) if c]
        missing = [c for c in wanted if columns is not None and c not in columns]
        if missing:
            raise UserError(f"{path} has no column '{missing[0]}'; its columns are "
                            f"{', '.join(columns)}")
    return sorted(matched)


def _header(path):
    """A file's columns (None for JSON lines: each row names its own)."""
    kind = os.path.splitext(path)[1].lower()
    if kind in (".jsonl", ".json"):
        return None
    with FileSystems.open(path) as handle:
        if kind == ".parquet":
            import pyarrow.parquet as pq

            return list(pq.read_schema(io.BytesIO(handle.read())).names)
        first = handle.readline().decode("utf-8", errors="replace").lstrip("\ufeff")
    options = {"delimiter": "\t", "quoting": csv.QUOTE_NONE} if kind == ".tsv" else {}
    return next(csv.reader([first.rstrip("\r\n")], **options), [])


# ---------------------------------------------------------------- the model handler

class ToolkitModelHandler(ModelHandler):
    """Any model `common.api.load` opens; one Beam batch is one `Model.predict` call (which
    sorts the batch by length and runs the method's fast path)."""

    def __init__(self, path, knobs, batch_size):
        super().__init__(min_batch_size=1, max_batch_size=batch_size)
        self.path, self.knobs, self.batch_size = path, dict(knobs), batch_size

    def load_model(self):
        from common.api import load

        return load(self.path, **self.knobs)

    def run_inference(self, batch, model, inference_args=None):
        pairs = [e["pair"] for e in batch] if batch and batch[0]["pair"] is not None else None
        results = model.predict([e["text"] for e in batch], pairs, batch_size=len(batch))
        return [PredictionResult(e, r) for e, r in zip(batch, results)]

    def get_metrics_namespace(self):
        return "bert_speedup_predict"


# ---------------------------------------------------------------- writing

def flat_row(row_id, prediction):
    """One output row: id, label, probability_<name> per class, the method's cost."""
    row = {"id": row_id, "label": prediction["label"]}
    for name, value in prediction.get("probabilities", {}).items():
        row[f"probability_{name}"] = value
    row.update({k: v for k, v in prediction.items() if k not in ("label", "probabilities")})
    return row


def _csv_line(columns, row):
    out = io.StringIO()
    values = [" ".join(map(str, row[c])) if isinstance(row[c], list) else row[c]
              for c in columns]
    csv.writer(out, lineterminator="").writerow(values)
    return out.getvalue()


def _parquet_schema(sample):
    import pyarrow as pa

    def kind(value):
        if isinstance(value, list):
            return pa.list_(pa.int64())
        if isinstance(value, bool) or isinstance(value, int):
            return pa.int64()
        return pa.float64() if isinstance(value, float) else pa.string()

    return pa.schema([(key, kind(value)) for key, value in sample.items()])


class _Progress:
    """Counts the rows this worker has predicted; a line on stderr every PROGRESS_SECONDS."""

    def __init__(self):
        self.count, self.start, self.shown = 0, None, None

    def __call__(self, element):
        now = time.monotonic()
        if self.start is None:
            self.start = self.shown = now
        self.count += 1
        if now - self.shown >= PROGRESS_SECONDS:
            self.shown = now
            print(f"predicted {self.count} rows in this worker "
                  f"({self.count / (now - self.start):.1f} rows/s)", file=sys.stderr, flush=True)
        return element


def run(*, model, pattern, output, text_column, pair_column=None, id_column=None, knobs=None,
        batch_size=64, beam_args=(), overwrite=False, quiet=True, log=print):
    """Predict every row of the files `pattern` matches into `output`; returns {"rows",
    "predicted", "rejected"} counts. `quiet`: no Beam log lines below ERROR."""
    from common.validation import check_new_files

    from apache_beam.options.pipeline_options import PipelineOptions

    kind = os.path.splitext(output)[1].lower()
    if kind not in FORMATS:
        raise UserError(f"--output {output}: use a {', '.join(FORMATS)} file")
    rejected = rejected_path(output)
    check_new_files([output, rejected], overwrite, flag="--overwrite")
    files = check_inputs(pattern, text_column, pair_column, id_column)
    knobs = knobs or {}
    from common.api import load

    # The launcher loads the model once: a bad model fails here, and one probe row gives the
    # output columns (class names, the method's cost).
    sample = flat_row("", load(model, **knobs).predict(["a"])[0])
    columns = list(sample)
    stage = {path: os.path.join(os.path.dirname(os.path.abspath(path)),
                                f".{os.path.basename(path)}.staging")
             for path in (output, rejected)}
    several = len(files) > 1
    options = PipelineOptions(list(beam_args))
    quiet = quiet and logging.getLogger().level < logging.ERROR
    if quiet:  # Beam's workers log at WARNING on the root logger (memory probes, for one)
        previous = logging.getLogger().level
        logging.getLogger().setLevel(logging.ERROR)
    try:
        with beam.Pipeline(options=options) as pipeline:
            parsed = (pipeline | "files" >> beam.Create(files)
                      | "match" >> fileio.MatchAll()
                      | "open" >> fileio.ReadMatches()
                      | "rows" >> beam.FlatMap(parse_file, (text_column, pair_column, id_column),
                                               several).with_outputs("rejected", main="rows"))
            predicted = (parsed.rows | "predict" >> RunInference(
                KeyedModelHandler(ToolkitModelHandler(model, knobs, batch_size)))
                | "flat" >> beam.MapTuple(lambda key, result: flat_row(key, result.inference))
                | "progress" >> beam.Map(_Progress()))
            single = {"num_shards": 1, "shard_name_template": ""}
            if kind == ".parquet":
                predicted | "write" >> beam.io.WriteToParquet(
                    stage[output], _parquet_schema(sample), **single)
            elif kind == ".csv":
                (predicted | "format" >> beam.Map(lambda row: _csv_line(columns, row))
                 | "write" >> beam.io.WriteToText(stage[output], header=_csv_line(
                     columns, dict(zip(columns, columns))), **single))
            else:
                (predicted | "format" >> beam.Map(json.dumps)
                 | "write" >> beam.io.WriteToText(stage[output], **single))
            (parsed.rejected | "format rejected" >> beam.Map(json.dumps)
             | "write rejected" >> beam.io.WriteToText(stage[rejected], **single))
        counts = {"predicted": _count(stage[output], kind),
                  "rejected": _count(stage[rejected], ".jsonl")}
        for path, staged in stage.items():
            if FileSystems.exists(path):
                FileSystems.delete([path])
            FileSystems.rename([staged], [path])
    finally:
        if quiet:
            logging.getLogger().setLevel(previous)
        present = [p for p in stage.values() if FileSystems.exists(p)]
        if present:
            FileSystems.delete(present)
    counts["rows"] = counts["predicted"] + counts["rejected"]
    log(f"{counts['rows']} rows: {counts['predicted']} predictions in {output}, "
        f"{counts['rejected']} rejected rows in {rejected}")
    return counts


def _count(path, kind):
    with FileSystems.open(path) as handle:
        if kind == ".parquet":
            import pyarrow.parquet as pq

            return pq.read_metadata(io.BytesIO(handle.read())).num_rows
        lines = sum(1 for line in handle if line.strip())
    return lines - 1 if kind == ".csv" else lines
