"""`launch.py extend CLIP --out DIR`: the clip continued along each of the Top-K paths.

For each path (see `query.retrieve`): the clip's own analysis is the query (its tempo and key
from the tempo/key task, used when confident); the path's stems are planned on the player's
timeline (`plan`), the join delayed by less than a beat so the continuation's first beat lands
on the player's beat grid; the leader's continuation is played by a Tutti voice, gain matched
to the clip's last 2 s (measured with the engine's own loudness) and joined to the clip with an
equal-power crossfade; then the whole line runs through the block processor as the leader,
heard in the mix (input monitor at 0 dB), while each configured voice follows the clip until
the join and then crossfades (equal power) into the stem of the path it was given.

Where the index references the user's own recordings (`build-index --dataset audio`) and a
path plays one of them unchanged, the recording itself is the continuation instead of a voice.

Writes DIR/extended_N.wav (stereo, 48 kHz float32, N = 1..K), candidates.json (scores, steps,
sources, join, gain, seam measurements) and config.toml. Inputs are checked before DIR is
claimed: a bad clip or index writes nothing.
"""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np

from engine.audio_io import read_mono, write_float_wav
from engine.config import TuttiConfig, VoiceConfig, config_to_toml
from engine.errors import TuttiError
from engine.features.frames import LOUDNESS
from engine.features.streaming import StreamingAnalyzer
from engine.rates import CONTROL_RATE_HZ, frame_samples
from engine.retrieval import spec
from engine.retrieval.embedding import voiced_mask
from engine.retrieval.plan import PREROLL_S, Plan, control_frames, join_offset_s, plan_path, player_tempo_key
from engine.retrieval.query import Continuation, QuerySettings, check_context, retrieve
from engine.retrieval.store import ChunkIndex
from engine.tempo_key import PITCH_CLASSES
from engine.safe_files import atomic_path, atomic_write_text, claim_output_dir

COMMAND = "extend"
CROSSFADE_S = 0.1
TAIL_S = 0.5
LEAD_KIND = "reference:bowed-strings"
TEMPO_CONFIDENCE = 0.3
KEY_CONFIDENCE = 0.6
HISTORY_FRAMES = 2000  # the last 8 s, as the tempo/key task reads
DEFAULT_INDEX = Path(__file__).resolve().parents[2] / "index"


def equal_power_gains(n: int, join: int, fade: int) -> tuple[np.ndarray, np.ndarray]:
    """(out, in) gains over n samples: 1/0 before join - fade, cos/sin across it, 0/1 after."""
    x = np.clip((np.arange(n) - (join - fade)) / max(fade, 1), 0.0, 1.0)
    return np.cos(0.5 * np.pi * x).astype(np.float32), np.sin(0.5 * np.pi * x).astype(np.float32)


class PlanVoice:
    """A follower that follows the player until the join, then plays a planned part.

    `follow` is the configured voice; `plan` (the same kind at interval 0) is stepped with
    `frames` (one per control frame of the output) and faded in with equal power while
    `follow` fades out. Buffers are preallocated: rendering allocates nothing.
    """

    def __init__(self, name: str, follow, plan, frames: np.ndarray, gains: tuple[np.ndarray, np.ndarray], max_block: int) -> None:
        self.name = name
        self._follow, self._plan, self._frames = follow, plan, frames
        self._gain_out, self._gain_in = gains
        self._follow_buf = np.zeros(max_block, dtype=np.float32)
        self._plan_buf = np.zeros(max_block, dtype=np.float32)
        self._frame = 0
        self._sample = 0

    def step(self, frame: np.ndarray) -> None:
        self._follow.step(frame)
        self._frame += 1
        self._plan.step(self._frames[min(self._frame, len(self._frames) - 1)])

    def render(self, out: np.ndarray, offset: int, count: int) -> None:
        s = min(self._sample, len(self._gain_in) - count)
        self._follow_buf[:count] = 0.0
        self._plan_buf[:count] = 0.0
        self._follow.render(self._follow_buf, 0, count)
        self._plan.render(self._plan_buf, 0, count)
        out[offset:offset + count] += (
            self._follow_buf[:count] * self._gain_out[s:s + count] + self._plan_buf[:count] * self._gain_in[s:s + count]
        )
        self._sample += count

    def reset(self) -> None:
        self._follow.reset()
        self._plan.reset()
        self._frame = 0
        self._sample = 0


def _assign_stems(plan: Plan, voice_names: list[str], voice_kinds: list[str]) -> dict[str, int]:
    """Config voice -> index into plan.stems: a bass voice takes the bass stem, the others the
    remaining pitched stems from the highest down. Voices left over keep following."""
    def median_pitch(stem) -> float:
        return float(np.median(stem.notes[:, 2])) if stem.notes is not None and len(stem.notes) else 0.0

    free = [i for i, s in enumerate(plan.stems) if not s.is_leader and not s.is_drum
            and ((s.notes is not None and len(s.notes)) or (s.curves is not None and len(s.curves)))]
    chosen: dict[str, int] = {}
    for name, kind in zip(voice_names, voice_kinds):
        if "bass" in name or "bass" in kind:
            basses = [i for i in free if plan.stems[i].role == "bass"] or sorted(free, key=lambda i: median_pitch(plan.stems[i]))
            if basses:
                chosen[name] = basses[0]
                free.remove(basses[0])
    for name in voice_names:
        if name not in chosen and free:
            best = max(free, key=lambda i: median_pitch(plan.stems[i]))
            chosen[name] = best
            free.remove(best)
    return chosen


def _timeline_frames(stem_frames: np.ndarray, first_frame: int, n_frames: int) -> np.ndarray:
    """A stem's planned frames placed on the output timeline from `first_frame`; silent elsewhere."""
    out = np.zeros((n_frames, stem_frames.shape[1]))
    out[:, LOUDNESS] = -100.0
    end = min(n_frames, first_frame + len(stem_frames))
    out[first_frame:end] = stem_frames[: end - first_frame]
    return out


def _render_voice(voice, frames: np.ndarray, hop: int) -> np.ndarray:
    """A voice played standalone from control frames (one frame of samples per step)."""
    out = np.zeros(len(frames) * hop, dtype=np.float32)
    voice.reset()
    for i, frame in enumerate(frames):
        voice.step(frame)
        voice.render(out, i * hop, hop)
    return out


def source_audio(index: ChunkIndex, path: Continuation, plan: Plan, rate: int) -> np.ndarray | None:
    """The path's own recording (from PREROLL_S before its first chunk) where its index
    references readable audio files and it plays them unchanged: every step of one song, each
    following the last, untransposed and unstretched. None otherwise (voices play it)."""
    songs = {index.songs[step.song].source_path for step in path.steps}
    contiguous = all(b.song == a.song and b.start_s == a.start_s + spec.CHUNK_S for a, b in zip(path.steps, path.steps[1:]))
    if len(songs) != 1 or None in songs or not contiguous or plan.stretch != 1.0 or any(s.transpose for s in path.steps):
        return None
    file = Path(next(iter(songs)))
    if not file.is_file():
        return None
    audio = read_mono(file, rate)
    begin = max(0, int(round((path.first.start_s - PREROLL_S) * rate)))
    return audio[begin:int(round((path.steps[-1].start_s + spec.CHUNK_S) * rate))]


def _voiced_level_db(frames: np.ndarray) -> float:
    voiced = voiced_mask(frames)
    return float(np.mean(frames[voiced, LOUDNESS])) if voiced.any() else -100.0


def render_path(clip: np.ndarray, clip_frames: np.ndarray, index: ChunkIndex, path: Continuation,
                config: TuttiConfig, tempo_bpm: float | None, last_beat_s: float, seconds: float) -> tuple[np.ndarray, dict]:
    """The extended clip (stereo mix) for one path, and what was done (join, gain, assignment)."""
    from engine.processor import BlockProcessor
    from engine.voices.factory import build_voice

    rate = config.engine.sample_rate_hz
    hop = frame_samples(rate)
    plan = plan_path(index, path, tempo_bpm)
    clip_end_s = len(clip) / rate
    delay_s = 0.0
    if tempo_bpm:
        delay_s = join_offset_s(clip_end_s, last_beat_s, tempo_bpm, plan.first_beat_s)
    join_s = clip_end_s + delay_s
    total_s = join_s + min(plan.duration_s, seconds) + TAIL_S
    n_frames = int(math.ceil(total_s * CONTROL_RATE_HZ))
    n = n_frames * hop
    first_frame = int(round((join_s - PREROLL_S) * CONTROL_RATE_HZ))
    level_db = _voiced_level_db(clip_frames[-spec.CHUNK_FRAMES:])
    gains = equal_power_gains(n, int(round(join_s * rate)), int(round(CROSSFADE_S * rate)))
    # the leader's continuation, gain matched to the clip's last 2 s by the engine's own loudness
    lead_frames = _timeline_frames(control_frames(plan.leader, n_frames - first_frame, level_db), first_frame, n_frames)
    source = source_audio(index, path, plan, rate)
    if source is not None:  # a user's index of their own recordings: play the recording itself
        lead = np.zeros(n, dtype=np.float32)
        start = first_frame * hop
        lead[start:start + len(source)] = source[: n - start]
    else:
        lead = _render_voice(build_voice("lead", VoiceConfig(kind=LEAD_KIND), config), lead_frames, hop)
    analyzer = StreamingAnalyzer(rate)
    measured = _voiced_level_db(analyzer.analyze(lead[first_frame * hop:]).values)
    gain_db = float(np.clip(level_db - measured, -30.0, 30.0)) if measured > -100.0 else 0.0
    clip_padded = np.zeros(n, dtype=np.float32)
    clip_padded[: len(clip)] = clip[:n]
    leader_line = clip_padded * gains[0] + lead * np.float32(10.0 ** (gain_db / 20.0)) * gains[1]
    # followers: the configured voices, each switching to its stem of the path at the join
    names = [name for name, _ in config.voices]
    kinds = [voice.kind for _, voice in config.voices]
    assignment = _assign_stems(plan, names, kinds)
    voices = []
    for name, voice_config in config.voices:
        follow = build_voice(name, voice_config, config)
        stem_index = assignment.get(name)
        if stem_index is None:
            planned = lead_frames  # no stem left for it: it keeps following the (continued) leader line
            planned_voice = build_voice(name, voice_config, config)
        else:
            stem = plan.stems[stem_index]
            stem_frames = control_frames(stem, n_frames - first_frame, level_db, lowest=stem.role == "bass")
            planned = _timeline_frames(stem_frames, first_frame, n_frames)
            planned_voice = build_voice(name, replace(voice_config, interval_semitones=0.0), config)
        voices.append(PlanVoice(name, follow, planned_voice, planned, gains, 4096))
    monitored = replace(config, mixer=replace(config.mixer, input_monitor_db=0.0), echo=replace(config.echo, enabled=False))
    processor = BlockProcessor(monitored, voices=voices)
    _, mix = processor.render(leader_line, config.engine.block_samples)
    record = {
        "join_s": round(join_s, 4), "beat_delay_s": round(delay_s, 4), "stretch": round(plan.stretch, 4),
        "lead": "source audio" if source is not None else LEAD_KIND,
        "lead_gain_db": round(gain_db, 2), "crossfade_s": CROSSFADE_S, "duration_s": round(n / rate, 3),
        "voices": {name: (plan.stems[i].name if i is not None else "follows the leader line")
                   for name, i in ((name, assignment.get(name)) for name in names)},
        "seam": measure_seam(mix.mean(axis=1), rate, join_s, clip_end_s),
    }
    return mix, record


SEAM_FLOOR_DB = -60.0


def measure_seam(audio: np.ndarray, rate: int, join_s: float, before_end_s: float | None = None) -> dict:
    """Loudness jump (dB between the mean loudness of the 0.25 s before `before_end_s`, default
    the join, and the 0.25 s after the join, each floored at -60 dB so a rest counts as -60, not
    -100) and spectral flux (peak onset strength within 20 ms of the join). A beat-aligned join
    may wait after the clip ends: then the clip's last 0.25 s is what the continuation meets."""
    frames = StreamingAnalyzer(rate).analyze(np.ascontiguousarray(audio, dtype=np.float32)).values
    j = int(round(join_s * CONTROL_RATE_HZ))
    e = int(round((join_s if before_end_s is None else min(before_end_s, join_s)) * CONTROL_RATE_HZ))
    w = CONTROL_RATE_HZ // 4
    loudness = np.maximum(frames[:, LOUDNESS], SEAM_FLOOR_DB)
    before, after = loudness[max(0, e - w):e], loudness[j:j + w]
    if len(before) == 0 or len(after) == 0:
        return {"loudness_jump_db": 0.0, "flux": 0.0}
    return {
        "loudness_jump_db": round(float(abs(after.mean() - before.mean())), 3),
        "flux": round(float(frames[max(0, j - 5):j + 5, 3].max()), 4),
    }


def check_clip(path: Path, rate: int) -> np.ndarray:
    """The clip at the engine rate, or TuttiError when it is shorter than one chunk."""
    clip = read_mono(path, rate)
    if len(clip) < spec.CHUNK_S * rate:
        raise TuttiError(f"clip {path} lasts {len(clip) / rate:.2f} s, shorter than one {spec.CHUNK_S:.0f} s chunk: give a longer clip")
    return clip


def extend_clip(clip_path: Path, out_dir: Path, config: TuttiConfig, *, index_dir: Path = DEFAULT_INDEX,
                top_k: int = 3, seconds: float = 8.0, force: bool = False) -> dict:
    """Write the Top-K extensions of `clip_path` into `out_dir`; returns the candidates record."""
    if top_k < 1:
        raise TuttiError(f"--top-k {top_k}: give 1 or more")
    if not 0 < seconds <= 60:
        raise TuttiError(f"--seconds {seconds}: give a length in 0..60 s")
    rate = config.engine.sample_rate_hz
    clip = check_clip(Path(clip_path), rate)
    frames = StreamingAnalyzer(rate, f0_min_hz=config.analysis.f0_min_hz, f0_max_hz=config.analysis.f0_max_hz).analyze(clip).values
    try:
        check_context(frames)
    except TuttiError as err:
        raise TuttiError(f"clip {clip_path}: {err}") from None
    index = ChunkIndex.open(index_dir)
    index.check_not_empty()
    history = frames[-HISTORY_FRAMES:]
    estimate = player_tempo_key(history)
    last_beat_s = estimate.last_beat_s + (len(frames) - len(history)) / CONTROL_RATE_HZ
    tempo = estimate.tempo_bpm if estimate.tempo_confidence >= TEMPO_CONFIDENCE else None
    key = estimate.key_tonic if estimate.key_confidence >= KEY_CONFIDENCE else None
    steps = max(1, math.ceil(seconds / spec.CHUNK_S))
    paths = retrieve(index, frames, QuerySettings(top_k=top_k, steps=steps, key_tonic=key, tempo_bpm=tempo))
    if not paths:
        raise TuttiError(f"the index in {index_dir} has no continuation for {clip_path}: build a larger index")
    names = ["candidates.json", "config.toml"] + [f"extended_{i}.wav" for i in range(1, top_k + 1)]
    claim_output_dir(out_dir, force=force, command=COMMAND, names=names)
    candidates = []
    for rank, path in enumerate(paths, start=1):
        mix, record = render_path(clip, frames, index, path, config, tempo, last_beat_s, seconds)
        name = f"extended_{rank}.wav"
        with atomic_path(Path(out_dir) / name) as temporary:
            write_float_wav(temporary, mix, rate)
        candidates.append({"rank": rank, "file": name, "score": round(path.score, 4), **record,
                           "steps": [_step_record(index, step) for step in path.steps]})
    result = {
        "clip": str(Path(clip_path).resolve()), "index": str(Path(index_dir).resolve()), "sample_rate_hz": rate,
        "clip_s": round(len(clip) / rate, 3), "tempo_bpm": round(estimate.tempo_bpm, 2),
        "tempo_confidence": round(estimate.tempo_confidence, 3), "tempo_used": tempo is not None,
        "key": f"{PITCH_CLASSES[estimate.key_tonic]} {estimate.key_mode}", "key_confidence": round(estimate.key_confidence, 3), "key_used": key is not None,
        "candidates": candidates,
    }
    atomic_write_text(Path(out_dir) / "candidates.json", json.dumps(result, indent=2) + "\n")
    atomic_write_text(Path(out_dir) / "config.toml", config_to_toml(config))
    return result


def _step_record(index: ChunkIndex, step) -> dict:
    song = index.songs[step.song]
    matched = index.songs[int(index.chunk_song[step.matched])] if step.matched >= 0 else None
    return {
        "song": song.song_key, "dataset": song.dataset, "start_s": step.start_s, "transpose": step.transpose,
        "relevance": round(step.relevance, 4), "seam": round(step.seam, 4), "score": round(step.score, 4),
        "matched": None if matched is None else {"song": matched.song_key, "start_s": float(index.chunk_position[step.matched] * spec.HOP_S)},
        "source_path": song.source_path,
    }
