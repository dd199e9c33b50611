import pytest

from notecheck.engine import NoteChecker


@pytest.fixture(scope="session")
def checker() -> NoteChecker:
    return NoteChecker()


@pytest.fixture(scope="session")
def check(checker):
    """Check a note text and return the NoteResult, asserting every evidence span indexes the text."""

    def run(text: str, note_id: str = "t"):
        result = checker.check(text, note_id)
        if result.record is not None:
            for spans in result.record.evidence.values():
                for ev in spans:
                    assert text[ev.start:ev.end] == ev.text
            for f in result.findings:
                for ev in f.evidence:
                    assert text[ev.start:ev.end] == ev.text
        return result

    return run
