"""`notecheck rules [ID]`: every rule notecheck reports, with its source, rationale and payer values.

Four rule sets, one listing: documentation requirements (patterns/requirements.yaml), coverage and
coding-compliance rules (patterns/coverage.yaml), the billed-code comparison (patterns/billing.yaml
`findings`) and the cross-encounter rules (the payer profile's `history` section). Each rule's examples
are the fixtures in corpora/rules/<id>/ (a note that passes, one that fails), which the tests also run.
"""

from __future__ import annotations

import difflib
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .coverage import load_coverage_rules
from .patterns_path import load_yaml
from .profiles import parameters
from .requirements import REQUIREMENTS_FILE, load_requirements

FIXTURES_DIR = Path(__file__).resolve().parent.parent / "corpora" / "rules"
_HISTORY_RULES = ("frequency_limit", "repeat_without_response", "multiple_regions_same_day",
                  "multiple_levels_same_session")


@dataclass
class RuleInfo:
    id: str
    kind: str
    title: str
    severity: str
    source: str
    doc: str
    query: str | None = None
    messages: dict[str, str] = field(default_factory=dict)
    profile_values: dict[str, dict[str, Any]] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {"id": self.id, "kind": self.kind, "title": self.title, "severity": self.severity,
                "source": self.source, "doc": self.doc, "query": self.query, "messages": self.messages,
                "profile_values": self.profile_values, "examples": [str(p) for p in examples(self.id)]}


def all_rules(folder: Path, profile: dict) -> list[RuleInfo]:
    rules = [_from_requirement(r) for r in load_requirements(folder / REQUIREMENTS_FILE, profile=profile)]
    rules += [_from_requirement(r) for r in load_coverage_rules(folder, profile)]
    billing = load_yaml(folder / "billing.yaml")["findings"]
    for rid, spec in billing.items():
        rules.append(RuleInfo(id=rid, kind="coding", title=spec["title"], severity=spec.get("severity", "error"),
                              source=spec["source"], doc=spec.get("doc", spec["title"] + "."), query=spec.get("query")))
    rules += _history_rules(profile)
    return rules


def find_rule(rules: list[RuleInfo], rule_id: str) -> RuleInfo | None:
    return next((r for r in rules if r.id == rule_id), None)


def suggestions(rules: list[RuleInfo], rule_id: str) -> list[str]:
    return difflib.get_close_matches(rule_id, [r.id for r in rules], n=3, cutoff=0.5)


def examples(rule_id: str) -> list[Path]:
    folder = FIXTURES_DIR / rule_id
    return sorted(p for p in folder.glob("*") if p.suffix in (".txt", ".jsonl", ".claim")) if folder.is_dir() else []


def render_list(rules: list[RuleInfo], profile: dict) -> str:
    lines = [f"payer profile: {profile['id']} ({profile.get('name', '')})", ""]
    width = max(len(r.id) for r in rules)
    for kind in ("documentation", "coverage", "coding", "history"):
        group = [r for r in rules if r.kind == kind]
        if not group:
            continue
        lines.append(f"{kind} rules:")
        for r in group:
            lines.append(f"  {r.id:<{width}}  {r.severity:<7}  {r.title}")
            lines.append(f"  {'':<{width}}  {'':<7}  source: {_short(r.source)}")
            for name, pv in r.profile_values.items():
                lines.append(f"  {'':<{width}}  {'':<7}  {name} = {_value(pv)}  [{pv['path']}, {pv['confidence']}]")
        lines.append("")
    lines.append("notecheck rules ID shows one rule with its rationale and example notes.")
    return "\n".join(lines)


def render_one(rule: RuleInfo, profile: dict) -> str:
    out = [f"{rule.id}: {rule.title}", f"kind: {rule.kind}    severity: {rule.severity}    "
           f"payer profile: {profile['id']}", "", "source:", _wrap(rule.source), "", "why:", _wrap(rule.doc)]
    if rule.profile_values:
        out += ["", "payer-profile values:"]
        for name, pv in rule.profile_values.items():
            out.append(f"  {name} = {_value(pv)}  ({pv['path']}; confidence {pv['confidence']})")
            out.append(_wrap(f"source: {pv['source']}", indent=4))
    if rule.messages:
        out += ["", "messages:"] + [f"  {status}: {text}" for status, text in rule.messages.items()]
    if rule.query:
        out += ["", "query to the physician when it fails:", _wrap(rule.query)]
    files = examples(rule.id)
    out += ["", "examples (corpora/rules/%s/):" % rule.id]
    if not files:
        out.append("  none found (the examples ship with a source checkout of notecheck)")
    for path in files:
        label = {"pass": "PASSES", "fail": "FAILS"}.get(path.stem, path.stem)
        out += ["", f"--- {label}: {path.name} ---", path.read_text(encoding="utf-8").rstrip()]
    return "\n".join(out)


def _from_requirement(req) -> RuleInfo:
    messages = {"met": req.message_met, "missing": req.message_missing,
                "not_applicable": req.message_not_applicable}
    return RuleInfo(id=req.id, kind=req.kind, title=req.title, severity=req.severity, source=req.source,
                    doc=req.doc, query=req.query, messages=messages, profile_values=req.profile_values)


def _history_rules(profile: dict) -> list[RuleInfo]:
    history = profile.get("history", {})
    params = parameters(profile)
    rules = []
    for rid in _HISTORY_RULES:
        spec = history.get(rid)
        if not isinstance(spec, dict):
            continue
        values = {path.rsplit(".", 1)[1]: {"path": path, "value": p.value, "unit": p.unit, "source": p.source,
                                            "confidence": p.confidence, "profile": profile["id"]}
                  for path, p in params.items() if path.startswith(f"history.{rid}.")}
        sources = "; ".join(dict.fromkeys(v["source"] for v in values.values()))
        rules.append(RuleInfo(id=rid, kind="history", title=spec.get("title", rid), severity=spec.get("severity", "warning"),
                              source=f"payer profile {profile['id']}: {sources}", doc=spec.get("doc", ""),
                              query=spec.get("query"), profile_values=values))
    return rules


def _value(pv: dict) -> str:
    value = pv["value"]
    if isinstance(value, dict) and all(isinstance(v, list) for v in value.values()):
        return "; ".join(f"{k}: {len(v)} entries" for k, v in value.items())
    text = ", ".join(f"{k}: {v}" for k, v in value.items()) if isinstance(value, dict) else (
        ", ".join(map(str, value)) if isinstance(value, list) else str(value))
    if len(text) > 90:
        text = text[:87] + "..."
    return f"{text} {pv['unit']}" if pv.get("unit") else text


def _short(source: str, limit: int = 110) -> str:
    return source if len(source) <= limit else source[: limit - 3] + "..."


def _wrap(text: str, indent: int = 2) -> str:
    return textwrap.fill(" ".join(str(text).split()), width=100, initial_indent=" " * indent,
                         subsequent_indent=" " * indent)


def run_rules(args, out, err) -> int:
    """`notecheck rules [ID] [--profile P] [--format json]`: exit 0, or 2 for an unknown id or profile."""
    import json

    from .patterns_path import patterns_dir
    from .profiles import load_profile
    from .requirements import RequirementsError

    try:
        folder = patterns_dir()
        profile = load_profile(args.profile, folder)
        rules = all_rules(folder, profile)
    except (ValueError, RequirementsError) as exc:
        print(f"notecheck: error: {exc}", file=err)
        return 2
    if args.rule_id:
        rule = find_rule(rules, args.rule_id)
        if rule is None:
            close = suggestions(rules, args.rule_id)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            print(f"notecheck: error: no rule {args.rule_id!r}{hint}; `notecheck rules` lists them", file=err)
            return 2
        print(json.dumps(rule.as_dict(), indent=2) if args.format == "json" else render_one(rule, profile), file=out)
        return 0
    if args.format == "json":
        print(json.dumps({"profile": profile["id"], "rules": [r.as_dict() for r in rules]}, indent=2), file=out)
    else:
        print(render_list(rules, profile), file=out)
    return 0
