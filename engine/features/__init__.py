"""Causal per-frame analysis of the leader's input, feature version 1 (DESIGN.md section 4).

- `frames`: the 16-column layout (FEATURE_NAMES, FEATURE_VERSION) and `FeatureFrames`.
- `reference`: the numpy float64 specification, `analyze_reference`.
- `streaming`: the live numba twin, `StreamingAnalyzer` (push samples, compute a frame).
- `latency`: the measured pitch settling time of the live analyser.
The torch twin for training lives in `training/features_torch.py`.
"""
