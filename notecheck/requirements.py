"""Documentation requirements: load them from `patterns/requirements.yaml` and check a record against them.

Rules are data. Each requirement in the YAML says when it applies and when it is met, as a small
declarative condition on `ProcedureRecord` fields; this module only interprets those conditions, so a
payer profile or a new requirement is a YAML edit, not a code change.

Condition language (one operator per mapping; `field` is a dotted path into the record, or into the
list item inside `any_item` / `all_items`):

    {field: p, present: true}     value is not null and not an empty list/string (false: the opposite)
    {field: p, equals: v}         value == v (strings compared case-insensitively)
    {field: p, in: [v, ...]}      value is one of the listed values (case-insensitive for strings)
    {field: p, gte: n}            also gt, lte, lt; a null or non-numeric value is never true
    {field: p, any_item: C}       some item of the list satisfies C
    {field: p, all_items: C}      every item satisfies C (vacuously true for an empty list)
    {all: [C, ...]}, {any: [C, ...]}, {not: C}
    {evidence: key}               record.evidence[key] holds at least one span
    {is_true: $param}             a boolean param (e.g. a payer-profile switch) is true

    {field: p, contains: v}       the list value contains v (case-insensitive for strings)
    {field: p, contains_any: [..]} the list value shares an element with the given list

A requirement's `params` (e.g. `min_weeks: 4`) are substituted for "$name" in its conditions and for
"{name}" in its texts when the file is loaded, so a threshold lives in exactly one place. A param written
`{profile: coverage.min_conservative_weeks}` takes its value from the payer profile (notecheck.profiles),
so the same rule file serves every payer; the value's source is kept for `notecheck rules`.

The same language serves two rule files: requirements.yaml (conditions on ProcedureRecord) and
coverage.yaml (conditions on notecheck.coverage.facts.CoverageFacts); `load_requirements(..., model=)`
names the model the field paths are checked against.

Field paths are checked against ProcedureRecord at load time, so a typo fails loudly instead of
turning into a silent "missing". Note `present: true` is true for a boolean False: use `equals: true`.

Public API: `Requirement`, `load_requirements(path=None)` (a file or a patterns folder; default: the
folder `notecheck.patterns_path.patterns_dir()` resolves), `evaluate(record, requirements=None)`, and
`RequirementsError` (raised for an unreadable or invalid file, naming the file and the requirement id).
"""

from __future__ import annotations

import types
from pathlib import Path
from typing import Annotated, Any, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from pydantic import ValidationInfo

from .patterns_path import YAML_LOADER, patterns_dir
from .profiles import ProfileError, load_profile, parameter
from .record import Evidence, Finding, FindingKind, ProcedureRecord, Severity

REQUIREMENTS_FILE = "requirements.yaml"
Text = Annotated[str, Field(min_length=1)]

_FIELD_OPS = {"present", "equals", "in_", "gte", "gt", "lte", "lt", "any_item", "all_items", "contains",
              "contains_any"}
_OTHER_OPS = {"all_", "any_", "not_", "evidence", "is_true"}


class RequirementsError(ValueError):
    """The requirements file is missing, unreadable or invalid."""


class Condition(BaseModel):
    """One node of the condition language (see the module docstring)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    field: str | None = None
    present: bool | None = None
    equals: Any = None
    in_: list[Any] | None = Field(default=None, alias="in")
    gte: float | None = None
    gt: float | None = None
    lte: float | None = None
    lt: float | None = None
    any_item: Condition | None = None
    all_items: Condition | None = None
    contains: Any = None
    contains_any: list[Any] | None = None
    all_: list[Condition] | None = Field(default=None, alias="all")
    any_: list[Condition] | None = Field(default=None, alias="any")
    not_: Condition | None = Field(default=None, alias="not")
    evidence: str | None = None
    is_true: bool | None = None

    @model_validator(mode="after")
    def _one_operator(self) -> Condition:
        ops = self.model_fields_set - {"field"}
        if len(ops) != 1:
            names = sorted(o.rstrip("_") for o in ops) or ["none"]
            raise ValueError(f"a condition needs exactly one operator, got: {', '.join(names)}")
        op = next(iter(ops))
        if op in _FIELD_OPS and not self.field:
            raise ValueError(f"operator {op.rstrip('_')!r} needs a 'field'")
        if op in _OTHER_OPS and self.field is not None:
            raise ValueError(f"operator {op.rstrip('_')!r} takes no 'field'")
        return self

    @property
    def op(self) -> str:
        return next(iter(self.model_fields_set - {"field"}))


class ItemEvidence(BaseModel):
    """Take evidence from the items of a list field (e.g. medications), optionally filtered."""

    model_config = ConfigDict(extra="forbid")

    field: str
    where: Condition | None = None


class Requirement(BaseModel):
    """One documentation requirement, as written in requirements.yaml (params already substituted)."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    title: Text
    severity: Severity
    kind: FindingKind = "documentation"
    source: Text
    doc: Text
    message_met: Text
    message_missing: Text
    message_not_applicable: Text = "Not applicable to this procedure."
    query: Text
    params: dict[str, Any] = Field(default_factory=dict)
    # name -> {path, value, source, confidence} for params taken from the payer profile
    profile_values: dict[str, dict[str, Any]] = Field(default_factory=dict)
    applies_when: Condition | None = None
    not_applicable_when: Condition | None = None
    met_when: Condition
    evidence: list[str] = Field(default_factory=list)
    item_evidence: ItemEvidence | None = None

    @model_validator(mode="before")
    @classmethod
    def _substitute_params(cls, data: Any) -> Any:
        # Substitute before validation so conditions are checked with their real values.
        if not isinstance(data, dict) or not isinstance(data.get("params", {}), dict):
            return data
        params = data.get("params") or {}
        out = dict(data)
        for key in ("applies_when", "not_applicable_when", "met_when", "item_evidence"):
            if key in out:
                out[key] = _fill(out[key], params)
        for key in ("title", "source", "doc", "message_met", "message_missing",
                    "message_not_applicable", "query"):
            if isinstance(out.get(key), str) and params:
                try:
                    out[key] = out[key].format_map(params)
                except (KeyError, ValueError, IndexError) as exc:
                    raise ValueError(f"{key}: bad {{param}} reference: {exc}") from None
        return out

    @model_validator(mode="after")
    def _paths_exist(self, info: ValidationInfo) -> Requirement:
        # Catch a misspelt field path at load time rather than as a silently "missing" finding.
        model = (info.context or {}).get("model", ProcedureRecord)
        for key in ("applies_when", "not_applicable_when", "met_when"):
            if getattr(self, key) is not None:
                try:
                    _check_paths(getattr(self, key), model)
                except ValueError as exc:
                    raise ValueError(f"{key}: {exc}") from None
        if self.item_evidence is not None:
            item = _list_item_model(model, self.item_evidence.field)
            if "evidence" not in item.model_fields:
                raise ValueError(f"item_evidence: items of {self.item_evidence.field!r} carry no evidence")
            if self.item_evidence.where is not None:
                _check_paths(self.item_evidence.where, item)
        return self


def _fill(node: Any, params: dict[str, Any]) -> Any:
    """Replace "$name" strings anywhere in a raw condition with params[name]."""
    if isinstance(node, dict):
        return {k: _fill(v, params) for k, v in node.items()}
    if isinstance(node, list):
        return [_fill(v, params) for v in node]
    if isinstance(node, str) and node.startswith("$"):
        if node[1:] not in params:
            raise ValueError(f"unknown parameter {node!r} (define it under 'params')")
        return params[node[1:]]
    return node


# --- load-time path checking ------------------------------------------------------------------------

def _field_type(model: type[BaseModel], path: str) -> Any:
    """The type at a dotted path (Optional stripped), or ValueError if the path does not exist."""
    tp: Any = model
    for part in path.split("."):
        if not (isinstance(tp, type) and issubclass(tp, BaseModel)) or part not in tp.model_fields:
            raise ValueError(f"unknown field path {path!r} (in {model.__name__})")
        tp = tp.model_fields[part].annotation
        if get_origin(tp) in (Union, types.UnionType):
            args = [a for a in get_args(tp) if a is not type(None)]
            tp = args[0] if len(args) == 1 else tp
    return tp


def _list_item_model(model: type[BaseModel], path: str) -> type[BaseModel]:
    tp = _field_type(model, path)
    item = get_args(tp)[0] if get_origin(tp) is list else None
    if not (isinstance(item, type) and issubclass(item, BaseModel)):
        raise ValueError(f"field {path!r} is not a list of records")
    return item


def _check_paths(cond: Condition, model: type[BaseModel]) -> None:
    op = cond.op
    if op in ("any_item", "all_items"):
        _check_paths(getattr(cond, op), _list_item_model(model, cond.field))
    elif cond.field is not None:
        _field_type(model, cond.field)
    for child in (cond.all_ or []) + (cond.any_ or []) + ([cond.not_] if cond.not_ else []):
        _check_paths(child, model)


# --- loading ------------------------------------------------------------------------------------------

def default_requirements_file() -> Path:
    """requirements.yaml in the patterns folder that notecheck.patterns_path resolves."""
    try:
        return patterns_dir() / REQUIREMENTS_FILE
    except FileNotFoundError as exc:
        raise RequirementsError(str(exc)) from None


def load_requirements(path: str | Path | None = None, *, profile: dict | None = None,
                      model: type[BaseModel] = ProcedureRecord, list_key: str = "requirements",
                      file_name: str = REQUIREMENTS_FILE) -> list[Requirement]:
    """Load and validate rules from a YAML file (or a patterns directory holding `file_name`).

    `profile` is the payer profile params written `{profile: path}` read from (default: Medicare)."""
    file = Path(path) if path is not None else default_requirements_file().with_name(file_name)
    if file.is_dir():
        file = file / file_name
    try:
        data = yaml.load(file.read_text(encoding="utf-8"), Loader=YAML_LOADER)
    except OSError as exc:
        raise RequirementsError(f"{file}: cannot read rules file: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise RequirementsError(f"{file}: not valid YAML: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get(list_key), list):
        raise RequirementsError(f"{file}: expected a mapping with a {list_key!r} list")
    extra = set(data) - {"version", list_key}
    if extra:
        raise RequirementsError(f"{file}: unknown top-level keys: {', '.join(sorted(map(str, extra)))}")

    requirements: list[Requirement] = []
    seen: set[str] = set()
    for index, raw in enumerate(data[list_key], start=1):
        rid = raw.get("id") if isinstance(raw, dict) else None
        label = f"rule {rid!r}" if rid else f"rule #{index} (no id)"
        if not isinstance(raw, dict):
            raise RequirementsError(f"{file}: {label}: expected a mapping")
        try:
            raw = _bind_profile(raw, profile)
            req = Requirement.model_validate(raw, context={"model": model})
        except ProfileError as exc:
            raise RequirementsError(f"{file}: {label}: {exc}") from None
        except ValidationError as exc:
            raise RequirementsError(f"{file}: {label} is invalid: {_describe(exc)}") from None
        if req.id in seen:
            raise RequirementsError(f"{file}: duplicate rule id {req.id!r}")
        seen.add(req.id)
        requirements.append(req)
    return requirements


def _bind_profile(raw: dict, profile: dict | None) -> dict:
    """Replace params written {profile: path} with the profile's value, keeping where it came from."""
    params = raw.get("params")
    if not isinstance(params, dict) or not any(_is_profile_ref(v) for v in params.values()):
        return raw
    profile = profile if profile is not None else load_profile()
    bound, origins = dict(params), {}
    for name, value in params.items():
        if _is_profile_ref(value):
            param = parameter(profile, value["profile"])
            bound[name] = param.value
            origins[name] = {"path": value["profile"], "value": param.value, "unit": param.unit,
                             "source": param.source, "confidence": param.confidence,
                             "profile": profile.get("id")}
    return {**raw, "params": bound, "profile_values": origins}


def _is_profile_ref(value: Any) -> bool:
    return isinstance(value, dict) and set(value) == {"profile"} and isinstance(value["profile"], str)


def _describe(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        parts.append(f"{loc}: {msg}" if loc else msg)
    return "; ".join(parts)


# --- evaluation ---------------------------------------------------------------------------------------

def _get(obj: Any, path: str) -> Any:
    for part in path.split("."):
        if obj is None:
            return None
        obj = getattr(obj, part, None)
    return obj


def _norm(value: Any) -> Any:
    return value.casefold() if isinstance(value, str) else value


def _present(value: Any) -> bool:
    if isinstance(value, str):
        return bool(value.strip())
    if isinstance(value, (list, dict)):
        return bool(value)
    return value is not None


def _holds(cond: Condition, scope: Any, record: ProcedureRecord) -> bool:
    """Whether `cond` is true; `scope` is the record or, inside any_item/all_items, the list item."""
    op = cond.op
    if op == "all_":
        return all(_holds(c, scope, record) for c in cond.all_)
    if op == "any_":
        return any(_holds(c, scope, record) for c in cond.any_)
    if op == "not_":
        return not _holds(cond.not_, scope, record)
    if op == "evidence":
        return bool(record.evidence.get(cond.evidence))
    if op == "is_true":
        return cond.is_true is True
    value = _get(scope, cond.field)
    if op == "present":
        return _present(value) == cond.present
    if op == "equals":
        return _norm(value) == _norm(cond.equals)
    if op == "in_":
        return _norm(value) in [_norm(v) for v in cond.in_]
    if op in ("gte", "gt", "lte", "lt"):
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            return False
        limit = getattr(cond, op)
        return {"gte": value >= limit, "gt": value > limit, "lte": value <= limit, "lt": value < limit}[op]
    if op in ("contains", "contains_any"):
        if not isinstance(value, (list, tuple, set)):
            return False
        have = {_norm(v) for v in value}
        wanted = [cond.contains] if op == "contains" else cond.contains_any
        return any(_norm(w) in have for w in wanted)
    items = value or []
    if op == "any_item":
        return any(_holds(cond.any_item, item, record) for item in items)
    return all(_holds(cond.all_items, item, record) for item in items)  # all_items


def _evidence_for(req: Requirement, record: ProcedureRecord) -> list[Evidence]:
    spans: list[Evidence] = []
    for key in req.evidence:
        spans.extend(record.evidence.get(key, []))
    if req.item_evidence is not None:
        where = req.item_evidence.where
        for item in _get(record, req.item_evidence.field) or []:
            if where is None or _holds(where, item, record):
                spans.extend(item.evidence)
    return sorted(set(spans), key=lambda e: (e.start, e.end))


def evaluate(record: Any, requirements: list[Requirement] | None = None) -> list[Finding]:
    """One Finding per requirement, in file order. `requirements` defaults to the shipped file.

    `record` is the model the rules were loaded for (ProcedureRecord, or CoverageFacts): anything with
    the fields the conditions name and an `evidence` mapping."""
    if requirements is None:
        requirements = load_requirements()
    findings = []
    for req in requirements:
        if (req.applies_when is not None and not _holds(req.applies_when, record, record)) or (
            req.not_applicable_when is not None and _holds(req.not_applicable_when, record, record)
        ):
            status, message = "not_applicable", req.message_not_applicable
        elif _holds(req.met_when, record, record):
            status, message = "met", req.message_met
        else:
            status, message = "missing", req.message_missing
        findings.append(Finding(
            id=req.id, title=req.title, status=status, severity=req.severity, kind=req.kind, message=message,
            query=req.query if status == "missing" else None, source=req.source,
            evidence=_evidence_for(req, record),
        ))
    return findings
