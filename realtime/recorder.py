"""The live take recorder: input, mix and every voice as sample-aligned float32 WAV files.

The audio thread pushes into a `RecorderFeed` (realtime/recorder_feed.py: a lock-free ring,
possibly in shared memory with the engine process; never blocks, keeps nothing); a background
writer thread here drains it into input.wav (mono), mix.wav (stereo) and one <voice>.wav (mono)
per voice, the names `perform` uses. Frames the feed had to drop are written as zeros, so the
files stay aligned. The input is shifted earlier by the
measured round trip (`input_shift_samples`) so that what the player played lines up with what
the ensemble answered: its first samples are dropped and zeros pad its end at close.

Crash safety: the WAV writer here is minimal and owns its file descriptors. Samples are written
first and the RIFF/fact/data sizes rewritten afterwards (one 58-byte `pwrite` per file, every
flush interval), so a killed process leaves WAV files whose headers cover every sample up to the
last flush. Data goes straight to the kernel (no user-space buffer); no fsync, since a process
kill keeps the page cache (power loss is out of scope). Owning the writes also makes a full disk
visible as `OSError(ENOSPC)` with an exact count of bytes written, so the take ends cleanly:
every file is truncated to the same length, its header rewritten, `error` set; nothing is raised
into the audio thread.
"""

from __future__ import annotations

import errno
import os
import shutil
import struct
import threading
from pathlib import Path

import numpy as np

from engine.errors import TuttiError
from realtime.recorder_feed import PENDING_GAP, RecorderFeed

MIB = 1024 * 1024
_WAVE_FORMAT_IEEE_FLOAT = 3
_HEADER_BYTES = 58  # RIFF(12) + fmt chunk(8 + 18) + fact chunk(8 + 4) + data chunk header(8)
_MAX_DATA_BYTES = 0xFFFFFFFF - (_HEADER_BYTES - 8)  # the RIFF size field is 32 bits


class _FloatWavWriter:
    """Append-only float32 WAV file whose header can be brought up to date at any time."""

    def __init__(self, path: Path, sample_rate_hz: int, n_channels: int) -> None:
        self.path = path
        self.sample_rate_hz = sample_rate_hz
        self.n_channels = n_channels
        self.frame_bytes = 4 * n_channels
        self.data_bytes = 0
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            self.update_header()
            os.lseek(self._fd, _HEADER_BYTES, os.SEEK_SET)  # pwrite leaves the offset at 0
        except OSError:
            os.close(self._fd)
            raise

    @property
    def frames(self) -> int:
        """Whole frames written so far."""
        return self.data_bytes // self.frame_bytes

    def append(self, samples: np.ndarray) -> None:
        """Write samples ([frames] or [frames, channels]) as little-endian float32.

        `data_bytes` counts what reached the file even when an OSError interrupts the write.
        """
        view = memoryview(np.ascontiguousarray(samples, dtype="<f4")).cast("B")
        while view.nbytes:
            written = os.write(self._fd, view)
            self.data_bytes += written
            view = view[written:]

    def truncate_frames(self, frames: int) -> None:
        """Cut the data back to `frames` whole frames (frees space; works on a full disk)."""
        self.data_bytes = frames * self.frame_bytes
        os.ftruncate(self._fd, _HEADER_BYTES + self.data_bytes)

    def update_header(self) -> None:
        """Rewrite the header so that it covers exactly the frames written so far."""
        data = self.frames * self.frame_bytes
        header = struct.pack(
            "<4sI4s4sIHHIIHHH4sII4sI",
            b"RIFF", _HEADER_BYTES - 8 + data, b"WAVE",
            b"fmt ", 18, _WAVE_FORMAT_IEEE_FLOAT, self.n_channels, self.sample_rate_hz,
            self.sample_rate_hz * self.frame_bytes, self.frame_bytes, 32, 0,
            b"fact", 4, self.frames,
            b"data", data,
        )
        os.pwrite(self._fd, header, 0)

    def close(self) -> None:
        """Close the file descriptor (the header must already be up to date)."""
        os.close(self._fd)


class SessionRecorder:
    """Records one take into `folder`: push() from the audio thread, start()/stop() elsewhere.

    Ring frame layout: column 0 input, 1-2 mix (left, right), 3.. one column per voice.
    `min_free_bytes` may be changed while recording; free space below it ends the take.
    """

    def __init__(
        self,
        folder: Path,
        sample_rate_hz: int,
        voice_names: tuple[str, ...],
        input_shift_samples: int = 0,
        ring_seconds: float = 10.0,
        min_free_bytes: int = 64 * MIB,
        flush_interval_s: float = 0.25,
        feed: RecorderFeed | None = None,
    ) -> None:
        self.folder = Path(folder)
        self.sample_rate_hz = int(sample_rate_hz)
        self.voice_names = tuple(voice_names)
        self.input_shift_samples = int(input_shift_samples)
        self.min_free_bytes = int(min_free_bytes)
        self.flush_interval_s = float(flush_interval_s)
        self.error: str | None = None
        if self.input_shift_samples < 0:
            raise ValueError(f"input_shift_samples must be >= 0, got {input_shift_samples}")
        for name in self.voice_names:
            if name in ("input", "mix") or not name or Path(name).name != name:
                raise TuttiError(
                    f"voice name {name!r} cannot be a recording file name next to input.wav and "
                    "mix.wav: rename the voice in the config"
                )
        if len(set(self.voice_names)) != len(self.voice_names):
            raise TuttiError(
                f"voice names {self.voice_names} repeat: give every voice its own name"
            )
        capacity = max(1, int(round(ring_seconds * self.sample_rate_hz)))
        self.feed = RecorderFeed.allocate(capacity, len(self.voice_names)) if feed is None else feed
        self._ring = self.feed.ring
        if self._ring.n_channels != 3 + len(self.voice_names):
            raise ValueError(f"recorder feed has {self._ring.n_channels} columns for {len(self.voice_names)} voices")
        capacity = self._ring.capacity_frames
        self._gap_record = np.zeros((1, 2))
        self._gap_position = 0
        self._gap_left = 0
        self.zero_filled_frames = 0
        # Writer-side work rows: up to input_shift_samples held back, then one chunk read.
        self._chunk_frames = min(capacity, self.sample_rate_hz)
        work_frames = self.input_shift_samples + self._chunk_frames
        self._work = np.zeros((work_frames, self._ring.n_channels), dtype=np.float32)
        self._held_frames = 0
        self._poll_s = min(self.flush_interval_s, ring_seconds / 4.0)
        self._files = self._open_files()
        self.feed.set_recording(True)  # read by the audio thread; cleared once the take has ended
        self._closed = False
        self._stop_event = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tutti-recorder", daemon=True)

    def _open_files(self) -> list[_FloatWavWriter]:
        """Create the folder and every WAV file, or raise a TuttiError with the remedy."""
        remedy = "choose another recording folder or make it writable"
        files: list[_FloatWavWriter] = []
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            free = shutil.disk_usage(self.folder).free
            if free < self.min_free_bytes:
                raise TuttiError(
                    f"cannot record into {self.folder}: only {free / MIB:.1f} MiB free, "
                    f"{self.min_free_bytes / MIB:.0f} MiB needed; free some space or {remedy}"
                )
            files.append(_FloatWavWriter(self.folder / "input.wav", self.sample_rate_hz, 1))
            files.append(_FloatWavWriter(self.folder / "mix.wav", self.sample_rate_hz, 2))
            for name in self.voice_names:
                files.append(_FloatWavWriter(self.folder / f"{name}.wav", self.sample_rate_hz, 1))
        except OSError as exc:
            for file in files:
                file.close()
            reason = exc.strerror or str(exc)
            raise TuttiError(f"cannot record into {self.folder}: {reason}; {remedy}") from exc
        return files

    # Audio thread (in this process; the engine process pushes into a shared feed instead).

    def push(self, input_block: np.ndarray, mix_block: np.ndarray, voice_block: np.ndarray,
             count: int) -> bool:
        """`RecorderFeed.push`: queue `count` frames, never blocking; False if not recorded."""
        return self.feed.push(input_block, mix_block, voice_block, count)

    @property
    def dropped_frames(self) -> int:
        """Frames refused because the ring was full (the writer fell behind); written as zeros."""
        return self._ring.overflow_frames

    @property
    def frames_written(self) -> int:
        """Frames in input.wav so far; every file holds as many after each batch."""
        return self._files[0].frames

    # Control thread.

    def start(self) -> None:
        """Start the background writer thread."""
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> dict:
        """End the take: drain the ring, pad the input, close the files; returns the summary.

        Waits only for the writer thread, at most `timeout_s`; a writer stuck past that (a hung
        disk) is reported in the summary's error and left to finish on its own.
        """
        self.feed.set_recording(False)
        self._stop_event.set()
        if self._thread.ident is not None:
            self._thread.join(timeout_s)
            if self._thread.is_alive() and self.error is None:
                self.error = (f"recording stopped: the writer did not finish within "
                              f"{timeout_s:g} s at {self.folder}; the files may end early")
        else:
            self._step(final=True)
        return self.summary()

    def summary(self) -> dict:
        """Frames and seconds recorded, frames dropped, the error that ended the take or None."""
        frames = self.frames_written
        return {
            "frames": frames,
            "seconds": frames / self.sample_rate_hz,
            "dropped_frames": self.dropped_frames,
            "zero_filled_frames": self.zero_filled_frames,
            "input_shift_samples": self.input_shift_samples,
            "error": self.error,
        }

    # Writer thread.

    def _run(self) -> None:
        """Drain every poll interval until stopped or the take ends; then finish."""
        while not self._stop_event.wait(self._poll_s):
            self._step(final=False)
            if self._closed:
                return
        self._step(final=True)

    def _step(self, final: bool) -> None:
        """Drain the ring; the final step pads the input and closes the files.

        Any unexpected error ends the take like a full disk does: files readable, `error` set.
        """
        if self._closed:
            return
        try:
            self._drain(final)
            if final and not self._closed:
                self._close_all()
        except Exception as exc:  # a writer bug must still leave readable, equal-length files
            self._end_take(f"recording stopped: {type(exc).__name__}: {exc} at {self.folder}")

    def _drain(self, final: bool) -> None:
        """Move everything in the ring to the files, keeping input_shift_samples rows held back.

        Output frame p holds input frame p + shift and mix/voice frame p; a final drain releases
        the held rows with zeros in place of the input that never came.
        """
        shift = self.input_shift_samples
        while True:
            n_new = self._read_frames(self._work[self._held_frames:], self._chunk_frames, final)
            total = self._held_frames + n_new
            exhausted = n_new < self._chunk_frames
            n_out = total if final and exhausted else max(0, total - shift)
            if n_out > 0:
                rows = self._work
                input_part = np.zeros(n_out, dtype=np.float32)
                live = max(0, min(n_out, total - shift))
                input_part[:live] = rows[shift:shift + live, 0]
                blocks = [input_part, rows[:n_out, 1:3]]
                blocks += [rows[:n_out, 3 + v] for v in range(len(self.voice_names))]
                if not self._write_batch(blocks, n_out):
                    return
                rows[:total - n_out] = rows[n_out:total]
            self._held_frames = total - n_out
            if exhausted:
                break
        try:
            for file in self._files:
                file.update_header()
        except OSError as exc:
            self._end_take(self._failure(exc))

    def _read_frames(self, dest: np.ndarray, max_frames: int, final: bool) -> int:
        """Up to max_frames frames into dest: the ring's frames, with zeros where the feed
        dropped frames (its gap records; at the end of the take, its pending gap too)."""
        ring, done = self._ring, 0
        while done < max_frames:
            if not self._gap_left and self.feed.gaps.read_into(self._gap_record, 1):
                self._gap_position, self._gap_left = int(self._gap_record[0, 0]), int(self._gap_record[0, 1])
            if final and not self._gap_left and not ring.available() and self.feed.state[PENDING_GAP]:
                self._gap_position, self._gap_left = ring.read_frames, int(self.feed.state[PENDING_GAP])
                self.feed.state[PENDING_GAP] = 0
            if self._gap_left and ring.read_frames == self._gap_position:
                n = min(self._gap_left, max_frames - done)
                dest[done:done + n] = 0.0
                self._gap_left -= n
                self.zero_filled_frames += n
            else:
                limit = max_frames - done
                if self._gap_left:
                    limit = min(limit, self._gap_position - ring.read_frames)
                n = ring.read_into(dest[done:], limit)
                if n == 0:
                    break
            done += n
        return done

    def _failure(self, exc: OSError) -> str:
        """The one-line `error` for a failed write: disk full, or the system's reason."""
        seconds = self.frames_written / self.sample_rate_hz
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return (f"recording stopped: disk full at {self.folder} after {seconds:.1f} s; "
                    "free some space")
        return (f"recording stopped: cannot write to {self.folder} after {seconds:.1f} s "
                f"({exc.strerror or exc}); check the disk")

    def _write_batch(self, blocks: list[np.ndarray], n_frames: int) -> bool:
        """Append one block per file; on a full disk or any write error end the take, False."""
        try:
            if shutil.disk_usage(self.folder).free < self.min_free_bytes:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            if (self.frames_written + n_frames) * self._files[1].frame_bytes > _MAX_DATA_BYTES:
                seconds = self.frames_written / self.sample_rate_hz
                self._end_take(f"recording stopped: WAV files reached their 4 GiB limit at "
                               f"{self.folder} after {seconds:.1f} s; start a new take")
                return False
            for file, block in zip(self._files, blocks):
                file.append(block)
        except OSError as exc:
            self._end_take(self._failure(exc))
            return False
        return True

    def _end_take(self, message: str) -> None:
        """Stop recording, cut every file to the length all of them reached, close; keep `error`."""
        self.feed.set_recording(False)
        if self.error is None:
            self.error = message
        if self._closed:
            return
        common = min(file.frames for file in self._files)
        for file in self._files:
            if file.data_bytes != common * file.frame_bytes:
                try:
                    file.truncate_frames(common)
                except OSError:
                    pass  # its header is rewritten to `common` frames below: still consistent
        self._close_all()

    def _close_all(self) -> None:
        """Bring every header up to date and close every file, whatever fails on the way."""
        self._closed = True
        self.feed.set_recording(False)
        for file in self._files:
            try:
                file.update_header()
            except OSError as exc:
                if self.error is None:
                    self.error = (f"recording stopped: cannot finish {file.path} "
                                  f"({exc.strerror or exc}); it ends at the previous flush")
            finally:
                file.close()
