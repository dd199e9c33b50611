"""FHIR output of the service: DetectedIssue Bundles built from real NoteChecker results, and OperationOutcome.

Each Bundle is checked twice: by the independent R4B models of fhir.resources (types, cardinalities,
unknown elements, primitive formats; R4B's DetectedIssue, Bundle and OperationOutcome are R4's) and by
the R4 rules those models do not enforce (required value sets, no empty or null elements, unique
fullUrls, extension and reference invariants), plus what notecheck promises: one issue per missing
finding, the evidence quoting the note's spans exactly.
"""

from __future__ import annotations

import datetime as dt
import json
import re

import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.detectedissue import DetectedIssue
from fhir.resources.R4B.operationoutcome import OperationOutcome

from notecheck.service.fhir import (
    FAMILY_SYSTEM,
    NO_CODE_CODE,
    OUT_OF_FAMILY_CODE,
    REQUIREMENT_SYSTEM,
    TEXT_SPAN_URL,
    detected_issues_bundle,
    fhir_result,
    operation_outcome,
)

# Small hand-written notes (no patient data) with known outcomes.
COMPLETE = (
    "PROCEDURE: Lumbar interlaminar epidural steroid injection at L5-S1 under fluoroscopic guidance.\n"
    "DIAGNOSIS: Lumbosacral radiculopathy, left S1 (M54.17).\n"
    "INDICATIONS: Left leg pain radiating to the foot for 10 weeks. MRI shows a left L5-S1 disc protrusion "
    "contacting the left S1 nerve root, concordant with the symptoms. Symptoms persisted despite 6 weeks of "
    "physical therapy and NSAIDs. Pre-procedure pain 7/10 on the NRS.\n"
    "CONSENT: Risks, benefits and alternatives were discussed and written informed consent was obtained.\n"
    "TECHNIQUE: Prone. Prepped and draped. The L5-S1 interspace was identified under AP fluoroscopy. A 20G Tuohy "
    "needle was advanced via a left paramedian approach using loss of resistance. Omnipaque 240, 1.5 mL, showed "
    "epidural spread without vascular uptake. Depo-Medrol 80 mg (1 mL) with 2 mL preservative-free saline was "
    "injected.\n"
    "COMPLICATIONS: None.\n"
    "DISPOSITION: Post-procedure pain 2/10 on the NRS. Strength at baseline. Discharged home in stable condition.\n"
)
# Short conservative care and a steroid without a dose: missing findings that carry evidence.
INCOMPLETE = (
    "PROCEDURE: L4-L5 interlaminar epidural steroid injection under fluoroscopic guidance.\n"
    "HISTORY: Low back pain with right leg radiation. 2 weeks of PT.\n"
    "TECHNIQUE: Tuohy needle, loss of resistance. Depo-Medrol was injected.\n"
)
TRANSFORAMINAL = (
    "PROCEDURE: Right L5-S1 transforaminal epidural steroid injection under fluoroscopic guidance.\n"
    "Consent obtained. Pre-procedure pain 8/10. Dexamethasone 10 mg injected. Post-procedure pain 3/10.\n"
)
NO_LEVEL = (
    "PROCEDURE: Interlaminar epidural steroid injection under fluoroscopic guidance.\n"
    "Consent obtained. Pre-procedure pain 8/10. Depo-Medrol 80 mg in 2 mL injected. Post-procedure pain 3/10.\n"
)
NOT_EPIDURAL = "The patient came in for a flu shot.\n"

NOTE_REF = "DocumentReference/draft-42"
PATIENT_REF = "Patient/p-789"
WHEN = dt.datetime(2026, 3, 1, 14, 5, tzinfo=dt.timezone.utc)

_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
_DATETIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})")
_URI = re.compile(r"\S+")


@pytest.fixture(scope="module")
def results(checker):
    """The engine's real results for the notes above. `checker` is the suite's one NoteChecker (conftest,
    session scope): building it takes ~1.5 s, so this module shares it rather than building its own."""
    notes = {"complete": COMPLETE, "incomplete": INCOMPLETE, "transforaminal": TRANSFORAMINAL,
             "no_level": NO_LEVEL, "not_epidural": NOT_EPIDURAL}
    return {name: (text, checker.check(text, f"note-{name}")) for name, text in notes.items()}


@pytest.fixture(scope="module")
def requirement_ids(checker) -> set[str]:
    # documentation requirements and the coverage / coding-compliance rules
    return {req.id for req in checker.requirements} | {rule.id for rule in checker.coverage.rules}


# -- R4 rules the models do not enforce ----------------------------------------------------------------


def assert_no_empty_elements(value, path="$"):
    """FHIR JSON: no null, no empty string, array or object anywhere (ele-1, json rules)."""
    assert value is not None, f"{path} is null"
    if isinstance(value, dict):
        assert value, f"{path} is an empty object"
        for key, item in value.items():
            assert_no_empty_elements(item, f"{path}.{key}")
    elif isinstance(value, list):
        assert value, f"{path} is an empty array"
        for i, item in enumerate(value):
            assert_no_empty_elements(item, f"{path}[{i}]")
    elif isinstance(value, str):
        assert value.strip(), f"{path} is an empty string"


def assert_extensions_valid(value, path="$"):
    """ext-1 (value[x] or nested extensions, not both) and an absolute url on every extension."""
    if isinstance(value, dict):
        for ext in value.get("extension", []):
            assert _URI.fullmatch(ext["url"]), path
            has_value = any(key.startswith("value") for key in ext)
            assert has_value != ("extension" in ext), f"{path}: extension {ext['url']} breaks ext-1"
        for key, item in value.items():
            assert_extensions_valid(item, f"{path}.{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            assert_extensions_valid(item, f"{path}[{i}]")


def assert_valid_bundle(bundle: dict) -> list[dict]:
    """Validate a DetectedIssue Bundle; returns its DetectedIssue resources."""
    json.dumps(bundle, allow_nan=False)  # plain JSON
    Bundle.model_validate(bundle)
    assert_no_empty_elements(bundle)
    assert_extensions_valid(bundle)
    assert bundle["resourceType"] == "Bundle" and bundle["type"] == "collection"
    assert _DATETIME.fullmatch(bundle["timestamp"])
    assert "total" not in bundle  # bdl-1: search and history only
    entries = bundle.get("entry", [])
    full_urls = [entry["fullUrl"] for entry in entries]
    assert len(set(full_urls)) == len(full_urls)  # bdl-7
    issues = []
    for entry in entries:
        assert set(entry) == {"fullUrl", "resource"}  # bdl-2/3/4: no search, request or response
        issue = entry["resource"]
        DetectedIssue.model_validate(issue)
        assert issue["resourceType"] == "DetectedIssue"
        assert _ID.fullmatch(issue["id"]) and entry["fullUrl"] == f"urn:uuid:{issue['id']}"
        assert issue["status"] in {"registered", "preliminary", "final", "amended", "corrected", "cancelled",
                                   "entered-in-error", "unknown"}
        assert issue["severity"] in {"high", "moderate", "low"}
        assert _DATETIME.fullmatch(issue["identifiedDateTime"])
        assert issue["text"]["status"] == "generated"
        assert issue["text"]["div"].startswith('<div xmlns="http://www.w3.org/1999/xhtml">')
        for ref in [issue.get("patient"), issue["author"], *issue.get("implicated", []),
                    *(d for ev in issue.get("evidence", []) for d in ev["detail"])]:
            if ref is not None:
                assert {"reference", "identifier", "display"} & set(ref), f"empty Reference in {issue['id']}"
        issues.append(issue)
    return issues


def requirement_code(issue: dict) -> str:
    codings = [c for c in issue["code"]["coding"] if c["system"] == REQUIREMENT_SYSTEM]
    assert len(codings) == 1
    return codings[0]["code"]


def assert_evidence_quotes(issue: dict, text: str, spans) -> None:
    """Each evidence entry points at one of the finding's spans and quotes it exactly."""
    got = []
    for evidence in issue.get("evidence", []):
        (detail,) = evidence["detail"]
        (span,) = [e for e in detail["extension"] if e["url"] == TEXT_SPAN_URL]
        bounds = {e["url"]: e["valueInteger"] for e in span["extension"]}
        start, end = bounds["start"], bounds["end"]
        assert detail["display"] == f'"{text[start:end]}" [{start}-{end}]'
        assert detail.get("reference") == NOTE_REF
        got.append((start, end))
    assert got == [(ev.start, ev.end) for ev in spans]


# -- DetectedIssue Bundles -----------------------------------------------------------------------------


def test_incomplete_note_gives_one_issue_per_missing_finding(results, requirement_ids):
    text, result = results["incomplete"]
    assert result.status == "ok" and result.code.cpt  # a code is supported: no coding issue
    bundle = detected_issues_bundle(result, note_reference=NOTE_REF, patient_reference=PATIENT_REF)
    issues = assert_valid_bundle(bundle)

    missing = [f for f in result.findings if f.status == "missing"]
    assert len(missing) >= 5
    assert [requirement_code(i) for i in issues] == [f.id for f in missing]
    assert set(requirement_code(i) for i in issues) <= requirement_ids
    for issue, finding in zip(issues, missing):
        assert issue["status"] == "final"
        assert issue["severity"] == {"error": "high", "warning": "moderate"}[finding.severity]
        assert issue["detail"] == finding.message
        assert issue["code"]["coding"][0]["display"] == finding.title
        assert issue["implicated"] == [{"reference": NOTE_REF, "type": "DocumentReference"}]
        assert issue["patient"] == {"reference": PATIENT_REF}
        assert issue["author"]["type"] == "Device"
        assert_evidence_quotes(issue, text, finding.evidence)
        extensions = {e["url"]: e["valueString"] for e in issue.get("extension", [])}
        assert finding.source in extensions.values()
        if finding.query:
            assert finding.query in extensions.values()
    # The spans that show why a requirement is unmet are quoted: the short course of therapy, the undosed drug.
    quoted = {d["display"] for i in issues for ev in i.get("evidence", []) for d in ev["detail"]}
    assert any('"2 weeks"' in q for q in quoted) and any('"Depo-Medrol"' in q for q in quoted)
    assert {"high", "moderate"} <= {i["severity"] for i in issues}


def test_complete_note_gives_an_empty_bundle(results):
    _, result = results["complete"]
    assert result.complete and not [f for f in result.findings if f.status == "missing"]
    bundle = detected_issues_bundle(result, note_reference=NOTE_REF)
    assert assert_valid_bundle(bundle) == []
    assert "entry" not in bundle  # no empty array


def test_out_of_family_note_adds_a_high_issue_quoting_the_family(results):
    text, result = results["transforaminal"]
    assert result.code.cpt is None and result.code.out_of_family == "transforaminal"
    issues = assert_valid_bundle(detected_issues_bundle(result, note_reference=NOTE_REF))
    first = issues[0]
    assert requirement_code(first) == OUT_OF_FAMILY_CODE and first["severity"] == "high"
    assert {"system": FAMILY_SYSTEM, "code": "transforaminal"} in first["code"]["coding"]
    assert "64479-64484" in first["detail"]
    family_step = next(s for s in result.code.rationale if s.axis == "family")
    assert family_step.evidence
    assert_evidence_quotes(first, text, family_step.evidence)
    missing = [f.id for f in result.findings if f.status == "missing"]
    assert [requirement_code(i) for i in issues[1:]] == missing


def test_note_without_a_level_adds_a_no_code_issue(results):
    _, result = results["no_level"]
    assert result.status == "ok" and result.code.cpt is None and result.code.out_of_family is None
    issues = assert_valid_bundle(detected_issues_bundle(result, note_reference=NOTE_REF))
    assert requirement_code(issues[0]) == NO_CODE_CODE and issues[0]["severity"] == "high"
    assert "level" in issues[0]["detail"]
    assert "evidence" not in issues[0]


def test_without_references_and_as_preliminary(results):
    """No note reference: evidence is quoted by display alone, no implicated/patient; a draft can be preliminary."""
    text, result = results["incomplete"]
    issues = assert_valid_bundle(detected_issues_bundle(result, status="preliminary"))
    assert {i["status"] for i in issues} == {"preliminary"}
    assert all("implicated" not in i and "patient" not in i for i in issues)
    for issue in issues:
        for evidence in issue.get("evidence", []):
            detail = evidence["detail"][0]
            assert "reference" not in detail
            start, end = (e["valueInteger"] for e in detail["extension"][0]["extension"])
            assert detail["display"].startswith(f'"{text[start:end]}"')


def test_dict_input_and_stable_ids(results):
    """The JSON output contract gives the same resources as the model; ids are stable across calls, so a
    client that stores them does not duplicate issues when the hook fires again."""
    _, result = results["incomplete"]
    from_model = detected_issues_bundle(result, note_reference=NOTE_REF, identified=WHEN)
    from_dict = detected_issues_bundle(result.model_dump(mode="json"), note_reference=NOTE_REF, identified=WHEN)
    assert from_model["entry"] == from_dict["entry"]
    assert from_model["timestamp"] == "2026-03-01T14:05:00Z"
    assert {e["resource"]["identifiedDateTime"] for e in from_model["entry"]} == {"2026-03-01T14:05:00Z"}
    other_note = detected_issues_bundle(result, note_reference="DocumentReference/draft-43", identified=WHEN)
    assert not {e["fullUrl"] for e in other_note["entry"]} & {e["fullUrl"] for e in from_model["entry"]}


def test_error_result_is_refused_and_becomes_an_operation_outcome(results):
    text, result = results["not_epidural"]
    assert result.status == "error"
    with pytest.raises(ValueError, match="note-not_epidural"):
        detected_issues_bundle(result)
    outcome = fhir_result(result, note_reference=NOTE_REF)
    OperationOutcome.model_validate(outcome)
    assert outcome["issue"][0]["code"] == "processing" and "note-not_epidural" in outcome["issue"][0]["diagnostics"]
    assert text.strip() not in json.dumps(outcome)
    assert fhir_result(results["incomplete"][1])["resourceType"] == "Bundle"


@pytest.mark.parametrize("kwargs, message", [
    ({"note_reference": "draft 42"}, "note_reference must be a FHIR reference"),
    ({"note_reference": ""}, "note_reference must be a FHIR reference"),
    ({"patient_reference": "p-789"}, "patient_reference must be a FHIR reference"),
    ({"status": "done"}, "is not a DetectedIssue status"),
    ({"identified": dt.datetime(2026, 3, 1)}, "timezone-aware"),
])
def test_bad_arguments_are_clear_value_errors(results, kwargs, message):
    with pytest.raises(ValueError, match=message):
        detected_issues_bundle(results["incomplete"][1], **kwargs)


def test_a_malformed_result_dict_is_refused_without_echoing_it(results):
    text, result = results["incomplete"]
    bad = result.model_dump(mode="json")
    bad["findings"][0]["evidence"] = [{"start": "x", "end": 3, "text": text[:40]}]
    with pytest.raises(ValueError) as err:
        detected_issues_bundle(bad)
    assert "findings.0.evidence.0.start" in str(err.value) and text[:40] not in str(err.value)
    with pytest.raises(ValueError, match="expected a NoteResult"):
        detected_issues_bundle(["not", "a", "result"])  # type: ignore[arg-type]


# -- OperationOutcome ------------------------------------------------------------------------------------


def test_operation_outcome_shape():
    outcome = operation_outcome("request 4db3546f: DocumentReference draft-42 has no text/plain attachment",
                                code="not-supported")
    OperationOutcome.model_validate(outcome)
    assert_no_empty_elements(outcome)
    assert outcome["resourceType"] == "OperationOutcome"
    (issue,) = outcome["issue"]
    assert issue == {"severity": "error", "code": "not-supported",
                     "diagnostics": "request 4db3546f: DocumentReference draft-42 has no text/plain attachment"}
    assert operation_outcome("body too large")["issue"][0]["code"] == "invalid"  # the default
    warning = operation_outcome("note n1: <not> & \"odd\"", code="processing", severity="warning")
    OperationOutcome.model_validate(warning)
    assert "&lt;not&gt; &amp;" in warning["text"]["div"]  # narrative is escaped XHTML


@pytest.mark.parametrize("kwargs, message", [
    ({"code": "bogus"}, "not an OperationOutcome issue type"),
    ({"severity": "critical"}, "not an OperationOutcome severity"),
])
def test_operation_outcome_refuses_codes_outside_the_value_sets(kwargs, message):
    with pytest.raises(ValueError, match=message):
        operation_outcome("request r1: bad", **kwargs)
    with pytest.raises(ValueError, match="non-empty message"):
        operation_outcome("  ")


# -- the checks above catch broken output ----------------------------------------------------------------


def _break_status(b):
    b["entry"][0]["resource"]["status"] = "done"


def _break_severity(b):
    b["entry"][0]["resource"]["severity"] = "error"


def _empty_evidence(b):
    b["entry"][0]["resource"]["evidence"] = []


def _unknown_element(b):
    b["entry"][0]["resource"]["mitigationNote"] = "x"


def _duplicate_full_url(b):
    b["entry"][1]["fullUrl"] = b["entry"][0]["fullUrl"]


def _extension_with_both(b):
    b["entry"][0]["resource"]["extension"][0]["extension"] = [{"url": "a", "valueString": "b"}]


def _empty_reference(b):
    b["entry"][0]["resource"]["implicated"] = [{"type": "DocumentReference"}]


@pytest.mark.parametrize("breaker", [_break_status, _break_severity, _empty_evidence, _unknown_element,
                                     _duplicate_full_url, _extension_with_both, _empty_reference])
def test_the_validation_rejects_broken_bundles(results, breaker):
    bundle = detected_issues_bundle(results["incomplete"][1], note_reference=NOTE_REF)
    assert_valid_bundle(bundle)
    breaker(bundle)
    with pytest.raises((AssertionError, ValueError)):  # pydantic's ValidationError is a ValueError
        assert_valid_bundle(bundle)
