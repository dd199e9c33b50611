"""NoteChecker: the one engine every front end (CLI, batch audit, web service) calls.

Build once (the spaCy pipeline and every rule file load here), then `check` each note:
text -> pipeline -> ProcedureRecord (notecheck.extract) -> code (notecheck.coding) ->
requirement findings (notecheck.requirements).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from pathlib import Path

from .coding import load_coding_rules, suggest_code
from .extract import extract
from .extract.mentions import ORIGINAL_TEXT
from .patterns_path import patterns_dir
from .pipeline import get_pipeline
from .record import Finding, NoteResult
from .requirements import evaluate, load_requirements
from .spoken_numbers import load_spoken_numbers

log = logging.getLogger(__name__)

# The engine's hard ceiling (callers such as the CLI set lower limits): longer texts are refused rather
# than risk minutes of work and gigabytes on one pasted export.
MAX_NOTE_CHARS = 5_000_000
NOT_AN_EPIDURAL_NOTE = "not an epidural injection note: no spinal injection procedure was found"


class NoteChecker:
    """Build once, then call `check` per note (or `check_many` to stream through nlp.pipe)."""

    def __init__(self, patterns_dir_path: str | Path | None = None) -> None:
        self.folder = Path(patterns_dir_path) if patterns_dir_path else patterns_dir()
        self.nlp = get_pipeline(str(self.folder))
        self.nlp.max_length = MAX_NOTE_CHARS  # spaCy's default (1,000,000) is for parsers; we have none
        self.coding_rules = load_coding_rules(self.folder)
        self.requirements = load_requirements(self.folder / "requirements.yaml")
        self.spoken_numbers = load_spoken_numbers(self.folder)

    def check(self, text: str, note_id: str = "note") -> NoteResult:
        """Check one decoded note. Never raises for bad text: returns status="error" with a reason."""
        return next(self.check_many([(note_id, text)]))

    def check_many(self, notes: Iterable[tuple[str, str]], batch_size: int = 32) -> Iterator[NoteResult]:
        """Check (note_id, text) pairs in order, streaming; one bad note never stops the others."""
        pending: list[tuple[str, str]] = []
        for note_id, text in notes:
            problem = _refuse(text)
            if problem:
                yield from self._flush(pending)
                pending = []
                yield NoteResult(note_id=note_id, status="error", error=f"note {note_id}: {problem}")
                continue
            pending.append((note_id, text))
            if len(pending) >= batch_size:
                yield from self._flush(pending)
                pending = []
        yield from self._flush(pending)

    def _flush(self, batch: list[tuple[str, str]]) -> Iterator[NoteResult]:
        if not batch:
            return
        readable = [self._readable(text) for _, text in batch]
        try:
            docs = list(self.nlp.pipe(readable))
        except Exception:  # noqa: BLE001 - fall back to one at a time so one bad note fails alone
            yield from (self._one(note_id, text) for note_id, text in batch)
            return
        for (note_id, text), read, doc in zip(batch, readable, docs):
            yield self._result(note_id, doc, text, read)

    def _readable(self, text: str) -> str:
        """The text the pipeline reads: spoken numbers as digits, same length (notecheck.spoken_numbers)."""
        return self.spoken_numbers.digits_for_words(text)

    def _one(self, note_id: str, text: str) -> NoteResult:
        try:
            read = self._readable(text)
            return self._result(note_id, self.nlp(read), text, read)
        except Exception as exc:  # noqa: BLE001
            return _internal_error(note_id, exc)

    def _result(self, note_id: str, doc, original: str, read: str) -> NoteResult:
        if read is not original and read != original:
            doc.user_data[ORIGINAL_TEXT] = original  # evidence quotes the note as written
        return self._checked(note_id, doc)

    def _checked(self, note_id: str, doc) -> NoteResult:
        try:
            extraction = extract(doc, self.folder)
            if extraction.record is None:
                return NoteResult(note_id=note_id, status="error", error=f"note {note_id}: {NOT_AN_EPIDURAL_NOTE}")
            record = extraction.record
            code = suggest_code(extraction, self.coding_rules)
            findings = evaluate(record, self.requirements)
            family = self.coding_rules.out_of_family.get(code.out_of_family or "", {})
            if family.get("requirements_apply") == "no":
                findings = [_not_applicable(f, family["name"]) for f in findings]
            return NoteResult(note_id=note_id, status="ok", record=record, code=code, findings=findings)
        except Exception as exc:  # noqa: BLE001 - a bug on one note must not stop a batch
            return _internal_error(note_id, exc)


def _internal_error(note_id: str, exc: Exception) -> NoteResult:
    # The exception's type only: its message could quote the note.
    log.error("note %s: internal error (%s)", note_id, type(exc).__name__)
    return NoteResult(note_id=note_id, status="error",
                      error=f"note {note_id}: internal error while checking ({type(exc).__name__})")


def _not_applicable(finding: Finding, family_name: str) -> Finding:
    return finding.model_copy(update={"status": "not_applicable", "query": None, "evidence": [],
                                      "message": f"Not applicable: {family_name}."})


def _refuse(text: str) -> str | None:
    if not isinstance(text, str):
        return "note text is not a string"
    if not text.strip():
        return "empty note"
    if len(text) > MAX_NOTE_CHARS:
        return f"note too large ({len(text)} characters > {MAX_NOTE_CHARS})"
    return None
