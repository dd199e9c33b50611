"""How image guidance and contrast are found.

Only fluoroscopy or CT count as imaging guidance for 62320-62327; ultrasound and landmark technique
are "without imaging". A negated modality ("fluoroscopy was not used") is an explicit "none".
"""

from __future__ import annotations

import re

from ..record import Contrast
from .context import Extraction

_PRIORITY = ("ct", "fluoroscopy", "ultrasound", "none")


def extract_imaging(x: Extraction) -> str | None:
    found: dict[str, list] = {}
    for m in x.view.of("IMAGING"):
        if m.hypothetical or m.historical or m.uncertain or m.section in ("plan", "past_history"):
            continue
        modality = m.meta["modality"]
        if m.negated or (modality != "none" and _coordinated_with_no_imaging(x, m)):
            if modality in ("fluoroscopy", "ct", "ultrasound"):
                found.setdefault("none", []).append(m)
            continue
        found.setdefault(modality, []).append(m)
    for modality in _PRIORITY:
        if modality in found:
            x.cite("imaging", *found[modality])
            return modality
    return None


_COORDINATED = re.compile(r"^\s*(?:,|or|nor|and)\s*(?:iodinated\s+|iv\s+)?$", re.IGNORECASE)


def _coordinated_with_no_imaging(x: Extraction, m) -> bool:
    """"No fluoroscopy or contrast used": the "no" belongs to a target ("no fluoroscopy"), so ConText
    cannot reach the contrast; the coordination carries the negation over."""
    for other in x.view.in_sentence(m.sentence, "IMAGING"):
        if other.meta.get("modality") == "none" and other.end <= m.start \
                and _COORDINATED.match(x.view.text[other.end:m.start]):
            return True
    return False


def extract_contrast(x: Extraction) -> Contrast:
    view = x.view
    used = [m for m in view.of("CONTRAST") if m.current and m.section != "allergies" and not x.is_blank_field(m)]
    denied = [m for m in used if _coordinated_with_no_imaging(x, m)]
    used = [m for m in used if m not in denied]
    omitted = [m for m in view.of("CONTRAST_OMITTED") if m.current]
    negated_use = [m for m in view.of("CONTRAST") if m.negated and not m.hypothetical] + denied
    reasons = [m for m in view.of("CONTRAST_REASON") if not (m.negated or m.hypothetical or m.family)]
    # "Allergies: iodinated contrast" names an allergy, which is a reason to omit contrast.
    reasons += [m for m in view.of("CONTRAST") if m.section == "allergies" and not m.negated]

    contrast = Contrast()
    if used:
        contrast.used = True
        x.cite("contrast.used", *used)
        named = [m for m in used if m.meta.get("agent")]
        if named:
            contrast.agent = named[0].meta["agent"]
            x.cite("contrast.agent", named[0])
    elif omitted or negated_use:
        contrast.used = False
        x.cite("contrast.used", *(omitted or negated_use))
    if contrast.used is False and reasons:
        omission_sentences = {m.sentence for m in omitted + negated_use}
        near = [m for m in reasons if m.sentence in omission_sentences] or reasons
        contrast.omission_reason = near[0].meta.get("reason", "iodinated contrast allergy")
        x.cite("contrast.omission_reason", near[0])
    return contrast


def unsafe_intrathecal_contrast(x: Extraction) -> list:
    """Omnipaque 140/350 are not labelled for intrathecal use (rules.md §6.3)."""
    return [m for m in x.view.of("CONTRAST") if m.current and m.meta.get("intrathecal_safe") is False]
