"""Length-reducing inference on single texts (the original's `lr_mode`) and its command line.

    encoded = tokenizer("a sample text.", return_tensors="np")
    outputs = model(encoded, lr_mode=True)     # outputs["logits"], outputs["kept"] per layer

A text is never padded or truncated silently here: one longer than the checkpoint's MAX_LENGTH
is an error unless --TRUNCATE is given. `compiled` wraps a model call in one tf.function that
becomes shape-generic, so the physical removal (data-dependent shapes) runs as one graph; the
speed benchmark times both sides this way.

    python -m adapler.inference --MODEL_PATH <AdapLeR checkpoint> --TEXT "a gripping , funny film"
"""
import numpy as np

from common.checkpoints import resolve_source
from common.cli import ArgumentParser, command
from common.errors import UserError
from common.tasks import get_task
from common.validation import check_model_files, check_numbers

FEATURES = ("input_ids", "token_type_ids", "attention_mask")


def compiled(model, lr_mode, jit_compile=False):
    """features -> logits as one tf.function (`common.inference.compile_forward`; shape-generic
    after the first shapes): the AdapLeR model in lr_mode, or (lr_mode False) the same backbone
    and head run as plain BERT, with no predictors (`jit_compile`: XLA, one compile per input
    shape; lr_mode's data-dependent shapes rule it out there)."""
    from common.inference import compile_forward

    if lr_mode:
        if jit_compile:
            raise ValueError("lr_mode has data-dependent shapes; XLA cannot compile it")
        return compile_forward(lambda features: model(features, lr_mode=True)["logits"])
    return compile_forward(lambda features: model.classifier(
        model.bert(features, training=False)["pooled_output"]), jit_compile=jit_compile)


def load_model(model_path):
    """(AdapLeR model, tokenizer, sidecar) from an AdapLeR checkpoint folder."""
    from adapler.paths import checkpoint_folder
    from adapler.model import build_model, load_checkpoint_into
    from adapler.pipeline import tokenizer_for

    source = resolve_source(checkpoint_folder(model_path))
    sidecar = source.sidecar
    model = build_model(source.config, sidecar.get("num_labels", 2), sidecar.get("max_length") or 1)
    load_checkpoint_into(model, source.folder, require_adapler=True)
    return model, tokenizer_for(source.folder, source.folder), sidecar


def encode_text(tokenizer, text, text_b=None, max_length=None, truncate=False):
    """One unpadded example as int32 arrays of shape (1, n)."""
    encoded = tokenizer(text, text_b, return_tensors="np", truncation=bool(truncate and max_length),
                        max_length=max_length if truncate else None)
    length = encoded["input_ids"].shape[1]
    if max_length and length > max_length:
        raise UserError(f"the text has {length} word pieces, more than MAX_LENGTH {max_length}; "
                        "shorten it or pass --TRUNCATE")
    return {key: np.asarray(encoded[key], np.int32) for key in FEATURES}


def infer(model, tokenizer, text, text_b=None, max_length=None, truncate=False):
    """{'logits', 'prediction', 'kept_tokens' (per layer, the tokens that layer processes)}."""
    features = encode_text(tokenizer, text, text_b, max_length, truncate)
    outputs = model(features, lr_mode=True)
    tokens = tokenizer.convert_ids_to_tokens(features["input_ids"][0].tolist())
    kept = [[tokens[i] for i in np.asarray(layer)[0] if i >= 0] for layer in outputs["kept"]]
    logits = np.asarray(outputs["logits"])[0]
    return {"logits": logits, "prediction": int(np.argmax(logits)), "kept_tokens": kept}


def build_parser():
    parser = ArgumentParser(prog="python -m adapler.inference",
                            description="AdapLeR length-reducing inference on one text.")
    parser.add_argument("--MODEL_PATH", required=True, help="AdapLeR checkpoint folder")
    parser.add_argument("--TEXT", required=True, help="the text to classify")
    parser.add_argument("--TEXT_B", default=None,
                        help="second text of a pair task (required for pair tasks)")
    parser.add_argument("--MAX_LENGTH", type=int, default=None,
                        help="longest accepted input (default: the checkpoint's)")
    parser.add_argument("--TRUNCATE", action="store_true", help="truncate longer texts")
    return parser


@command
def main(argv=None):
    args = build_parser().parse_args(argv)
    check_numbers(args, counts=("MAX_LENGTH",))
    from adapler.paths import checkpoint_folder

    check_model_files(checkpoint_folder(args.MODEL_PATH))
    model, tokenizer, sidecar = load_model(args.MODEL_PATH)
    result = infer(model, tokenizer, args.TEXT, args.TEXT_B,
                   args.MAX_LENGTH or sidecar.get("max_length"), args.TRUNCATE)
    task = get_task(sidecar["task"]) if sidecar.get("task") else None
    label = task.label_name(result["prediction"]) if task and task.labels else result["prediction"]
    print(f"prediction: {label}  logits: {[round(float(v), 4) for v in result['logits']]}")
    for index, tokens in enumerate(result["kept_tokens"]):
        print(f"layer {index + 1:2d} ({len(tokens):3d} tokens): {' '.join(tokens)}")


if __name__ == "__main__":
    main()
