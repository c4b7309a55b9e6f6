"""ONNX model runners (onnxruntime only, no torch): the instrument decoders of `decoder`."""
