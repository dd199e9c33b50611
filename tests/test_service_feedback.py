"""The CDS Hooks feedback store on real SQLite files: what is kept, what is refused, two writer processes
at once, and that no note text reaches the file whatever a client sends."""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import sys
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from notecheck.service.feedback import MAX_COMMENT_CHARS, MAX_ITEMS, FeedbackStore

SERVICE = "epidural-note-check"
HOOK = "4db3546f-2ae9-4060-b089-b2dddd43d3bd"
CARD_A = "f270d156-aeb9-4650-8028-ed44ec6cfb67"
CARD_B = "8a100df1-1b04-47d6-b38b-cf43983f3c13"
SUGGESTION = "0ac5a2f4-9b4f-4cbb-8f1e-3d3f6f1a7c11"
# Hand-written, no patient data: what a note would say.
NOTE_TEXT = ("PROCEDURE: L4-L5 interlaminar epidural steroid injection under fluoroscopic guidance. "
             "Zygomorphic-marker-7731 tolerated the procedure well.")


def accepted(card=CARD_A, **extra) -> dict:
    return {"card": card, "outcome": "accepted", "acceptedSuggestions": [{"id": SUGGESTION}],
            "outcomeTimestamp": "2026-03-01T14:05:00Z", **extra}


def overridden(card=CARD_B, **extra) -> dict:
    return {"card": card, "outcome": "overridden",
            "overrideReason": {"reason": {"system": "https://notecheck.example/override-reason",
                                          "code": "documented-elsewhere",
                                          "display": "Documented in a separate consent form"},
                               "userComment": "Consent form scanned into media tab"},
            "outcomeTimestamp": "2026-03-01T09:05:00-05:00", **extra}


@pytest.fixture
def store(tmp_path) -> FeedbackStore:
    return FeedbackStore(tmp_path / "db" / "feedback.sqlite")


def test_accepted_and_overridden_items_are_stored(store, tmp_path):
    assert store.add(SERVICE, [accepted(), overridden()], hook_instance=HOOK) == 2
    second_service = [overridden(card="c-2", overrideReason={"userComment": "false alarm"})]
    assert store.add("procedure-note-sign", second_service) == 1

    first, second, third = store.rows()
    assert first["service_id"] == SERVICE and first["hook_instance"] == HOOK
    assert first["card"] == CARD_A and first["outcome"] == "accepted"
    assert first["accepted_suggestions"] == [SUGGESTION]
    assert first["override_reason_code"] is None and first["user_comment"] is None
    assert first["outcome_timestamp"] == "2026-03-01T14:05:00.000Z"
    assert second["outcome"] == "overridden" and second["accepted_suggestions"] == []
    assert second["override_reason_system"] == "https://notecheck.example/override-reason"
    assert second["override_reason_code"] == "documented-elsewhere"
    assert second["override_reason_display"] == "Documented in a separate consent form"
    assert second["user_comment"] == "Consent form scanned into media tab"
    assert second["outcome_timestamp"] == "2026-03-01T14:05:00.000Z"  # -05:00 normalised to UTC
    assert third["hook_instance"] is None and third["user_comment"] == "false alarm"
    assert third["override_reason_code"] is None
    for row in (first, second, third):
        assert row["received_at"].endswith("Z") and row["received_at"][:4].isdigit()

    assert [r["card"] for r in store.rows(SERVICE)] == [CARD_A, CARD_B]
    assert store.rows("unknown-service") == []

    # A second store on the same file (another worker, a restart) sees the same rows.
    assert len(FeedbackStore(tmp_path / "db" / "feedback.sqlite").rows()) == 3


def test_the_file_is_sqlite_in_wal_mode_and_private(store):
    store.add(SERVICE, [accepted()])
    with sqlite3.connect(store.path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("SELECT count(*) FROM feedback").fetchone()[0] == 1
        assert conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0] == "1"
    assert stat.S_IMODE(os.stat(store.path).st_mode) == 0o600


@pytest.mark.parametrize("items, message", [
    ([], "feedback must be a non-empty list"),
    ({"card": CARD_A}, "feedback must be a non-empty list"),
    (["not an object"], r"feedback\[0\] must be an object"),
    ([{"outcome": "accepted", "outcomeTimestamp": "2026-03-01T14:05:00Z"}], r"feedback\[0\]\.card is required"),
    ([accepted(card="card with spaces")], r"feedback\[0\]\.card must be at most 200 printable characters"),
    ([accepted(card="x" * 201)], r"feedback\[0\]\.card must be at most 200"),
    ([accepted(outcome="ignored")], r"feedback\[0\]\.outcome must be 'accepted' or 'overridden'"),
    ([accepted(outcome=None)], r"feedback\[0\]\.outcome must be"),
    ([accepted(acceptedSuggestions=[])], r"feedback\[0\]\.acceptedSuggestions must list the accepted suggestions"),
    ([accepted(acceptedSuggestions=None)], r"acceptedSuggestions must list"),
    ([accepted(acceptedSuggestions=["s1"])], r"acceptedSuggestions\[0\] must be an object with an id"),
    ([accepted(acceptedSuggestions=[{"uuid": "s1"}])], r"acceptedSuggestions\[0\]\.id is required"),
    ([accepted(overrideReason={"userComment": "x"})], r"overrideReason is only for an overridden outcome"),
    ([overridden(acceptedSuggestions=[{"id": "s1"}])], r"acceptedSuggestions is only for an accepted outcome"),
    ([overridden(overrideReason="because")], r"overrideReason must be an object"),
    ([overridden(overrideReason={"reason": "false-positive"})], r"overrideReason\.reason must be a Coding"),
    ([overridden(overrideReason={"reason": {"display": "x"}})], r"overrideReason\.reason\.code is required"),
    ([overridden(overrideReason={"reason": {"code": " padded"}})], r"reason\.code must be a FHIR code"),
    ([overridden(overrideReason={"reason": {"code": "c", "system": "not a uri"}})], r"reason\.system must be"),
    ([overridden(overrideReason={"reason": {"code": "c", "display": 7}})], r"reason\.display must be a string"),
    ([overridden(overrideReason={})], r"overrideReason needs a reason Coding or a userComment"),
    ([overridden(overrideReason={"userComment": "x" * (MAX_COMMENT_CHARS + 1)})],
     rf"userComment is {MAX_COMMENT_CHARS + 1} characters; at most {MAX_COMMENT_CHARS}"),
    ([accepted(outcomeTimestamp=None)], r"outcomeTimestamp is required"),
    ([accepted(outcomeTimestamp="yesterday")], r"outcomeTimestamp is not an ISO 8601 date-time"),
    ([accepted(outcomeTimestamp="2026-03-01T14:05:00")], r"outcomeTimestamp needs a timezone"),
    ([accepted()] * (MAX_ITEMS + 1), rf"at most {MAX_ITEMS} per request"),
    # One bad item after a good one: the message names it, and the good one is not stored either.
    ([accepted(), accepted(card=None)], r"feedback\[1\]\.card is required"),
])
def test_bad_items_are_refused_with_a_clear_message(store, items, message):
    with pytest.raises(ValueError, match=message):
        store.add(SERVICE, items)
    assert store.rows() == []


@pytest.mark.parametrize("kwargs, message", [
    ({"service_id": ""}, "service_id is required"),
    ({"service_id": "a b"}, "service_id must be"),
    ({"hook_instance": "x\ny"}, "hookInstance must be"),
])
def test_bad_service_or_hook_instance_are_refused(store, kwargs, message):
    args = {"service_id": SERVICE, **kwargs}
    with pytest.raises(ValueError, match=message):
        store.add(args.pop("service_id"), [accepted()], **args)


def test_a_file_that_is_not_sqlite_is_refused(tmp_path):
    path = tmp_path / "feedback.sqlite"
    path.write_text("this is not a database\n" * 100)
    with pytest.raises(ValueError, match=r"feedback database .*feedback\.sqlite: cannot be used"):
        FeedbackStore(path)


def test_no_note_text_is_ever_stored(store):
    """A client may echo anything into feedback (the card, its detail, the note itself): only the
    listed fields are kept, so none of it reaches the database or its WAL."""
    leaky = {"note": NOTE_TEXT, "detail": NOTE_TEXT, "summary": NOTE_TEXT[:60],
             "extension": {"org.example.note": NOTE_TEXT}}
    item = accepted(**leaky)
    item["acceptedSuggestions"] = [{"id": SUGGESTION, "label": NOTE_TEXT, "resource": {"text": NOTE_TEXT}}]
    reason = overridden(**leaky)
    reason["overrideReason"]["reason"]["extension"] = [{"valueString": NOTE_TEXT}]
    assert store.add(SERVICE, [item, reason], hook_instance=HOOK) == 2

    with sqlite3.connect(store.path) as conn:
        columns = [row[1] for row in conn.execute("PRAGMA table_info(feedback)")]
    assert columns == ["id", "service_id", "hook_instance", "card", "outcome", "accepted_suggestions",
                       "override_reason_system", "override_reason_code", "override_reason_display",
                       "user_comment", "outcome_timestamp", "received_at"]
    stored = repr(store.rows())
    files = [p for p in store.path.parent.iterdir() if p.name.startswith(store.path.name)]
    assert any(p.name.endswith("-wal") for p in files)  # the WAL is checked too, not only the main file
    for needle in ("Zygomorphic-marker-7731", "interlaminar epidural", "fluoroscopic"):
        assert needle not in stored
        for path in files:
            assert needle.encode() not in path.read_bytes(), path.name


def test_threads_share_one_store(store):
    def add(i: int) -> int:
        return store.add(SERVICE, [accepted(card=f"thread-card-{i}")])

    with ThreadPoolExecutor(max_workers=8) as pool:
        assert sum(pool.map(add, range(80))) == 80
    assert sorted(r["card"] for r in store.rows()) == sorted(f"thread-card-{i}" for i in range(80))


_WRITER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from notecheck.service.feedback import FeedbackStore

    db, go, tag, count = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    while not go.exists():  # both processes open the new file and write at the same moment
        time.sleep(0.005)
    store = FeedbackStore(db)
    for i in range(count):
        item = {"card": f"{tag}-{i}", "outcome": "overridden", "overrideReason": {"userComment": tag},
                "outcomeTimestamp": "2026-03-01T14:05:00Z"}
        store.add("epidural-note-check", [item], hook_instance=f"{tag}-hook")
        # Requests arrive apart, not in a tight loop (which lets one writer starve the other's busy
        # handler and finish first, so the test would not show the writers overlapping).
        time.sleep(0.002)
    print("done", tag)
""")


def test_two_processes_write_at_once(tmp_path):
    """Two worker processes create the same new file and interleave 150 single-item transactions each:
    every row lands exactly once, none is lost to a lock."""
    db, go, count = tmp_path / "feedback.sqlite", tmp_path / "go", 150
    procs = [subprocess.Popen([sys.executable, "-c", _WRITER, str(db), str(go), tag, str(count)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for tag in ("w1", "w2")]
    time.sleep(0.3)  # let both interpreters start and wait on the flag
    go.touch()
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err[-2000:]
        assert out.startswith("done")

    rows = FeedbackStore(db).rows()
    cards = [r["card"] for r in rows]
    assert len(cards) == 2 * count and len(set(cards)) == 2 * count
    assert set(cards) == {f"{tag}-{i}" for tag in ("w1", "w2") for i in range(count)}
    # Each process's rows are in its own order (ids ascend with commits).
    for tag in ("w1", "w2"):
        mine = [int(c.split("-")[1]) for c in cards if c.startswith(tag)]
        assert mine == list(range(count))
    # The writers really overlapped: their rows interleave rather than one block after the other.
    owners = [c.split("-")[0] for c in cards]
    switches = sum(1 for a, b in zip(owners, owners[1:]) if a != b)
    assert switches > 1


def test_a_directory_is_refused(tmp_path):
    with pytest.raises(ValueError, match="feedback database .*: cannot be used"):
        FeedbackStore(tmp_path)
