"""Streaming readers for note exports: a folder of .txt files, CSV, JSONL, FHIR NDJSON, a FHIR Bundle.

Every reader yields one `SourceNote` per note and holds one note at a time, so memory stays flat
however large the export (only the note ids are remembered, to make duplicates unique). Bad rows,
lines and files become a SourceNote with `error` set, never an exception: one bad note never stops
or drops the others. Only problems with the source as a whole (missing, unrecognised, a column the
user named that is not there) raise `SourceError` from `open_source`, before any note is read.
Messages name the note id and where it came from, never note content (notes are PHI).

This module is the interface the rest of the audit imports; the CSV/JSONL readers live in _tabular,
the FHIR ones in _fhir, and what they share in _common (split to keep each module small).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

from ._common import (
    FIELDS, FORMATS, Source, SourceError, SourceNote, SourceOptions, errno_name, error_note, line_cap,
    note_from_bytes, parse_date,
)
from ._fhir import FhirSource, is_bundle
from ._tabular import CANDIDATES, CsvSource, JsonlSource

__all__ = [
    "CANDIDATES", "FIELDS", "FORMATS", "Source", "SourceError", "SourceNote", "SourceOptions", "detect_format",
    "open_source", "parse_date",
]


def detect_format(path: Path) -> str:
    """Tell the export format from the path: a directory, the extension, then the first JSON value."""
    path = Path(path)
    if path.is_dir():
        return "folder"
    if not path.exists():
        raise SourceError(f"{path}: no such file or folder")
    suffix = path.suffix.lower()
    if suffix == ".txt":
        raise SourceError(f"{path}: a single note file; audit reads a folder of notes, a CSV, JSONL or FHIR "
                          f"export (use `notecheck check` for one note)")
    if suffix in (".csv", ".tsv"):
        return "csv"
    kind = _sniff_json(path)
    if kind is not None:
        return kind
    if suffix in (".jsonl", ".ndjson", ".json"):
        if _is_blank(path):  # FHIR Bulk Data writes empty files for resource types with no data
            return "fhir_ndjson" if suffix == ".ndjson" else "jsonl"
        raise SourceError(f"{path}: neither JSON lines nor a FHIR Bundle")
    return "csv"


def open_source(path: Path, options: SourceOptions | None = None) -> Source:
    """Open an export for streaming. Raises SourceError for a source that cannot be read as given."""
    path = Path(path)
    options = options or SourceOptions()
    if options.max_bytes < 1:
        raise SourceError("max_bytes must be at least 1")
    kind = detect_format(path)
    try:
        if kind == "folder":
            return FolderSource(path, options)
        if kind == "csv":
            return CsvSource(path, options)
        if kind == "jsonl":
            return JsonlSource(path, options)
        return FhirSource(path, options, kind)
    except OSError as exc:
        raise SourceError(f"{path}: could not read ({errno_name(exc)})") from None


class FolderSource(Source):
    def __init__(self, path: Path, options: SourceOptions) -> None:
        super().__init__(path, options, "folder")
        self.chosen.update(text="file contents", id="relative path without .txt")
        os.scandir(path).close()  # an unreadable root is the whole source failing: open_source says so

    def describe(self) -> str:
        return f"folder {self.path}: *.txt files, recursively; id=relative path without .txt"

    def _notes(self) -> Iterator[SourceNote]:
        for rel, problem in _walk_txt(self.path, ()):
            full = self.path.joinpath(*rel)
            if problem:  # a subfolder that can't be listed: its notes can't be named, but the loss is told
                yield error_note("/".join(rel), str(full), problem)
                continue
            note_id = "/".join(rel)[: -len(".txt")]
            yield _read_file(full, note_id, str(full), self.options.max_bytes)


def _walk_txt(root: Path, rel: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], str | None]]:
    # Directory by directory (never the whole tree in memory), sorted by name at each level; hidden
    # entries are skipped (.git, .DS_Store) and symlinked directories are not followed, so loops can't occur.
    try:
        with os.scandir(root.joinpath(*rel)) as it:
            entries = sorted(((e.name, e.is_dir(follow_symlinks=False), e.is_dir()) for e in it))
    except OSError as exc:
        yield rel, f"could not list folder ({errno_name(exc)})"
        return
    for name, real_dir, any_dir in entries:
        if name.startswith("."):
            continue
        if real_dir:
            yield from _walk_txt(root, (*rel, name))
        elif name.lower().endswith(".txt") and len(name) > 4 and not any_dir:
            yield (*rel, name), None


def _read_file(full: Path, note_id: str, locator: str, max_bytes: int) -> SourceNote:
    try:
        with full.open("rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size > max_bytes:
                return error_note(note_id, locator, f"note too large ({size} bytes > {max_bytes} byte limit)")
            data = f.read(max_bytes + 1)
    except PermissionError:
        return error_note(note_id, locator, "permission denied")
    except OSError as exc:
        return error_note(note_id, locator, f"could not read file ({errno_name(exc)})")
    if len(data) > max_bytes:  # grew while being read
        return error_note(note_id, locator, f"note too large (over the {max_bytes} byte limit)")
    return note_from_bytes(data, note_id, locator)


def _sniff_json(path: Path) -> str | None:
    """The JSON format of a file, from its first parseable line or, failing that, its top-level object."""
    try:
        with path.open("rb") as f:
            head = f.read(1)
            while head and head.isspace():
                head = f.read(1)
            if head not in (b"{", b"["):
                return None
            f.seek(0)
            tried = 0
            while tried < 5 and (raw := f.readline(line_cap(1024 * 1024))):
                if not raw.strip():
                    continue
                tried += 1
                try:
                    obj = json.loads(raw.removeprefix(b"\xef\xbb\xbf").decode("utf-8", "replace"))
                except ValueError:
                    # A first line that is not a whole value is a Bundle spread over lines (its entries may
                    # sit one per line, so those must not be taken for JSON lines), or a malformed first line.
                    if tried == 1 and is_bundle(path):
                        return "fhir_bundle"
                    continue
                if not isinstance(obj, dict):
                    continue
                if obj.get("resourceType") == "Bundle":
                    return "fhir_bundle"
                return "fhir_ndjson" if "resourceType" in obj else "jsonl"
            return None
    except OSError as exc:
        raise SourceError(f"{path}: could not read ({errno_name(exc)})") from None


def _is_blank(path: Path) -> bool:
    try:
        with path.open("rb") as f:
            return not f.read(65536).strip()
    except OSError as exc:
        raise SourceError(f"{path}: could not read ({errno_name(exc)})") from None


