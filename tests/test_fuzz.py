"""Fuzzing every reader of outside data (hypothesis, fixed seed, about two minutes in all).

Property: every input either works or ends in a one-line TuttiError; no other exception, no
hang past a bound (libsndfile and music21 parses run in a spawned worker with a timeout), no
file left behind. MIDI: no exception and no parameter outside its range. Run with
`pytest -m fuzz` (excluded from the default run); FUZZ_SCALE=4 tries four times as many inputs.
"""

from __future__ import annotations

import io
import json
import math
import os
import struct
import uuid
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.config import load_config
from engine.config.loading import DEFAULTS_PATH, config_to_dict, config_to_toml, parse_set_option
from engine.errors import TuttiError
from engine.parameters import LiveParameters
from engine.safe_files import MARKER_NAME, claim_output_dir
from tests.fixtures_data import TINY_ABC, TINY_KERN, tone, write_notes_midi
from tests.fuzz_sandbox import Sandbox

pytestmark = pytest.mark.fuzz
SCALE = float(os.environ.get("FUZZ_SCALE", "1"))
TRIED: dict[str, int] = {}  # inputs per reader, printed at the end of the run


def fuzz_settings(examples: int, deadline_ms: int | None = 2000):
    """Fixed seed (derandomize), no example database, `examples` scaled by FUZZ_SCALE."""
    return settings(
        max_examples=max(1, int(examples * SCALE)), derandomize=True, database=None, deadline=deadline_ms,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
        print_blob=True,
    )


def count(reader: str) -> None:
    TRIED[reader] = TRIED.get(reader, 0) + 1


def assert_one_line(message: str, *fragments: str) -> None:
    assert message and "\n" not in message and "Traceback" not in message, message
    for fragment in fragments:
        assert fragment in message, message


def assert_outcome(outcome: tuple[str, object], *fragments: str) -> None:
    kind, detail = outcome
    assert kind in ("ok", "error"), f"{kind}: {detail}"
    if kind == "error":
        assert_one_line(str(detail), *fragments)


@pytest.fixture(scope="module")
def sandbox():
    box = Sandbox(timeout_s=20.0)
    box.call("read_mono", "/nonexistent.wav", 48000)  # spawn and import once, outside any bound
    box.call("melody_notes", "/nonexistent.krn", None)
    yield box
    box.close()


# Audio files -------------------------------------------------------------------------------

FORMATS = [("WAV", "PCM_16"), ("WAV", "FLOAT"), ("WAV", "PCM_U8"), ("FLAC", "PCM_16"), ("OGG", "VORBIS"), ("AIFF", "PCM_24")]


@st.composite
def audio_bytes(draw) -> bytes:
    """A real encoded file, then truncated, bit-flipped, header-edited or spliced; or pure noise."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.binary(max_size=600))
    container, subtype = draw(st.sampled_from(FORMATS))
    channels = draw(st.integers(1, 3))
    frames = draw(st.integers(0 if container == "WAV" else 1, 3000))
    rate = draw(st.sampled_from([8000, 22050, 44100, 48000, 96000]))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    audio = (0.5 * rng.standard_normal((frames, channels))).clip(-1, 1).astype(np.float32)
    if subtype == "FLOAT" and frames and draw(st.booleans()):
        where = draw(st.lists(st.integers(0, frames * channels - 1), max_size=20))
        audio.reshape(-1)[where] = draw(st.sampled_from([np.nan, np.inf, -np.inf, 3e38]))
    buffer = io.BytesIO()
    sf.write(buffer, audio, rate, format=container, subtype=subtype)
    data = bytearray(buffer.getvalue())
    for _ in range(draw(st.integers(0, 3))):
        kind = draw(st.sampled_from(["truncate", "flip", "field", "splice"]))
        if not data:
            break
        position = draw(st.integers(0, min(len(data) - 1, 80 if kind == "field" else len(data) - 1)))
        if kind == "truncate":
            del data[position:]
        elif kind == "flip":
            data[position] ^= 1 << draw(st.integers(0, 7))
        elif kind == "field":  # a 16- or 32-bit header field (channels, rate, sizes) set to an edge value
            value = draw(st.sampled_from([0, 1, 2, 0xFF, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFF, 1 << 24]))
            width = draw(st.sampled_from([2, 4]))
            data[position:position + width] = struct.pack("<I" if width == 4 else "<H", value & (0xFFFFFFFF if width == 4 else 0xFFFF))
        else:
            data[position:position] = draw(st.binary(min_size=1, max_size=64))
    return bytes(data)


@fuzz_settings(800, deadline_ms=None)
@given(data=audio_bytes(), target_rate=st.sampled_from([16000, 48000]))
def test_audio_readers(sandbox, tmp_path_factory, data, target_rate) -> None:
    folder = tmp_path_factory.mktemp("audio", numbered=True)
    path = folder / "input.wav"
    path.write_bytes(data)
    count("audio files")
    assert_outcome(sandbox.call("read_mono", str(path), target_rate), str(path))
    assert_outcome(sandbox.call("check_audio", str(path)), path.name)
    assert sorted(p.name for p in folder.iterdir()) == ["input.wav"]


# Config: TOML overlays and --set -----------------------------------------------------------

DEFAULTS = load_config()
SCHEMA_KEYS = [
    f"{section}.{key}" for section, table in config_to_dict(DEFAULTS).items()
    if isinstance(table, dict) for key in table
]
VALUE_TEXTS = st.one_of(
    st.sampled_from(["nan", "inf", "-inf", "1e309", "0", "-1", "true", '"x"', "[1, 2]", "{a = 1}", "", "=", "'''", "99999999999999999999999"]),
    st.integers(-2**70, 2**70).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.text(max_size=20),
)


def assert_config_works_or_refuses(build) -> None:
    try:
        config = build()
    except TuttiError as err:
        assert_one_line(str(err))
        return
    text = config_to_toml(config)
    for value in _leaves(config_to_dict(config)):
        assert not (isinstance(value, float) and not math.isfinite(value)), text
    return text


def _leaves(node):
    if isinstance(node, dict):
        for value in node.values():
            yield from _leaves(value)
    elif isinstance(node, list):
        for value in node:
            yield from _leaves(value)
    else:
        yield node


@fuzz_settings(1000)
@given(key=st.one_of(st.sampled_from(SCHEMA_KEYS), st.text(max_size=30)), value=VALUE_TEXTS, raw=st.booleans())
def test_set_values(key, value, raw) -> None:
    option = value if raw else f"{key}={value}"
    count("--set values")
    assert_config_works_or_refuses(lambda: load_config(sets=[option]))
    try:
        parse_set_option(option)
    except TuttiError as err:
        assert_one_line(str(err))


DEFAULTS_TEXT = DEFAULTS_PATH.read_text()


@st.composite
def toml_overlays(draw) -> bytes:
    choice = draw(st.integers(0, 4))
    if choice == 0:
        return draw(st.binary(max_size=300))
    if choice == 1:  # the shipped defaults, edited character by character
        text = list(DEFAULTS_TEXT)
        for _ in range(draw(st.integers(1, 6))):
            position = draw(st.integers(0, len(text) - 1))
            text[position:position + draw(st.integers(0, 3))] = draw(st.text(alphabet="[]=.\"'#\n 0123456789abcdefinx-", max_size=4))
        return "".join(text).encode()
    lines = []
    for _ in range(draw(st.integers(1, 6))):
        key = draw(st.sampled_from(SCHEMA_KEYS + ["voices.bass.kind", "voices.new voice.kind", "midi.bindings", "voices.x.gain_db"]))
        section, name = key.rsplit(".", 1)
        if draw(st.booleans()) and section != "midi":
            lines.append(f"[{section}]\n{name} = {draw(VALUE_TEXTS)}")
        else:
            lines.append(f"[[midi.bindings]]\nport = {json.dumps(draw(st.text(max_size=8)))}\nkind = {json.dumps(draw(st.sampled_from(['cc', 'note', 'x'])))}\n"
                         f"channel = {draw(st.integers(-2, 20))}\nnumber = {draw(st.integers(-2, 300))}\nparameter = {json.dumps(draw(st.sampled_from(['panic', 'voices.bass.gain_db', 'nope'])))}")
    return "\n".join(lines).encode()


@fuzz_settings(800)
@given(data=toml_overlays())
def test_toml_overlays(tmp_path_factory, data) -> None:
    path = tmp_path_factory.mktemp("toml", numbered=True) / "overlay.toml"
    path.write_bytes(data)
    count("TOML overlays")
    text = assert_config_works_or_refuses(lambda: load_config([path]))
    if text is not None:  # what was accepted is written back and read to the same config
        again = path.with_name("resolved.toml")
        again.write_text(text)
        assert load_config([again]) == load_config([path])


def test_config_paths_that_are_not_files(tmp_path) -> None:
    for path in (tmp_path, tmp_path / "missing.toml", Path("/dev/null"), Path("/proc/self/mem")):
        count("TOML overlays")
        assert_config_works_or_refuses(lambda: load_config([path]))


# MIDI messages -----------------------------------------------------------------------------

VOICES = ("bass", "organ")
MESSAGE = st.one_of(
    st.lists(st.integers(0, 255), max_size=40),  # random bytes
    st.tuples(st.integers(0x80, 0xEF), st.integers(0, 255), st.integers(0, 255)).map(list),  # channel messages, data bytes unchecked
    st.lists(st.integers(0, 0x7F), min_size=1, max_size=6),  # running status: data bytes without a status byte
    st.lists(st.integers(0, 0x7F), max_size=300).map(lambda body: [0xF0, *body, 0xF7]),  # SysEx
    st.sampled_from([[0xF8], [0xFE], [0xFF], [0xF0], [0xB0, 127], [0x90, 60, 0]]),
)


@pytest.fixture(scope="module")
def midi_rig(jack_server):
    from realtime.midi import PANIC, MidiBinding, MidiController

    parameters = LiveParameters(VOICES, np.zeros((2, 4)), np.array([1.0, 0.0]))
    port = "tfuzz:knobs"
    bindings = [MidiBinding(port, "cc", 0, n, name) for n, name in enumerate(parameters.names)]
    bindings += [MidiBinding(port, "note", 0, 60 + n, name) for n, name in enumerate(parameters.names)]
    bindings.append(MidiBinding(port, "note", 9, 36, PANIC))
    controller = MidiController(parameters, bindings, client_name=f"tfuzz-{uuid.uuid4().hex[:6]}")
    panics = []
    controller.on_panic = lambda: panics.append(1)
    yield controller, parameters, port
    controller.close()


@fuzz_settings(3000)
@given(messages=st.lists(MESSAGE, min_size=1, max_size=8), learn=st.one_of(st.none(), st.sampled_from(["voices.bass.pan", "voices.organ.mute", "panic"])))
def test_midi_messages(midi_rig, messages, learn) -> None:
    from realtime.midi import MidiBinding

    controller, parameters, port = midi_rig
    if learn is not None:
        controller.arm(learn)
    for message in messages:
        count("MIDI messages")
        controller._handle(port, message, 0.0)
    controller.disarm()
    for name in parameters.names:
        spec = parameters.spec(name)
        stored = spec.array[spec.row, spec.column]
        assert math.isfinite(stored) and spec.minimum <= parameters.value(name) <= spec.maximum, (name, stored)
    for binding in controller.bindings:
        MidiBinding(*binding.control, binding.parameter)  # every learnt binding is one the config accepts
    assert controller._reader.is_alive()


@fuzz_settings(500)
@given(value=st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-10**30, 10**30)), index=st.integers(0, 9))
def test_parameter_values(value, index) -> None:
    """What the terminal's `set NAME VALUE` and a GUI fader publish."""
    parameters = LiveParameters(VOICES, np.zeros((2, 4)), np.array([1.0, 0.0]))
    name = parameters.names[index]
    count("parameter values")
    try:
        parameters.set_value(name, value)
    except TuttiError as err:
        assert_one_line(str(err), name)
    spec = parameters.spec(name)
    assert math.isfinite(spec.array[spec.row, spec.column]) and spec.minimum <= parameters.value(name) <= spec.maximum


# Output-folder markers ---------------------------------------------------------------------

NAMES = st.sampled_from(["mix.wav", "input.wav", "sub/a.npy", "sub/", "../outside.txt", "/etc/hostname", "", ".", "..",
                         "sub/../../outside.txt", "a//b", MARKER_NAME, "x\\..\\y", "link", "link/"])


@fuzz_settings(800)
@given(marker=st.one_of(st.binary(max_size=80).map(lambda b: b.decode("latin-1")),
                        st.builds(lambda c, f: json.dumps({"command": c, "files": f}), st.one_of(st.text(max_size=5), st.integers()),
                                  st.lists(st.one_of(NAMES, st.integers(), st.none()), max_size=8)),
                        st.lists(NAMES, max_size=6).map(json.dumps)),
       present=st.lists(st.sampled_from(["mix.wav", "input.wav", "sub/a.npy", "sub/b.npy", "notes.txt", "link"]), max_size=5, unique=True),
       new=st.lists(st.sampled_from(["mix.wav", "input.wav", "sub/", "session.json"]), max_size=4), force=st.booleans())
def test_output_markers(tmp_path_factory, marker, present, new, force) -> None:
    base = tmp_path_factory.mktemp("claim", numbered=True)
    (base / "outside.txt").write_text("mine")
    folder = base / "take"
    folder.mkdir()
    (folder / MARKER_NAME).write_text(marker, encoding="latin-1")
    for name in present:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        if name == "link":
            (folder / name).symlink_to(base)
        else:
            (folder / name).write_text(name)
    count("output-folder markers")
    try:
        claim_output_dir(folder, force=force, command="perform", names=new)
    except TuttiError as err:
        assert_one_line(str(err), str(folder))
        remaining = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file() or p.is_symlink())
        assert set(present) <= set(remaining)  # a refusal deletes nothing
    assert (base / "outside.txt").read_text() == "mine" and (base / "take").is_dir()
    left = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file() or p.is_symlink()}
    assert {name for name in present if name not in left} <= set(new) | {"sub/a.npy", "sub/b.npy", "mix.wav", "input.wav", "link"}
    assert not [p for p in folder.rglob("*") if ".tutti-tmp" in p.name]


# Data loaders: metadata.yaml, URMP annotations, MIDI, kern and abc --------------------------

YAML_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-2**40, 2**40), st.floats(allow_nan=True), st.text(max_size=12),
                         st.sampled_from(["../../escape", "S00", "..", "/abs", "train", "val", "test", "banana", "a/b"]))
META_KEYS = st.sampled_from(["stems", "song_id", "split", "UUID", "S00", "program_num", "is_drum", "inst_class", "role", "source", "audio_rendered"])
YAML_VALUES = st.recursive(YAML_SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.one_of(META_KEYS, YAML_SCALARS), inner, max_size=5)), max_leaves=20)


@st.composite
def metadata_texts(draw) -> str:
    choice = draw(st.integers(0, 5))
    if choice == 0:
        return draw(st.binary(max_size=200)).decode("latin-1")
    stems = draw(st.dictionaries(st.one_of(st.sampled_from(["S00", "S01", "../S00", "..", "stems/../S00", ""]), YAML_SCALARS),
                                 st.one_of(YAML_VALUES, st.fixed_dictionaries({}, optional={"program_num": YAML_SCALARS, "is_drum": YAML_SCALARS, "inst_class": YAML_SCALARS, "role": YAML_SCALARS, "source": YAML_SCALARS})), max_size=3))
    metadata = draw(st.fixed_dictionaries({}, optional={"song_id": YAML_SCALARS, "split": YAML_SCALARS, "UUID": YAML_SCALARS}))
    if choice == 1:
        return yaml.safe_dump(draw(YAML_VALUES))
    if choice == 5:  # a loadable track whose id and fields are hostile
        stems["S00"] = draw(st.fixed_dictionaries({}, optional={"program_num": st.integers(-3, 200), "is_drum": YAML_SCALARS, "role": YAML_SCALARS}))
        metadata["song_id"] = draw(st.sampled_from(["../../escape", "/abs/olute", "a/../../b", ".", "..", "a//b", "ok/Track1", "", "x" * 300]))
    metadata["stems"] = stems if choice > 2 else draw(YAML_VALUES)
    return yaml.safe_dump(metadata)


@pytest.fixture(scope="module")
def tiny_wav(tmp_path_factory) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, tone(220, duration_s=0.05), 16000, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


@fuzz_settings(800)
@given(text=metadata_texts())
def test_slakh_metadata(tmp_path_factory, tiny_wav, text) -> None:
    from training.data.cache import song_folder
    from training.data.items import SPLITS
    from training.data.loaders import load_slakh

    root = tmp_path_factory.mktemp("slakh", numbered=True)
    track = root / "Track00001"
    (track / "stems").mkdir(parents=True)
    (track / "stems" / "S00.wav").write_bytes(tiny_wav)
    (track / "mix.wav").write_bytes(tiny_wav)
    (track / "metadata.yaml").write_text(text, encoding="utf-8", errors="surrogateescape")
    count("metadata.yaml")
    try:
        items, skips = load_slakh(root, "babyslakh")
    except TuttiError as err:
        assert_one_line(str(err))
        return
    for skip in skips:
        assert_one_line(skip.reason)
    cache = root / "cache"
    for item in items:
        assert item.split in SPLITS, item.split
        assert cache in song_folder(cache, item.song_id).resolve().parents, item.song_id
        for stem in item.stems:
            assert stem.name and "/" not in stem.name and not stem.name.startswith("."), stem.name
            assert stem.audio_path.resolve().parent == (track / "stems").resolve()
            assert isinstance(stem.program_num, int) and isinstance(stem.role, str)


URMP_LINE = st.lists(st.one_of(st.floats(allow_nan=True, allow_infinity=True).map(repr), st.sampled_from(["0", "-1", "1e400", "x", "", "\t"]),
                               st.integers(-10**6, 10**6).map(str)), max_size=4).map(" ".join)


@fuzz_settings(800)
@given(lines=st.lists(URMP_LINE, max_size=12), raw=st.one_of(st.none(), st.binary(max_size=100)))
def test_urmp_annotations(tmp_path_factory, lines, raw) -> None:
    from training.data.items import NOTE_DTYPE
    from training.data.labels import f0_from_urmp, notes_from_urmp

    path = tmp_path_factory.mktemp("urmp", numbered=True) / "F0s_1_vn_01_Jupiter.txt"
    path.write_bytes(raw if raw is not None else "\n".join(lines).encode())
    count("URMP F0/notes files")
    try:
        times_s, f0_hz = f0_from_urmp(path)
        assert times_s.shape == f0_hz.shape
        notes = notes_from_urmp(path)
        assert notes.dtype == NOTE_DTYPE
        assert np.all(np.isfinite(notes["onset_s"])) and np.all(np.isfinite(notes["offset_s"]))
        assert np.all((notes["pitch"] >= 0) & (notes["pitch"] <= 127))
    except TuttiError as err:
        assert_one_line(str(err), path.name)


@pytest.fixture(scope="module")
def midi_bytes(tmp_path_factory) -> bytes:
    path = write_notes_midi(tmp_path_factory.mktemp("midi") / "S00.mid", [(0.0, 0.4, 60, 90), (0.5, 0.9, 64, 70), (0.5, 1.5, 67, 70)])
    return path.read_bytes()


@fuzz_settings(1000)
@given(edits=st.lists(st.tuples(st.sampled_from(["truncate", "flip", "splice", "set"]), st.integers(0, 200), st.binary(min_size=1, max_size=8)), max_size=4))
def test_midi_files(tmp_path_factory, midi_bytes, edits) -> None:
    from training.data.labels import notes_from_midi

    data = bytearray(midi_bytes)
    for kind, position, payload in edits:
        position = min(position, max(len(data) - 1, 0))
        if kind == "truncate":
            del data[position:]
        elif kind == "flip" and data:
            data[position] ^= payload[0] or 1
        elif kind == "splice":
            data[position:position] = payload
        else:
            data[position:position + len(payload)] = payload
    path = tmp_path_factory.mktemp("mid", numbered=True) / "S00.mid"
    path.write_bytes(bytes(data))
    count("MIDI files")
    try:
        notes = notes_from_midi(path)
    except TuttiError as err:
        assert_one_line(str(err), path.name)
        return
    assert np.all(np.isfinite(notes["onset_s"])) and np.all(notes["offset_s"] >= notes["onset_s"])


@st.composite
def score_texts(draw) -> tuple[str, str]:
    suffix, text = draw(st.sampled_from([(".krn", TINY_KERN), (".abc", TINY_ABC)]))
    chars = list(text)
    alphabet = "*!=|:-_[](){}^/\\0123456789abcdefgABCDEFGzZxXrR.\t\n#&;'~ LKMTXQ"
    for _ in range(draw(st.integers(1, 8))):
        position = draw(st.integers(0, len(chars) - 1))
        chars[position:position + draw(st.integers(0, 4))] = draw(st.text(alphabet=alphabet, max_size=6))
    if draw(st.integers(0, 9)) == 0:
        chars += ["X:" + "9" * draw(st.integers(1, 6000)) + "\n"]
    return suffix, "".join(chars)


@fuzz_settings(250, deadline_ms=None)
@given(score=score_texts())
def test_kern_and_abc(sandbox, tmp_path_factory, score) -> None:
    suffix, text = score
    root = tmp_path_factory.mktemp("essen", numbered=True)
    path = root / f"tune{suffix}"
    path.write_text(text)
    count("kern/abc scores")
    assert_outcome(sandbox.call("essen", str(root)))
    number = 1 if suffix == ".abc" else None
    assert_outcome(sandbox.call("melody_notes", str(path), number), path.name)
    assert sorted(p.name for p in root.iterdir()) == [path.name]


# session.json: a take's automation log -----------------------------------------------------

AUTOMATION_NUMBERS = st.one_of(st.integers(-5, 10**6), st.floats(allow_nan=True, allow_infinity=True),
                               st.sampled_from([0, 1, 2, 3, 4, -1, -2, -3, -4, 0.5, 1e300, -0.0, 2**63]))


@st.composite
def session_texts(draw) -> str:
    choice = draw(st.integers(0, 5))
    if choice == 0:
        return draw(st.binary(max_size=120)).decode("latin-1")
    if choice == 1:
        depth = draw(st.integers(1, 100_000))
        return '{"automation": ' + "[" * depth + "]" * depth + "}"
    voices, kinds = (list(VOICES), ["reference:organ", "reference:plucked-bass"]) if choice > 2 else (draw(st.lists(st.text(max_size=4), max_size=3)), [])
    records = draw(st.lists(st.one_of(st.lists(AUTOMATION_NUMBERS, min_size=4, max_size=4),
                                      st.lists(AUTOMATION_NUMBERS, max_size=6), st.text(max_size=3)), max_size=6))
    entry = {"format": "x", "voices": voices, "kinds": kinds, "records": records}
    return json.dumps({"automation": draw(st.one_of(st.just(entry), SIDECAR_VALUES))} if choice != 5 else entry)


@fuzz_settings(800)
@given(text=session_texts())
def test_session_automation(tmp_path_factory, text) -> None:
    from engine.automation import read_automation

    path = tmp_path_factory.mktemp("session", numbered=True) / "session.json"
    path.write_text(text, encoding="utf-8", errors="surrogateescape")
    count("session.json automation")
    try:
        table = read_automation(path, VOICES, ("reference:organ", "reference:plucked-bass"))
    except TuttiError as err:
        assert_one_line(str(err), str(path))
        return
    assert table.shape[1] == 4 and np.all(np.isfinite(table))
    assert np.all(table[:, :3] == np.round(table[:, :3])) and np.all(table[:, 0] >= 0)
    voice_rows = table[table[:, 1] >= 0]
    assert np.all(voice_rows[:, 1] < len(VOICES)) and np.all(voice_rows[:, 3] >= -1.0) and np.all(voice_rows[:, 3] <= 1000.0)


# The chunk index (index/): its SQLite meta and HNSW file -------------------------------------

@pytest.fixture(scope="module")
def tiny_index(tmp_path_factory) -> Path:
    from engine.retrieval.build import BuildOptions, build_index
    from tests.retrieval_fixtures import SONGS, make_corpus

    corpus = make_corpus(tmp_path_factory.mktemp("index-corpus") / "corpus", songs=SONGS[:2])
    out = tmp_path_factory.mktemp("index-built") / "index"
    build_index(BuildOptions(root=corpus, out=out))
    return out


META_KEYS_INDEX = st.sampled_from(["format", "feature_version", "embedding_spec", "hnsw_file", "hnsw_bytes", "hnsw_sha256", "hnsw_count", "generation"])
META_VALUES = st.one_of(st.text(max_size=12), st.sampled_from(["", "0", "-1", "1e9", "99999999999999999999", "../../../etc/hostname", "/dev/zero",
                                                               "hnsw", "null", "{}", "nan"]))


@fuzz_settings(150, deadline_ms=None)
@given(meta=st.dictionaries(META_KEYS_INDEX, st.one_of(st.none(), META_VALUES), max_size=2),
       graph=st.lists(st.tuples(st.sampled_from(["truncate", "flip", "splice"]), st.integers(0, 10**7), st.binary(min_size=1, max_size=8)), max_size=3),
       reseal=st.booleans())
def test_chunk_index(sandbox, tmp_path_factory, tiny_index, meta, graph, reseal) -> None:
    """Edited meta rows (None: deleted) and a damaged HNSW file, its recorded size re-recorded
    (`reseal`) so that only the sha256 check stands between the damage and hnswlib.

    Not fuzzed: a damaged file whose sha256 is re-recorded too. That reaches hnswlib's loader,
    which crashes the process on a flipped header byte (found here; the index is trusted once
    its recorded sha256 matches, so it takes a deliberately edited index)."""
    import shutil
    import sqlite3

    from engine.retrieval.store import DB_NAME

    folder = tmp_path_factory.mktemp("index", numbered=True) / "index"
    shutil.copytree(tiny_index, folder)
    db = sqlite3.connect(folder / DB_NAME)
    hnsw_name = dict(db.execute("SELECT key, value FROM meta").fetchall())["hnsw_file"]
    hnsw = folder / hnsw_name
    data = bytearray(hnsw.read_bytes())
    for kind, position, payload in graph:
        position %= max(len(data), 1)
        if kind == "truncate":
            del data[position:]
        elif kind == "flip" and data:
            data[position] ^= payload[0] or 1
        else:
            data[position:position] = payload
    hnsw.write_bytes(bytes(data))
    if reseal:
        db.execute("UPDATE meta SET value = ? WHERE key = 'hnsw_bytes'", (str(len(data)),))
    for key, value in meta.items():
        db.execute("DELETE FROM meta WHERE key = ?", (key,))
        if value is not None:
            db.execute("INSERT INTO meta (key, value) VALUES (?, ?)", (key, value))
    db.commit()
    db.close()
    before = sorted(p.name for p in folder.rglob("*"))
    count("chunk indexes")
    assert_outcome(sandbox.call("open_index", str(folder)))
    assert sorted(p.name for p in folder.rglob("*")) == before


# Model sidecars ----------------------------------------------------------------------------

SIDECAR_VALUES = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(allow_nan=True, allow_infinity=True),
                           st.sampled_from([float("inf"), float("nan"), 0, -1, [], {}, "", 10**12]),
                           st.text(max_size=10), st.lists(st.text(max_size=5), max_size=3))


@fuzz_settings(600)
@given(fields=st.dictionaries(st.sampled_from(["kind", "sidecar_format", "feature_version", "frame_rate_hz", "sample_rate_hz", "instruments",
                                               "n_harmonics", "n_noise_bands", "gru_layers", "gru_units", "onnx_sha256"]), SIDECAR_VALUES, max_size=3),
       keep_valid=st.booleans(), raw=st.one_of(st.none(), st.binary(max_size=60)), model=st.binary(max_size=64))
def test_model_sidecars(tmp_path_factory, fields, keep_valid, raw, model) -> None:
    from engine.features.frames import FEATURE_VERSION
    from engine.models import decoder
    from engine.rates import CONTROL_RATE_HZ

    folder = tmp_path_factory.mktemp("model", numbered=True)
    onnx = folder / "flute.onnx"
    onnx.write_bytes(model)
    valid = {"kind": decoder.MODEL_KIND, "sidecar_format": decoder.SIDECAR_FORMAT, "feature_version": FEATURE_VERSION,
             "frame_rate_hz": CONTROL_RATE_HZ, "sample_rate_hz": 16000, "instruments": ["flute"], "n_harmonics": 60,
             "n_noise_bands": 65, "gru_layers": 1, "gru_units": 64, "onnx_sha256": decoder.file_sha256(onnx)}
    sidecar = {**valid, **fields} if keep_valid else fields
    decoder.sidecar_path(onnx).write_bytes(raw if raw is not None else json.dumps(sidecar).encode())
    count("model sidecars")
    try:
        info = decoder.load_decoder_info(onnx)
        decoder.open_session(info)
    except TuttiError as err:
        assert_one_line(str(err), str(onnx))


# Last in the file, so it runs after every fuzz test above -------------------------------------

READERS = {"audio files", "--set values", "TOML overlays", "MIDI messages", "parameter values", "output-folder markers",
           "metadata.yaml", "URMP F0/notes files", "MIDI files", "kern/abc scores", "model sidecars", "session.json automation", "chunk indexes"}


def test_every_reader_was_fuzzed(capsys) -> None:
    """Says how many inputs each reader got; fails if one was not fuzzed (skipped, deselected)."""
    with capsys.disabled():
        summary = ", ".join(f"{k} {v}" for k, v in sorted(TRIED.items()))
        print(f"\nfuzz inputs tried: {summary}; total {sum(TRIED.values())}")
    assert set(TRIED) == READERS
    assert min(TRIED.values()) >= min(100, int(100 * SCALE))
