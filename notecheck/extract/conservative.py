"""How conservative care and its duration are found: a modality (PT, NSAIDs, home exercise, ...) and
a duration in the same sentence ("failed 6 weeks of PT and NSAIDs"). Past therapy is the point here,
so historical mentions count; negated or planned ones ("will start PT") do not."""

from __future__ import annotations

from ..record import ConservativeTherapy
from .context import Extraction


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
    if durations:
        longest = max(durations, key=lambda d: d.meta["weeks"])
        therapy.weeks = longest.meta["weeks"]
        x.cite("conservative_therapy", longest)
        x.cite("conservative_therapy.weeks", longest)
    return therapy
