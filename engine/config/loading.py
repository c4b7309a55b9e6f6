"""Load the config: shipped defaults, then TOML overlays, then `--set section.key=value`.

Every key is checked against the schema; an unknown key or a value of the wrong type raises a
TuttiError that names the key and where it came from.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import tomllib
from pathlib import Path
from typing import Any

from engine.config.schema import MidiBinding, MidiConfig, TuttiConfig, VoiceConfig
from engine.errors import TuttiError

DEFAULTS_PATH = Path(__file__).with_name("defaults.toml")
_VOICE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,31}")
_RESERVED_NAMES = {"input", "mix"}
_SET_KEY = re.compile(r"[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*")
_SECTIONS = {f.name: f.type for f in dataclasses.fields(TuttiConfig) if f.name != "voices"}


def parse_set_option(option: str) -> dict[str, Any]:
    """Turn 'a.b.c=value' into {'a': {'b': {'c': value}}}; the value is read as TOML, else as text."""
    key, sep, raw = option.partition("=")
    if not sep or not key.strip():
        raise TuttiError(f"--set {option!r} is not of the form section.key=value")
    if not _SET_KEY.fullmatch(key.strip()):
        raise TuttiError(f"--set key {key.strip()!r} is not a config key: use letters, digits, _ and - between dots")
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()
    nested: dict[str, Any] = {}
    node = nested
    parts = key.strip().split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value
    return nested


def _merge(base: dict[str, Any], overlay: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise TuttiError(f"config file {path} does not exist: check the path given to --config") from None
    except OSError as err:  # a folder, a device, no permission
        raise TuttiError(f"config file {path} cannot be read ({err.strerror or err}): give a TOML file to --config") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise TuttiError(f"config file {path} is not valid TOML ({err}): fix the file") from None


def _coerce(key: str, value: Any, annotation: str) -> Any:
    """Check `value` against a schema field's type; ints are accepted where floats are."""
    expected = {"int": int, "float": (int, float), "bool": bool, "str": str}.get(annotation)
    if expected is None:
        raise TuttiError(f"config key {key} cannot be set this way: edit its table in a --config file")
    if isinstance(value, bool) and annotation != "bool" or not isinstance(value, expected):
        raise TuttiError(
            f"config key {key} = {value!r} has the wrong type: expected {annotation}"
        )
    if annotation != "float":
        return value
    finite = math.isfinite(value) if isinstance(value, float) else abs(value) < 1e300
    if not finite:
        raise TuttiError(f"config key {key} = {value!r} is not a finite number: give a number")
    return float(value)


def _build_section(section_cls: type, name: str, values: Any) -> Any:
    if not isinstance(values, dict):
        raise TuttiError(f"config key {name} must be a table of keys, not {values!r}")
    fields = {f.name: f.type for f in dataclasses.fields(section_cls)}
    kwargs = {}
    for key, value in values.items():
        if key not in fields:
            raise TuttiError(
                f"unknown config key {name}.{key}: known keys are {', '.join(sorted(fields))}"
            )
        kwargs[key] = _coerce(f"{name}.{key}", value, fields[key])
    return section_cls(**kwargs)


def _build_midi(values: Any) -> MidiConfig:
    """The [midi] section; `bindings` is an array of tables ([[midi.bindings]])."""
    if not isinstance(values, dict):
        raise TuttiError(f"config key midi must be a table of keys, not {values!r}")
    values = dict(values)
    raw_bindings = values.pop("bindings", [])
    if not isinstance(raw_bindings, list) or not all(isinstance(b, dict) for b in raw_bindings):
        raise TuttiError("config key midi.bindings must be an array of [[midi.bindings]] tables")
    base = _build_section(MidiConfig, "midi", values)
    bindings = tuple(MidiBinding.from_dict(binding) for binding in raw_bindings)
    return dataclasses.replace(base, bindings=bindings)


def _build(raw: dict[str, Any]) -> TuttiConfig:
    sections: dict[str, Any] = {}
    for name, values in raw.items():
        if name == "voices":
            if not isinstance(values, dict):
                raise TuttiError("config key voices must hold [voices.NAME] tables")
            for voice in values:
                if not _VOICE_NAME.fullmatch(voice) or voice in _RESERVED_NAMES:
                    raise TuttiError(
                        f"voice name {voice!r} is not allowed: use letters, digits, '-' or '_' "
                        "(and not 'input' or 'mix', which name the session's other files)"
                    )
            sections["voices"] = tuple(
                (voice, _build_section(VoiceConfig, f"voices.{voice}", table))
                for voice, table in values.items()
            )
        elif name == "midi":
            sections["midi"] = _build_midi(values)
        elif name in _SECTIONS:
            section_cls = next(
                f.default_factory for f in dataclasses.fields(TuttiConfig) if f.name == name
            )
            sections[name] = _build_section(section_cls, name, values)
        else:
            raise TuttiError(
                f"unknown config section {name}: known sections are "
                f"{', '.join(sorted([*_SECTIONS, 'voices']))}"
            )
    return TuttiConfig(**sections)


def _defines_ensemble(overlay: dict[str, Any]) -> bool:
    voices = overlay.get("voices")
    return isinstance(voices, dict) and bool(voices) and all(
        isinstance(table, dict) and "kind" in table for table in voices.values())


def load_config(overlays: list[Path] | tuple[Path, ...] = (), sets: list[str] | tuple[str, ...] = ()) -> TuttiConfig:
    """Resolve the config from the shipped defaults, overlay files in order, then --set options.

    Sections merge key by key. A file whose every [voices.NAME] table names its `kind` defines
    the whole ensemble instead (a take's config.toml plays exactly the take's voices, whatever
    the defaults have since gained); voice tables without a kind only change those voices'
    settings, as --set options do.
    """
    raw = _read_toml(DEFAULTS_PATH)
    for path in overlays:
        overlay = _read_toml(Path(path))
        if _defines_ensemble(overlay):
            raw = {**raw, "voices": {}}
        raw = _merge(raw, overlay)
    for option in sets:
        raw = _merge(raw, parse_set_option(option))
    return _build(raw)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):  # JSON's escapes are TOML's; DEL must be escaped in TOML too
        return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")
    return repr(value)


def config_to_dict(config: TuttiConfig) -> dict[str, Any]:
    """The resolved config as plain nested dicts (for session.json and TOML)."""
    out: dict[str, Any] = {name: dataclasses.asdict(getattr(config, name)) for name in _SECTIONS}
    out["midi"]["bindings"] = [binding.to_dict() for binding in config.midi.bindings]
    out["voices"] = {name: dataclasses.asdict(voice) for name, voice in config.voices}
    return out


def config_to_toml(config: TuttiConfig) -> str:
    """The resolved config as TOML that `load_config` reads back to an equal config."""
    lines: list[str] = []
    as_dict = config_to_dict(config)
    for name in _SECTIONS:
        lines.append(f"[{name}]")
        scalars = {k: v for k, v in as_dict[name].items() if not isinstance(v, list)}
        lines += [f"{key} = {_toml_value(value)}" for key, value in scalars.items()]
        lines.append("")
    for binding in as_dict["midi"]["bindings"]:
        lines.append("[[midi.bindings]]")
        lines += [f"{key} = {_toml_value(value)}" for key, value in binding.items()]
        lines.append("")
    for voice, table in as_dict["voices"].items():
        lines.append(f"[voices.{voice}]")
        lines += [f"{key} = {_toml_value(value)}" for key, value in table.items()]
        lines.append("")
    return "\n".join(lines)
