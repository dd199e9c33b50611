"""What every extractor needs for one note: the mentions, the cues and the record's evidence map."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..record import Evidence
from .cues import Cues
from .mentions import Mention, NoteView


@dataclass
class Extraction:
    view: NoteView
    cues: Cues
    evidence: dict[str, list[Evidence]] = field(default_factory=dict)

    _cited: set = field(default_factory=set)

    def told_with_past_injection(self, m: Mention) -> bool:
        """"A prior L4-L5 ESI 5 months ago with triamcinolone 80 mg reduced pain from 8/10 to 2/10": a mention
        after a past injection in its sentence, with no "today" word between them, is that injection's."""
        for past in self.view.in_sentence(m.sentence, *self.cues.prior_injection_labels):
            if past.historical and past.end <= m.start and not self.cues.pain_today.search(self.view.text, past.end, m.start):
                return True
        return False

    def cite(self, key: str, *mentions: Mention) -> None:
        for m in mentions:
            self._add(key, m.start, m.end, lambda m=m: m.evidence)

    def cite_span(self, key: str, start: int, end: int) -> None:
        self._add(key, start, end, lambda: self._quoted(start, end))

    def _quoted(self, start: int, end: int) -> Evidence:
        start, end, text = self.view.quote(start, end)
        return Evidence(start=start, end=end, text=text)

    def _add(self, key: str, start: int, end: int, make) -> None:
        if (key, start, end) not in self._cited:
            self._cited.add((key, start, end))
            self.evidence.setdefault(key, []).append(make())

    def is_blank_field(self, m: Mention) -> bool:
        """A header-style mention ("Consent:") whose line holds only a template blank."""
        text = self.view.text
        after = text[m.end:]
        if not (m.text.rstrip().endswith(":") or after.lstrip(" \t").startswith(":")):
            return False
        line = after.split("\n", 1)[0]
        return bool(self.cues.template_blank.match(line)) and not self.cues.affirmative.search(line)

    def filled_sections(self, category: str, require_affirmative: bool = False):
        """Sections of this category whose body is not a template blank."""
        text = self.view.text
        for sec in self.view.section_bodies(category):
            body = text[sec.body_start:sec.body_end]
            if self.cues.template_blank.match(body) or not body.strip(" \t\n,.:;-"):
                continue
            if require_affirmative and not self.cues.affirmative.search(body):
                continue
            yield sec
