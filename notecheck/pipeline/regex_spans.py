"""Shared machinery for the regex recognizers (levels, quantities, pain scores, durations, laterality).

Each recognizer reads its patterns from `patterns/measurements.yaml`, adds one span per match to the
`notecheck` span group so ConText and the Sectionizer see it, and keeps the regex's exact offsets and
parsed value as plain data (never Spans or rule objects, so results stay serialisable).
"""


import re
from bisect import bisect_left
from collections.abc import Callable
from dataclasses import dataclass

from pathlib import Path

from spacy.tokens import Doc, Span

from ..patterns_path import load_yaml, patterns_dir

SPAN_GROUP = "notecheck"

if not Span.has_extension("nc"):
    # {"rule_id", "start", "end", "value": {...}} for regex spans; None for TargetMatcher spans.
    Span.set_extension("nc", default=None)


def doc_text(doc: Doc) -> str:
    """doc.text joins every token on each access; compute it once per doc."""
    cached = doc.user_data.get("notecheck_text")
    if cached is None:
        cached = doc.user_data["notecheck_text"] = doc.text
    return cached


@dataclass(frozen=True)
class CompiledPattern:
    id: str
    regex: re.Pattern
    spec: dict


def load_section(patterns_path: str | None, key: str) -> dict:
    """One recognizer's section of patterns/measurements.yaml (patterns_path overrides the folder)."""
    folder = Path(patterns_path) if patterns_path else patterns_dir()
    return load_yaml(folder / "measurements.yaml")[key]


def compile_patterns(section: dict) -> list[CompiledPattern]:
    compiled = []
    for spec in section["patterns"]:
        flags = 0 if spec.get("case_sensitive") else re.IGNORECASE
        compiled.append(CompiledPattern(spec["id"], re.compile(spec["regex"], flags), spec))
    return compiled


Parser = Callable[[re.Match, CompiledPattern, str], "dict | None"]


class RegexSpanRecognizer:
    """Adds a labelled span for every match whose parser returns a value (None rejects the match)."""

    def __init__(self, label: str, patterns: list[CompiledPattern], parse: Parser) -> None:
        self.label = label
        self.patterns = patterns
        self.parse = parse

    def __call__(self, doc: Doc) -> Doc:
        text = doc_text(doc)
        group = doc.spans.setdefault(SPAN_GROUP, [])
        taken: list[tuple[int, int]] = []  # sorted, non-overlapping (start, end) of accepted matches
        for pattern in self.patterns:
            for match in pattern.regex.finditer(text):
                start, end = match.span()
                at = bisect_left(taken, (start, end))
                if start == end or (at and taken[at - 1][1] > start) or (at < len(taken) and taken[at][0] < end):
                    continue  # earlier patterns in the file win overlaps
                value = self.parse(match, pattern, text)
                if value is None:
                    continue
                span = doc.char_span(start, end, label=self.label, alignment_mode="expand")
                if span is None:
                    continue
                # Same storage as span._.nc, without building an Underscore object per span.
                doc.user_data[("._.", "nc", span.start_char, span.end_char)] = {
                    "rule_id": pattern.id, "start": start, "end": end, "value": value}
                group.append(span)
                taken.insert(at, (start, end))
        return doc
