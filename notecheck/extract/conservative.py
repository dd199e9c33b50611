"""How conservative care and its duration are found: a modality (PT, NSAIDs, home exercise, ...) and
a duration in the same sentence ("failed 6 weeks of PT and NSAIDs"). Past therapy is the point here,
so historical mentions count; negated or planned ones ("will start PT") do not."""

from __future__ import annotations

from ..record import ConservativeTherapy
from .context import Extraction
from .mentions import Mention


def extract_conservative_therapy(x: Extraction) -> ConservativeTherapy:
    modalities = [m for m in x.view.of("CONSERVATIVE")
                  if not (m.negated or m.hypothetical or m.family) and m.section != "plan"]
    therapy = ConservativeTherapy(documented=bool(modalities))
    if not modalities:
        return therapy
    x.cite("conservative_therapy", *modalities)
    for m in modalities:
        name = m.meta.get("modality", m.text)
        if name not in therapy.modalities:
            therapy.modalities.append(name)
    sentences = {m.sentence for m in modalities}
    durations = [d for d in x.view.of("DURATION")
                 if d.sentence in sentences and not (d.negated or d.hypothetical) and d.meta.get("weeks") is not None]
    in_sentence: dict[int, list[Mention]] = {}
    for m in modalities + durations:
        in_sentence.setdefault(m.sentence, []).append(m)
    durations = [d for d in durations if _about_therapy(x, d, in_sentence[d.sentence])]
    if durations:
        longest = max(durations, key=lambda d: d.meta["weeks"])
        therapy.weeks = longest.meta["weeks"]
        x.cite("conservative_therapy", longest)
        x.cite("conservative_therapy.weeks", longest)
    return therapy


def _about_therapy(x: Extraction, d: Mention, sentence_mentions: list[Mention]) -> bool:
    """"LEFT LEG PAIN X 4 MONTHS, FAILED 10 WEEKS PT": 10 weeks is the therapy's, 4 months the pain's.
    A duration belongs to a therapy named near it in its sentence, with no symptom word and no other
    duration in between; "rash onset 10 days ago" dates the illness, not the treatment."""
    text = x.view.text
    if x.cues.duration_onset_after.match(text[d.end:d.end + 10]) \
            and not x.cues.duration_started_before.search(text[max(0, d.start - 25):d.start]):
        return False
    durations = [o for o in sentence_mentions if o.label == "DURATION"]
    for m in sentence_mentions:
        if m.label != "CONSERVATIVE":
            continue
        lo, hi = (m.end, d.start) if m.end <= d.start else (d.end, m.start)
        if hi - lo > 80 or x.cues.not_therapy_between.search(text[lo:hi]):
            continue
        if not any(o is not d and lo <= o.start < hi for o in durations):
            return True
    return False
