"""Payer profiles: the numbers and lists that differ by payer (patterns/profiles/*.yaml).

A profile is a YAML mapping with `id` (= the file's stem), `name`, `version`, an optional `extends: <id>`
and sections (`coverage`, `history`). Every leaf that a rule reads is a *parameter*:
`{value, source, confidence[, unit]}` — the source cites the payer document (S-* keys of rules.md §8) and
the confidence uses rules.md's marks (C2: two or more sources, C1: one, INF: inferred, verify first).
A profile that extends another is merged key by key; any non-mapping value replaces the inherited one.

`load_profile(name_or_path)` returns the merged, validated mapping (a plain dict, so the history code
and the rule loaders read it the same way); `parameter(profile, "coverage.min_conservative_weeks")`
returns one parameter, raising ProfileError naming the profile and the path when it is missing.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .patterns_path import load_yaml, patterns_dir

DEFAULT_PROFILE = "medicare"
PROFILES_DIR = "profiles"
_CONFIDENCE = re.compile(r"^(C1|C2|INF)\b")


class ProfileError(ValueError):
    """A payer profile is missing, unreadable, invalid, or lacks a parameter a rule needs."""


class Parameter(BaseModel):
    """One payer-specific value with where it comes from."""

    model_config = ConfigDict(extra="forbid")

    value: Any
    source: str = Field(min_length=1)
    confidence: str = Field(min_length=1)
    unit: str | None = None


class _Header(BaseModel):
    model_config = ConfigDict(extra="allow")

    id: str = Field(pattern=r"^[a-z][a-z0-9_-]*$")
    name: str = Field(min_length=1)
    version: int


def load_profile(name_or_path: str | Path | None = None, folder: Path | None = None) -> dict:
    """A payer profile by id (patterns/profiles/<id>.yaml) or path, `extends:` resolved and validated."""
    profile = _load(str(name_or_path or DEFAULT_PROFILE), None, (), folder)
    _validate(profile, str(name_or_path or DEFAULT_PROFILE))
    return profile


def list_profiles(folder: Path | None = None) -> list[str]:
    """Ids of the profiles shipped in the patterns folder."""
    return sorted(p.stem for p in ((folder or patterns_dir()) / PROFILES_DIR).glob("*.yaml"))


def parameter(profile: dict, path: str) -> Parameter:
    """The parameter at a dotted path, e.g. "coverage.steroid_ceiling_mg"."""
    node: Any = profile
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            raise ProfileError(f"payer profile {profile.get('id')!r}: parameter {path!r} is missing")
        node = node[part]
    try:
        return Parameter.model_validate(node)
    except ValidationError:
        raise ProfileError(f"payer profile {profile.get('id')!r}: {path!r} is not a parameter "
                           "({value, source, confidence})") from None


def parameters(profile: dict) -> dict[str, Parameter]:
    """Every parameter of the profile by dotted path (for `notecheck rules` and the schema test)."""
    return {path: Parameter.model_validate(node) for path, node in _parameter_nodes(profile)}


def _parameter_nodes(profile: dict):
    """(dotted path, mapping) of every parameter: a mapping with a `value` key, in the rule sections."""
    def walk(node: Any, path: str):
        if isinstance(node, dict) and "value" in node:
            yield path, node
        elif isinstance(node, dict):
            for key, child in node.items():
                yield from walk(child, f"{path}.{key}")

    for section in ("coverage", "history"):
        yield from walk(profile.get(section, {}), section)


# --- loading --------------------------------------------------------------------------------------------

def _load(name: str, base_dir: Path | None, seen: tuple[Path, ...], folder: Path | None) -> dict:
    path = _find(name, base_dir, folder)
    if path in seen:
        raise ProfileError(f"payer profile {name!r}: 'extends' loops back to {path.name}")
    try:
        data = copy.deepcopy(load_yaml(path))  # the loader caches: never mutate what it returns
    except Exception as exc:  # noqa: BLE001 - yaml.YAMLError, OSError, UnicodeDecodeError
        raise ProfileError(f"payer profile {name!r} ({path}): cannot be read ({type(exc).__name__})") from None
    if not isinstance(data, dict):
        raise ProfileError(f"payer profile {name!r} ({path}): not a mapping")
    data.setdefault("id", path.stem)
    parent = data.pop("extends", None)
    if parent:
        base = _load(str(parent), path.parent, seen + (path,), folder)
        base.pop("id", None)
        data = _merge(base, data)
    return data


def _find(name: str, base_dir: Path | None, folder: Path | None) -> Path:
    as_path = Path(name)
    profiles = (folder or patterns_dir()) / PROFILES_DIR
    if as_path.suffix in (".yaml", ".yml") or len(as_path.parts) > 1:
        candidates = [as_path] + ([base_dir / as_path] if base_dir and not as_path.is_absolute() else [])
    else:
        candidates = [d / f"{name}.yaml" for d in (base_dir, profiles) if d is not None]
    for candidate in candidates:
        if candidate.is_file():
            return candidate.resolve()
    known = ", ".join(list_profiles(folder)) or "none"
    raise ProfileError(f"payer profile {name!r} not found (looked for {', '.join(str(c) for c in candidates)}; "
                       f"shipped profiles: {known})")


def _merge(base: dict, override: dict) -> dict:
    out = dict(base)
    for key, value in override.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def _validate(profile: dict, name: str) -> None:
    try:
        _Header.model_validate(profile)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ProfileError(f"payer profile {name!r}: {problems}") from None

    for section in ("coverage", "history"):
        if section in profile and not isinstance(profile[section], dict):
            raise ProfileError(f"payer profile {name!r}: section {section!r} must be a mapping")
    for where, node in _parameter_nodes(profile):
        try:
            param = Parameter.model_validate(node)
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'parameter'}: {e['msg']}" for e in exc.errors())
            raise ProfileError(f"payer profile {name!r}: parameter {where}: {problems}") from None
        if not _CONFIDENCE.match(param.confidence):
            raise ProfileError(f"payer profile {name!r}: parameter {where}: confidence "
                               f"{param.confidence!r} must start with C1, C2 or INF")
