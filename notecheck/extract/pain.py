"""How pre- and post-procedure pain scores are told apart.

A "from 8 to 2" phrase gives both. Otherwise the nearest cue word before a score in its sentence
(patterns/cues.yaml: pain_pre_cues / pain_post_cues), or the section title, decides; two uncued
scores in one sentence read as before-then-after.
"""

from __future__ import annotations

import re

from ..record import PainScores
from .context import Extraction
from .mentions import Mention


def _cue(x: Extraction, m: Mention) -> str | None:
    text = x.view.text
    # A cue right after the score, before any comma, speaks of that score: "8/10 before, 3/10 after".
    after = re.split(r"[,;.\n]", text[m.end:m.end + 30], maxsplit=1)[0]
    if x.cues.pain_pre_after.search(after):
        return "pre"
    if x.cues.pain_post_after.search(after):
        return "post"
    sentence_start = x.view.sentence_starts[m.sentence]
    # Look back within the sentence, or to the start of the line for "Post-procedure: 2/10" forms.
    lo = max(sentence_start, m.start - 70)
    line_start = text.rfind("\n", 0, m.start) + 1
    lo = min(lo, max(line_start, m.start - 70))
    window = text[lo:m.start]
    best, where = None, -1
    for which, regex in (("pre", x.cues.pain_pre), ("post", x.cues.pain_post)):
        for hit in regex.finditer(window):
            if hit.start() > where:
                best, where = which, hit.start()
    return best


def extract_pain_scores(x: Extraction) -> PainScores:
    scores = PainScores()
    mentions = [m for m in x.view.of("PAIN_SCORE") if m.current and m.section not in ("plan", "past_history")
                and not x.told_with_past_injection(m)]
    for m in mentions:
        if "pre" in m.meta:
            _set(x, scores, "pre", m.meta["pre"], m)
            _set(x, scores, "post", m.meta["post"], m)
            scores.scale = scores.scale or m.meta.get("scale")
    uncued: list[Mention] = []
    for m in mentions:
        if "pre" in m.meta:
            continue
        which = _cue(x, m)
        if which is None:
            uncued.append(m)
            continue
        _set(x, scores, which, m.meta["score"], m)
        scores.scale = scores.scale or m.meta.get("scale")
    pre_at = scores_evidence_start(x, "pre")
    seen_sentences: set[int] = set()
    for m in uncued:
        later_in_sentence = m.sentence in seen_sentences
        seen_sentences.add(m.sentence)
        # An uncued score after a known pre-procedure score reads as the score after ("Post\n- NRS 3/10").
        after_pre = pre_at is not None and m.start > pre_at
        which = "post" if later_in_sentence or after_pre else "pre"
        _set(x, scores, which, m.meta["score"], m)
        if which == "pre" and pre_at is None:
            pre_at = m.start
        scores.scale = scores.scale or m.meta.get("scale")
    if scores.scale and not _scale_named(x, mentions):
        scores.scale = None   # "7/10" implies the NRS but does not name a scale (pain_scale requirement)
    return scores


def _scale_named(x: Extraction, mentions: list[Mention]) -> bool:
    """A scale is named by the score's own pattern ("NRS 7", "VAS 70 mm", "6 on a 0-10 scale") or by a
    scale name anywhere in the note ("Pain scores on the numeric rating scale: ...")."""
    if any(m.meta.get("scale_named") for m in mentions):
        return True
    named = x.cues.pain_scale_named.search(x.view.text)
    if named:
        x.cite_span("pain_scores.scale", named.start(), named.end())
    return named is not None


def scores_evidence_start(x: Extraction, which: str) -> int | None:
    spans = x.evidence.get(f"pain_scores.{which}")
    return spans[0].start if spans else None


def _set(x: Extraction, scores: PainScores, which: str, value: float, m: Mention) -> None:
    if getattr(scores, which) is None:
        setattr(scores, which, value)
        x.cite(f"pain_scores.{which}", m)
