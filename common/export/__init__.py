"""Export a checkpoint of the toolkit as a TensorFlow SavedModel (strings in, the tokenizer and
the method's fast path in the graph) or as ONNX (token ids in)."""
