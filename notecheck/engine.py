"""NoteChecker: the one engine every front end (CLI, batch audit, web service) calls.

Build once (the spaCy pipeline, every rule file and the payer profile load here), then `check` each note:
text -> pipeline -> ProcedureRecord (notecheck.extract) -> code (notecheck.coding) ->
documentation findings (notecheck.requirements) + coverage / coding-compliance findings and the billed-code
comparison (notecheck.coverage, with the payer profile of notecheck.profiles).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from pathlib import Path

from .coding import load_coding_rules, suggest_code
from .coverage import CoverageChecker
from .extract import extract
from .extract.mentions import ORIGINAL_TEXT
from .patterns_path import patterns_dir
from .pipeline import get_pipeline
from .profiles import load_profile
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

    def __init__(self, patterns_dir_path: str | Path | None = None, profile: str | Path | None = None) -> None:
        """`profile`: a payer profile id (patterns/profiles/<id>.yaml) or path; default Medicare.

        Raises ProfileError / RequirementsError (both ValueError) naming the file for a bad profile."""
        self.folder = Path(patterns_dir_path) if patterns_dir_path else patterns_dir()
        self.profile = load_profile(profile, self.folder)
        self.nlp = get_pipeline(str(self.folder))
        self.nlp.max_length = MAX_NOTE_CHARS  # spaCy's default (1,000,000) is for parsers; we have none
        self.coding_rules = load_coding_rules(self.folder)
        self.requirements = load_requirements(self.folder / "requirements.yaml", profile=self.profile)
        self.coverage = CoverageChecker(self.folder, self.profile, self.coding_rules)
        self.spoken_numbers = load_spoken_numbers(self.folder)

    @property
    def profile_id(self) -> str:
        return str(self.profile["id"])

    def check(self, text: str, note_id: str = "note", billed: str | None = None) -> NoteResult:
        """Check one decoded note (with the claim's billed codes, if any). Never raises for bad text:
        returns status="error" with a reason."""
        return next(self.check_many([(note_id, text, billed)]))

    def check_many(self, notes: Iterable[tuple[str, str] | tuple[str, str, str | None]],
                   batch_size: int = 32) -> Iterator[NoteResult]:
        """Check (note_id, text) or (note_id, text, billed) items in order, streaming; one bad note never
        stops the others."""
        pending: list[tuple[str, str, str | None]] = []
        for item in notes:
            note_id, text, billed = item if len(item) == 3 else (*item, None)
            problem = _refuse(text)
            if problem:
                yield from self._flush(pending)
                pending = []
                yield self._with_claim(NoteResult(note_id=note_id, status="error", error=f"note {note_id}: {problem}"),
                                       None, billed)
                continue
            pending.append((note_id, text, billed))
            if len(pending) >= batch_size:
                yield from self._flush(pending)
                pending = []
        yield from self._flush(pending)

    def _flush(self, batch: list[tuple[str, str, str | None]]) -> Iterator[NoteResult]:
        if not batch:
            return
        readable = [self._readable(text) for _, text, _ in batch]
        try:
            docs = list(self.nlp.pipe(readable))
        except Exception:  # noqa: BLE001 - fall back to one at a time so one bad note fails alone
            yield from (self._one(note_id, text, billed) for note_id, text, billed in batch)
            return
        for (note_id, text, billed), read, doc in zip(batch, readable, docs):
            yield self._result(note_id, doc, text, read, billed)

    def _readable(self, text: str) -> str:
        """The text the pipeline reads: spoken numbers as digits, same length (notecheck.spoken_numbers)."""
        return self.spoken_numbers.digits_for_words(text)

    def _one(self, note_id: str, text: str, billed: str | None) -> NoteResult:
        try:
            read = self._readable(text)
            return self._result(note_id, self.nlp(read), text, read, billed)
        except Exception as exc:  # noqa: BLE001
            return self._with_claim(_internal_error(note_id, exc), None, billed)

    def _result(self, note_id: str, doc, original: str, read: str, billed: str | None) -> NoteResult:
        if read is not original and read != original:
            doc.user_data[ORIGINAL_TEXT] = original  # evidence quotes the note as written
        return self._checked(note_id, doc, billed)

    def _checked(self, note_id: str, doc, billed: str | None) -> NoteResult:
        try:
            extraction = extract(doc, self.folder)
            if extraction.record is None:
                error = NoteResult(note_id=note_id, status="error", error=f"note {note_id}: {NOT_AN_EPIDURAL_NOTE}")
                return self._with_claim(error, None, billed)
            record = extraction.record
            code = suggest_code(extraction, self.coding_rules)
            findings = evaluate(record, self.requirements)
            family = self.coding_rules.out_of_family.get(code.out_of_family or "", {})
            if family.get("requirements_apply") == "no":
                findings = [_not_applicable(f, family["name"]) for f in findings]
            result = NoteResult(note_id=note_id, status="ok", profile=self.profile_id, record=record, code=code,
                                findings=findings)
            return self._with_claim(result, extraction.multiple_regions, billed)
        except Exception as exc:  # noqa: BLE001 - a bug on one note must not stop a batch
            return self._with_claim(_internal_error(note_id, exc), None, billed)

    def _with_claim(self, result: NoteResult, multiple_regions: bool | None, billed: str | None) -> NoteResult:
        """Add the coverage findings (ok notes) and the claim comparison (when billed codes were given)."""
        try:
            extra, claim = self.coverage.check(result, bool(multiple_regions), billed)
        except Exception as exc:  # noqa: BLE001 - keep the documentation result; say what is missing
            log.error("note %s: coverage check failed (%s)", result.note_id, type(exc).__name__)
            warning = f"coverage and billing findings not computed ({type(exc).__name__})"
            return result.model_copy(update={"warnings": [*result.warnings, warning]})
        return result.model_copy(update={"findings": [*result.findings, *extra], "claim": claim,
                                         "profile": self.profile_id})


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
