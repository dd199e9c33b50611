"""CSV and JSON-lines readers: one record at a time, columns chosen by the user or by common names."""

from __future__ import annotations

import csv
import re
import json
from collections.abc import Iterable, Iterator
from pathlib import Path

from ._common import (
    BadLine, Source, SourceError, SourceNote, SourceOptions, clean, errno_name, error_note, json_lines,
    line_cap, note_from_str, parse_date,
)

# Normalised column names tried in order; the more specific names come first so that an export with
# both "note_text" and "note" picks the text.
CANDIDATES = {
    "text": ("note_text", "text", "note", "body", "content", "note_body", "note_content", "document_text",
             "report_text", "notes"),
    "id": ("note_id", "id", "document_id", "doc_id", "noteid", "documentid"),
    "patient": ("patient_id", "patient", "mrn", "subject", "patientid", "patient_mrn", "member_id"),
    "date": ("service_date", "date", "encounter_date", "dos", "date_of_service", "visit_date", "note_date"),
    "billed": ("billed_code", "billed", "cpt", "claim_code", "billed_cpt", "cpt_code", "billed_codes"),
}


class CsvSource(Source):
    def __init__(self, path: Path, options: SourceOptions) -> None:
        super().__init__(path, options, "csv")
        with path.open("rb") as f:
            first_line = f.readline(8192)
        # Judged on the header alone: a NUL in one row's text is that row's problem, not the file's.
        if b"\x00" in first_line and not first_line.startswith((b"\xff\xfe", b"\xfe\xff")):
            raise SourceError(f"{path}: binary file, not a CSV export")
        with _open_csv_text(path) as f:
            header_line = f.readline(line_cap(options.max_bytes))
        if not header_line.strip():
            raise SourceError(f"{path}: no header row on the first line")
        self.delimiter = "\t" if path.suffix.lower() == ".tsv" else _guess_delimiter(header_line)
        header = next(csv.reader([header_line], delimiter=self.delimiter), [])
        self.header = [clean(name).strip() for name in header]
        self.index = _choose(self.header, options, self, path)
        # The csv module refuses fields over its limit (128 KiB by default); our own per-row cap governs.
        csv.field_size_limit(max(csv.field_size_limit(), line_cap(options.max_bytes) + 1))

    def describe(self) -> str:
        line = super().describe()
        return line if self.delimiter == "," else f"{line} delimiter={self.delimiter!r}"

    def _notes(self) -> Iterator[SourceNote]:
        name = self.path.name
        cap = line_cap(self.options.max_bytes)
        row_no = 1  # as a spreadsheet numbers them: the header is row 1
        try:
            with _open_csv_text(self.path) as f:
                lines = _CappedLines(f, cap)
                reader = csv.reader(lines, delimiter=self.delimiter)
                lines.start_record()
                try:
                    next(reader, None)  # the header, already read in __init__
                except (_RowTooLarge, csv.Error):
                    lines.skip_rest_of_record()
                while True:
                    row_no += 1
                    lines.start_record()
                    try:
                        row = next(reader)
                    except StopIteration:
                        return
                    except (_RowTooLarge, csv.Error) as exc:
                        whole = lines.skip_rest_of_record()
                        reason = (f"row too large (over {cap} characters)" if isinstance(exc, _RowTooLarge)
                                  else "malformed CSV row")
                        if not whole:
                            reason += "; an unterminated quoted field runs to the end of the file"
                        yield error_note(f"row-{row_no}", f"{name}:row {row_no}", reason)
                        continue
                    if lines.eof and lines.quotes % 2:
                        # csv accepts a quote left open at the end of the file; the "note" would then hold
                        # every row after it, so it is refused rather than audited.
                        yield error_note(f"row-{row_no}", f"{name}:row {row_no}",
                                         "an unterminated quoted field runs to the end of the file")
                        return
                    if not any(cell.strip() for cell in row):
                        continue  # blank lines and the ",,,," rows spreadsheets leave at the end
                    yield self._row_note(row, row_no, f"{name}:row {row_no}")
        except OSError as exc:
            yield error_note(f"row-{row_no}", f"{name}:row {row_no}",
                             f"could not read the rest of the file ({errno_name(exc)})")

    def _row_note(self, row: list[str], row_no: int, locator: str) -> SourceNote:
        def cell(key: str) -> str | None:
            i = self.index.get(key)
            return row[i] if i is not None and i < len(row) else None

        return build_note(self, cell, f"row-{row_no}", locator, f"row has {len(row)} of {len(self.header)} fields")


def _open_csv_text(path: Path):
    # surrogateescape keeps undecodable bytes so only the row that has them is affected (decoded with
    # replacement characters and a warning) instead of the whole file failing.
    with path.open("rb") as f:
        head = f.read(4)
    encoding = "utf-16" if head.startswith((b"\xff\xfe", b"\xfe\xff")) else "utf-8-sig"
    return path.open("r", encoding=encoding, errors="surrogateescape", newline="")


class _RowTooLarge(Exception):
    pass


class _CappedLines:
    """Feeds the csv reader line by line, refusing a record past `cap` characters before it is buffered.

    It also counts quote characters in the current record so that, after a refused or malformed record,
    the rest of it can be skipped: an odd count means a quoted field is still open across lines.
    """

    def __init__(self, f, cap: int) -> None:
        self.f, self.cap = f, cap
        self.size = self.quotes = 0
        self.line_open = False  # the last chunk returned did not end its physical line
        self.eof = False

    def start_record(self) -> None:
        self.size = self.quotes = 0

    def __iter__(self):
        return self

    def _read(self) -> str:
        chunk = self.f.readline(self.cap + 1)
        self.size += len(chunk)
        self.quotes += chunk.count('"')
        self.line_open = bool(chunk) and not chunk.endswith(("\n", "\r"))
        self.eof = not chunk
        return chunk

    def __next__(self) -> str:
        chunk = self._read()
        if not chunk:
            raise StopIteration
        if self.size > self.cap:
            raise _RowTooLarge
        return chunk

    def skip_rest_of_record(self) -> bool:
        """Skip to the end of the current record; False when the end of the file came first."""
        while self.line_open:
            if not self._read():
                return self.quotes % 2 == 0
        while self.quotes % 2:
            if not self._read():
                return False
            while self.line_open:
                if not self._read():
                    return False
        return True


def _guess_delimiter(header_line: str) -> str:
    counts = {d: header_line.count(d) for d in (",", "\t", ";", "|")}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else ","


# JSON objects often omit empty fields, so the field names are gathered from this many objects, not one.
_SAMPLE_OBJECTS = 100


class JsonlSource(Source):
    def __init__(self, path: Path, options: SourceOptions) -> None:
        super().__init__(path, options, "jsonl")
        objects = (obj for _, obj in json_lines(path, options.max_bytes))
        self.keys = choose_json_keys(objects, options, self, path)

    def _notes(self) -> Iterator[SourceNote]:
        name = self.path.name
        for line_no, obj in json_lines(self.path, self.options.max_bytes):
            locator = f"{name}:line {line_no}"
            if isinstance(obj, BadLine):
                yield error_note(f"line-{line_no}", locator, obj.reason)
            elif not isinstance(obj, dict):
                yield error_note(f"line-{line_no}", locator, "not a JSON object")
            else:
                yield build_note(self, lambda key, obj=obj: _get(obj, self.keys.get(key)),
                                 f"line-{line_no}", locator, "field absent")


def choose_json_keys(objects: Iterable, options: SourceOptions, source: Source, path) -> dict[str, str]:
    """field -> JSON key (or dotted path), chosen from the field names of the first objects."""
    names: dict[str, None] = {}
    dotted = [w for w in options.given().values() if w and "." in w]
    reached: set[str] = set()
    sampled = 0
    for obj in objects:
        if isinstance(obj, dict):
            names.update(dict.fromkeys(str(k) for k in obj))
            reached.update(w for w in dotted if _get(obj, w) is not None)
            sampled += 1
            if sampled >= _SAMPLE_OBJECTS:
                break
    if not sampled:  # without any object there are no notes, so there is nothing to choose either
        return {}
    columns = list(names)
    picked = _choose(columns, options, source, path, has_path=reached.__contains__)
    return {key: columns[i] for key, i in picked.items()}


def json_line_note(raw: bytes, line_no: int, name: str, keys: dict[str, str], source: Source) -> SourceNote:
    """One JSON line of a JSONL export as a note (or an error note naming the line)."""
    locator = f"{name}:line {line_no}"
    try:
        obj = json.loads(raw.decode("utf-8", "surrogateescape"))
    except (ValueError, RecursionError):
        return error_note(f"line-{line_no}", locator, "malformed JSON line")
    if not isinstance(obj, dict):
        return error_note(f"line-{line_no}", locator, "not a JSON object")
    return build_note(source, lambda key: _get(obj, keys.get(key)), f"line-{line_no}", locator, "field absent")


def _get(obj: dict, key: str | None):
    if key is None:
        return None
    if key in obj:
        return obj[key]
    value = obj
    for part in key.split("."):  # a dotted path reaches into nested objects ("meta.mrn")
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def _choose(names: list[str], options: SourceOptions, source: Source, path: Path,
            has_path=None) -> dict[str, int]:
    """Map each field to an index in `names`: the column the user gave, else the first common name.

    `has_path(name)` says whether a dotted path reaches a value in nested JSON objects; such a path is
    appended to `names`. A column the user gave for one field is never auto-picked for another.
    """
    exact: dict[str, int] = {}
    normal: dict[str, int] = {}
    for i, name in enumerate(names):
        exact.setdefault(name.lower(), i)
        normal.setdefault(_normalise(name), i)
    given = options.given()
    picked: dict[str, int] = {}
    for key, wanted in given.items():
        if not wanted:
            continue
        i = exact.get(wanted.strip().lower())
        if i is None:
            i = normal.get(_normalise(wanted))
        if i is None and has_path is not None and has_path(wanted):
            names.append(wanted)
            i = len(names) - 1
        if i is None:
            raise SourceError(f"{path}: no column {wanted!r} (given for {key}); "
                              f"the columns are: {_list_names(names)}")
        picked[key] = i
    for key, wanted in given.items():
        if wanted:
            continue
        taken = set(picked.values())
        i = next((normal[c] for c in CANDIDATES[key] if c in normal and normal[c] not in taken), None)
        if i is not None:
            picked[key] = i
            source.auto.add(key)
    if "text" not in picked:
        raise SourceError(f"{path}: no note text column found; name it with --text-col "
                          f"(the columns are: {_list_names(names)})")
    for key, i in picked.items():
        source.chosen[key] = names[i]
    return picked


def _normalise(name: str) -> str:
    return re.sub(r"[\s\-.]+", "_", name.strip().lower())


def _list_names(names: list[str]) -> str:
    # Truncated so a file that is not really a CSV (its first line being note text) can't spill much.
    shown = [n if len(n) <= 40 else n[:37] + "..." for n in names[:30]]
    return ", ".join(shown) + (f", ... ({len(names)} in all)" if len(names) > 30 else "") if shown else "(none)"


def build_note(source: Source, get, fallback_id: str, locator: str, absent: str) -> SourceNote:
    """A SourceNote from one row/object, where get(field) returns that field's raw value or None."""
    warnings: list[str] = []
    note_id = _scalar(get("id")) if "id" in source.chosen and source.chosen["id"] else None
    if not note_id:
        note_id = fallback_id
        if source.chosen.get("id"):
            warnings.append(f"no note id in {source.chosen['id']}; using {fallback_id}")
    meta = {"patient_id": _scalar(get("patient")), "billed": _scalar(get("billed"))}
    raw_date = _scalar(get("date"))
    meta["service_date"] = parse_date(raw_date) if raw_date else None
    if raw_date and meta["service_date"] is None:
        warnings.append(f"service date in {source.chosen['date']} not recognised; left empty")
    value = get("text")
    if value is None:
        note = error_note(note_id, locator, f"no note text in {source.chosen['text']} ({absent})")
    elif not isinstance(value, str):
        note = error_note(note_id, locator, f"note text in {source.chosen['text']} is not a string")
    else:
        note = note_from_str(value, note_id, locator, source.options.max_bytes)
    note.warnings[:0] = warnings
    for key, val in meta.items():
        setattr(note, key, val)
    return note


def _scalar(value) -> str | None:
    if value is None or isinstance(value, (dict, bool)):
        return None
    if isinstance(value, list):  # e.g. ["62323", "77003"] in JSONL: the same text a CSV cell would hold
        value = ",".join(str(v) for v in value if isinstance(v, (str, int)))
    return clean(str(value)).strip() or None

