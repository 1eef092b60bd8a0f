"""The token-id signature of an exported SavedModel as ONNX (tf2onnx), checked with ONNX Runtime.

Optional (`pip install -e .[onnx]`). tf2onnx reads the graph of the signature's function; an op it has no ONNX
conversion for is one UserError naming the op, and the SavedModel (which serves the same model)
is kept. ONNX Runtime then runs the converted model on a few token ids and its logits must equal
the SavedModel's.
"""
import collections
import logging
import os
import re

import numpy as np
import tensorflow as tf

from common.errors import UserError

ONNX_NAME = "model.onnx"
OPSET = 17
TOKEN_KEYS = ("input_ids", "attention_mask", "token_type_ids")


class _Unsupported(logging.Handler):
    """Collects the ops tf2onnx reports as unsupported (it logs them and goes on)."""

    def __init__(self):
        super().__init__(logging.ERROR)
        self.ops = collections.Counter()

    def emit(self, record):
        found = re.search(r"Unsupported ops: Counter\((\{.*\})\)", record.getMessage())
        if found:
            self.ops.update({op: int(n) for op, n in re.findall(r"'(\w+)': (\d+)",
                                                               found.group(1))})


def require():
    try:
        import onnxruntime
        import tf2onnx
    except ImportError as err:
        raise UserError(f"--format onnx needs tf2onnx and onnxruntime ({err.name} is missing); "
                        "run `pip install -e .[onnx]`") from None
    return tf2onnx, onnxruntime


def convert(module, folder, meta, final_folder):
    """Write `folder/model.onnx` from the token-id signature of `module` (the
    `common.export.savedmodel.ServingModule` saved in `folder`, to be renamed `final_folder`)."""
    tf2onnx, _ = require()
    specs = [tf.TensorSpec([None, None], tf.int32, key) for key in TOKEN_KEYS]
    unsupported = _Unsupported()
    # tf2onnx logs each op it cannot convert and goes on; its log is read here, not printed.
    logger = logging.getLogger("tf2onnx")
    handlers, propagate = logger.handlers[:], logger.propagate
    logger.handlers, logger.propagate = [unsupported], False
    path = os.path.join(folder, ONNX_NAME)
    try:
        tf2onnx.convert.from_function(module.token_ids, input_signature=specs, opset=OPSET,
                                      output_path=path)
    except Exception as err:  # tf2onnx raises plain exceptions on graphs it cannot read
        raise ConversionError(f"tf2onnx {tf2onnx.__version__} cannot read the graph "
                              f"({type(err).__name__}: {_last_line(err)})",
                              final_folder) from None
    finally:
        logger.handlers, logger.propagate = handlers, propagate
    if unsupported.ops:
        os.remove(path)  # written with the unconverted nodes in it: not a valid model
        ops = ", ".join(f"{op} ({n}x)" for op, n in sorted(unsupported.ops.items()))
        raise ConversionError(f"tf2onnx {tf2onnx.__version__} has no ONNX conversion for the "
                              f"TensorFlow op(s) {ops} of the {meta['method']} model",
                              final_folder)
    check(path, module.token_ids)


def _last_line(error):
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[-1][:300] if lines else ""


def check(path, signature):
    """ONNX Runtime's logits equal the SavedModel's on a small padded batch."""
    import onnxruntime

    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    ids = np.array([[2, 5, 6, 7, 3], [2, 8, 3, 0, 0]], np.int32)
    feeds = {"input_ids": ids, "attention_mask": (ids > 0).astype(np.int32),
             "token_type_ids": np.zeros_like(ids)}
    names = [output.name for output in session.get_outputs()]
    ours = dict(zip(names, session.run(None, feeds)))
    theirs = signature(**{key: tf.constant(value) for key, value in feeds.items()})
    if not np.allclose(ours["logits"], theirs["logits"].numpy(), atol=1e-4):
        raise UserError("the ONNX model's logits differ from the SavedModel's; serve the "
                        "SavedModel instead")


class ConversionError(UserError):
    """ONNX conversion failed; the SavedModel is written to `folder` (the message says so)."""

    def __init__(self, reason, folder):
        super().__init__(f"cannot convert to ONNX: {reason}; the SavedModel, which serves the "
                         f"same model, is in {folder}")
        self.folder = folder
