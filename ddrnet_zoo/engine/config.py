"""Loading training/evaluation configs: YAML files (with ``base:`` inheritance) and overrides, on OmegaConf.

The schema is :mod:`ddrnet_zoo.engine.schema` (re-exported here). YAML files give any subset of
fields; ``base: other.yaml`` loads another file first (relative to the file, or a packaged config
name). Every field can be overridden from the command line, as ``--set optim.lr=0.02 data.root=/x``
or ``--optim.lr 0.02``; values are parsed as YAML (``null``, ``true``, ``[1024, 1024]``).

Typing, conversion and merging are OmegaConf's: the dataclasses become a structured config
(``OmegaConf.structured``), files are read by ``OmegaConf.load`` and overrides by
``OmegaConf.from_dotlist``, and each value is set with ``OmegaConf.update``. Unknown fields and
wrongly typed values are :class:`ConfigError`\\ s that name the field (OmegaConf's own messages
are rephrased in the config's words).
"""

from __future__ import annotations

import dataclasses
import difflib
import typing
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from .schema import (
    ConfigError,
    TrainConfig,
)

__all__ = [
    "CONFIG_DIR",
    "load_config",
    "resolve_config_path",
    "apply_overrides",
    "parse_override_args",
    "config_from_dict",
    "config_to_dict",
    "config_diff",
    "format_config",
    "list_configs",
]

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"
"""The packaged recipe configs (``ddrnet_zoo/configs/*.yaml``)."""

SECTIONS: Dict[str, Any] = {f.name: f.default_factory for f in dataclasses.fields(TrainConfig) if f.name != "name"}
"""Section name -> its dataclass."""


def list_configs() -> List[str]:
    """Names of the packaged configs."""
    return sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))


def resolve_config_path(name: Union[str, Path], relative_to: Optional[Path] = None) -> Path:
    """A config file path from a path or a packaged config name (``cityscapes_ddrnet23_slim``)."""
    p = Path(name)
    candidates = [p]
    if relative_to is not None and not p.is_absolute():
        candidates.insert(0, relative_to / p)
    stem = p.name if p.suffix in (".yaml", ".yml") else f"{p.name}.yaml"
    candidates.append(CONFIG_DIR / stem)
    for c in candidates:
        if c.is_file():
            return c
    raise ConfigError(
        f"config {str(name)!r} not found (looked at {', '.join(map(str, candidates))}); "
        f"packaged configs: {', '.join(list_configs())}"
    )


# ---------------------------------------------------------------- error messages in the config's words


def _suggest(name: str, options: Sequence[str]) -> str:
    close = difflib.get_close_matches(name, options, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _field_type(key: str) -> Any:
    """The annotation of the field ``section.field`` (``name`` for the top-level name)."""
    section, _, name = key.partition(".")
    if not name:
        return str
    return typing.get_type_hints(SECTIONS[section])[name.split(".")[0]]


def _describe(tp: Any) -> str:
    """``float`` -> "a number", ``Tuple[int, int]`` -> "2 values (integer, integer)", ..."""
    names = {bool: "true/false", int: "an integer", float: "a number", str: "a string"}
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is Union:
        inner = [a for a in args if a is not type(None)]
        return (_describe(inner[0]) if len(inner) == 1 else "a value") + " or null"
    if origin is tuple and args and args[-1] is not Ellipsis:
        return f"{len(args)} values ({', '.join(_describe(a).split()[-1] for a in args)})"
    if origin in (list, tuple):
        return "a list" + (f" of {_describe(args[0]).split()[-1]}s" if args and args[0] in names else "")
    if origin is dict:
        return "a mapping"
    return names.get(tp, getattr(tp, "__name__", str(tp)))


def _check_key(key: str) -> None:
    """A :class:`ConfigError` (with a did-you-mean suggestion) unless ``key`` names a section's field.

    Checked before OmegaConf sees the key: its errors say "Key 'x' not in 'OptimConfig'", not the config's words.
    """
    parts = key.split(".")
    if parts[0] == "name":
        if len(parts) != 1:
            raise ConfigError(f"'name' has no sub-fields: {key!r}")
        return
    if parts[0] not in SECTIONS:
        raise ConfigError(
            f"unknown config section {parts[0]!r}{_suggest(parts[0], list(SECTIONS))}; "
            f"sections: name, {', '.join(SECTIONS)}"
        )
    if len(parts) < 2:
        raise ConfigError(f"{key!r} must name a field, e.g. {parts[0]}.<field>=value")
    names = [f.name for f in dataclasses.fields(SECTIONS[parts[0]])]
    if parts[1] not in names:
        raise ConfigError(
            f"unknown config field {parts[0]}.{parts[1]}{_suggest(parts[1], names)}; "
            f"fields of {parts[0]}: {', '.join(names)}"
        )


def _set(cfg: DictConfig, key: str, value: Any) -> None:
    """``cfg.<key> = value``, type-checked and converted by OmegaConf; a whole field is replaced, not merged."""
    _check_key(key)
    field_key = ".".join(key.split(".")[:2])
    try:
        if field_key != key and OmegaConf.select(cfg, field_key) is None:
            OmegaConf.update(cfg, field_key, {}, merge=False)  # model.arch.width=8 on an unset model.arch
        OmegaConf.update(cfg, key, value, merge=False)
    except OmegaConfBaseException as e:
        # OmegaConf's messages name its node types ("could not be converted to Float", "TupleConfig length")
        raise ConfigError(f"{key}: expected {_describe(_field_type(key))}, got {_plain(value)!r}") from e


def _plain(value: Any) -> Any:
    return OmegaConf.to_container(value) if OmegaConf.is_config(value) else value


# ---------------------------------------------------------------- building configs


def _apply(cfg: DictConfig, d: Mapping[str, Any], where: str) -> None:
    """Set every field given in the nested mapping ``d`` (``{section: {field: value}}``).

    Field by field rather than ``OmegaConf.merge``: a mapping-valued field (``model.arch``, ``data.label_map``)
    is replaced, not merged with the base file's, and every type error names its field.
    """
    for section, fields in d.items():
        if section == "name":
            _set(cfg, "name", fields)
        elif section not in SECTIONS:
            _check_key(section)  # raises: unknown section
        elif fields is not None:  # an empty section is no change
            if not isinstance(fields, Mapping):
                raise ConfigError(f"{where}: section {section!r} must be a mapping of fields, got {_plain(fields)!r}")
            for name, value in fields.items():
                _set(cfg, f"{section}.{name}", value)


def _dotlist(overrides: Sequence[str]) -> List[Tuple[str, Any]]:
    """``key.path=value`` strings -> ``(key, value)`` with values parsed as YAML (``OmegaConf.from_dotlist``)."""
    out = []
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like section.field=value")
        key = item.split("=", 1)[0].strip()
        _check_key(key)
        # to_container leaves ${...} as written: interpolations resolve later, in the whole config
        value: Any = OmegaConf.to_container(OmegaConf.from_dotlist([item]))
        for part in key.split("."):
            value = value[part]
        out.append((key, value))
    return out


def _build(layers: Sequence[Mapping[str, Any]], overrides: Sequence[str], where: str = "config") -> TrainConfig:
    cfg = OmegaConf.structured(TrainConfig)
    for d in layers:
        _apply(cfg, d, where)
    for key, value in _dotlist(overrides):
        _set(cfg, key, value)
    try:
        built = OmegaConf.to_object(cfg)  # resolves ${...} interpolations
    except OmegaConfBaseException as e:
        raise ConfigError(f"{where}: {e.full_key or 'config'}: {str(e).splitlines()[0]}") from e
    return built.validate()


def config_from_dict(d: Mapping[str, Any], overrides: Sequence[str] = ()) -> TrainConfig:
    """Build and validate a :class:`TrainConfig` from a nested dict (missing fields take defaults) and overrides."""
    d = {k: v for k, v in d.items() if k != "base"}
    return _build([d], overrides)


def apply_overrides(d: Mapping[str, Any], overrides: Sequence[str]) -> Dict[str, Any]:
    """Apply ``key.path=value`` strings to a nested config dict; returns the complete, checked config dict."""
    return config_to_dict(config_from_dict(d, overrides))


def config_to_dict(cfg: TrainConfig) -> Dict[str, Any]:
    """Plain nested dict — YAML/JSON serialisable and loadable by :func:`config_from_dict`."""
    return _lists(OmegaConf.to_container(OmegaConf.structured(cfg)))


def _lists(v: Any) -> Any:
    # tuples as lists: yaml.safe_dump cannot write tuples, and saved recipes/checkpoints hold lists
    if isinstance(v, (list, tuple)):
        return [_lists(x) for x in v]
    if isinstance(v, dict):
        return {k: _lists(x) for k, x in v.items()}
    return v


def config_diff(a: Dict[str, Any], b: Dict[str, Any], ignore: Sequence[str] = (), prefix: str = "") -> List[str]:
    """``"section.field: old -> new"`` for every field of the config dicts ``a`` and ``b`` that differs.

    By hand: OmegaConf has no diff.
    """
    out = []
    for k in sorted(set(a) | set(b)):
        key = f"{prefix}{k}"
        if key in ignore:
            continue
        va, vb = a.get(k), b.get(k)
        if isinstance(va, dict) and isinstance(vb, dict):
            out += config_diff(va, vb, ignore, key + ".")
        elif va != vb:
            out.append(f"{key}: {va!r} -> {vb!r}")
    return out


def format_config(cfg: TrainConfig) -> str:
    """The config as YAML (``--print-config``, ``config.yaml`` of a run)."""
    return yaml.safe_dump(config_to_dict(cfg), sort_keys=False)


def _load_yaml_chain(path: Path, seen: Tuple[Path, ...] = ()) -> List[Dict[str, Any]]:
    """The file's ``base:`` chain, first file first, as plain dicts (``base`` inheritance is not OmegaConf's)."""
    path = path.resolve()
    if path in seen:
        raise ConfigError(f"config inheritance loop: {' -> '.join(map(str, seen + (path,)))}")
    try:
        d = OmegaConf.to_container(OmegaConf.load(path)) or {}
    except (yaml.YAMLError, OmegaConfBaseException) as e:
        raise ConfigError(f"{path}: invalid YAML: {e}") from None
    if not isinstance(d, dict):
        raise ConfigError(f"{path}: a config file must be a mapping of sections")
    base = d.pop("base", None)
    if base is None:
        return [d]
    inherited = _load_yaml_chain(resolve_config_path(base, path.parent), seen + (path,))
    for layer in inherited:
        layer.pop("name", None)  # a config's name is its own (default: its file name)
    return inherited + [d]


def load_config(path: Optional[Union[str, Path]] = None, overrides: Sequence[str] = ()) -> TrainConfig:
    """Load a YAML config (path or packaged name; ``None`` = defaults), apply overrides, validate.

    The config's ``name`` defaults to the file's stem.
    """
    layers: List[Dict[str, Any]] = []
    where = "config"
    if path is not None:
        p = resolve_config_path(path)
        layers = [{"name": p.stem}] + _load_yaml_chain(p)
        where = str(p)
    return _build(layers, overrides, where)


def parse_override_args(args: Sequence[str]) -> List[str]:
    """Turn ``--optim.lr 0.02 --data.root=/x`` (dotted options left over by argparse) into ``key=value`` strings.

    By hand: argparse would need one option per field and would lose the did-you-mean message of unknown fields.
    """
    out: List[str] = []
    i = 0
    args = list(args)
    while i < len(args):
        a = args[i]
        if not a.startswith("--") or "." not in a.split("=", 1)[0]:
            raise ConfigError(f"unrecognised argument {a!r}; config fields are given as --section.field VALUE")
        key = a[2:]
        if "=" in key:
            out.append(key)
            i += 1
            continue
        if i + 1 >= len(args) or (args[i + 1].startswith("--") and not _is_number(args[i + 1])):
            raise ConfigError(f"{a} needs a value")
        out.append(f"{key}={args[i + 1]}")
        i += 2
    return out


def _is_number(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False
