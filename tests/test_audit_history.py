"""History across encounters (notecheck.audit.history): a real SQLite file in tmp_path, real NoteChecker
results on small hand-written notes, the Medicare profile's frequency / repeat / region / level rules."""

from __future__ import annotations

import itertools
import sqlite3
import time

import pytest

from notecheck.audit.history import History, load_profile
from notecheck.audit.prior_response import analyze
from notecheck.record import Finding

MARKER = "Zebulon Quagmire-Fitzwilliam"

BASE = """PROCEDURE: Lumbar interlaminar epidural steroid injection at L4-L5 under fluoroscopic guidance.

Patient: {marker}.

INDICATIONS: Left L5 radicular leg pain for 12 weeks despite 6 weeks of physical therapy and NSAIDs. MRI shows a \
left L4-L5 disc protrusion contacting the L5 root, concordant with the symptoms. Diagnosis: lumbar radiculopathy \
(M54.16). Pre-procedure pain 7/10 on the NRS.{history}

CONSENT: Risks, benefits and alternatives were discussed and written informed consent was obtained.

TECHNIQUE: Time-out performed. Prone. Prepped with chlorhexidine. Under AP fluoroscopy the L4-L5 interlaminar \
space was identified. 1% lidocaine 3 mL to skin. A 20G Tuohy needle was advanced by a left paramedian approach \
with loss of resistance to saline. Omnipaque 240, 1 mL, showed epidural spread on AP and lateral views; images \
saved. Dexamethasone 10 mg with 2 mL saline injected. No sedation.

COMPLICATIONS: None.

DISPOSITION: Post-procedure pain 2/10 on the NRS. Discharged home in stable condition.

Plan: Follow up in 4 weeks. Consider a repeat injection if the relief is less than 50%.
"""


def _note(history: str = "") -> str:
    return BASE.format(marker=MARKER, history=history)


NOTES = {
    "lumbar": _note(),
    "lumbar_l5s1": _note().replace("L4-L5", "L5-S1"),
    "cervical": (_note().replace("Lumbar", "Cervical").replace("L4-L5", "C6-C7").replace("leg", "arm")
                 .replace("lumbar radiculopathy (M54.16)", "cervical radiculopathy (M54.12)")
                 .replace("L5 r", "C7 r")),
    "tfesi": (_note().replace("interlaminar epidural steroid injection at L4-L5",
                              "transforaminal epidural steroid injection (TFESI) at left L4-L5")
              .replace("the L4-L5 interlaminar space was identified", "the left L4-L5 foramen was targeted")
              .replace("A 20G Tuohy needle was advanced by a left paramedian approach with loss of resistance "
                       "to saline", "A 22G spinal needle was advanced to the safe triangle below the left L4 "
                                    "pedicle")),
    "good": _note(" A prior L4-L5 interlaminar ESI gave 60% relief of the leg pain for 3 months."),
    "low": _note(" A prior L4-L5 interlaminar ESI gave 30% relief for 3 months."),
    "short": _note(" A prior L4-L5 interlaminar ESI gave 70% relief lasting 3 weeks."),
    "no_duration": _note(" The previous L4-L5 ESI gave 70% relief, which is still ongoing but fading."),
    "says_repeat": _note().replace("PROCEDURE: Lumbar", "PROCEDURE: Repeat lumbar"),
    "facet": ("PROCEDURE: Right L4-L5 and L5-S1 facet joint injections under fluoroscopy. Patient: " + MARKER +
              ". Axial low back pain for 6 months. Time-out. Under fluoroscopy a 22G spinal needle was placed "
              "into each right facet joint and 0.5 mL of 40 mg/mL triamcinolone with bupivacaine was injected. "
              "No complications. Pain 2/10 after."),
}


@pytest.fixture(scope="module")
def results(checker):
    """One real NoteChecker result per hand-written note (the checker is built once for the session)."""
    return {name: checker.check(text, name).model_dump(mode="json") for name, text in NOTES.items()}


def test_hand_written_notes_are_what_the_tests_assume(results):
    assert results["lumbar"]["code"]["cpt"] == "62323"
    assert results["cervical"]["code"]["cpt"] == "62321"
    assert results["tfesi"]["code"]["out_of_family"] == "transforaminal"
    assert results["tfesi"]["record"]["region"] == "lumbar"
    assert results["facet"]["code"]["out_of_family"] == "facet"
    assert results["lumbar_l5s1"]["record"]["levels"] == ["L5-S1"]


@pytest.fixture()
def history(tmp_path):
    h = History(tmp_path / "history.sqlite")
    yield h
    h.close()


def _add(history: History, results: dict, kind: str, note_id: str, day: str | None,
         patient: str | None = "P1") -> None:
    result = dict(results[kind], note_id=note_id)
    history.record(result, NOTES[kind], patient, day)


def _by_id(history: History, note_id: str) -> dict[str, dict]:
    findings = history.findings_for(note_id)
    for f in findings:
        Finding.model_validate(f)  # the same shape as a per-note finding
    return {f["id"]: f for f in findings}


def _assert_spans_index_note(finding: dict, kind: str) -> None:
    for span in finding["evidence"]:
        assert NOTES[kind][span["start"]:span["end"]] == span["text"]


# -- frequency_limit ---------------------------------------------------------------------------------------
def test_four_sessions_in_twelve_months_are_within_the_limit_and_the_fifth_is_not(history, results):
    days = ["2024-01-10", "2024-03-10", "2024-05-10", "2024-07-10", "2024-09-10"]
    for i, day in enumerate(days, 1):
        _add(history, results, "lumbar", f"n{i}", day)
    fourth = _by_id(history, "n4")["frequency_limit"]
    assert fourth["status"] == "met" and "session 4 of at most 4" in fourth["message"]
    fifth = _by_id(history, "n5")["frequency_limit"]
    assert fifth["status"] == "missing" and fifth["severity"] == "error"
    assert "session 5" in fifth["message"] and "n1" in fifth["message"] and "2024-01-10" in fifth["message"]
    assert "S-V-A58731" in fifth["source"] and "C2" in fifth["source"]
    assert [e["text"] for e in fifth["evidence"]] and all("L4-L5" in e["text"] for e in fifth["evidence"])
    _assert_spans_index_note(fifth, "lumbar")
    assert fifth["query"] and "4" in fifth["query"]


@pytest.mark.parametrize("first_day, status", [
    ("2023-09-10", "met"),       # exactly 12 months before the fifth: outside the rolling window
    ("2023-09-11", "missing"),   # one day later: inside it
    ("2022-12-01", "met"),
])
def test_rolling_window_boundary(history, results, first_day, status):
    for i, day in enumerate([first_day, "2024-01-10", "2024-04-10", "2024-06-10", "2024-09-10"], 1):
        _add(history, results, "lumbar", f"n{i}", day)
    assert _by_id(history, "n5")["frequency_limit"]["status"] == status


def test_transforaminal_sessions_count_toward_the_limit(history, results):
    for i, (kind, day) in enumerate([("lumbar", "2024-01-10"), ("tfesi", "2024-03-10"), ("lumbar", "2024-05-10"),
                                     ("tfesi", "2024-07-10"), ("lumbar", "2024-09-10")], 1):
        _add(history, results, kind, f"n{i}", day)
    assert _by_id(history, "n5")["frequency_limit"]["status"] == "missing"
    tf = _by_id(history, "n4")["frequency_limit"]
    assert tf["status"] == "met" and "session 4" in tf["message"]


def test_other_families_do_not_count(history, results):
    for i, day in enumerate(["2024-01-10", "2024-03-10", "2024-05-10", "2024-07-10"], 1):
        _add(history, results, "lumbar", f"n{i}", day)
    _add(history, results, "facet", "facet1", "2024-08-10")
    _add(history, results, "lumbar", "n5", "2024-09-10")
    assert history.findings_for("facet1") == []
    assert _by_id(history, "n5")["frequency_limit"]["status"] == "missing"
    assert "facet1" not in _by_id(history, "n5")["frequency_limit"]["message"]


def test_different_regions_and_patients_are_counted_apart(history, results):
    for i, day in enumerate(["2024-01-10", "2024-03-10", "2024-05-10", "2024-07-10"], 1):
        _add(history, results, "lumbar", f"n{i}", day)
    _add(history, results, "cervical", "c1", "2024-09-10")
    _add(history, results, "lumbar", "other", "2024-09-10", patient="P2")
    cervical = _by_id(history, "c1")["frequency_limit"]
    assert cervical["status"] == "met" and "session 1 of at most 4 in the cervical/thoracic" in cervical["message"]
    assert "session 1 of" in _by_id(history, "other")["frequency_limit"]["message"]
    assert _by_id(history, "n4")["frequency_limit"]["status"] == "met"


def test_two_notes_of_one_visit_are_one_session(history, results):
    for i, day in enumerate(["2024-01-10", "2024-03-10", "2024-05-10", "2024-07-10"], 1):
        _add(history, results, "lumbar", f"n{i}", day)
    _add(history, results, "lumbar", "n4-addendum", "2024-07-10")
    assert _by_id(history, "n4-addendum")["frequency_limit"]["status"] == "met"


# -- re-recording, missing patient/date, error notes -------------------------------------------------------
def test_re_recording_a_note_id_never_double_counts(tmp_path, results):
    db = tmp_path / "history.sqlite"
    days = ["2024-01-10", "2024-03-10", "2024-05-10", "2024-07-10"]
    for _ in range(2):  # the same export audited twice, the second time in a new process
        with History(db) as h:
            for i, day in enumerate(days, 1):
                _add(h, results, "lumbar", f"n{i}", day)
                _add(h, results, "lumbar", f"n{i}", day)
    with History(db) as h:
        assert _by_id(h, "n4")["frequency_limit"]["status"] == "met"
        # A corrected date replaces the old one instead of adding a session.
        _add(h, results, "lumbar", "n1", "2022-01-10")
        _add(h, results, "lumbar", "n5", "2024-09-10")
        assert "session 4 of at most 4" in _by_id(h, "n5")["frequency_limit"]["message"]
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM notes").fetchone()[0] == 5
        assert conn.execute("SELECT count(*) FROM sessions").fetchone()[0] == 5


def test_notes_without_patient_or_date_are_recorded_but_skipped(history, results):
    for i, day in enumerate(["2024-01-10", "2024-03-10", "2024-05-10", "2024-07-10"], 1):
        _add(history, results, "lumbar", f"n{i}", day)
    _add(history, results, "lumbar", "no-patient", "2024-08-10", patient=None)
    _add(history, results, "lumbar", "blank-patient", "2024-08-11", patient="  ")
    _add(history, results, "lumbar", "no-date", None)
    _add(history, results, "lumbar", "bad-date", "08/12/2024")
    for note_id in ("no-patient", "blank-patient", "no-date", "bad-date", "never-recorded"):
        assert history.findings_for(note_id) == []
    assert _by_id(history, "n4")["frequency_limit"]["status"] == "met"
    _add(history, results, "lumbar", "n5", "2024-09-10")
    assert "session 5" in _by_id(history, "n5")["frequency_limit"]["message"]  # the skipped ones never count
    count = history.conn.execute("SELECT count(*) FROM notes").fetchone()[0]
    assert count == 9


def test_error_results_are_recorded_without_findings(history, checker):
    bad = checker.check("   ", "empty").model_dump(mode="json")
    assert bad["status"] == "error"
    history.record(bad, None, "P1", "2024-01-10")
    assert history.findings_for("empty") == []


# -- repeat_without_response -------------------------------------------------------------------------------
def test_first_injection_is_not_a_repeat(history, results):
    _add(history, results, "lumbar", "n1", "2024-01-10")  # its plan mentions a possible repeat: not today
    assert _by_id(history, "n1")["repeat_without_response"]["status"] == "not_applicable"


def test_repeat_without_documented_response(history, results):
    _add(history, results, "lumbar", "n1", "2024-01-10")
    _add(history, results, "lumbar", "n2", "2024-05-10")
    f = _by_id(history, "n2")["repeat_without_response"]
    assert f["status"] == "missing" and f["severity"] == "warning"
    assert "2024-01-10" in f["message"] and "n1" in f["message"] and "50%" in f["message"]
    assert f["query"] and "same scale" in f["query"]


def test_repeat_with_documented_relief_meets_the_profile(history, results):
    _add(history, results, "lumbar", "n1", "2024-01-10")
    _add(history, results, "good", "n2", "2024-05-10")
    f = _by_id(history, "n2")["repeat_without_response"]
    assert f["status"] == "met", f["message"]
    texts = [e["text"] for e in f["evidence"]]
    assert "60% relief" in texts and "3 months" in texts and any("prior" in t for t in texts)
    _assert_spans_index_note(f, "good")


@pytest.mark.parametrize("kind, words", [("low", "below the 50%"), ("short", "shorter than the 3 months"),
                                         ("no_duration", "does not say how long")])
def test_repeat_with_relief_below_the_threshold(history, results, kind, words):
    _add(history, results, kind, "n1", "2024-05-10")  # the note itself says there was a prior injection
    f = _by_id(history, "n1")["repeat_without_response"]
    assert f["status"] == "missing" and words in f["message"], f["message"]
    _assert_spans_index_note(f, kind)


def test_ongoing_relief_is_measured_from_the_prior_session(history, results):
    _add(history, results, "lumbar", "n1", "2024-01-10")
    _add(history, results, "no_duration", "n2", "2024-05-10")
    f = _by_id(history, "n2")["repeat_without_response"]
    assert f["status"] == "met" and "ongoing since the prior session" in f["message"]


def test_the_note_saying_repeat_is_enough_without_history(history, results):
    _add(history, results, "says_repeat", "r1", "2024-05-10")
    f = _by_id(history, "r1")["repeat_without_response"]
    assert f["status"] == "missing" and "describes a prior injection" in f["message"]
    assert [e["text"] for e in f["evidence"]] == ["Repeat lumbar interlaminar epidural"]
    _assert_spans_index_note(f, "says_repeat")


def test_a_profile_can_extend_medicare_and_change_the_duration(tmp_path, results):
    (tmp_path / "evicore.yaml").write_text(
        "extends: medicare\nid: evicore\nhistory:\n  repeat_without_response:\n    min_relief_duration:\n"
        "      {value: 2, unit: weeks, source: 'eviCore >= 2 weeks (S-EVI)', confidence: C1}\n", encoding="utf-8")
    profile = load_profile(str(tmp_path / "evicore.yaml"))
    assert profile["id"] == "evicore" and profile["history"]["frequency_limit"]["max_sessions"]["value"] == 4
    assert load_profile()["history"]["repeat_without_response"]["min_relief_duration"]["value"] == 3  # untouched
    with History(tmp_path / "h.sqlite", profile) as h:
        _add(h, results, "short", "n1", "2024-05-10")
        f = _by_id(h, "n1")["repeat_without_response"]
        assert f["status"] == "met" and "payer profile evicore" in f["source"]


def test_unknown_or_looping_profiles_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="not found"):
        load_profile("no-such-payer")
    (tmp_path / "a.yaml").write_text("extends: b\n", encoding="utf-8")
    (tmp_path / "b.yaml").write_text("extends: a\n", encoding="utf-8")
    with pytest.raises(ValueError, match="loops"):
        load_profile(str(tmp_path / "a.yaml"))


@pytest.mark.parametrize("text, percent, months", [
    ("Her last epidural 5 months ago gave 80% relief that lasted about four months.", 80, 4),
    ("She has had no prior injections.", None, None),
    ("The prior injection gave no relief.", 0, None),
    ("The prior ESI helped: pain went from 8/10 to 2/10 for 3-4 months.", 75, 3),
    ("Post-procedure 90% relief today.", None, None),
])
def test_prior_response_wording(text, percent, months):
    found = analyze(text)
    assert found.percent == percent
    assert (round(found.duration_days / 30.4375) if found.duration_days else None) == months
    for span in found.repeat_spans + found.percent_spans + found.duration_spans:
        assert text[span["start"]:span["end"]] == span["text"]


# -- same day: regions and levels --------------------------------------------------------------------------
def test_two_regions_on_one_day(history, results):
    _add(history, results, "lumbar", "n1", "2024-01-10")
    _add(history, results, "cervical", "c1", "2024-01-10")
    _add(history, results, "lumbar", "n2", "2024-03-10")
    for note_id in ("n1", "c1"):
        f = _by_id(history, note_id)["multiple_regions_same_day"]
        assert f["status"] == "missing" and "cervical/thoracic (note c1)" in f["message"]
    assert _by_id(history, "n2")["multiple_regions_same_day"]["status"] == "met"


def test_two_interlaminar_levels_in_one_session(history, results):
    _add(history, results, "lumbar", "n1", "2024-01-10")
    _add(history, results, "lumbar_l5s1", "n2", "2024-01-10")
    f = _by_id(history, "n1")["multiple_levels_same_session"]
    assert f["status"] == "missing" and "L4-L5 (note n1)" in f["message"] and "L5-S1 (note n2)" in f["message"]
    _assert_spans_index_note(f, "lumbar")
    assert _by_id(history, "n1")["frequency_limit"]["message"].startswith("ESI session 1 of")


def test_two_transforaminal_levels_are_allowed_three_are_not(history, results):
    tf = results["tfesi"]
    for i, level in enumerate(["L4-L5", "L5-S1"], 1):
        history.record(dict(tf, note_id=f"t{i}", record=dict(tf["record"], levels=[level])), None, "P1",
                       "2024-01-10")
    assert _by_id(history, "t1")["multiple_levels_same_session"]["status"] == "met"
    history.record(dict(tf, note_id="t3", record=dict(tf["record"], levels=["L3-L4"])), None, "P1", "2024-01-10")
    assert _by_id(history, "t1")["multiple_levels_same_session"]["status"] == "missing"


# -- privacy and scale -------------------------------------------------------------------------------------
def test_no_note_text_in_the_database(tmp_path, results):
    db = tmp_path / "history.sqlite"
    with History(db) as h:
        for i, kind in enumerate(NOTES):
            _add(h, results, kind, f"n{i}", f"2024-0{1 + i % 9}-10")
    dump = "\n".join(sqlite3.connect(db).iterdump())
    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("history.sqlite"))
    assert MARKER not in dump and MARKER.encode() not in raw
    for text in NOTES.values():
        # No stretch of any note longer than a cited span survives, in any table.
        for start in range(0, len(text) - 40, 10):
            assert text[start:start + 40] not in dump


def test_100k_notes_insert_and_query_quickly(tmp_path, results):
    template = results["lumbar"]

    def items():
        for i in range(100_000):
            yield (dict(template, note_id=f"n{i}"), None, f"p{i % 20_000}",
                   f"{2023 + i % 2}-{1 + i % 12:02d}-{1 + (i // 24) % 28:02d}")

    started = time.process_time()  # CPU time: the machine may be busy with other test runs
    with History(tmp_path / "history.sqlite") as h:
        source = items()
        while h.record_many(itertools.islice(source, 2000)):
            pass
        inserted = time.process_time() - started
        for i in range(0, 100_000, 50):
            assert len(h.findings_for(f"n{i}")) == 4
        total = time.process_time() - started
        assert h.conn.execute("SELECT count(*) FROM sessions").fetchone()[0] == 100_000
    assert inserted < 8 and total < 10, f"insert {inserted:.1f} s, insert + 2000 queries {total:.1f} s"


def test_a_file_that_is_not_a_history_database_is_a_clear_error(tmp_path):
    bogus = tmp_path / "not.sqlite"
    bogus.write_bytes(b"this is not an sqlite file, just some bytes" * 50)
    with pytest.raises(ValueError, match="cannot be used"):
        History(bogus)


def test_a_malformed_result_is_kept_uncounted(history, results):
    history.record({"note_id": "odd", "status": "ok", "record": {"levels": 5}, "code": {"cpt": "62323"}},
                   "text", "P1", "2024-01-10")
    assert history.findings_for("odd") == []
    assert history.conn.execute("SELECT counted FROM notes WHERE note_id='odd'").fetchone()[0] == 0


def test_every_profile_parameter_has_a_source_and_confidence():
    params = [(section, key, item) for section, body in load_profile()["history"].items()
              for key, item in body.items() if isinstance(item, dict) and "value" in item]
    assert {key for _, key, _ in params} >= {"max_sessions", "window_months", "min_relief_percent",
                                             "min_relief_duration", "codes", "families", "max_levels"}
    for section, key, item in params:
        assert item.get("source") and item.get("confidence"), f"{section}.{key}"
        assert "§3." in item["source"] or "S-" in item["source"], f"{section}.{key}"
