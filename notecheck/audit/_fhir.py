"""FHIR DocumentReference readers: Bulk Data NDJSON (one resource a line) and a Bundle (streamed by ijson).

Text comes from the inline text/plain attachment (base64, charset honoured); patient from
subject.reference; the service date from context.period.start, else DocumentReference.date. Resources
of other types (Patient, Encounter, an OperationOutcome in a Bundle) are not notes and are skipped.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import re
from collections.abc import Iterator
from pathlib import Path

import ijson

from ._common import (
    BadLine, Source, SourceError, SourceNote, SourceOptions, errno_name, error_note, json_lines,
    note_from_bytes, note_from_str, parse_date,
)

_CHARSET = re.compile(r"charset\s*=\s*\"?([A-Za-z0-9._:+-]+)", re.IGNORECASE)
# A reference such as "https://ehr.example/fhir/Patient/123/_history/2" names the same patient as
# "Patient/123"; keeping only the relative part lets history match them.
_RELATIVE_REF = re.compile(r"(?:^|/)([A-Za-z]+/[A-Za-z0-9\-.]{1,64})(?:/_history/[^/]+)?$")


class FhirSource(Source):
    def __init__(self, path: Path, options: SourceOptions, kind: str) -> None:
        super().__init__(path, options, kind)
        given = [f"--{key}-col" for key, value in options.given().items() if value]
        if given:
            raise SourceError(f"{path}: {', '.join(given)} do not apply to a FHIR export (its fields are fixed: "
                              f"attachment text, resource id, subject, period start or date)")
        self.chosen.update(text="content.attachment.data", id="id", patient="subject.reference",
                           date="context.period.start|date")
        self.skipped = 0  # resources that are not DocumentReferences, from the last iteration

    def _notes(self) -> Iterator[SourceNote]:
        self.skipped = 0
        yield from (self._ndjson() if self.format == "fhir_ndjson" else self._bundle())

    def _ndjson(self) -> Iterator[SourceNote]:
        name = self.path.name
        for line_no, obj in json_lines(self.path, self.options.max_bytes):
            locator, fallback = f"{name}:line {line_no}", f"line-{line_no}"
            if isinstance(obj, BadLine):
                yield error_note(fallback, locator, obj.reason)
            elif not isinstance(obj, dict) or "resourceType" not in obj:
                yield error_note(fallback, locator, "not a FHIR resource (no resourceType)")
            elif obj["resourceType"] != "DocumentReference":
                self.skipped += 1
            else:
                yield document_note(obj, fallback, locator, self.options.max_bytes)

    def _bundle(self) -> Iterator[SourceNote]:
        name = self.path.name
        n = 0
        try:
            with self.path.open("rb") as f:
                for n, entry in enumerate(ijson.items(f, "entry.item"), 1):
                    locator, fallback = f"{name}:entry {n}", f"entry-{n}"
                    resource = entry.get("resource") if isinstance(entry, dict) else None
                    if not isinstance(resource, dict):
                        yield error_note(fallback, locator, "Bundle entry without a resource")
                    elif resource.get("resourceType") != "DocumentReference":
                        self.skipped += 1
                    else:
                        yield document_note(resource, fallback, locator, self.options.max_bytes)
        except (ijson.JSONError, ValueError):
            # A streamed Bundle cannot be resynchronised after a syntax error; say how far it got.
            yield error_note(f"entry-{n + 1}", f"{name}:entry {n + 1}",
                             f"malformed JSON after entry {n}; the rest of the Bundle could not be read")
        except OSError as exc:
            yield error_note(f"entry-{n + 1}", f"{name}:entry {n + 1}",
                             f"could not read the rest of the file ({errno_name(exc)})")


def is_bundle(path: Path) -> bool:
    """Whether the file's top-level object has resourceType "Bundle", reading only as far as that key."""
    try:
        with path.open("rb") as f:
            for prefix, event, value in ijson.parse(f):
                if prefix == "resourceType" and event == "string":
                    return value == "Bundle"
    except (ijson.JSONError, ValueError):
        return False
    return False


def document_note(resource: dict, fallback_id: str, locator: str, max_bytes: int) -> SourceNote:
    warnings: list[str] = []
    note_id = resource.get("id")
    note_id = note_id.strip() if isinstance(note_id, str) else ""
    if not note_id:
        note_id = fallback_id
        warnings.append(f"DocumentReference has no id; using {fallback_id}")
    raw_date = _service_date_value(resource)
    service_date = parse_date(raw_date)
    if raw_date and service_date is None:
        warnings.append("service date (context.period.start or date) is not a full date; left empty")
    note = _attachment_note(resource.get("content"), note_id, locator, max_bytes)
    note.warnings[:0] = warnings
    note.patient_id = _patient(resource.get("subject"))
    note.service_date = service_date
    return note


def _attachment_note(content, note_id: str, locator: str, max_bytes: int) -> SourceNote:
    entries = content if isinstance(content, list) else []
    attachments = [c["attachment"] for c in entries if isinstance(c, dict) and isinstance(c.get("attachment"), dict)]
    if not attachments:
        return error_note(note_id, locator, "DocumentReference has no content attachment")
    typed = [(a, _mime(a)) for a in attachments]
    inline = [(a, m) for a, m in typed if a.get("data") is not None]
    plain = [a for a, m in inline if m == "text/plain"]
    untyped = [a for a, m in inline if m is None]
    warnings: list[str] = []
    if plain:
        chosen = plain[0]
        if len(plain) > 1:
            warnings.append(f"{len(plain)} text/plain attachments; the first is read")
    elif untyped:
        chosen = untyped[0]
        warnings.append("attachment has no contentType; read as text/plain")
    elif any(m == "text/plain" for _, m in typed):
        return error_note(note_id, locator, "text/plain attachment is not inline (url only, no data)")
    else:
        found = ", ".join(sorted({m or "no contentType" for _, m in typed}))
        return error_note(note_id, locator, f"no text/plain attachment (found {found})")
    note = _decode_attachment(chosen, note_id, locator, max_bytes)
    note.warnings[:0] = warnings
    return note


def _decode_attachment(attachment: dict, note_id: str, locator: str, max_bytes: int) -> SourceNote:
    data = attachment.get("data")
    if not isinstance(data, str):
        return error_note(note_id, locator, "attachment data is not a base64 string")
    data = "".join(data.split())  # base64Binary may be wrapped across lines
    if len(data) // 4 * 3 > max_bytes + 2:  # refuse before decoding: the decoded size is known from the length
        return error_note(note_id, locator, f"note too large (about {len(data) // 4 * 3} bytes > "
                                            f"{max_bytes} byte limit)")
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        return error_note(note_id, locator, "attachment data is not valid base64")
    if len(raw) > max_bytes:
        return error_note(note_id, locator, f"note too large ({len(raw)} bytes > {max_bytes} byte limit)")
    charset = _charset(attachment)
    if charset is None:
        return note_from_bytes(raw, note_id, locator)
    try:
        codec = codecs.lookup(charset).name
    except LookupError:
        note = note_from_bytes(raw, note_id, locator)
        note.warnings.append(f"unknown charset {charset[:40]!r}; read as UTF-8")
        return note
    if codec in ("utf-8", "ascii"):  # decode_note's UTF-8 path also strips a BOM and warns on bad bytes
        return note_from_bytes(raw, note_id, locator)
    warnings = []
    try:
        text = raw.decode(codec)
    except UnicodeDecodeError:
        text = raw.decode(codec, errors="replace")
        warnings.append(f"not valid {codec}; decoded with replacement characters")
    # The byte limit was applied to the attachment as sent; re-encoding as UTF-8 may grow it.
    note = note_from_str(text, note_id, locator, 4 * max_bytes)
    note.warnings[:0] = warnings
    return note


def _mime(attachment: dict) -> str | None:
    ct = attachment.get("contentType")
    if not isinstance(ct, str) or not ct.strip():
        return None
    return ct.split(";", 1)[0].strip().lower()


def _charset(attachment: dict) -> str | None:
    ct = attachment.get("contentType")
    m = _CHARSET.search(ct) if isinstance(ct, str) else None
    return m[1] if m else None


def _service_date_value(resource: dict) -> str | None:
    # The service date is when the procedure happened (context.period, R5 period); DocumentReference.date
    # is when the document was written, which for a note dictated later is the wrong day for history.
    context = resource.get("context")
    candidates = [
        context.get("period") if isinstance(context, dict) else None,
        resource.get("period"),
    ]
    for period in candidates:
        if isinstance(period, dict) and isinstance(period.get("start"), str):
            return period["start"]
    date = resource.get("date")
    return date if isinstance(date, str) else None


def _patient(subject) -> str | None:
    if not isinstance(subject, dict):
        return None
    ref = subject.get("reference")
    if isinstance(ref, str) and ref.strip():
        ref = ref.strip()
        m = None if ref.startswith("urn:") else _RELATIVE_REF.search(ref)
        return m[1] if m else ref
    identifier = subject.get("identifier")
    if isinstance(identifier, dict) and isinstance(identifier.get("value"), (str, int)):
        return str(identifier["value"]).strip() or None
    return None
