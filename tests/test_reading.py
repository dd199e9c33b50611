"""Reading CLI inputs: every bad input becomes a NoteInput with a reason, never an exception."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from notecheck.reading import (
    MAX_NOTE_BYTES,
    NOT_UTF8_WARNING,
    NoteInput,
    decode_note,
    read_inputs,
    read_path,
    read_stream,
)

MARKER = "QUOKKAZEBRA"  # a word that must never leak into an error message
NOTE = f"{MARKER} L4-L5 interlaminar epidural steroid injection under fluoroscopic guidance.\n"


def write(tmp_path: Path, name: str, data: bytes) -> str:
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


def assert_error(note: NoteInput, phrase: str) -> None:
    assert note.text is None
    assert note.error is not None and phrase in note.error
    assert note.note_id in note.error
    assert MARKER not in note.error


def test_plain_utf8_note_is_returned_verbatim(tmp_path):
    text = "Pre 7/10.\r\nL4-L5 ILESI, caf\u00e9.\r\n"  # CRLF kept: offsets index this exact string
    note = read_path(write(tmp_path, "visit-12.txt", text.encode("utf-8")))
    assert note == NoteInput(note_id="visit-12", text=text, error=None, warnings=[])
    assert note.ok


def test_utf8_bom_is_stripped_so_offsets_start_at_the_first_character(tmp_path):
    note = read_path(write(tmp_path, "bom.txt", b"\xef\xbb\xbf" + NOTE.encode()))
    assert note.text == NOTE and note.warnings == []


def test_utf16_with_bom_is_decoded_not_called_binary(tmp_path):
    note = read_path(write(tmp_path, "u16.txt", NOTE.encode("utf-16")))
    assert note.text == NOTE and note.error is None


def test_latin1_bytes_decode_with_replacement_and_a_warning(tmp_path):
    note = read_path(write(tmp_path, "latin.txt", b"caf\xe9 L4-L5 epidural"))
    assert note.error is None
    assert note.text == "caf\ufffd L4-L5 epidural"
    assert note.warnings == [NOT_UTF8_WARNING]


@pytest.mark.parametrize("data", [b"", b"   \n\t\r\n  "], ids=["empty", "whitespace"])
def test_empty_or_whitespace_only_is_an_empty_note(tmp_path, data):
    assert_error(read_path(write(tmp_path, "blank.txt", data)), "empty note")


@pytest.mark.parametrize(
    "data",
    [b"%PDF\x00\x01\x02" + NOTE.encode(), bytes(range(1, 32)) * 20],
    ids=["nul-bytes", "control-chars"],
)
def test_binary_input_is_rejected(tmp_path, data):
    assert_error(read_path(write(tmp_path, "scan.pdf", data)), "binary file, not a text note")


def test_tabs_and_form_feeds_are_not_mistaken_for_binary():
    note = decode_note(b"Procedure:\tL4-L5\f\n\tDepo-Medrol 80 mg\n", "n")
    assert note.error is None


def test_missing_file(tmp_path):
    note = read_path(str(tmp_path / "nope.txt"))
    assert note.note_id == "nope"
    assert_error(note, "file not found")


def test_directory_is_an_error_with_a_usable_id(tmp_path):
    note = read_path(str(tmp_path))
    assert_error(note, "directory")
    assert read_path(".").note_id == "."  # no stem: fall back to the path, never an empty id


def test_file_over_the_limit_names_size_and_limit(tmp_path):
    path = write(tmp_path, "big.txt", (NOTE * 30_000).encode())  # ~2.4 MB
    size = Path(path).stat().st_size
    note = read_path(path)
    assert_error(note, "note too large")
    assert f"{size} bytes > {MAX_NOTE_BYTES} byte limit" in note.error


def test_limit_is_inclusive_and_overridable(tmp_path):
    path = write(tmp_path, "n.txt", b"x" * 100)
    assert read_path(path, max_bytes=100).ok
    assert_error(read_path(path, max_bytes=99), "note too large")


class CountingStream(io.BytesIO):
    """A stdin stand-in that records how many bytes the reader pulled."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.bytes_read = 0

    def read(self, size: int | None = -1) -> bytes:
        chunk = super().read(size)
        self.bytes_read += len(chunk)
        return chunk


def test_oversized_stdin_is_rejected_after_reading_only_limit_plus_one():
    stream = CountingStream(b"a" * (2 * 1024 * 1024))
    note = read_stream(stream, "stdin", max_bytes=1000)
    assert_error(note, "note too large")
    assert stream.bytes_read == 1001


def test_stdin_dash_reads_the_given_stream():
    notes = list(read_inputs(["-"], stdin=io.BytesIO(NOTE.encode())))
    assert notes == [NoteInput(note_id="stdin", text=NOTE)]


def test_one_bad_input_never_stops_the_others(tmp_path):
    good = write(tmp_path, "good.txt", NOTE.encode())
    empty = write(tmp_path, "empty.txt", b"")
    notes = list(read_inputs([str(tmp_path / "missing.txt"), empty, good]))
    assert [n.note_id for n in notes] == ["missing", "empty", "good"]
    assert [n.ok for n in notes] == [False, False, True]


def test_inputs_are_read_lazily(tmp_path):
    # Lazy reading keeps one note in memory at a time and lets results stream as files are read.
    good = write(tmp_path, "a.txt", NOTE.encode())
    stream = read_inputs([good, str(tmp_path / "later.txt")])
    assert next(stream).ok
    (tmp_path / "later.txt").write_text(NOTE)  # created after the first note was yielded
    assert next(stream).ok
