"""Where the rules live: `patterns/` at the top of a source checkout, `notecheck/patterns` in a wheel."""

from __future__ import annotations

import json
import os
from functools import cache
from pathlib import Path

import yaml

_HERE = Path(__file__).resolve().parent
# libyaml's safe loader when PyYAML was built with it (the wheels are): ~10x faster to read rules.
YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def patterns_dir() -> Path:
    """NOTECHECK_PATTERNS overrides; otherwise the shipped copy, else the checkout's top-level folder."""
    override = os.environ.get("NOTECHECK_PATTERNS")
    if override:
        return Path(override)
    for candidate in (_HERE / "patterns", _HERE.parent / "patterns"):
        if (candidate / "context.json").is_file():
            return candidate
    raise FileNotFoundError("notecheck rules folder 'patterns/' not found; set NOTECHECK_PATTERNS")


@cache
def load_json(path: Path) -> dict:
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


@cache
def load_yaml(path: Path) -> dict:
    with open(path, encoding="utf-8") as fh:
        return yaml.load(fh, Loader=YAML_LOADER)
