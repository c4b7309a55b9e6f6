"""Training the conductor (torch): targets from composed multi-part scores, the causal model,
its non-causal loudness-only baseline, training, export to ONNX, evaluation."""
