"""Training data, torch-free (DESIGN.md section 8), so `build-index` can use it too.

- `items`: the one item type every loader returns (`SongItem` of `Stem`s) and the song-id split.
- `gm`: General MIDI program names and classes, as Slakh's `metadata.yaml` writes them.
- `loaders`: Slakh2100/BabySlakh, LSX, URMP and Essen (kern, abc) in their published layouts.
- `labels`: note labels (MIDI, URMP note and f0 files, scores).
- `scores`, `render`: the default corpus, music21 scores rendered by FluidSynth in Slakh's layout.
- `manifest`, `cache`: the resumable manifest and the per-stem feature cache.
- `executors`, `progress`, `prepare`, `cli`: running it all on a process pool or a Dask cluster.
"""
