"""The retrieval task a background worker runs: recent frames in, Top-K part plans out.

`RetrievalTask.compute(frames)` is a pure function of the last `history_frames` analysis frames
of the leader (engine/features layout) and the open index. It returns up to `top_k`
`Proposal`s, each holding, for every stem of its path, control frames (f0, voicing, loudness,
onset; 250 per second) that begin at the frame *after* the last one given: frame 0 of a part
is the first future frame. A caller stamps the result "valid from t + lookahead_frames"
(DESIGN.md section 9) and reads each part from that offset on, so the part is on time however
late within its lookahead the worker finished. Silence or too short a context gives no
proposals rather than an error: a live worker never raises on the player pausing.

Cost (bench/retrieval.py, shipped index, one core): see the README's retrieval table; the
embedding, 12 transposed ANN calls, seam rescoring and dedup are a few milliseconds, well
inside a 1 s period. hnswlib releases the GIL during the ANN calls.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.errors import TuttiError
from engine.rates import CONTROL_RATE_HZ
from engine.retrieval import spec
from engine.retrieval.embedding import voiced_mask
from engine.retrieval.plan import PREROLL_S, control_frames, plan_path, player_tempo_key
from engine.retrieval.query import QuerySettings, retrieve
from engine.retrieval.store import ChunkIndex

TEMPO_CONFIDENCE = 0.3
KEY_CONFIDENCE = 0.6


@dataclass(frozen=True)
class ProposedPart:
    """One stem of a proposal: `frames` [horizon, 16] from the first future frame on."""

    stem: str
    role: str
    is_leader: bool
    frames: np.ndarray


@dataclass(frozen=True)
class Proposal:
    """A ranked continuation: its score, where it comes from, and what each stem plays."""

    rank: int
    score: float
    sources: tuple[tuple[str, float, int], ...]  # (song id, start s in that song, transpose) per step
    parts: tuple[ProposedPart, ...]


class RetrievalTask:
    """Every second, the Top-K continuations of the last 6 s (in force 0.2 s later)."""

    name = "retrieval"
    period_frames = CONTROL_RATE_HZ
    lookahead_frames = 50
    history_frames = spec.CHUNK_FRAMES * 3

    def __init__(self, index: ChunkIndex, *, top_k: int = 5, horizon_s: float = 4.0) -> None:
        index.check_not_empty()
        self.index = index
        self.top_k = top_k
        self.horizon_frames = int(horizon_s * CONTROL_RATE_HZ)
        self.steps = max(1, int(np.ceil(horizon_s / spec.CHUNK_S)))

    def compute(self, frames: np.ndarray) -> list[Proposal]:
        """Proposals for the player's recent leader frames ([n, 16], the newest last)."""
        frames = np.asarray(frames, dtype=np.float64)
        if len(frames) < spec.CHUNK_FRAMES or voiced_mask(frames[-spec.CHUNK_FRAMES:]).mean() < 0.05:
            return []
        estimate = player_tempo_key(frames)
        tempo = estimate.tempo_bpm if estimate.tempo_confidence >= TEMPO_CONFIDENCE else None
        key = estimate.key_tonic if estimate.key_confidence >= KEY_CONFIDENCE else None
        try:
            paths = retrieve(self.index, frames, QuerySettings(top_k=self.top_k, steps=self.steps, key_tonic=key, tempo_bpm=tempo))
        except TuttiError:
            return []
        level_db = float(np.mean(frames[-spec.CHUNK_FRAMES:][voiced_mask(frames[-spec.CHUNK_FRAMES:]), 2]))
        skip = int(round(PREROLL_S * CONTROL_RATE_HZ))  # control_frames start PREROLL_S before the join
        proposals = []
        for rank, path in enumerate(paths, start=1):
            plan = plan_path(self.index, path, tempo)
            parts = tuple(
                ProposedPart(stem.name, stem.role, stem.is_leader,
                             control_frames(stem, skip + self.horizon_frames, level_db, lowest=stem.role == "bass")[skip:])
                for stem in plan.stems if not stem.is_drum
            )
            sources = tuple((self.index.songs[s.song].song_key, s.start_s, s.transpose) for s in path.steps)
            proposals.append(Proposal(rank, path.score, sources, parts))
        return proposals
