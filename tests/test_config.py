"""The config: shipped defaults, overlays, --set, and the errors for bad keys and values."""

from __future__ import annotations

import pytest

from engine.config import config_to_toml, load_config
from engine.errors import TuttiError


def test_defaults_play_the_shipped_model_voices_at_48k_128() -> None:
    """The shipped ensemble: the trained decoder's bass, keys and strings on the interval rule,
    and its winds re-voicing the player's melody (interval 0)."""
    config = load_config()
    assert config.engine.sample_rate_hz == 48000
    assert config.engine.block_samples == 128
    voices = dict(config.voices)
    assert {name: voice.kind for name, voice in voices.items()} == {
        "bass": "model:ensemble/bass", "keys": "model:ensemble/keys",
        "strings": "model:ensemble/strings", "lead": "model:ensemble/winds"}
    assert voices["lead"].interval_semitones == 0 and voices["bass"].interval_semitones == -12


def test_an_overlay_that_names_every_voices_kind_defines_the_ensemble(tmp_path) -> None:
    ensemble = tmp_path / "duo.toml"
    ensemble.write_text('[voices.low]\nkind = "reference:organ"\ninterval_semitones = -12\n'
                        '[voices.high]\nkind = "reference:organ"\ninterval_semitones = 12\n')
    config = load_config([ensemble], ["voices.low.gain_db=-3"])
    assert config.voice_names == ("low", "high")
    assert dict(config.voices)["low"].gain_db == -3.0


def test_overlay_then_set_apply_in_order(tmp_path) -> None:
    overlay = tmp_path / "quiet.toml"
    overlay.write_text("[mixer]\nmaster_gain_db = -12.0\n[voices.bass]\ngain_db = -20\n")
    config = load_config([overlay], ["mixer.master_gain_db=-6", "voices.lead.kind='reference:organ'"])
    assert config.mixer.master_gain_db == -6.0
    assert dict(config.voices)["bass"].gain_db == -20.0
    assert dict(config.voices)["lead"].kind == "reference:organ"
    assert config.voice_names[-1] == "lead"


def test_resolved_config_round_trips_through_toml(tmp_path) -> None:
    config = load_config(sets=["engine.block_samples=333", "voices.bass.pan=0.5"])
    saved = tmp_path / "config.toml"
    saved.write_text(config_to_toml(config))
    assert load_config([saved]) == config


@pytest.mark.parametrize(
    "option, named",
    [
        ("engine.blocksize=64", "engine.blocksize"),
        ("mixr.master_gain_db=0", "mixr"),
        ("engine.block_samples=fast", "engine.block_samples"),
        ("engine.block_samples=8", "block size 8"),
        ("engine.block_samples=5000", "block size 5000"),
        ("engine.sample_rate_hz=44100", "44100"),
        ("voices.bass.volume=1", "voices.bass.volume"),
        ("synth.reverb=1", "synth.reverb"),
        ("voices.mix.kind='reference:organ'", "'mix'"),
        ("nodots", "section.key=value"),
    ],
)
def test_bad_keys_and_values_name_the_culprit(option: str, named: str) -> None:
    with pytest.raises(TuttiError, match=named.replace(".", r"\.").replace("(", r"\(")):
        load_config(sets=[option])


def test_missing_and_broken_overlay_files(tmp_path) -> None:
    with pytest.raises(TuttiError, match="does not exist"):
        load_config([tmp_path / "nope.toml"])
    broken = tmp_path / "broken.toml"
    broken.write_text("[engine\nblock_samples = 1")
    with pytest.raises(TuttiError, match="not valid TOML"):
        load_config([broken])


def test_config_is_frozen() -> None:
    config = load_config()
    with pytest.raises(AttributeError):
        config.engine.block_samples = 64  # type: ignore[misc]


def test_midi_bindings_load_and_round_trip(tmp_path) -> None:
    overlay = tmp_path / "midi.toml"
    overlay.write_text(
        '[midi]\nport = "nanoKONTROL"\n'
        '[[midi.bindings]]\nport = "nanoKONTROL2:out"\nkind = "cc"\nchannel = 0\nnumber = 7\n'
        'parameter = "voices.bass.gain_db"\n'
    )
    config = load_config([overlay])
    assert config.midi.port == "nanoKONTROL"
    assert config.midi.bindings[0].number == 7
    saved = tmp_path / "resolved.toml"
    saved.write_text(config_to_toml(config))
    assert load_config([saved]) == config
    overlay.write_text('[[midi.bindings]]\nport = "x"\nkind = "pitchbend"\nchannel = 0\nnumber = 1\nparameter = "p"\n')
    with pytest.raises(TuttiError, match="pitchbend"):
        load_config([overlay])
