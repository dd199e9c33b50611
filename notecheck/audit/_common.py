"""What every export reader shares: the note and option types, the Source base, and how a raw value
becomes a checked note (same rules as `notecheck check` uses for files) or an error that names it."""

from __future__ import annotations

import datetime as dt
import errno
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ..reading import NOT_UTF8_WARNING, decode_note

FORMATS = ("folder", "csv", "jsonl", "fhir_ndjson", "fhir_bundle")
FIELDS = ("text", "id", "patient", "date", "billed")
LABELS = {"folder": "folder", "csv": "CSV", "jsonl": "JSONL", "fhir_ndjson": "FHIR NDJSON",
          "fhir_bundle": "FHIR Bundle"}

# A row or line longer than this cannot be a note within max_bytes plus its other columns (JSON escapes
# can spell one byte as six); the reader stops buffering it there instead of growing without bound.
_ROW_SLACK = 64 * 1024


def line_cap(max_bytes: int) -> int:
    return 6 * max_bytes + _ROW_SLACK


class SourceError(ValueError):
    """The source as a whole cannot be read as given (the CLI turns this into exit status 2)."""


@dataclass
class SourceNote:
    note_id: str
    text: str | None
    error: str | None = None
    warnings: list[str] = field(default_factory=list)
    patient_id: str | None = None
    service_date: str | None = None
    billed: str | None = None
    locator: str = ""

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass
class SourceOptions:
    text_col: str | None = None
    id_col: str | None = None
    patient_col: str | None = None
    date_col: str | None = None
    billed_col: str | None = None
    max_bytes: int = 1024 * 1024

    def given(self) -> dict[str, str | None]:
        return {"text": self.text_col, "id": self.id_col, "patient": self.patient_col,
                "date": self.date_col, "billed": self.billed_col}


class Source:
    """One export. Iterating yields its notes in a stable order; each iteration reads it afresh."""

    format: str
    chosen: dict[str, str | None]

    def __init__(self, path: Path, options: SourceOptions, kind: str) -> None:
        self.path = path
        self.options = options
        self.format = kind
        self.chosen = dict.fromkeys(FIELDS)
        self.auto: set[str] = set()  # which of `chosen` were auto-detected rather than given

    def describe(self) -> str:
        return describe_choice(LABELS[self.format], self.path.name or str(self.path), self.chosen, self.auto)

    def __iter__(self) -> Iterator[SourceNote]:
        seen: set[str] = set()
        for note in self._notes():
            if note.note_id in seen:
                n = 2
                while f"{note.note_id}#{n}" in seen:
                    n += 1
                rename_repeat(note, n)
            seen.add(note.note_id)
            yield note

    def _notes(self) -> Iterator[SourceNote]:
        raise NotImplementedError


def describe_choice(label: str, name: str, chosen: dict, auto: set) -> str:
    """The first stderr line of an audit: the export and which column each field was read from."""
    picks = " ".join(f"{key}={chosen.get(key) or '-'}" for key in FIELDS)
    line = f"{label} {name}: {picks}"
    picked = [key for key in FIELDS if key in auto]
    return line + (f" (auto-detected: {', '.join(picked)})" if picked else "")


def rename_repeat(note: SourceNote, n: int) -> None:
    """The n-th note with an id already seen in the export becomes "<id>#<n>", saying so."""
    original = note.note_id
    note.note_id = f"{original}#{n}"
    note.warnings.append(f"note id {original} appears more than once in this export; "
                         f"this one ({note.locator}) is renamed {note.note_id}")
    if note.error:
        note.error = note.error.replace(f"note {original} ", f"note {note.note_id} ", 1)


@dataclass
class BadLine:
    reason: str


def json_lines(path: Path, max_bytes: int) -> Iterator[tuple[int, object]]:
    """(line number, parsed value or BadLine) for each non-blank line, reading one line at a time."""
    cap = line_cap(max_bytes)
    line_no = 0
    try:
        with path.open("rb") as f:
            while True:
                raw = f.readline(cap + 1)
                if not raw:
                    return
                line_no += 1
                if len(raw) > cap and not raw.endswith(b"\n"):
                    while (rest := f.readline(cap + 1)) and not rest.endswith(b"\n"):
                        pass
                    yield line_no, BadLine(f"line too large (over {cap} bytes)")
                    continue
                if line_no == 1:
                    raw = raw.removeprefix(b"\xef\xbb\xbf")
                if not raw.strip():
                    continue
                try:
                    yield line_no, json.loads(raw.decode("utf-8", "surrogateescape"))
                except (ValueError, RecursionError):
                    yield line_no, BadLine("malformed JSON line")
    except OSError as exc:
        yield line_no + 1, BadLine(f"could not read the rest of the file ({errno_name(exc)})")


def clean(value: str) -> str:
    """Undecodable bytes (kept as surrogates) become replacement characters so ids stay valid UTF-8."""
    try:
        value.encode("utf-8")
        return value
    except UnicodeEncodeError:
        return _raw_bytes(value).decode("utf-8", "replace")


def _raw_bytes(value: str) -> bytes:
    try:
        return value.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a lone surrogate from a JSON "\ud83d" escape, not an undecodable byte
        return value.encode("utf-8", "surrogatepass")


_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f\x7f]")
_SNIFF_CHARS = 8192


def note_from_str(value: str, note_id: str, locator: str, max_bytes: int) -> SourceNote:
    """Check a text value from a CSV cell or JSON field the way `notecheck check` checks a file."""
    warnings: list[str] = []
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError:
        raw = _raw_bytes(value)
        size, value = len(raw), raw.decode("utf-8", "replace")
        warnings.append(NOT_UTF8_WARNING)
    if size > max_bytes:
        return error_note(note_id, locator, f"note too large ({size} bytes > {max_bytes} byte limit)")
    head = value[:_SNIFF_CHARS]
    # Same rule as notecheck.reading for files: a NUL, or over 10% control characters, is not typed text.
    if "\x00" in head or (head and len(_CONTROL.findall(head)) / len(head) > 0.10):
        return error_note(note_id, locator, "binary data, not a text note")
    if not value.strip():
        return error_note(note_id, locator, "empty note")
    return SourceNote(note_id=note_id, text=value, warnings=warnings, locator=locator)


def note_from_bytes(data: bytes, note_id: str, locator: str) -> SourceNote:
    # The id passed down carries the locator so decode_note's own messages say where the note came from.
    decoded = decode_note(data, f"{note_id} ({locator})")
    return SourceNote(note_id=note_id, text=decoded.text, error=decoded.error,
                      warnings=list(decoded.warnings), locator=locator)


def error_note(note_id: str, locator: str, reason: str) -> SourceNote:
    return SourceNote(note_id=note_id, text=None, error=f"note {note_id} ({locator}): {reason}", locator=locator)


_ISO_DATE = re.compile(r"(\d{4})-(\d{2})-(\d{2})(?:$|[T ])")
_COMPACT_DATE = re.compile(r"(\d{4})(\d{2})(\d{2})")
_SLASH_DATE = re.compile(r"(\d{1,2})[/.-](\d{1,2})[/.-](\d{4}|\d{2})(?:$|[T ])")


def parse_date(value: str | None) -> str | None:
    """ISO "YYYY-MM-DD" from an ISO date or datetime (its date part as written), YYYYMMDD or M/D/Y.

    Slashed dates are read month first, as US EHR exports write them, unless the first number can only
    be a day. Partial dates ("2024-03") and anything else give None: no service date beats a wrong one.
    """
    if not value:
        return None
    v = value.strip()
    try:
        if m := _ISO_DATE.match(v):
            return dt.date(int(m[1]), int(m[2]), int(m[3])).isoformat()
        if m := _COMPACT_DATE.fullmatch(v):
            return dt.date(int(m[1]), int(m[2]), int(m[3])).isoformat()
        if m := _SLASH_DATE.match(v):
            first, second, year = int(m[1]), int(m[2]), int(m[3])
            if len(m[3]) == 2:
                year += 2000 if year < 70 else 1900
            month, day = (second, first) if first > 12 else (first, second)
            return dt.date(year, month, day).isoformat()
    except ValueError:
        return None
    return None


def errno_name(exc: OSError) -> str:
    return errno.errorcode.get(exc.errno or 0, type(exc).__name__)