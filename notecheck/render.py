"""Human-readable verdict for one note (`notecheck check --format text`).

This report is what the user asked for, so it quotes the note's own words as evidence. Those quotes
belong on stdout only: nothing here is ever written to stderr or a log. Markers are plain ASCII so the
report survives any terminal or pager.
"""

from __future__ import annotations

from .record import Evidence, Finding, NoteResult

MAX_QUOTE_CHARS = 60
INDENT = "  "

_STATUS_MARKERS = {"met": "[met]", "missing": "[MISSING]", "not_applicable": "[n/a]"}
# Missing payer-required elements first: they decide COMPLETE/INCOMPLETE and need the reader first.
_STATUS_ORDER = {"missing": 0, "met": 1, "not_applicable": 2}
_SEVERITY_ORDER = {"error": 0, "warning": 1}


def render_text(result: NoteResult, note_text: str | None = None) -> str:
    """Render one result. `note_text`, when given, is used to flag evidence whose span does not
    match the text it claims to quote (an engine bug a reviewer should not have to discover)."""
    if result.status == "error":
        lines = [f"== {result.note_id}: ERROR", f"{INDENT}ERROR: {result.error or 'unknown error'}"]
        lines += _warning_lines(result)
        return "\n".join(lines)

    verdict = "COMPLETE" if result.complete else "INCOMPLETE"
    lines = [f"== {result.note_id}: {verdict}" + (f" (payer profile {result.profile})" if result.profile else "")]
    lines += _code_lines(result, note_text)
    if result.claim is not None:
        claim = result.claim
        lines.append(f"{INDENT}Claim: {claim.billed} -> {claim.status or 'not checked'}"
                     + (f" ({claim.direction.replace('_', ' ')})" if claim.direction else ""))
    lines += _finding_lines(result.findings, note_text)
    lines += _warning_lines(result)
    return "\n".join(lines)


def _code_lines(result: NoteResult, note_text: str | None) -> list[str]:
    code = result.code
    if code is None:
        return [f"{INDENT}Code: no supportable code"]
    if code.cpt:
        head = f"{INDENT}Code: {code.cpt}"
    elif code.out_of_family:
        head = f"{INDENT}Code: none of 62320-62327 applies: {code.out_of_family}"
    else:
        head = f"{INDENT}Code: no supportable code"
    lines = [head]

    for step in code.rationale:
        lines.append(f"{INDENT * 2}{step.axis}: {step.value} - {step.reason}")
        lines += _evidence_lines(step.evidence, note_text, INDENT * 3)
    if code.modifiers:
        lines.append(f"{INDENT * 2}Modifiers: {', '.join(code.modifiers)}")
    for note in code.notes:
        lines.append(f"{INDENT * 2}Note {note.id}: {note.message} ({note.source})")
    return lines


def _finding_lines(findings: list[Finding], note_text: str | None) -> list[str]:
    if not findings:
        return []
    lines = [f"{INDENT}Findings:"]
    ordered = sorted(
        findings, key=lambda f: (_STATUS_ORDER.get(f.status, 9), _SEVERITY_ORDER.get(f.severity, 9))
    )
    for f in ordered:
        marker = _STATUS_MARKERS.get(f.status, f"[{f.status}]")
        kind = "" if f.kind == "documentation" else f" [{f.kind}]"
        lines.append(f"{INDENT * 2}{marker} {f.severity}{kind}: {f.title} ({f.id})")
        if f.status == "missing":
            if f.message:
                lines.append(f"{INDENT * 3}{f.message}")
            if f.query:
                lines.append(f"{INDENT * 3}Ask: {f.query}")
        lines += _evidence_lines(f.evidence, note_text, INDENT * 3)
    return lines


def _evidence_lines(evidence: list[Evidence], note_text: str | None, indent: str) -> list[str]:
    lines = []
    for ev in evidence:
        line = f"{indent}{quote(ev.text)} [{ev.start}-{ev.end}]"
        if note_text is not None and note_text[ev.start : ev.end] != ev.text:
            line += " (span does not match the note text)"
        lines.append(line)
    return lines


def quote(text: str, limit: int = MAX_QUOTE_CHARS) -> str:
    """Quote a span on one line: newlines/tabs become spaces and long spans are cut to `limit`."""
    flat = " ".join(text.split())
    if len(flat) > limit:
        flat = flat[: limit - 3].rstrip() + "..."
    return f'"{flat}"'


def _warning_lines(result: NoteResult) -> list[str]:
    return [f"{INDENT}Warning: {w}" for w in result.warnings]
