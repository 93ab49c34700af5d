"""Strict configuration: TOML files validated into frozen pydantic models.

* An unknown key is an error naming the key and the file.
* ``--set a.b=value`` overrides are parsed as TOML values (``1e-3`` is a float, ``[10, 20]`` a
  list), falling back to a plain string.
* Polymorphic components are written ``{name = "...", **params}``; :func:`component_config`
  validates the params against the registered class's ``Config``.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from recsys.errors import ConfigError

M = TypeVar("M", bound=BaseModel)


class StrictModel(BaseModel):
    """Base for every config section: frozen, unknown keys rejected."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def read_toml(path: str | Path) -> dict[str, Any]:
    """Read a TOML file; a missing file or a syntax error raises :class:`ConfigError`."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: invalid TOML: {e}") from None


def parse_value(text: str) -> Any:
    """Parse an override value as TOML (numbers, booleans, lists, tables), else a string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def apply_overrides(raw: dict[str, Any], sets: Iterable[str]) -> dict[str, Any]:
    """Return a copy of ``raw`` with ``a.b.c=value`` overrides applied.

    A numeric part indexes a list: ``losses.0.reg_weight=1e-4``.
    """
    out = _deepcopy(raw)
    for item in sets:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. train.lr=1e-3")
        set_path(out, key.strip(), parse_value(value.strip()), f"--set {item!r}")
    return out


def set_path(raw: dict[str, Any], key: str, value: Any, where: str) -> None:
    """Set the dotted ``key`` of ``raw`` in place, creating tables on the way.

    A numeric part indexes an existing list element. ``where`` names the source in errors.
    """
    node: Any = raw
    parts = key.split(".")
    for depth, part in enumerate(parts):
        last = depth == len(parts) - 1
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise ConfigError(
                    f"{where}: {'.'.join(parts[:depth])!r} is a list of {len(node)}; "
                    f"{part!r} is not an index into it"
                )
            if last:
                node[int(part)] = value
                return
            node = node[int(part)]
        elif isinstance(node, dict):
            if last:
                node[part] = value
                return
            node = node.setdefault(part, {})
        else:
            raise ConfigError(f"{where}: {'.'.join(parts[:depth])!r} is not a table")
        if not isinstance(node, dict | list):
            raise ConfigError(f"{where}: {'.'.join(parts[: depth + 1])!r} is not a table")


def _deepcopy(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _deepcopy(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_deepcopy(v) for v in obj]
    return obj


def input_path(
    raw: Any, loc: tuple[int | str, ...], keep_last: bool = True
) -> tuple[int | str, ...]:
    """``loc`` as a path through the user's input: pydantic inserts the tag of a discriminated
    union (``features.kg`` → ``features.kg.kg``), which is not a key the user wrote; such
    elements are dropped. With ``keep_last`` the last element is kept even when absent from
    the input (it names the missing or unknown key)."""
    out: list[int | str] = []
    node = raw
    for i, part in enumerate(loc):
        found, child = _child(node, part)
        if found:
            node = child
        elif i < len(loc) - 1 or not keep_last:
            continue
        out.append(part)
    return tuple(out)


def _child(node: Any, part: int | str) -> tuple[bool, Any]:
    """``(True, node[part])`` if ``part`` is a key or index of ``node``, else ``(False, None)``."""
    if isinstance(node, Mapping) and part in node:
        return True, node[part]
    if isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
        return True, node[part]
    return False, None


def format_validation_error(
    err: ValidationError, source: str, prefix: str = "", raw: Any = None
) -> str:
    """One line per problem: ``source: key 'a.b': message`` (keys as written in ``raw``)."""
    lines = []
    for e in err.errors():
        named = e["type"] in ("extra_forbidden", "missing")  # the last element is the key
        path = e["loc"] if raw is None else input_path(raw, e["loc"], keep_last=named)
        loc = ".".join([prefix] * bool(prefix) + [_key_text(p) for p in path])
        if e["type"] == "extra_forbidden":
            lines.append(f"{source}: unknown key {loc!r}")
        elif e["type"] == "missing":
            lines.append(f"{source}: missing required key {loc!r}")
        else:
            lines.append(f"{source}: key {loc!r}: {e['msg']} (got {e.get('input')!r})")
    return "\n".join(lines)


def _key_text(part: int | str) -> str:
    """A path element as written in TOML: a key containing a dot is quoted."""
    text = str(part)
    return f'"{text}"' if isinstance(part, str) and "." in text else text


def validate(cls: type[M], raw: Mapping[str, Any], source: str, prefix: str = "") -> M:
    """Validate ``raw`` into ``cls``; errors name the file (``source``) and the key."""
    try:
        return cls.model_validate(dict(raw))
    except ValidationError as e:
        raise ConfigError(format_validation_error(e, source, prefix, raw)) from None


def component_config(
    registry: Mapping[str, Any], raw: Mapping[str, Any], source: str, prefix: str
) -> tuple[str, BaseModel]:
    """Resolve ``{name = ..., **params}`` against ``registry``; return (name, validated Config)."""
    if not isinstance(raw, Mapping) or "name" not in raw:
        raise ConfigError(f"{source}: key {prefix!r} needs a 'name'")
    params = {k: v for k, v in raw.items() if k != "name"}
    name = str(raw["name"])
    try:
        cls = registry[name]
    except ConfigError as e:
        raise ConfigError(f"{source}: key '{prefix}.name': {e}") from None
    return name, validate(cls.Config, params, source, prefix)


def dump(model: BaseModel) -> dict[str, Any]:
    """The JSON-ready dict of a config (for saving and hashing)."""
    return model.model_dump(mode="json")
