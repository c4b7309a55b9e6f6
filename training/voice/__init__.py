"""Instrument voices: the DDSP decoder, its torch synth twin, training, export and evaluation.

- `config`: decoder and training sizes (`DecoderConfig`, `TrainConfig`), the shipped defaults
  and the research overlay.
- `decoder`: the GRU decoder, pitch and loudness in, synth controls out (DESIGN.md section 5).
- `synth`: the harmonic bank and filtered noise in torch, matching engine/synth dry.
- `loss`: the multi-scale spectral loss.
- `dataset`: training windows from the feature cache and the stems' audio.
- `train`, `distributed`, `checkpoint`, `curves`: the training loop and its files.
- `export`: streaming ONNX (one call per control frame, GRU state in and out) plus sidecar.
- `baselines`, `evaluate`: musical-unit metrics against a sine and a mean-spectrum voice.
"""
