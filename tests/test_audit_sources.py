"""Export readers for `notecheck audit`: every format, auto-detection, and every bad input as a note error.

All inputs are real files written to tmp_path. MARKER is in every note text so each test can assert that
no error or warning ever repeats note content (notes are PHI).
"""

from __future__ import annotations

import base64
import csv
import json
import tracemalloc
from pathlib import Path

import pytest

from notecheck.audit.sources import (
    Source,
    SourceError,
    SourceNote,
    SourceOptions,
    detect_format,
    open_source,
    parse_date,
)
from notecheck.reading import NOT_UTF8_WARNING

MARKER = "QUOKKAZEBRA"
NOTE = f"{MARKER} L4-L5 interlaminar epidural steroid injection under fluoroscopic guidance.\n"
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256))


def read_all(source: Source) -> list[SourceNote]:
    notes = list(source)
    for note in notes:
        for message in [note.error or "", *note.warnings]:
            assert MARKER not in message, "note text leaked into a message"
        assert (note.text is None) == (note.error is not None)
        if note.error:
            assert note.note_id in note.error and note.locator in note.error
    return notes


def by_id(notes: list[SourceNote]) -> dict[str, SourceNote]:
    return {n.note_id: n for n in notes}


def write_csv(path: Path, rows: list[list[str]], **kw) -> Path:
    with path.open("w", newline="", encoding=kw.pop("encoding", "utf-8")) as f:
        csv.writer(f, **kw).writerows(rows)
    return path


def b64(text: str | bytes, encoding: str = "utf-8") -> str:
    data = text.encode(encoding) if isinstance(text, str) else text
    return base64.b64encode(data).decode("ascii")


def docref(id_: str | None, text: str | bytes | None = NOTE, content_type="text/plain", **extra) -> dict:
    res: dict = {"resourceType": "DocumentReference", "status": "current",
                 "subject": {"reference": "Patient/p1"}, **extra}
    if id_ is not None:
        res["id"] = id_
    if text is not None:
        attachment = {"data": b64(text) if not isinstance(text, dict) else text}
        if content_type is not None:
            attachment["contentType"] = content_type
        res["content"] = [{"attachment": attachment}]
    return res


def write_lines(path: Path, objs: list) -> Path:
    with path.open("w", encoding="utf-8") as f:
        for obj in objs:
            f.write((obj if isinstance(obj, str) else json.dumps(obj)) + "\n")
    return path


# --------------------------------------------------------------------------- folder


def test_folder_is_read_recursively_in_sorted_order_with_relative_path_ids(tmp_path):
    root = tmp_path / "export"
    for rel, data in {
        "b/note1.txt": NOTE.encode(),
        "a/note1.txt": ("Pre 7/10.\r\n" + NOTE).encode(),
        "top.txt": NOTE.encode(),
        "sub/deeper/n.TXT": NOTE.encode("utf-16"),
        "README.md": b"not a note",
        "labels.jsonl": b"{}",
        ".hidden/x.txt": NOTE.encode(),
        ".DS_Store.txt": NOTE.encode(),
    }.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    assert detect_format(root) == "folder"
    source = open_source(root, SourceOptions())
    assert source.format == "folder" and "recursively" in source.describe()
    notes = read_all(source)
    assert [n.note_id for n in notes] == ["a/note1", "b/note1", "sub/deeper/n", "top"]
    first = notes[0]
    assert first.text == "Pre 7/10.\r\n" + NOTE  # untouched: CRLF kept so offsets index this string
    assert first.locator == str(root / "a" / "note1.txt")
    assert notes[2].text == NOTE  # UTF-16 with BOM is text, not binary
    assert all(n.patient_id is None and n.service_date is None and n.billed is None for n in notes)
    assert [n.note_id for n in source] == [n.note_id for n in notes]  # a second pass reads it afresh


def test_folder_bad_files_become_error_notes_and_the_rest_are_read(tmp_path):
    root = tmp_path / "export"
    root.mkdir()
    (root / "01_good.txt").write_text(NOTE)
    (root / "02_empty.txt").write_bytes(b"")
    (root / "03_blank.txt").write_text("  \n\t\n")
    (root / "04_binary.txt").write_bytes(PNG)
    (root / "05_latin1.txt").write_bytes(f"caf\xe9 {MARKER} epidural".encode("latin-1"))
    (root / "06_huge.txt").write_text(NOTE * 10)
    (root / "07_good.txt").write_text(NOTE)
    notes = by_id(read_all(open_source(root, SourceOptions(max_bytes=len(NOTE) * 5))))
    assert list(notes) == ["01_good", "02_empty", "03_blank", "04_binary", "05_latin1", "06_huge", "07_good"]
    assert notes["01_good"].text == NOTE and notes["07_good"].text == NOTE
    assert "empty note" in notes["02_empty"].error and "empty note" in notes["03_blank"].error
    assert "binary" in notes["04_binary"].error
    assert "too large" in notes["06_huge"].error and str(len(NOTE) * 10) in notes["06_huge"].error
    latin = notes["05_latin1"]
    assert latin.error is None and latin.text.startswith("caf\ufffd ") and latin.warnings == [NOT_UTF8_WARNING]


def test_empty_folder_has_no_notes(tmp_path):
    assert list(open_source(tmp_path, SourceOptions())) == []


# --------------------------------------------------------------------------- CSV


def test_csv_auto_detects_common_column_names_and_says_so(tmp_path):
    path = write_csv(tmp_path / "notes.csv", [
        ["Note_ID", "MRN", "Service Date", "Note Text", "CPT", "Author"],
        ["n1", "m1", "2024-03-05", NOTE, "62323", "dr x"],
    ])
    assert detect_format(path) == "csv"
    source = open_source(path, SourceOptions())
    assert source.chosen == {"text": "Note Text", "id": "Note_ID", "patient": "MRN", "date": "Service Date",
                             "billed": "CPT"}
    assert source.describe() == ("CSV notes.csv: text=Note Text id=Note_ID patient=MRN date=Service Date "
                                 "billed=CPT (auto-detected: text, id, patient, date, billed)")
    [note] = read_all(source)
    assert (note.note_id, note.text, note.patient_id, note.service_date, note.billed, note.locator) == (
        "n1", NOTE, "m1", "2024-03-05", "62323", "notes.csv:row 2")


def test_csv_quoted_multiline_text_is_kept_verbatim_and_rows_are_numbered_by_record(tmp_path):
    tricky = f'{MARKER} Pre 7/10.\r\nMeds: "Depo-Medrol", 80 mg, 1% lidocaine.\r\n\r\nPost 2/10, "good"'
    path = write_csv(tmp_path / "notes.csv", [
        ["id", "text"], ["a", tricky], ["b", NOTE], ["", ""], ["c", "x,y\nz"],
    ])
    notes = read_all(open_source(path, SourceOptions()))
    assert [(n.note_id, n.locator) for n in notes] == [
        ("a", "notes.csv:row 2"), ("b", "notes.csv:row 3"), ("c", "notes.csv:row 5")]  # row 4 blank: skipped
    assert notes[0].text == tricky and notes[2].text == "x,y\nz"


def test_csv_explicit_columns_are_used_case_insensitively_and_not_called_auto(tmp_path):
    path = write_csv(tmp_path / "export.csv", [
        ["doc", "body_txt", "pt", "visit", "claim", "note"],
        ["d1", NOTE, "p9", "03/05/2024", "62323-50", "a short remark"],
    ])
    options = SourceOptions(text_col="BODY_TXT", id_col="doc", patient_col="pt", date_col="visit",
                            billed_col="claim")
    source = open_source(path, options)
    assert source.chosen == {"text": "body_txt", "id": "doc", "patient": "pt", "date": "visit", "billed": "claim"}
    assert source.describe() == "CSV export.csv: text=body_txt id=doc patient=pt date=visit billed=claim"
    [note] = read_all(source)
    assert (note.note_id, note.text, note.patient_id, note.service_date, note.billed) == (
        "d1", NOTE, "p9", "2024-03-05", "62323-50")
    # Only the given ones are fixed; the rest are still detected (and said to be).
    partial = open_source(path, SourceOptions(text_col="body_txt"))
    assert partial.chosen["id"] is None and partial.auto == set()
    assert "(auto-detected" not in partial.describe()


def test_csv_missing_user_given_column_is_a_value_error_before_iteration(tmp_path):
    path = write_csv(tmp_path / "notes.csv", [["note_id", "note_text"], ["n1", NOTE]])
    with pytest.raises(ValueError) as info:
        open_source(path, SourceOptions(patient_col="mrn"))
    assert isinstance(info.value, SourceError)
    assert "'mrn'" in str(info.value) and "patient" in str(info.value) and "note_text" in str(info.value)
    with pytest.raises(SourceError, match="text column"):
        open_source(write_csv(tmp_path / "x.csv", [["a", "b"], ["1", "2"]]), SourceOptions())


def test_csv_bad_rows_become_error_notes_and_the_rest_are_read(tmp_path):
    path = tmp_path / "notes.csv"
    good = NOTE.encode()
    with path.open("wb") as f:
        f.write(b"note_id,patient_id,service_date,billed_code,note_text\r\n")
        f.write(b'ok1,p1,2024-03-05T09:30:00Z,62323,"' + good + b'"\r\n')
        f.write(b"empty,p1,2024-03-05,,\r\n")
        f.write(b'blank,p1,2024-03-05,,"   \n  "\r\n')
        f.write(b'binary,p1,2024-03-05,,"\x00\x01\x02\x03 ' + MARKER.encode() + b'"\r\n')
        f.write(b'latin,p1,2024-03-05,,"caf\xe9 ' + MARKER.encode() + b' epidural"\r\n')
        f.write(b'huge,p1,2024-03-05,,"' + good * 20 + b'"\r\n')
        f.write(b"short,p1\r\n")
        f.write(b'baddate,p1,next tuesday,,"' + good + b'"\r\n')
        f.write(b',p2,5/3/24,,"' + good + b'"\r\n')
        f.write(b'ok1,p3,31/12/2023,,"' + good + b'"\r\n')
        f.write(b'ok1,p4,20240101,,"' + good + b'"\r\n')
        f.write(b'ok2,p1,2024-03-06,,"' + good + b'"\r\n')
    notes = read_all(open_source(path, SourceOptions(max_bytes=len(good) * 10)))
    ids = [n.note_id for n in notes]
    assert ids == ["ok1", "empty", "blank", "binary", "latin", "huge", "short", "baddate", "row-10", "ok1#2",
                   "ok1#3", "ok2"]
    n = by_id(notes)
    assert n["ok1"].text == NOTE and n["ok1"].service_date == "2024-03-05" and n["ok1"].billed == "62323"
    assert "empty note" in n["empty"].error and "empty note" in n["blank"].error
    assert "binary" in n["binary"].error
    assert n["latin"].text == f"caf\ufffd {MARKER} epidural" and n["latin"].warnings == [NOT_UTF8_WARNING]
    assert "too large" in n["huge"].error
    assert "no note text" in n["short"].error and "row has 2 of 5 fields" in n["short"].error
    assert n["baddate"].text == NOTE and n["baddate"].service_date is None
    assert n["baddate"].warnings == ["service date in service_date not recognised; left empty"]
    assert n["row-10"].warnings == ["no note id in note_id; using row-10"]
    assert n["row-10"].service_date == "2024-05-03"  # month first, as US exports write it
    assert n["ok1#2"].service_date == "2023-12-31"  # 31 can only be the day
    assert n["ok1#2"].patient_id == "p3" and n["ok1#3"].service_date == "2024-01-01"
    assert "appears more than once" in n["ok1#2"].warnings[0] and "notes.csv:row 11" in n["ok1#2"].warnings[0]
    for bad in ("empty", "blank", "binary", "huge", "short"):
        assert f"note {bad} (notes.csv:row " in n[bad].error


def test_csv_duplicate_error_note_is_renamed_in_its_message_too(tmp_path):
    path = write_csv(tmp_path / "d.csv", [["id", "text"], ["x", NOTE], ["x", ""]])
    first, second = read_all(open_source(path, SourceOptions()))
    assert (first.note_id, second.note_id) == ("x", "x#2")
    assert second.error.startswith("note x#2 (d.csv:row 3): empty note")


def test_csv_row_over_the_row_cap_is_one_error_and_the_next_rows_are_parsed_correctly(tmp_path):
    path = tmp_path / "big.csv"
    huge_multiline = ("y" * 999 + "\n") * 80  # 80,000 characters over 80 lines, past the 66k-char row cap
    write_csv(path, [["id", "text"], ["a", NOTE], ["big", f'{MARKER} "quoted" ' + huge_multiline],
                     ["b", f'{MARKER} "x"\ny'], ["c", NOTE]])
    notes = read_all(open_source(path, SourceOptions(max_bytes=100)))
    assert [(n.note_id, n.locator) for n in notes] == [
        ("a", "big.csv:row 2"), ("row-3", "big.csv:row 3"), ("b", "big.csv:row 4"), ("c", "big.csv:row 5")]
    assert "row too large" in notes[1].error
    assert notes[2].text == f'{MARKER} "x"\ny' and notes[3].text == NOTE


def test_csv_unterminated_quote_in_an_oversized_row_says_the_rest_was_lost(tmp_path):
    path = tmp_path / "cut.csv"
    path.write_text('id,text\r\na,"' + NOTE + '"\r\nb,"' + ("z" * 500 + "\n") * 200)
    notes = read_all(open_source(path, SourceOptions(max_bytes=100)))
    assert [n.note_id for n in notes] == ["a", "row-3"]
    assert "unterminated quoted field" in notes[1].error


def test_csv_unterminated_quote_in_the_last_row_is_refused_not_read_as_one_huge_note(tmp_path):
    path = tmp_path / "open.csv"
    path.write_text(f'id,text\na,"{NOTE}"\nb,"{MARKER} never closed\nc,{MARKER}\nd,{MARKER}\n')
    notes = read_all(open_source(path, SourceOptions()))
    assert [n.note_id for n in notes] == ["a", "row-3"]
    assert "unterminated quoted field" in notes[1].error
    last = tmp_path / "no_newline.csv"
    last.write_text(f'id,text\na,"{NOTE}"\nb,5\'10" tall {MARKER}')  # a stray quote in an unquoted field
    assert [n.text for n in read_all(open_source(last, SourceOptions()))] == [NOTE, f"5'10\" tall {MARKER}"]


def test_binary_file_named_csv_is_an_unreadable_source(tmp_path):
    (tmp_path / "x.csv").write_bytes(PNG)
    with pytest.raises(SourceError, match="binary"):
        open_source(tmp_path / "x.csv", SourceOptions())


def test_csv_delimiters_and_utf16_exports(tmp_path):
    tsv = write_csv(tmp_path / "n.tsv", [["id", "text"], ["t1", NOTE]], delimiter="\t")
    semi = write_csv(tmp_path / "n.csv", [["id", "text", "mrn"], ["s1", "a, b; c", "m"]], delimiter=";")
    u16 = write_csv(tmp_path / "u16.csv", [["id", "text"], ["u1", "caf\u00e9 " + NOTE]], encoding="utf-16")
    assert [n.text for n in read_all(open_source(tsv, SourceOptions()))] == [NOTE]
    source = open_source(semi, SourceOptions())
    assert [(n.note_id, n.text, n.patient_id) for n in read_all(source)] == [("s1", "a, b; c", "m")]
    assert source.describe().endswith("delimiter=';'")
    assert [n.text for n in read_all(open_source(u16, SourceOptions()))] == ["caf\u00e9 " + NOTE]


def test_csv_that_is_empty_is_an_unreadable_source(tmp_path):
    (tmp_path / "e.csv").write_bytes(b"")
    with pytest.raises(SourceError, match="no header"):
        open_source(tmp_path / "e.csv", SourceOptions())


# --------------------------------------------------------------------------- JSONL


def test_jsonl_auto_detection_values_and_bad_lines(tmp_path):
    path = tmp_path / "notes.jsonl"
    lines = [
        {"id": 17, "note": NOTE, "mrn": "m1", "dos": "2024-03-05", "cpt": ["62323", "77003"], "extra": 1},
        "",
        '{"id": "cut", "note": "' + MARKER,
        "[1, 2]",
        {"id": "num", "note": 42},
        {"id": "absent", "mrn": "m1"},
        {"id": "crlf", "note": "a\r\nb " + MARKER},
        {"id": 17, "note": NOTE},
    ]
    write_lines(path, lines)
    with path.open("ab") as f:
        f.write(b'{"id": "latin", "note": "caf\xe9 ' + MARKER.encode() + b'"}\n')
    assert detect_format(path) == "jsonl"
    source = open_source(path, SourceOptions())
    assert source.describe() == ("JSONL notes.jsonl: text=note id=id patient=mrn date=dos billed=cpt "
                                 "(auto-detected: text, id, patient, date, billed)")
    notes = read_all(source)
    assert [(n.note_id, n.locator) for n in notes] == [
        ("17", "notes.jsonl:line 1"), ("line-3", "notes.jsonl:line 3"), ("line-4", "notes.jsonl:line 4"),
        ("num", "notes.jsonl:line 5"), ("absent", "notes.jsonl:line 6"), ("crlf", "notes.jsonl:line 7"),
        ("17#2", "notes.jsonl:line 8"), ("latin", "notes.jsonl:line 9")]
    n = by_id(notes)
    assert (n["17"].text, n["17"].patient_id, n["17"].service_date, n["17"].billed) == (
        NOTE, "m1", "2024-03-05", "62323,77003")
    assert "malformed JSON line" in n["line-3"].error
    assert "not a JSON object" in n["line-4"].error
    assert "not a string" in n["num"].error
    assert "no note text in note" in n["absent"].error
    assert n["crlf"].text == "a\r\nb " + MARKER
    assert n["latin"].text == f"caf\ufffd {MARKER}" and n["latin"].warnings == [NOT_UTF8_WARNING]


def test_jsonl_explicit_and_dotted_fields_and_a_missing_given_field(tmp_path):
    path = write_lines(tmp_path / "dump.json", [
        {"uid": "u1", "body": {"plain": NOTE}, "meta": {"pt": "p1", "when": "2024-01-02"}},
    ])
    assert detect_format(path) == "jsonl"
    source = open_source(path, SourceOptions(text_col="body.plain", id_col="UID", patient_col="meta.pt",
                                             date_col="meta.when"))
    [note] = read_all(source)
    assert (note.note_id, note.text, note.patient_id, note.service_date) == ("u1", NOTE, "p1", "2024-01-02")
    with pytest.raises(SourceError, match="'billed_code'"):
        open_source(path, SourceOptions(text_col="body.plain", billed_col="billed_code"))


def test_jsonl_fields_are_gathered_from_more_than_the_first_object(tmp_path):
    path = write_lines(tmp_path / "sparse.jsonl", [
        {"id": "a", "text": NOTE}, {"id": "b", "text": NOTE, "billed": "62322", "meta": {"mrn": "m2"}}])
    source = open_source(path, SourceOptions(billed_col="billed", patient_col="meta.mrn"))
    assert source.chosen["billed"] == "billed" and source.chosen["patient"] == "meta.mrn"
    assert [(n.billed, n.patient_id) for n in read_all(source)] == [(None, None), ("62322", "m2")]


def test_a_column_given_for_one_field_is_not_auto_picked_for_another(tmp_path):
    path = write_csv(tmp_path / "n.csv", [["id", "text"], ["m1", NOTE]])
    source = open_source(path, SourceOptions(patient_col="id"))
    assert source.chosen["patient"] == "id" and source.chosen["id"] is None
    [note] = read_all(source)
    assert (note.note_id, note.patient_id) == ("row-2", "m1")


def test_jsonl_line_over_the_cap_is_one_error_and_the_next_line_is_read(tmp_path):
    path = write_lines(tmp_path / "n.jsonl", [
        {"id": "a", "text": NOTE}, {"id": "big", "text": MARKER * 10_000}, {"id": "b", "text": NOTE}])
    notes = read_all(open_source(path, SourceOptions(max_bytes=1000)))
    assert [n.note_id for n in notes] == ["a", "line-2", "b"]
    assert "line too large" in notes[1].error
    mid = read_all(open_source(path, SourceOptions(max_bytes=50_000)))  # under the line cap, over max_bytes
    assert [n.note_id for n in mid] == ["a", "big", "b"] and "note too large" in mid[1].error


# --------------------------------------------------------------------------- FHIR NDJSON


def test_fhir_ndjson_document_references(tmp_path):
    path = write_lines(tmp_path / "DocumentReference.ndjson", [
        docref("d1", NOTE, "text/plain; charset=utf-8", date="2024-03-07T08:00:00Z",
               context={"period": {"start": "2024-03-05T14:30:00-05:00"}},
               subject={"reference": "https://ehr.example/fhir/Patient/123/_history/4"}),
        docref("d2", f"caf\u00e9 {MARKER}".encode("latin-1"), 'text/plain;charset="ISO-8859-1"',
               date="2024-04-01"),
        {"resourceType": "Patient", "id": "p1"},
        docref("d3", NOTE, None, subject={"identifier": {"value": "MRN-9"}}, date="2024-04"),
        docref(None, NOTE),
    ])
    assert detect_format(path) == "fhir_ndjson"
    source = open_source(path, SourceOptions())
    assert source.format == "fhir_ndjson" and source.chosen["text"] == "content.attachment.data"
    assert source.describe().startswith("FHIR NDJSON DocumentReference.ndjson: text=content.attachment.data id=id")
    notes = read_all(source)
    assert [(n.note_id, n.locator) for n in notes] == [
        ("d1", "DocumentReference.ndjson:line 1"), ("d2", "DocumentReference.ndjson:line 2"),
        ("d3", "DocumentReference.ndjson:line 4"), ("line-5", "DocumentReference.ndjson:line 5")]
    assert source.skipped == 1  # the Patient resource is not a note
    d1, d2, d3, anon = notes
    assert (d1.text, d1.patient_id, d1.service_date, d1.billed) == (NOTE, "Patient/123", "2024-03-05", None)
    assert d2.text == f"caf\u00e9 {MARKER}" and d2.warnings == [] and d2.service_date == "2024-04-01"
    assert d3.text == NOTE and d3.patient_id == "MRN-9" and d3.service_date is None
    assert d3.warnings == ["service date (context.period.start or date) is not a full date; left empty",
                           "attachment has no contentType; read as text/plain"]
    assert anon.text == NOTE and anon.warnings == ["DocumentReference has no id; using line-5"]


def test_fhir_ndjson_bad_resources_become_error_notes(tmp_path):
    encoded = b64(NOTE)
    wrapped = "\n".join(encoded[i:i + 76] for i in range(0, len(encoded), 76))  # MIME-style line breaks
    path = write_lines(tmp_path / "DocumentReference.ndjson", [
        docref("ok", NOTE),
        docref("badb64", None, content=[{"attachment": {"contentType": "text/plain", "data": "@@not base64!!"}}]),
        docref("pdf", b"%PDF-1.4 " + MARKER.encode(), "application/pdf"),
        docref("url", None, content=[{"attachment": {"contentType": "text/plain", "url": "Binary/1"}}]),
        docref("nocontent", None),
        docref("empty", "   "),
        docref("png", PNG, "text/plain"),
        docref("latin", f"caf\u00e9 {MARKER}".encode("latin-1"), "text/plain"),
        docref("huge", NOTE * 50),
        '{"resourceType": "DocumentReference", "id": "cut", ',
        {"id": "no-type", "text": NOTE},
        docref("ok", NOTE),
        docref("wrapped", None, content=[{"attachment": {"contentType": "text/plain", "data": wrapped}}]),
    ])
    n = by_id(read_all(open_source(path, SourceOptions(max_bytes=len(NOTE) * 10))))
    assert list(n) == ["ok", "badb64", "pdf", "url", "nocontent", "empty", "png", "latin", "huge", "line-10",
                       "line-11", "ok#2", "wrapped"]
    assert n["ok"].text == NOTE and n["ok#2"].text == NOTE and n["wrapped"].text == NOTE
    assert "not valid base64" in n["badb64"].error
    assert "no text/plain attachment (found application/pdf)" in n["pdf"].error
    assert "not inline" in n["url"].error
    assert "no content attachment" in n["nocontent"].error
    assert "empty note" in n["empty"].error
    assert "binary" in n["png"].error
    assert n["latin"].text == f"caf\ufffd {MARKER}" and n["latin"].warnings == [NOT_UTF8_WARNING]
    assert "too large" in n["huge"].error
    assert "malformed JSON line" in n["line-10"].error
    assert "no resourceType" in n["line-11"].error


def test_fhir_ndjson_file_named_jsonl_is_still_fhir_and_column_options_are_refused(tmp_path):
    path = write_lines(tmp_path / "export.jsonl", [docref("d1", NOTE)])
    assert detect_format(path) == "fhir_ndjson"
    with pytest.raises(SourceError, match="--text-col"):
        open_source(path, SourceOptions(text_col="note"))


def test_empty_bulk_export_file_has_no_notes(tmp_path):
    (tmp_path / "DocumentReference.ndjson").write_bytes(b"")
    source = open_source(tmp_path / "DocumentReference.ndjson", SourceOptions())
    assert source.format == "fhir_ndjson" and list(source) == []


# --------------------------------------------------------------------------- FHIR Bundle


def bundle(entries: list[dict], entry_first: bool = False) -> dict:
    body = {"type": "searchset", "entry": [{"fullUrl": f"urn:uuid:{i}", "resource": r} for i, r in
                                           enumerate(entries)]}
    return {**body, "resourceType": "Bundle"} if entry_first else {"resourceType": "Bundle", **body}


def test_fhir_bundle_pretty_printed_with_entries_before_resource_type(tmp_path):
    path = tmp_path / "bundle.json"
    path.write_text(json.dumps(bundle([
        docref("b1", NOTE, date="2024-02-02"),
        {"resourceType": "Patient", "id": "p1"},
        docref("b2", "", date="2024-02-03"),
        docref("b3", NOTE, subject={"reference": "urn:uuid:abc"}),
    ], entry_first=True), indent=2))
    assert detect_format(path) == "fhir_bundle"
    source = open_source(path, SourceOptions())
    assert source.describe().startswith("FHIR Bundle bundle.json: ")
    notes = read_all(source)
    assert [(n.note_id, n.locator) for n in notes] == [
        ("b1", "bundle.json:entry 1"), ("b2", "bundle.json:entry 3"), ("b3", "bundle.json:entry 4")]
    assert notes[0].text == NOTE and notes[0].service_date == "2024-02-02" and notes[0].patient_id == "Patient/p1"
    assert "empty note" in notes[1].error
    assert notes[2].patient_id == "urn:uuid:abc"
    assert source.skipped == 1


def test_fhir_bundle_on_one_line_and_a_truncated_bundle(tmp_path):
    one_line = tmp_path / "b.json"
    one_line.write_text(json.dumps(bundle([docref("x1", NOTE)])))
    assert detect_format(one_line) == "fhir_bundle"
    assert [n.text for n in read_all(open_source(one_line, SourceOptions()))] == [NOTE]
    cut = tmp_path / "cut.json"
    text = json.dumps(bundle([docref("c1", NOTE), docref("c2", NOTE), docref("c3", NOTE)]), indent=1)
    cut.write_text(text[: text.index('"c3"') + 10])
    notes = read_all(open_source(cut, SourceOptions()))
    assert [n.note_id for n in notes] == ["c1", "c2", "entry-3"]
    assert "the rest of the Bundle could not be read" in notes[2].error


# --------------------------------------------------------------------------- detection


def test_detect_format_by_extension_and_content(tmp_path):
    (tmp_path / "export.dat").write_text("id,text\nn1,hello\n")
    write_lines(tmp_path / "dump.log", [{"text": NOTE}])
    assert detect_format(tmp_path / "export.dat") == "csv"
    assert detect_format(tmp_path / "dump.log") == "jsonl"
    (tmp_path / "note.txt").write_text(NOTE)
    (tmp_path / "obj.json").write_text(json.dumps({"resourceType": "Patient", "id": 1}, indent=2))
    (tmp_path / "bad.jsonl").write_text("{not json\n{nor this\n")
    for name, phrase in [("note.txt", "single note"), ("missing.csv", "no such file"),
                         ("obj.json", "neither JSON lines nor a FHIR Bundle"),
                         ("bad.jsonl", "neither JSON lines nor a FHIR Bundle")]:
        with pytest.raises(SourceError, match=phrase) as info:
            open_source(tmp_path / name, SourceOptions())
        assert MARKER not in str(info.value)


def test_jsonl_with_a_malformed_first_line_is_still_jsonl(tmp_path):
    path = write_lines(tmp_path / "n.jsonl", ['{"id": "x", "text": "' + MARKER, {"id": "y", "text": NOTE}])
    assert detect_format(path) == "jsonl"
    assert [n.note_id for n in read_all(open_source(path, SourceOptions()))] == ["line-1", "y"]


@pytest.mark.parametrize("value, expected", [
    ("2024-03-05", "2024-03-05"), ("2024-03-05T23:59:00-08:00", "2024-03-05"), ("2024-03-05 10:00", "2024-03-05"),
    ("20240305", "2024-03-05"), ("03/05/2024", "2024-03-05"), ("3/5/24", "2024-03-05"),
    ("25.12.2023", "2023-12-25"),
    ("2024-02-30", None), ("2024-03", None), ("2024", None), ("soon", None), ("", None), (None, None),
])
def test_parse_date(value, expected):
    assert parse_date(value) == expected


# --------------------------------------------------------------------------- streaming


def _peak_while_reading(source: Source) -> tuple[int, int]:
    tracemalloc.start()
    try:
        count = sum(1 for note in source if note.text is not None)
        return count, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def _write_big_csv(path: Path, rows: int) -> int:
    body = (NOTE.rstrip("\n") + ' Pre 7/10, "post" 2/10.\n') * 14  # about 1.5 kB, a typical note
    quoted = body.replace('"', '""')  # written by hand (as csv.writer would) because it is 4x faster
    with path.open("w", newline="", encoding="utf-8") as f:
        f.write("note_id,mrn,service_date,billed_code,note_text\r\n")
        for i in range(rows):
            f.write(f'n{i:06d},p{i % 997},2024-{1 + i % 12:02d}-{1 + i % 28:02d},62323,"{i} {quoted}"\r\n')
    return path.stat().st_size


def test_csv_memory_stays_flat_over_a_50k_row_export(tmp_path):
    small_size = _write_big_csv(tmp_path / "small.csv", 5_000)
    size = _write_big_csv(tmp_path / "big.csv", 50_000)
    assert size > 70_000_000
    small_count, small_peak = _peak_while_reading(open_source(tmp_path / "small.csv", SourceOptions()))
    count, peak = _peak_while_reading(open_source(tmp_path / "big.csv", SourceOptions()))
    assert (small_count, count) == (5_000, 50_000)
    last = list(open_source(tmp_path / "small.csv", SourceOptions()))[-1]
    assert last.text.endswith('"post" 2/10.\n') and last.note_id == "n004999"
    assert peak < size / 15, f"peak {peak} bytes for a {size}-byte export"
    # Ten times the export adds only the remembered note ids (about 100 bytes each), never note text.
    per_extra_row = (peak - small_peak) / (50_000 - 5_000)
    assert per_extra_row < 200 < (size - small_size) / (50_000 - 5_000) / 5, per_extra_row


def test_ndjson_and_bundle_memory_stays_flat(tmp_path):
    encoded = b64(NOTE * 20)  # about 1.8 kB of text, the size of a typical procedure note
    ndjson = tmp_path / "DocumentReference.ndjson"
    with ndjson.open("w", encoding="utf-8") as f:
        for i in range(8_000):
            f.write(json.dumps(docref(f"d{i}", None, content=[{"attachment": {"contentType": "text/plain",
                                                                              "data": encoded}}])) + "\n")
    bundle_path = tmp_path / "bundle.json"
    with bundle_path.open("w", encoding="utf-8") as f:
        f.write('{"resourceType": "Bundle", "type": "collection", "entry": [\n')
        for i in range(8_000):
            entry = {"resource": docref(f"b{i}", None, content=[{"attachment": {"contentType": "text/plain",
                                                                                "data": encoded}}])}
            f.write(("," if i else "") + json.dumps(entry) + "\n")
        f.write("]}\n")
    for path in (ndjson, bundle_path):
        size = path.stat().st_size
        count, peak = _peak_while_reading(open_source(path, SourceOptions()))
        assert count == 8_000
        assert peak < size / 10, f"{path.name}: peak {peak} bytes for a {size}-byte export"


def test_reading_is_lazy(tmp_path):
    path = write_csv(tmp_path / "n.csv", [["id", "text"], ["a", NOTE], ["b", NOTE]])
    it = iter(open_source(path, SourceOptions()))
    assert next(it).note_id == "a"
    with path.open("a", newline="") as f:  # rows appended after reading started are still reached
        csv.writer(f).writerow(["c", NOTE])
    assert [n.note_id for n in it] == ["b", "c"]
