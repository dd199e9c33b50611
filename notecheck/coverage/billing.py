"""Billed code vs the code the documentation supports: the `billed_code_mismatch` rule (met / missing).

The billed value is the raw claim text an auditor holds ("62323", "62323-50", "62323, 77003"). Its 6232x
code is compared axis by axis (region group, delivery, imaging) with the code notecheck chose, using
coding.yaml's decision table for what each code means and patterns/billing.yaml for which axis value is
more service (what makes a mismatch "billed higher" or "billed lower"). A mismatch carries the deciding
evidence: the note spans behind the supported code's rationale on the axes that differ.

Messages are built from codes, axis names and the engine's own rationale reasons: never from note text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from ..coding import load_coding_rules
from ..patterns_path import load_yaml, patterns_dir
from ..record import Claim, ClaimAxis, ClaimLine, Evidence, Finding, NoteResult

# CPT (5 digits, or 4 digits + T/F for Category II/III) or HCPCS Level II (a letter + 4 digits).
_CODE = re.compile(r"^(?:\d{4}[0-9TF]|[A-Z]\d{4})$")
_TOKEN = re.compile(r"[0-9A-Z]+")
_AXES = ("region_group", "delivery", "imaging")


@dataclass
class BillingRules:
    axes: dict
    directions: dict
    families: dict[str, set[str]]
    not_with_family: list[dict]
    add_ons: list[dict]
    max_family_lines: dict
    findings: dict
    code_axes: dict[str, dict[str, str]]          # "62323" -> {"region_group": ..., "delivery": ..., "imaging": ...}
    family_names: dict[str, str]                  # coding.yaml out_of_family names
    em_codes: set[str]                            # E/M codes modifier 25 belongs on


@cache
def load_billing_rules(folder: Path | None = None) -> BillingRules:
    folder = Path(folder) if folder else patterns_dir()
    data = load_yaml(folder / "billing.yaml")
    coding = load_coding_rules(folder)
    code_axes = {row.cpt: {"region_group": row.region_group, "delivery": row.delivery, "imaging": row.imaging}
                 for row in coding.decision_table}
    return BillingRules(
        axes=data["axes"], directions=data["directions"],
        families={name: set(f["codes"]) for name, f in data["families"].items()},
        not_with_family=data["not_with_family"], add_ons=data["add_ons"],
        max_family_lines=data["max_family_lines"], findings=data["findings"],
        code_axes=code_axes, family_names={k: v["name"] for k, v in coding.out_of_family.items()},
        em_codes=set(data["em_codes"]["codes"]),
    )


def parse_billed(raw: str) -> list[ClaimLine]:
    """Claim lines in the order written; a two-character token after a code is one of its modifiers."""
    lines: list[ClaimLine] = []
    for token in _TOKEN.findall(raw.upper()):
        if _CODE.match(token):
            lines.append(ClaimLine(code=token))
        elif len(token) == 2 and lines:
            lines[-1].modifiers.append(token)
    return lines


def evaluate_billed(result: NoteResult, billed: str | None, rules: BillingRules) -> tuple[list[Finding], Claim | None]:
    """The billing findings for the note and the claim with its comparison (NoteResult.claim)."""
    if billed is None or not billed.strip():
        return [], None
    lines = parse_billed(billed)
    claim = Claim(billed=billed, lines=lines)
    if result.status != "ok" or result.code is None:
        claim.status = "not_checked"   # the note itself could not be checked; its error says why
        return [], claim
    if not lines:
        claim.status = "unreadable"
        return [_finding(rules, "billed_code_unreadable", "The billed value has no CPT/HCPCS code.")], claim

    code = result.code
    ours = [ln for ln in lines if ln.code in rules.code_axes]
    primary = (ours or lines)[0]
    claim.billed_code, claim.supported, claim.supported_family = primary.code, code.cpt, code.out_of_family
    findings = [_finding(rules, "billed_code_unreadable", f"The claim names {len(lines)} code(s).", status="met"),
                _compare(result, primary, rules, claim)]
    if ours and code.cpt:
        findings += _claim_line_problems(result, primary, lines, rules) or [
            _finding(rules, "billed_claim_line_not_allowed", "No claim line or modifier that is not allowed "
                     "with 62320-62327.", status="met")]
    return findings, claim


def _compare(result: NoteResult, billed: ClaimLine, rules: BillingRules, claim: Claim) -> Finding:
    code = result.code
    assert code is not None
    if code.cpt is None:
        return _compare_out_of_family(result, billed, rules, claim)
    if billed.code not in rules.code_axes:
        other = _family_of(billed.code, rules)
        what = f"a {rules.family_names.get(other, other)} code" if other else "not one of 62320-62327"
        return _mismatch(rules, claim, "out_of_family", _evidence(result, _AXES),
                         f"Billed {billed.code} ({what}) but the note documents an interlaminar/caudal injection "
                         f"that supports {code.cpt} ({_describe(code.cpt, rules)}).")
    if billed.code == code.cpt:
        claim.status = "supported"
        return _finding(rules, "billed_code_mismatch", f"Billed {billed.code} is supported: {_describe(code.cpt, rules)}.",
                        status="met", evidence=_evidence(result, _AXES))

    want, have = rules.code_axes[billed.code], rules.code_axes[code.cpt]
    differing = [a for a in _AXES if want[a] != have[a]]
    claim.axes = [ClaimAxis(axis=a, billed=want[a], supported=have[a], direction=_axis_direction(a, want[a], have[a], rules))
                  for a in differing]
    direction = _overall_direction(claim.axes)
    reasons = {step.axis: step.reason for step in code.rationale}
    details = "; ".join(
        f"{rules.axes[a]['label']}: billed {_value(a, want[a], rules)}, documented {_value(a, have[a], rules)}"
        + (f" ({reasons[_rationale_axis(a)]})" if _rationale_axis(a) in reasons else "")
        for a in differing)
    queries = [_axis_query(ax, rules) for ax in claim.axes]
    return _mismatch(rules, claim, direction, _evidence(result, differing),
                     f"Billed {billed.code} ({_describe(billed.code, rules)}) but the documentation supports "
                     f"{code.cpt} ({_describe(code.cpt, rules)}): {rules.directions[direction]['label']}. {details}.",
                     query=" ".join(q for q in queries if q) or None)


def _compare_out_of_family(result: NoteResult, billed: ClaimLine, rules: BillingRules, claim: Claim) -> Finding:
    code = result.code
    assert code is not None
    family = code.out_of_family
    evidence = _evidence(result, ("family",))
    if family is None or family == "no_procedure":
        why = ("the note documents no injection this session" if family == "no_procedure"
               else "the note does not document the spinal level or region of the injection")
        return _mismatch(rules, claim, "not_supported", evidence,
                         f"Billed {billed.code} but the documentation supports no 62320-62327 code: {why}.")
    name = rules.family_names.get(family, family)
    if billed.code in rules.families.get(family, set()):
        claim.status = "supported"
        return _finding(rules, "billed_code_mismatch",
                        f"Billed {billed.code} is in the family the note documents ({name}); notecheck does not "
                        "choose the code within that family.", status="met", evidence=evidence)
    return _mismatch(rules, claim, "out_of_family", evidence,
                     f"Billed {billed.code} but the note documents a {name}, not that code's family.")


def _claim_line_problems(result: NoteResult, primary: ClaimLine, lines: list[ClaimLine],
                         rules: BillingRules) -> list[Finding]:
    billed_codes = {ln.code for ln in lines}
    note_ids = {n.id for n in (result.code.notes if result.code else [])}
    problems: list[tuple[str, str, str]] = []   # (severity, message, source)
    for rule in rules.not_with_family:
        hit = (rule["value"] in primary.modifiers) if rule["kind"] == "modifier" else (rule["value"] in billed_codes)
        if hit:
            label = f"{primary.code}-{rule['value']}" if rule["kind"] == "modifier" else rule["value"]
            problems.append((rule["severity"], f"{label}: {rule['reason']}", rule["source"]))
    limit = rules.max_family_lines
    family_lines = [ln.code for ln in lines if ln.code in rules.code_axes]
    if len(family_lines) > limit["value"]:
        problems.append((limit["severity"], f"{', '.join(family_lines)}: {limit['reason']}", limit["source"]))
    for rule in rules.add_ons:
        if rule["value"] in billed_codes and rule["requires_note"] not in note_ids:
            problems.append((rule["severity"], f"{rule['value']}: {rule['reason']}", rule["source"]))
    return [_finding(rules, "billed_claim_line_not_allowed", message, severity=severity, source=source)
            for severity, message, source in problems]


def _axis_direction(axis: str, billed: str, supported: str, rules: BillingRules) -> str:
    order = rules.axes[axis]["order"]
    if order is None:
        return "different"
    return "higher" if order.index(billed) > order.index(supported) else "lower"


def _overall_direction(axes: list[ClaimAxis]) -> str:
    kinds = {a.direction for a in axes}
    if "different" in kinds:
        return "different_region"
    if kinds == {"higher"}:
        return "billed_higher"
    if kinds == {"lower"}:
        return "billed_lower"
    return "mixed"


def _axis_query(ax: ClaimAxis, rules: BillingRules) -> str | None:
    spec = rules.axes[ax.axis]
    return spec.get("query") if ax.direction == "different" else spec.get(f"query_{ax.direction}")


def _rationale_axis(axis: str) -> str:
    return "region" if axis == "region_group" else axis   # coding.py names the region step "region"


def _value(axis: str, value: str, rules: BillingRules) -> str:
    return rules.axes[axis]["values"].get(value, value)


def _describe(cpt: str, rules: BillingRules) -> str:
    axes = rules.code_axes[cpt]
    return ", ".join(_value(a, axes[a], rules) for a in _AXES)


def _family_of(code: str, rules: BillingRules) -> str | None:
    return next((name for name, codes in rules.families.items() if code in codes), None)


def _evidence(result: NoteResult, axes) -> list[Evidence]:
    wanted = {_rationale_axis(a) for a in axes}
    spans: dict[tuple[int, int], Evidence] = {}
    for step in result.code.rationale if result.code else []:
        if step.axis in wanted:
            for ev in step.evidence:
                spans.setdefault((ev.start, ev.end), ev)
    return sorted(spans.values(), key=lambda ev: ev.start)


def _mismatch(rules: BillingRules, claim: Claim, direction: str, evidence: list[Evidence], message: str,
              query: str | None = None) -> Finding:
    claim.status, claim.direction = "mismatch", direction
    source = f"{rules.findings['billed_code_mismatch']['source']}; direction: {rules.directions[direction]['source']}"
    return _finding(rules, "billed_code_mismatch", message, evidence=evidence, query=query, source=source)


def _finding(rules: BillingRules, finding_id: str, message: str, *, evidence: list[Evidence] | None = None,
             query: str | None = None, severity: str | None = None, source: str | None = None,
             status: str = "missing") -> Finding:
    spec = rules.findings[finding_id]
    return Finding(id=finding_id, title=spec["title"], status=status, kind="coding",
                   severity=severity or spec.get("severity", "error"), message=message,
                   query=(query if query is not None else spec.get("query")) if status == "missing" else None,
                   source=source or spec["source"], evidence=evidence or [])
