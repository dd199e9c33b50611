"""Turn CLI inputs (file paths, or "-" for stdin) into decoded notes, one `NoteInput` per input.

Reading never raises for bad input: a missing, empty, binary or oversized note becomes a
`NoteInput` with `error` set, so one bad file never stops the others. Messages name the note id,
never the note's content (notes are PHI). The decoded text is returned untouched (no CRLF
normalisation, no stripping) because every evidence offset indexes exactly this string.
"""

from __future__ import annotations

import codecs
import errno
import os
import stat
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

# 1 MiB: far above any real procedure note, low enough that a mis-pointed export can't exhaust memory.
MAX_NOTE_BYTES = 1024 * 1024
STDIN_ID = "stdin"

# Only the head is sampled for binary detection: a text note with an embedded image or archive
# would have control bytes at the very start (magic numbers, headers).
_SNIFF_BYTES = 8192
# Above this share of control bytes the input is not a note someone typed.
_CONTROL_SHARE_LIMIT = 0.10
_TEXT_CONTROLS = frozenset(b"\t\n\r\f\v")

NOT_UTF8_WARNING = "not valid UTF-8; decoded with replacement characters"


@dataclass
class NoteInput:
    """One input's outcome: `text` is the decoded note, or None when `error` says why it is unusable."""

    note_id: str
    text: str | None = None
    error: str | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.error is None


def note_id_for(path: str) -> str:
    if path == "-":
        return STDIN_ID
    # "." or "/" have no stem; an empty id would make the result impossible to match to its input.
    return Path(path).stem or path


def read_inputs(
    paths: Iterable[str], max_bytes: int = MAX_NOTE_BYTES, stdin: BinaryIO | None = None
) -> Iterator[NoteInput]:
    """Yield one NoteInput per path, lazily, so only one note's text is held at a time."""
    for path in paths:
        if path == "-":
            stream = stdin if stdin is not None else sys.stdin.buffer
            yield read_stream(stream, STDIN_ID, max_bytes)
        else:
            yield read_path(path, max_bytes)


def read_path(path: str, max_bytes: int = MAX_NOTE_BYTES) -> NoteInput:
    note_id = note_id_for(path)
    p = Path(path)
    # Checked up front because opening a directory raises different errors on different platforms.
    if p.is_dir():
        return _error(note_id, "is a directory, not a note file")
    try:
        with p.open("rb") as f:
            size = _regular_file_size(f)
            if size is not None and size > max_bytes:
                return _too_large(note_id, size, max_bytes)
            data = f.read(max_bytes + 1)
    except FileNotFoundError:
        return _error(note_id, "file not found")
    except PermissionError:
        return _error(note_id, "permission denied")
    except OSError as exc:
        # The errno name only, so every reading error has the same terse shape.
        return _error(note_id, f"could not read file ({_errno_name(exc)})")
    if len(data) > max_bytes:  # the file grew, or it is a pipe/FIFO whose size fstat can't tell
        return _too_large(note_id, None, max_bytes)
    return decode_note(data, note_id)


def read_stream(stream: BinaryIO, note_id: str = STDIN_ID, max_bytes: int = MAX_NOTE_BYTES) -> NoteInput:
    """Read at most max_bytes + 1 bytes: enough to know the note is too large without buffering it."""
    try:
        data = _read_up_to(stream, max_bytes + 1)
    except OSError as exc:
        return _error(note_id, f"could not read input ({_errno_name(exc)})")
    if len(data) > max_bytes:
        return _too_large(note_id, None, max_bytes)
    return decode_note(data, note_id)


def decode_note(data: bytes, note_id: str) -> NoteInput:
    """Decode raw bytes into note text, or explain why they are not a text note."""
    # UTF-16 exports (e.g. Windows "Unicode" text) are full of NUL bytes; without this they
    # would be misreported as binary.
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            text = data.decode("utf-16")
        except UnicodeDecodeError:
            return _error(note_id, "binary file, not a text note")
        return _check_text(note_id, text, [])
    if _looks_binary(data):
        return _error(note_id, "binary file, not a text note")
    warnings: list[str] = []
    try:
        text = data.decode("utf-8-sig")  # also strips a UTF-8 BOM, so offsets start at the first character
    except UnicodeDecodeError:
        text = data.decode("utf-8-sig", errors="replace")
        warnings.append(NOT_UTF8_WARNING)
    return _check_text(note_id, text, warnings)


def _check_text(note_id: str, text: str, warnings: list[str]) -> NoteInput:
    if not text.strip():
        return _error(note_id, "empty note")
    return NoteInput(note_id=note_id, text=text, warnings=warnings)


def _looks_binary(data: bytes) -> bool:
    head = data[:_SNIFF_BYTES]
    if b"\x00" in head:
        return True
    if not head:
        return False
    controls = sum(1 for b in head if (b < 0x20 and b not in _TEXT_CONTROLS) or b == 0x7F)
    return controls / len(head) > _CONTROL_SHARE_LIMIT


def _read_up_to(stream: BinaryIO, limit: int) -> bytes:
    # A single read(n) on a pipe may return early; loop until limit or EOF.
    chunks: list[bytes] = []
    remaining = limit
    while remaining > 0:
        chunk = stream.read(remaining)
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def _regular_file_size(f: BinaryIO) -> int | None:
    try:
        st = os.fstat(f.fileno())
    except (OSError, AttributeError, ValueError):
        return None
    return st.st_size if stat.S_ISREG(st.st_mode) else None


def _errno_name(exc: OSError) -> str:
    return errno.errorcode.get(exc.errno or 0, type(exc).__name__)


def _too_large(note_id: str, size: int | None, limit: int) -> NoteInput:
    if size is None:  # stdin/pipes: only the first limit+1 bytes were read, so the size is unknown
        return _error(note_id, f"note too large (over the {limit} byte limit)")
    return _error(note_id, f"note too large ({size} bytes > {limit} byte limit)")


def _error(note_id: str, reason: str) -> NoteInput:
    # Prefixed with the id so the message stands alone on stderr or in a log; never any note text.
    return NoteInput(note_id=note_id, error=f"note {note_id}: {reason}")
