"""Does a note call itself a repeat injection, and does it document the response to the prior one?

Reads the note text with the cue patterns of patterns/history.yaml (rules.md §3.6, DOC-011) and returns
only derived facts - percent relief, how long it lasted, and the short matched spans as evidence - so the
history database never needs the note itself.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from ..patterns_path import load_yaml, patterns_dir

DAYS_PER_UNIT = {"day": 1.0, "week": 7.0, "month": 30.4375, "year": 365.25}
# Evidence longer than this is not a cue match but a runaway pattern: never keep it.
MAX_SPAN_CHARS = 120
# Headings that end a skipped (plan) paragraph.
_HEADING = re.compile(r"^\s*[A-Za-z][A-Za-z /&()-]{1,40}:")
_SENTENCE_END = re.compile(r"[.!?](?=\s)|\n")


@dataclass
class PriorResponse:
    repeat_spans: list[dict] = field(default_factory=list)   # why this is a repeat (prior / repeat cues)
    percent: float | None = None                              # documented relief of the prior injection
    percent_spans: list[dict] = field(default_factory=list)
    duration_days: float | None = None                        # how long that relief lasted
    duration_spans: list[dict] = field(default_factory=list)
    ongoing: bool = False                                     # "still has 60% relief"

    @property
    def says_repeat(self) -> bool:
        return bool(self.repeat_spans)


@dataclass(frozen=True)
class _Cues:
    skip_headings: re.Pattern
    prior: tuple[re.Pattern, ...]
    repeat: tuple[re.Pattern, ...]
    other_family: re.Pattern
    negation_before: re.Pattern
    hypothetical: re.Pattern
    percent: tuple[re.Pattern, ...]
    none: tuple[re.Pattern, ...]
    scores: tuple[re.Pattern, ...]
    duration: tuple[re.Pattern, ...]
    duration_not_before: re.Pattern
    duration_not_after: re.Pattern
    duration_sentence: re.Pattern
    ongoing: re.Pattern
    today: re.Pattern
    words: dict


@cache
def load_cues(path: Path | None = None) -> _Cues:
    data = load_yaml(Path(path) if path else patterns_dir() / "history.yaml")

    def one(key: str, flags: int = re.I) -> re.Pattern:
        return re.compile(data[key], flags)

    def many(key: str) -> tuple[re.Pattern, ...]:
        return tuple(re.compile(item["pattern"], re.I) for item in data[key])

    return _Cues(skip_headings=one("skip_headings", re.I | re.M), prior=many("prior_injection"),
                 repeat=many("repeat"), other_family=one("other_family"),
                 negation_before=one("negation_before"), hypothetical=one("hypothetical"),
                 percent=many("relief_percent"), none=many("relief_none"), scores=many("relief_scores"),
                 duration=many("duration"), duration_not_before=one("duration_not_before"),
                 duration_not_after=one("duration_not_after"),
                 duration_sentence=one("duration_sentence"), ongoing=one("ongoing"), today=one("today"),
                 words={str(k).lower(): float(v) for k, v in data["words"].items()})


def _span(text: str, start: int, end: int) -> dict:
    return {"start": start, "end": end, "text": text[start:end]}


def _sentences(text: str, cues: _Cues) -> list[tuple[int, int]]:
    """Sentence (start, end) offsets, leaving out plan paragraphs (they describe the future)."""
    skipped: list[tuple[int, int]] = []
    for m in cues.skip_headings.finditer(text):
        end = len(text)
        for line in re.finditer(r"\n", text[m.end():]):
            rest = text[m.end() + line.end():]
            if rest.startswith("\n") or rest.strip() == "" or (_HEADING.match(rest)
                                                               and not cues.skip_headings.match(rest)):
                end = m.end() + line.start()
                break
        skipped.append((m.start(), end))
    out, start = [], 0
    for m in _SENTENCE_END.finditer(text):
        out.append((start, m.end()))
        start = m.end()
    out.append((start, len(text)))
    return [(s, e) for s, e in out if text[s:e].strip() and not any(a <= s < b for a, b in skipped)]


def _cue_spans(text: str, s: int, e: int, cues: _Cues) -> list[dict]:
    sentence = text[s:e]
    found = []
    for kind, patterns in (("prior", cues.prior), ("repeat", cues.repeat)):
        for pattern in patterns:
            for m in pattern.finditer(sentence):
                if cues.other_family.search(m.group()) or cues.negation_before.search(sentence[:m.start()]):
                    continue
                # "consider a repeat injection if ..." is a plan; a mention of a prior one is a fact.
                if kind == "repeat" and cues.hypothetical.search(sentence):
                    continue
                if m.end() - m.start() <= MAX_SPAN_CHARS:
                    found.append(_span(text, s + m.start(), s + m.end()))
    return found


def _number(token: str | None, cues: _Cues) -> float | None:
    if token is None:
        return None
    token = token.lower()
    if token in cues.words:
        return cues.words[token]
    try:
        return float(token)
    except ValueError:
        return None


def _relief(sentence: str, cues: _Cues, with_cue: bool) -> tuple[float, int, int] | None:
    """(percent, start, end) of the first relief statement in the sentence, relative to it."""
    hits: list[tuple[int, int, float]] = []
    for pattern in cues.percent:
        for m in pattern.finditer(sentence):
            low = min(float(m["pct"]), float(m["pct2"] or m["pct"]))
            if low <= 100:
                hits.append((m.start(), m.end(), low))
    for pattern in cues.none:
        hits.extend((m.start(), m.end(), 0.0) for m in pattern.finditer(sentence))
    if with_cue:  # bare "from 8/10 to 3/10" is about the prior injection only beside a cue
        for pattern in cues.scores:
            for m in pattern.finditer(sentence):
                before, after = float(m["before"]), float(m["after"])
                if 0 < before <= 10 and 0 <= after <= before:
                    hits.append((m.start(), m.end(), round((before - after) / before * 100, 1)))
    if not hits:
        return None
    start, end, pct = min(hits)
    return pct, start, end


def _durations(sentence: str, cues: _Cues) -> list[tuple[int, int, float]]:
    out = []
    for pattern in cues.duration:
        for m in pattern.finditer(sentence):
            if cues.duration_not_before.search(sentence[:m.start()]) or \
                    cues.duration_not_after.search(sentence[m.end():]):
                continue
            n = _number(m["n"], cues)
            n2 = _number(m["n2"], cues)
            if n is None:
                continue
            unit = m["unit"].lower()
            unit = ("day" if unit.startswith("d") else "week" if unit.startswith("w")
                    else "year" if unit.startswith("y") else "month")
            out.append((m.start(), m.end(), min(n, n2 if n2 is not None else n) * DAYS_PER_UNIT[unit]))
    return sorted(out)


def analyze(text: str | None, cues: _Cues | None = None) -> PriorResponse:
    """The repeat cues and the documented response to the prior injection. Never raises on odd text."""
    result = PriorResponse()
    if not text:
        return result
    cues = cues or load_cues()
    sentences = _sentences(text, cues)
    cue_spans = [_cue_spans(text, s, e, cues) for s, e in sentences]
    for spans in cue_spans:
        result.repeat_spans.extend(spans)
    for i, (s, e) in enumerate(sentences):
        sentence = text[s:e]
        here = bool(cue_spans[i])
        near = here or (i > 0 and bool(cue_spans[i - 1]))
        # Relief is the prior injection's only beside a mention of it; today's immediate relief is not.
        if not near or (cues.today.search(sentence) and not here):
            continue
        durations = _durations(sentence, cues)
        hit = _relief(sentence, cues, here)
        if hit is None:
            continue
        pct, rs, re_ = hit
        result.percent = pct
        result.percent_spans = [_span(text, s + rs, s + re_)]
        chosen = next((d for d in durations if d[0] >= re_), None) or (durations[-1] if durations else None)
        base = s
        if chosen is None and i + 1 < len(sentences):
            ns, ne = sentences[i + 1]
            following = _durations(text[ns:ne], cues)
            if following and cues.duration_sentence.search(text[ns:ne]) and not cues.today.search(text[ns:ne]):
                chosen, base = following[0], ns
        if chosen is not None:
            result.duration_days = round(chosen[2], 1)
            result.duration_spans = [_span(text, base + chosen[0], base + chosen[1])]
        following_text = text[sentences[i + 1][0]:sentences[i + 1][1]] if i + 1 < len(sentences) else ""
        result.ongoing = bool(cues.ongoing.search(sentence) or cues.ongoing.search(following_text))
        break
    return result
