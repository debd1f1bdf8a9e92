"""The one way every job's configuration is resolved: defaults (or a method preset) < config file < command-line
flags < `--set KEY=VALUE`, into a frozen, typed dataclass; unknown keys and ill-typed values are ConfigErrors
naming the option.

Config files are YAML (.yaml/.yml) or TOML (.toml) of nested sections; overrides are dotted keys. A field whose
name ends in `_options` holds builder keyword arguments: free-form, merged key by key.
"""

import json
import types
import typing
from collections.abc import Mapping
from dataclasses import asdict, fields, is_dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml

from srtk.errors import ConfigError

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the same parser, from PyPI
    import tomli as tomllib  # type: ignore[no-redef]

ConfigT = TypeVar("ConfigT")


def load_config_file(path: Path) -> dict[str, Any]:
    """A YAML (.yaml/.yml) or TOML (.toml) file of nested sections, e.g. {"optim": {"learning_rate": 2e-4}}."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        text = path.read_text()
        if path.suffix.lower() == ".toml":
            data = tomllib.loads(text)
        elif path.suffix.lower() in (".yaml", ".yml"):
            data = yaml.safe_load(text) or {}
        else:
            raise ConfigError(f"{path}: config files must be .yaml, .yml or .toml")
    except (ValueError, yaml.YAMLError) as error:  # tomllib.TOMLDecodeError and UnicodeDecodeError are ValueErrors
        reason = str(error).strip().splitlines()[0]
        raise ConfigError(f"{path}: cannot parse ({reason})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of sections at the top level")
    return data


def parse_override(text: str) -> tuple[str, Any]:
    """'optim.learning_rate=2e-4' -> ('optim.learning_rate', 0.0002); the value is read as YAML."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set {text!r}: expected KEY=VALUE, e.g. optim.learning_rate=2e-4")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key.strip(), value


def parse_overrides(texts: list[str]) -> dict[str, Any]:
    """Several `--set` items, later ones winning."""
    return dict(parse_override(text) for text in texts)


def resolve(
    base: ConfigT,
    *,
    file: Mapping[str, Any] | None = None,
    flags: Mapping[str, Any] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> ConfigT:
    """`base` (defaults or a preset) < `file` (nested) < `flags` < `overrides` (both dotted), rebuilt and checked."""
    tree = config_tree(base)
    merge_nested(tree, file or {})
    for layer in (flags or {}, overrides or {}):
        merge_dotted(tree, layer)
    return build(type(base), tree)


def config_tree(cfg: Any) -> dict[str, Any]:
    """A config dataclass as nested dicts of its (unconverted) field values."""
    return {
        f.name: config_tree(getattr(cfg, f.name)) if is_dataclass(getattr(cfg, f.name)) else getattr(cfg, f.name)
        for f in fields(cfg)
        if f.init
    }


def merge_nested(tree: dict[str, Any], changes: Mapping[str, Any], *, prefix: str = "") -> None:
    for key, value in changes.items():
        name = f"{prefix}{key}"
        if key not in tree:
            valid = ", ".join(f"{prefix}{k}" for k in tree)
            raise ConfigError(f"unknown option {name!r}; valid here: {valid}")
        if isinstance(tree[key], dict) and not _is_options(name):
            if not isinstance(value, Mapping):
                raise ConfigError(f"{name} is a section; give its keys, e.g. {name}.KEY=VALUE")
            merge_nested(tree[key], value, prefix=f"{name}.")
        elif isinstance(tree[key], Mapping) and _is_options(name) and isinstance(value, Mapping):
            tree[key] = {**tree[key], **value}  # builder kwargs: free-form, merged key by key
        else:
            tree[key] = value


def merge_dotted(tree: dict[str, Any], changes: Mapping[str, Any]) -> None:
    for dotted, value in changes.items():
        *sections, key = dotted.split(".")
        nested: dict[str, Any] = {key: value}
        for section in reversed(sections):
            nested = {section: nested}
        merge_nested(tree, nested)


def _is_options(name: str) -> bool:
    return name.endswith("_options")


def build(cls: type[ConfigT], tree: Mapping[str, Any], *, prefix: str = "") -> ConfigT:
    """The dataclass `cls` from a tree of plain values, each coerced to its field's declared type."""
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for f in fields(cls):  # type: ignore[arg-type]
        if not f.init:
            continue
        name = f"{prefix}{f.name}"
        if f.name not in tree:
            continue  # a file written before the field existed: the default stands
        value, kind = tree[f.name], hints[f.name]
        kwargs[f.name] = build(kind, value, prefix=f"{name}.") if is_dataclass(kind) else coerce(value, kind, name)
    return cls(**kwargs)


def coerce(value: Any, kind: Any, name: str) -> Any:
    """`value` (from YAML/TOML/CLI) as the declared type `kind`, or a ConfigError naming the option."""
    origin = typing.get_origin(kind)
    args = typing.get_args(kind)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        if isinstance(value, str) and value.lower() in ("none", "null") and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        for kind_tried in inner[:-1]:  # the first member that takes the value wins: `int | str` reads 16 or "auto"
            try:
                return coerce(value, kind_tried, name)
            except ConfigError:
                continue
        return coerce(value, inner[-1], name)
    if kind is Any:
        return value
    if origin is tuple:
        items = [value] if isinstance(value, (str, int, float)) else value
        if isinstance(value, str):
            items = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(items, (list, tuple)):
            raise ConfigError(f"{name}: expected a list, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(coerce(v, args[0], name) for v in items)
        if len(items) != len(args):
            raise ConfigError(f"{name}: expected {len(args)} values, got {value!r}")
        return tuple(coerce(v, a, name) for v, a in zip(items, args, strict=True))
    if origin is not None and issubclass(origin, Mapping) or kind is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{name}: expected a mapping of builder options, got {value!r}")
        return dict(value)
    if kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "1", "0"):
            return value.lower() in ("true", "yes", "1")
        raise ConfigError(f"{name}: expected true or false, got {value!r}")
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise ConfigError(f"{name}: expected an integer, got {value!r}")
        try:
            number = float(value)
        except ValueError:
            raise ConfigError(f"{name}: expected an integer, got {value!r}") from None
        if number != int(number):
            raise ConfigError(f"{name}: expected an integer, got {value!r}")
        return int(number)
    if kind is float:
        if isinstance(value, bool):
            raise ConfigError(f"{name}: expected a number, got {value!r}")
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{name}: expected a number, got {value!r}") from None
    if kind is str:
        if not isinstance(value, str):
            raise ConfigError(f"{name}: expected a string, got {value!r}")
        return value
    if kind is Path:
        if not isinstance(value, (str, Path)):
            raise ConfigError(f"{name}: expected a path, got {value!r}")
        return Path(value).expanduser()
    raise ConfigError(f"{name}: unsupported option type {kind}")


def as_json_dict(cfg: Any) -> dict[str, Any]:
    """A config dataclass as a JSON-ready nested dict (Paths as strings, tuples as lists)."""
    return json.loads(json.dumps(asdict(cfg), default=str))
