"""Plain-data view of what the pipeline found: one Mention per span, with its ConText and section
assertions, so the extractors are simple Python over lists (and testable without spaCy)."""

from __future__ import annotations

import re
from bisect import bisect_right
from dataclasses import dataclass, field
from functools import cached_property

from spacy.tokens import Doc

from ..pipeline import SPAN_GROUP
from ..pipeline.regex_spans import doc_text
from ..pipeline.sentences import sentence_token_starts, token_char_starts
from ..pipeline.rules import SECTION_ATTRIBUTES
from ..record import Evidence

# Labels produced by the regex recognizers; their exact offsets and values live in span._.nc.
REGEX_LABELS = {"LEVEL", "QUANTITY", "PAIN_SCORE", "DURATION", "LATERALITY", "ICD10"}


@dataclass
class Mention:
    label: str
    start: int
    end: int
    text: str
    meta: dict
    sentence: int
    section: str | None
    negated: bool = False
    hypothetical: bool = False
    historical: bool = False
    uncertain: bool = False
    family: bool = False
    # The note as written, where the pipeline read spoken numbers as digits (notecheck.spoken_numbers):
    # (start, end, text) of the evidence to quote. None: quote `text` at start:end.
    quoted: tuple[int, int, str] | None = None

    @property
    def current(self) -> bool:
        """A fact of this procedure: not negated, planned, past, doubtful or about a relative."""
        return not (self.negated or self.hypothetical or self.historical or self.uncertain or self.family)

    @cached_property
    def evidence(self) -> Evidence:
        if self.quoted is not None:
            start, end, text = self.quoted
            return Evidence(start=start, end=end, text=text)
        return Evidence(start=self.start, end=self.end, text=self.text)  # faster than model_construct here


@dataclass
class SectionSpan:
    category: str | None
    title_start: int
    body_start: int
    body_end: int


@dataclass
class NoteView:
    text: str                  # what the pipeline read (spoken numbers as digits, same length)
    mentions: list[Mention]
    sentence_starts: list[int]
    sections: list[SectionSpan] = field(default_factory=list)
    original: str = ""         # the note as written, for quoting evidence; "" when it is `text`

    def quote(self, start: int, end: int) -> tuple[int, int, str]:
        """The evidence for start:end in the note as written: a span ending inside a spoken number's
        padding ("8     out of 10 " read for "eight out of ten") takes in the rest of the word."""
        if not self.original:
            return start, end, self.text[start:end]
        note, read = self.original, self.text
        while 0 < start < len(note) and note[start - 1].isalnum() and read[start - 1] == " ":
            start -= 1
        while end < len(note) and note[end].isalnum() and read[end] == " ":
            end += 1
        return start, end, note[start:end]

    def __post_init__(self) -> None:
        # Indexes, so that per-mention look-ups stay linear on a 2 MB note with 100,000 mentions.
        self._by_label: dict[str, list[Mention]] = {}
        self._by_sentence: dict[int, list[Mention]] = {}
        for m in self.mentions:
            self._by_label.setdefault(m.label, []).append(m)
            self._by_sentence.setdefault(m.sentence, []).append(m)

    def of(self, *labels: str) -> list[Mention]:
        if len(labels) == 1:
            return list(self._by_label.get(labels[0], ()))
        return [m for m in self.mentions if m.label in labels]

    def sentence_text(self, index: int) -> str:
        start = self.sentence_starts[index]
        end = self.sentence_starts[index + 1] if index + 1 < len(self.sentence_starts) else len(self.text)
        return self.text[start:end]

    def in_sentence(self, index: int, *labels: str) -> list[Mention]:
        return [m for m in self._by_sentence.get(index, ()) if m.label in labels]

    def section_bodies(self, category: str) -> list[SectionSpan]:
        return [s for s in self.sections if s.category == category]


# doc.user_data key of the note as written, when the pipeline read another text of the same length.
ORIGINAL_TEXT = "notecheck_original_text"

# A template choice left unticked ("[ ] Fluoroscopy   [X] Ultrasound", "☐ Consent signed", "[ ] Lumbar
# interlaminar ESI") is not said: the nearest box before the mention on its line, within one item's length.
_BOX = re.compile(r"\[\s?[xX✓✔]?\s?\]|\(\s?[xX]?\s?\)|[☐□☒☑]")
_UNCHECKED = re.compile(r"\[\s?\]|\(\s?\)|[☐□]")
_ITEM_CHARS = 40


def _unticked(text: str, start: int) -> bool:
    lo = max(text.rfind("\n", 0, start) + 1, start - _ITEM_CHARS)
    boxes = list(_BOX.finditer(text, lo, start))
    return bool(boxes) and bool(_UNCHECKED.fullmatch(boxes[-1].group()))


def view_of(doc: Doc) -> NoteView:
    text = doc_text(doc)
    token_starts = token_char_starts(doc)
    sentence_starts = [token_starts[i] for i in sentence_token_starts(doc)]
    sections = _sections(doc)
    section_starts = [sec.title_start for sec in sections]
    # Extension values live in doc.user_data under ("._.", name, start_char, end_char); reading them
    # there skips spaCy's per-attribute Underscore objects, which cost more than the rest of extraction.
    data = doc.user_data
    mentions = []
    for span in doc.spans.get(SPAN_GROUP, []):
        label, start, end = span.label_, span.start_char, span.end_char
        span_start, span_end = start, end  # extension keys use the span's offsets, even if nc refines them

        def ext(name, default=False):
            return data.get(("._.", name, span_start, span_end), default)

        nc = ext("nc", None) if label in REGEX_LABELS else None
        if nc:
            meta = nc["value"]
            start, end = nc["start"], nc["end"]
        else:
            rule = ext("target_rule", None)
            meta = dict(rule.metadata or {}) if rule else {}
            # Abbreviations such as "PT" (physical therapy, not "pt" = patient) match in capitals only.
            if meta.get("case_sensitive") and text[start:end] != rule.literal:
                continue
        at = bisect_right(section_starts, start) - 1
        section = sections[at].category if at >= 0 else None
        from_section = SECTION_ATTRIBUTES.get(section, {})
        mentions.append(
            Mention(
                label=label,
                start=start,
                end=end,
                text=text[start:end],
                meta=meta,
                sentence=bisect_right(sentence_starts, start) - 1,
                section=section,
                negated=ext("is_negated") or _unticked(text, start),
                hypothetical=ext("is_hypothetical") or from_section.get("is_hypothetical", False),
                historical=ext("is_historical") or from_section.get("is_historical", False),
                uncertain=ext("is_uncertain"),
                family=ext("is_family"),
            )
        )
    mentions.sort(key=lambda m: (m.start, m.end))
    _inherit_procedure_assertions(mentions)
    view = NoteView(text, mentions, sentence_starts, [sec for sec in sections if sec.category])
    original = data.get(ORIGINAL_TEXT)
    if original is not None and original != text:
        view.original = original
        for m in mentions:
            m.quoted = view.quote(m.start, m.end)
    return view


# Mentions that describe how a procedure was done take that procedure's time: in "s/p L4-L5 ILESI
# 3 months ago under fluoroscopy with contrast" the fluoroscopy is as historical as the ILESI, even
# where ConText's scope stopped at "ago".
_PROCEDURE_LABELS = {"APPROACH", "EPIDURAL", "OUT_OF_FAMILY"}
_MANNER_LABELS = {"IMAGING", "CONTRAST", "CONTRAST_OMITTED"}


def _inherit_procedure_assertions(mentions: list[Mention]) -> None:
    governing: Mention | None = None
    for m in mentions:
        if governing is not None and m.sentence != governing.sentence:
            governing = None
        if m.label in _PROCEDURE_LABELS:
            governing = None if m.current else m
        elif governing is not None and m.label in _MANNER_LABELS and m.current:
            m.historical = governing.historical
            m.hypothetical = governing.hypothetical


def _sections(doc: Doc) -> list[SectionSpan]:
    sections = []
    for sec in doc._.sections:
        title_start = doc[sec.title_start].idx if sec.title_start < len(doc) else len(doc_text(doc))
        body_start = doc[sec.title_end].idx if sec.title_end < len(doc) else len(doc_text(doc))
        last = doc[sec.body_end - 1] if 0 < sec.body_end <= len(doc) else doc[-1]
        sections.append(SectionSpan(sec.category, title_start, body_start, last.idx + len(last.text)))
    return sections


def compile_cues(patterns: list[str]) -> re.Pattern:
    return re.compile("|".join(f"(?:{p})" for p in patterns), re.IGNORECASE)
