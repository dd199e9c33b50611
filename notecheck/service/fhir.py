"""notecheck findings as FHIR R4: a Bundle of DetectedIssue resources, and OperationOutcome for errors.

DetectedIssue (R4, trial use) carries documentation findings: one per `missing` requirement finding, plus
one when the note supports no 62320-62327 code (out of family, or no region/level documented). `met` and
`not_applicable` findings are not issues and are left out, so a complete, in-family note gives a Bundle
with no entries. OperationOutcome carries processing results (the note could not be read, the request was
invalid), never documentation findings (ecosystem.md §B.5).

Identifiers this module defines (FHIR has no standard ones for them):
- `REQUIREMENT_SYSTEM` - the CodeSystem of DetectedIssue.code: a requirement id of
  patterns/requirements.yaml (e.g. `consent`), or `code_out_of_family` / `code_not_supported` for the
  coding outcome.
- `FAMILY_SYSTEM` - the out-of-family procedure family (e.g. `transforaminal`), a second coding.
- `TEXT_SPAN_URL` - an extension on each evidence Reference with `start` and `end` (valueInteger):
  character offsets into the decoded note, end exclusive, so `note[start:end]` is the quoted text.
  FHIR has no element for character offsets; the quote is also in the Reference's `display`.
- `RULE_SOURCE_URL` / `CLARIFICATION_QUERY_URL` - valueString extensions with the rule's citation (LCD /
  billing article) and the question to put to the physician. DetectedIssue.reference is a `uri` and the
  citations are prose, so they cannot go there.

The resources hold the note's evidence quotes (that is their point), so they are PHI like the note: the
caller returns them to the client that sent the note and never logs them.
"""

from __future__ import annotations

import datetime as dt
import html
import re
import uuid
from collections.abc import Iterable

from pydantic import ValidationError

from .. import __version__
from ..record import Evidence, NoteResult

REQUIREMENT_SYSTEM = "https://notecheck.example/requirement"
FAMILY_SYSTEM = "https://notecheck.example/out-of-family"
_STRUCTURE = "https://notecheck.example/fhir/StructureDefinition/"
TEXT_SPAN_URL = _STRUCTURE + "notecheck-text-span"
RULE_SOURCE_URL = _STRUCTURE + "notecheck-rule-source"
CLARIFICATION_QUERY_URL = _STRUCTURE + "notecheck-clarification-query"

OUT_OF_FAMILY_CODE = "code_out_of_family"
NO_CODE_CODE = "code_not_supported"

# R4 value sets (required bindings) of the elements this module fills.
DETECTED_ISSUE_STATUS = frozenset({"registered", "preliminary", "final", "amended", "corrected", "cancelled",
                                   "entered-in-error", "unknown"})
DETECTED_ISSUE_SEVERITY = frozenset({"high", "moderate", "low"})
ISSUE_SEVERITY = frozenset({"fatal", "error", "warning", "information"})
ISSUE_TYPE = frozenset({
    "invalid", "structure", "required", "value", "invariant", "security", "login", "unknown", "expired",
    "forbidden", "suppressed", "processing", "not-supported", "duplicate", "multiple-matches", "not-found",
    "deleted", "too-long", "code-invalid", "extension", "too-costly", "business-rule", "conflict",
    "transient", "lock-error", "no-store", "exception", "timeout", "incomplete", "throttled", "informational",
})

# Finding severity -> DetectedIssue.severity: a payer-required element missing risks denial (high); a
# good-practice gap is moderate.
_SEVERITY = {"error": "high", "warning": "moderate"}

# Fixed namespace so a DetectedIssue's id is the same each time the same note yields the same finding:
# a client that stores the Bundle's resources does not pile up duplicates on re-invocation.
_NAMESPACE = uuid.UUID("9a7f3c52-1d0e-4c6b-8f51-6a2e0b7d4c19")
# A FHIR Reference: Type/id (optionally versioned), an absolute URL, or a urn:uuid / urn:oid.
_REFERENCE = re.compile(r"[A-Z][A-Za-z]+/[A-Za-z0-9\-.]{1,64}(/_history/[A-Za-z0-9\-.]{1,64})?"
                        r"|https?://\S+|urn:(uuid|oid):\S+")


def detected_issues_bundle(result: dict | NoteResult, *, note_reference: str | None = None,
                           patient_reference: str | None = None, status: str = "final",
                           identified: dt.datetime | None = None) -> dict:
    """A FHIR R4 Bundle (type `collection`) of DetectedIssue resources for one checked note.

    `note_reference` (e.g. "DocumentReference/draft-42") becomes each issue's `implicated` and the target
    of its evidence References; `patient_reference` its `patient`. `status` is "final" by default; pass
    "preliminary" for a draft the physician is still editing. Raises ValueError (message without note
    text) when `result` is not a NoteResult, is an error result (use `operation_outcome`), or an argument
    is not valid FHIR."""
    note = _as_result(result)
    if note.status != "ok":
        raise ValueError(note.error or f"note {note.note_id} could not be checked")
    if status not in DETECTED_ISSUE_STATUS:
        raise ValueError(f"status {status!r} is not a DetectedIssue status "
                         f"({', '.join(sorted(DETECTED_ISSUE_STATUS))})")
    for name, value in (("note_reference", note_reference), ("patient_reference", patient_reference)):
        if value is not None and not (isinstance(value, str) and _REFERENCE.fullmatch(value)):
            raise ValueError(f"{name} must be a FHIR reference such as DocumentReference/<id>, an absolute URL "
                             "or a urn:uuid")
    when = _instant(identified)
    context = _Context(note.note_id, note_reference, patient_reference, status, when)

    issues = [context.issue(**spec) for spec in _coding_issue(note)]
    for finding in note.findings:
        if finding.status != "missing":
            continue
        issues.append(context.issue(
            code=finding.id, title=finding.title, severity=_SEVERITY[finding.severity], detail=finding.message,
            evidence=finding.evidence,
            extensions=[(RULE_SOURCE_URL, finding.source), (CLARIFICATION_QUERY_URL, finding.query)]))
    bundle = {"resourceType": "Bundle", "id": str(uuid.uuid4()), "type": "collection", "timestamp": when}
    if issues:  # FHIR forbids empty arrays: no `entry` at all when nothing is wrong
        bundle["entry"] = [{"fullUrl": f"urn:uuid:{issue['id']}", "resource": issue} for issue in issues]
    return bundle


def operation_outcome(message: str, *, code: str = "invalid", severity: str = "error") -> dict:
    """A FHIR R4 OperationOutcome with one issue. `message` goes to `diagnostics` (and the narrative): it
    must name the note or request id, never quote the note. Raises ValueError for a code or severity
    outside the R4 value sets or an empty message."""
    if severity not in ISSUE_SEVERITY:
        raise ValueError(f"severity {severity!r} is not an OperationOutcome severity "
                         f"({', '.join(sorted(ISSUE_SEVERITY))})")
    if code not in ISSUE_TYPE:
        raise ValueError(f"code {code!r} is not an OperationOutcome issue type (http://hl7.org/fhir/issue-type)")
    if not isinstance(message, str) or not message.strip():
        raise ValueError("an OperationOutcome needs a non-empty message")
    message = message.strip()
    return {"resourceType": "OperationOutcome", "text": _narrative(message),
            "issue": [{"severity": severity, "code": code, "diagnostics": message}]}


def fhir_result(result: dict | NoteResult, *, note_reference: str | None = None,
                patient_reference: str | None = None, status: str = "final") -> dict:
    """The FHIR answer for one checked note: the DetectedIssue Bundle, or an OperationOutcome (code
    `processing`) carrying the error when the note could not be checked (empty, not English, not an
    epidural note, ...)."""
    note = _as_result(result)
    if note.status != "ok":
        return operation_outcome(note.error or f"note {note.note_id} could not be checked", code="processing")
    return detected_issues_bundle(note, note_reference=note_reference, patient_reference=patient_reference,
                                  status=status)


# -- building ------------------------------------------------------------------------------------------


class _Context:
    """What every DetectedIssue of one note shares (note, patient, status, time)."""

    def __init__(self, note_id: str, note_reference: str | None, patient_reference: str | None, status: str,
                 when: str) -> None:
        self.note_id, self.note_reference, self.patient_reference = note_id, note_reference, patient_reference
        self.status, self.when = status, when

    def issue(self, code: str, title: str, severity: str, detail: str, evidence: Iterable[Evidence],
              *, codings: list[dict] | None = None,
              extensions: list[tuple[str, str | None]] | None = None) -> dict:
        evidence = list(evidence)
        spans = ",".join(f"{ev.start}-{ev.end}" for ev in evidence)
        key = "\x1f".join((self.note_reference or "", self.note_id, code, detail, spans))
        issue: dict = {"resourceType": "DetectedIssue", "id": str(uuid.uuid5(_NAMESPACE, key)),
                       "text": _narrative(f"{title}: {detail}")}
        ext = [{"url": url, "valueString": value} for url, value in extensions or [] if value and value.strip()]
        if ext:
            issue["extension"] = ext
        issue["status"] = self.status
        issue["code"] = {"coding": [{"system": REQUIREMENT_SYSTEM, "code": code, "display": title}, *(codings or [])],
                         "text": title}
        issue["severity"] = severity
        if self.patient_reference:
            issue["patient"] = {"reference": self.patient_reference}
        issue["identifiedDateTime"] = self.when
        issue["author"] = {"type": "Device", "display": f"notecheck {__version__}"}
        if self.note_reference:
            issue["implicated"] = [{"reference": self.note_reference, "type": "DocumentReference"}
                                   if self.note_reference.startswith("DocumentReference/")
                                   else {"reference": self.note_reference}]
        if evidence:
            issue["evidence"] = [{"detail": [self._span(ev)]} for ev in evidence]
        issue["detail"] = detail
        return issue

    def _span(self, ev: Evidence) -> dict:
        """A Reference to the note quoting one span, its offsets in the text-span extension."""
        ref: dict = {"extension": [{"url": TEXT_SPAN_URL, "extension": [
            {"url": "start", "valueInteger": ev.start}, {"url": "end", "valueInteger": ev.end}]}]}
        if self.note_reference:
            ref["reference"] = self.note_reference
        ref["display"] = f'"{ev.text}" [{ev.start}-{ev.end}]'
        return ref


def _coding_issue(note: NoteResult) -> list[dict]:
    """`_Context.issue` arguments for a note that supports no 6232x code (none when one is supported)."""
    code = note.code
    if code is not None and code.cpt:
        return []
    if code is not None and code.out_of_family:
        family = code.out_of_family
        step = next((s for s in code.rationale if s.axis == "family"), None)
        reason = step.reason if step else f"{family}: not 62320-62327"
        return [{"code": OUT_OF_FAMILY_CODE, "title": "Procedure outside CPT 62320-62327", "severity": "high",
                 "detail": f"The note documents a procedure outside the interlaminar/caudal epidural family: {reason}.",
                 "evidence": step.evidence if step else [],
                 "codings": [{"system": FAMILY_SYSTEM, "code": family}],
                 "extensions": [(RULE_SOURCE_URL, code.notes[0].source if code.notes else None)]}]
    reasons = [s.reason for s in code.rationale if s.axis != "code"] if code else []
    return [{"code": NO_CODE_CODE, "title": "No CPT 62320-62327 code supported", "severity": "high",
             "detail": " ".join(reasons) or "The documentation supports no code in CPT 62320-62327.",
             "evidence": []}]


def _as_result(result: dict | NoteResult) -> NoteResult:
    if isinstance(result, NoteResult):
        return result
    if not isinstance(result, dict):
        raise ValueError(f"expected a NoteResult or its JSON dict, got {type(result).__name__}")
    try:
        return NoteResult.model_validate(result)
    except ValidationError as exc:  # its message would echo input values, which may quote the note
        where = sorted({".".join(str(p) for p in err["loc"]) for err in exc.errors()})[:5]
        raise ValueError(f"not a notecheck result: {exc.error_count()} invalid field(s) at "
                         f"{', '.join(where)}") from None


def _instant(when: dt.datetime | None) -> str:
    """An R4 dateTime/instant: seconds precision with a timezone (FHIR requires one when a time is given)."""
    when = when or dt.datetime.now(dt.timezone.utc)
    if when.tzinfo is None:
        raise ValueError("identified must be timezone-aware")
    return when.astimezone(dt.timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def _narrative(text: str) -> dict:
    return {"status": "generated", "div": f'<div xmlns="http://www.w3.org/1999/xhtml">{html.escape(text)}</div>'}

