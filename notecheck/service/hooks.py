"""CDS Hooks request models and finding the note in a hook request.

The note may be a DocumentReference (inline text/plain attachment, decoded by the batch audit's FHIR reader so
both front ends accept exactly the same attachments), a Composition (narrative sections, XHTML stripped to
text), or a Bundle holding either (a prefetch search answer is a searchset Bundle; a FHIR document is a
"document" Bundle whose first entry is its Composition). Where it is looked for comes from
patterns/cds_services.yaml (`note_keys`). Problems raise `NoteProblem` with the HTTP status to answer and a
message that names the resource id and where it was found, never the note's text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ..audit._fhir import document_note


class FhirAuthorization(BaseModel):
    model_config = ConfigDict(extra="allow")

    access_token: str
    token_type: str
    expires_in: int
    scope: str
    subject: str


class HookRequest(BaseModel):
    """A CDS Hooks 2.0 service call. Unknown fields are kept (the spec lets hooks and clients extend it)."""

    model_config = ConfigDict(extra="allow")

    hook: str = Field(min_length=1, description="the hook that fired, e.g. order-sign")
    hookInstance: str = Field(min_length=1, max_length=200,  # noqa: N815 - CDS Hooks field names
                              description="UUID of this hook invocation (card uuids derive from it)")
    fhirServer: str | None = None  # noqa: N815
    fhirAuthorization: FhirAuthorization | None = None  # noqa: N815
    context: dict[str, Any]
    prefetch: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _server_with_authorization(self) -> HookRequest:
        if self.fhirAuthorization is not None and not self.fhirServer:
            raise ValueError("fhirServer is required when fhirAuthorization is sent (CDS Hooks 2.0)")
        return self


class FeedbackRequest(BaseModel):
    """CDS Hooks feedback: each item names a card uuid and its outcome (validated by the feedback store)."""

    feedback: list[dict[str, Any]] = Field(min_length=1)


@dataclass
class FoundNote:
    note_id: str
    text: str
    where: str  # e.g. "context.draftNote" or "prefetch.note entry 1"
    resource_type: str
    reference: str | None  # "DocumentReference/draft-42", for FHIR output
    warnings: list[str] = field(default_factory=list)


class NoteProblem(Exception):
    def __init__(self, status: int, error: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.error, self.detail = status, error, detail


NOTE_TYPES = ("DocumentReference", "Composition")


def find_note(request: HookRequest, note_keys: dict[str, list[str]], prefetch_keys: list[str],
              max_bytes: int) -> FoundNote:
    """The note this request is about, or NoteProblem: 412 when there is none, 422 when it is unusable."""
    for where, resource in _candidates(request, note_keys, prefetch_keys):
        found = _note_in(resource, where, max_bytes)
        if found is not None:
            return found
    places = ", ".join([f"context.{k}" for k in note_keys.get("context", [])]
                       + [f"prefetch.{k}" for k in dict.fromkeys([*prefetch_keys, *note_keys.get("prefetch", [])])])
    raise NoteProblem(412, "note not found",
                      f"hook {request.hookInstance}: no DocumentReference, Composition or Bundle holding one was "
                      f"found in context or prefetch (looked in {places} and every other value); this service "
                      "does not query the FHIR server, so send the note in context or prefetch")


def _candidates(request: HookRequest, note_keys: dict[str, list[str]], prefetch_keys: list[str]):
    context = request.context
    named = [k for k in note_keys.get("context", []) if k in context]
    for key in [*named, *(k for k in context if k not in named)]:
        if isinstance(context[key], dict):
            yield f"context.{key}", context[key]
    prefetch = request.prefetch or {}
    order = list(dict.fromkeys([*prefetch_keys, *note_keys.get("prefetch", []), *prefetch]))
    for key in order:
        if isinstance(prefetch.get(key), dict):  # CDS Hooks lets a client send null for "nothing found"
            yield f"prefetch.{key}", prefetch[key]


def _note_in(resource: dict, where: str, max_bytes: int) -> FoundNote | None:
    kind = resource.get("resourceType")
    if kind == "DocumentReference":
        return _from_document_reference(resource, where, max_bytes)
    if kind == "Composition":
        return _from_composition(resource, where, max_bytes, None)
    if kind == "Bundle":
        return _from_bundle(resource, where, max_bytes)
    return None  # e.g. order-sign's draftOrders Bundle holds ServiceRequests: not a note, keep looking


def _from_bundle(bundle: dict, where: str, max_bytes: int) -> FoundNote | None:
    entries = bundle.get("entry") if isinstance(bundle.get("entry"), list) else []
    resources = [(n, e.get("resource")) for n, e in enumerate(entries, 1)
                 if isinstance(e, dict) and isinstance(e.get("resource"), dict)]
    notes = [(n, r) for n, r in resources if r.get("resourceType") in NOTE_TYPES]
    if not notes:
        nested = [(n, r) for n, r in resources if r.get("resourceType") == "Bundle"]
        for n, inner in nested:
            found = _from_bundle(inner, f"{where} entry {n}", max_bytes)
            if found:
                return found
        return None
    n, resource = notes[0]
    entry_where = f"{where} entry {n}"
    if resource["resourceType"] == "Composition":
        return _from_composition(resource, entry_where, max_bytes, bundle)
    found = _from_document_reference(resource, entry_where, max_bytes)
    if len(notes) > 1:
        found.warnings.append(f"{where} holds {len(notes)} notes; the first ({entry_where}) was checked")
    return found


def _from_document_reference(resource: dict, where: str, max_bytes: int) -> FoundNote:
    note = document_note(resource, fallback_id="note", locator=where, max_bytes=max_bytes)
    if note.error is not None or note.text is None:
        status_error = "note too large" if "too large" in (note.error or "") else "note cannot be read"
        raise NoteProblem(413 if status_error == "note too large" else 422, status_error, note.error or "no text")
    rid = resource.get("id") if isinstance(resource.get("id"), str) else None
    return FoundNote(note_id=note.note_id, text=note.text, where=where, resource_type="DocumentReference",
                     reference=f"DocumentReference/{rid}" if rid else None, warnings=list(note.warnings))


def _from_composition(resource: dict, where: str, max_bytes: int, bundle: dict | None) -> FoundNote:
    rid = resource.get("id") if isinstance(resource.get("id"), str) and resource["id"].strip() else None
    note_id = rid or "note"
    parts = list(_section_texts(resource.get("section")))
    if not parts and isinstance(resource.get("text"), dict):
        parts = [_xhtml_text(resource["text"].get("div"))]
    text = "\n\n".join(p for p in parts if p.strip())
    if not text.strip():
        if bundle is not None:  # a document whose sections only point at an attached DocumentReference
            others = {**bundle, "entry": [e for e in bundle.get("entry", [])
                                          if isinstance(e, dict) and e.get("resource") is not resource]}
            found = _from_bundle(others, where.rsplit(" entry ", 1)[0], max_bytes)
            if found is not None:
                return found
        raise NoteProblem(422, "note cannot be read",
                          f"note {note_id} ({where}): Composition has no narrative text (section[].text.div)")
    if len(text.encode("utf-8")) > max_bytes:
        raise NoteProblem(413, "note too large", f"note {note_id} ({where}): note over {max_bytes} bytes")
    return FoundNote(note_id=note_id, text=text, where=where, resource_type="Composition",
                     reference=f"Composition/{rid}" if rid else None)


def _section_texts(sections: Any, depth: int = 0):
    """Each section as "TITLE:\\n<text>", nested sections after their parent; the titles are the note's
    section headers, which the pipeline uses (e.g. "PROCEDURE:", "POST-PROCEDURE")."""
    if not isinstance(sections, list) or depth > 10:
        return
    for section in sections:
        if not isinstance(section, dict):
            continue
        title = section.get("title") if isinstance(section.get("title"), str) else ""
        narrative = section.get("text")
        body = _xhtml_text(narrative.get("div")) if isinstance(narrative, dict) else ""
        if title.strip() or body.strip():
            yield f"{title.strip().upper()}:\n{body}" if title.strip() else body
        yield from _section_texts(section.get("section"), depth + 1)


_BLOCK_TAGS = frozenset({"p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "table", "ul", "ol"})
_SPACES = re.compile(r"[ \t\r\f\v]+")


class _TextOf(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag in _BLOCK_TAGS:
            self.parts.append("\n")

    def handle_endtag(self, tag):
        if tag in _BLOCK_TAGS:
            self.parts.append("\n")

    def handle_data(self, data):
        self.parts.append(data)


def _xhtml_text(div: Any) -> str:
    """Narrative XHTML as plain text: block elements become line breaks. Evidence offsets then index this
    text (the one checked and returned), not the XHTML."""
    if not isinstance(div, str):
        return ""
    parser = _TextOf()
    parser.feed(div)
    parser.close()
    lines = [_SPACES.sub(" ", line).strip() for line in "".join(parser.parts).split("\n")]
    return "\n".join(line for line in lines if line)


CPT_SYSTEMS = ("http://www.ama-assn.org/go/cpt", "urn:oid:2.16.840.1.113883.6.12")
_ORDER_TYPES = ("ServiceRequest", "Procedure", "ChargeItem")


def ordered_codes(request: HookRequest) -> str | None:
    """The CPT codes the hook's draft orders carry (order-sign `draftOrders`, or any Bundle in context),
    as a claim string ("62323, 77003") for the billed-code rules; None when no order names a CPT code.

    FHIR orders carry codes, not billing modifiers, so modifier rules need the claim itself (/v1/check
    `billed`, or `notecheck audit --billed-col`)."""
    codes: list[str] = []
    for value in request.context.values():
        if isinstance(value, dict) and value.get("resourceType") == "Bundle":
            for entry in value.get("entry") or []:
                resource = entry.get("resource") if isinstance(entry, dict) else None
                if isinstance(resource, dict) and resource.get("resourceType") in _ORDER_TYPES:
                    codes += _cpt_codes(resource.get("code"))
    codes = [c for c in dict.fromkeys(codes) if re.fullmatch(r"\d{4}[0-9TF]", c)]
    return ", ".join(codes) or None


def _cpt_codes(concept: Any) -> list[str]:
    if not isinstance(concept, dict):
        return []
    return [str(c.get("code", "")).strip() for c in concept.get("coding") or []
            if isinstance(c, dict) and c.get("system") in CPT_SYSTEMS]
