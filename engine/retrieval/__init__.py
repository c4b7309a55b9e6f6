"""Audio retrieval (DESIGN.md section 7): a chunk index of multitrack songs and its queries.

- `spec`: chunk sizes and the embedding spec v1 (what the index records and checks on load).
- `embedding`: the leader stem's frames -> a unit vector; per-chunk seam summaries.
- `parts`: what each stem plays, stored once per song (note labels, or 50 Hz curves).
- `store`: the on-disk index (SQLite metadata + an hnswlib file), incremental add, checks.
- `build`: songs of a corpus or a folder of audio files -> the store (`launch.py build-index`).
- `seam`: how smoothly a continuation joins the audio before it.
- `query`: recent frames -> Top-K continuation paths (relevance, seam, dedup, beam search).
- `plan`: a path -> each stem's notes over future frames, transposed and beat aligned.
- `extend`: `launch.py extend`, a clip continued along each Top-K path through the processor.
- `evaluate`: the honest evaluation against the exhaustive mean-chroma baseline.
Torch-free: numpy, hnswlib, sqlite3 (and training/data's torch-free loaders for building).
"""
