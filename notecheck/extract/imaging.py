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
        if modality != "none" and _aside_to_no_imaging(x, m):
            continue
        found.setdefault(modality, []).append(m)
    # "Ultrasound-guided ... (fluoroscopy without contrast not offered)": when some modality is said to
    # have guided the needle, a modality merely named elsewhere does not outrank it.
    guided = {mod for mod, ms in found.items() if mod != "none" and any(_guided(x, m) for m in ms)}
    if guided:
        found = {mod: ms for mod, ms in found.items() if mod in guided or mod == "none"}
    for modality in _PRIORITY:
        if modality in found:
            x.cite("imaging", *found[modality])
            return modality
    return None


_COORDINATED = re.compile(r"^\s*(?:,|or|nor|and)\s*(?:iodinated\s+|iv\s+)?$", re.IGNORECASE)


def _coordinated_with_no_imaging(x: Extraction, m) -> bool:
    """"No fluoroscopy or contrast used": the "no" belongs to a target ("no fluoroscopy"), so ConText
    cannot reach the contrast; the coordination carries the negation over."""
    return _coordinated_with(x, m, "IMAGING", lambda other: other.meta.get("modality") == "none")


def _coordinated_with(x: Extraction, m, label: str, which=lambda other: True) -> bool:
    """"Anaphylaxis to iodinated contrast and gadolinium": the gadolinium shares the allergy."""
    for other in x.view.in_sentence(m.sentence, label):
        if which(other) and other.end <= m.start and _COORDINATED.match(x.view.text[other.end:m.start]):
            return True
    return False


def _aside_to_no_imaging(x: Extraction, m) -> bool:
    """"Landmark technique, no fluoroscopy (transport to the fluoro suite is not feasible)": a modality
    named beside a statement that no imaging was used, with no word saying it guided the needle."""
    denials = [o for o in x.view.in_sentence(m.sentence, "IMAGING") if o is not m and not o.hypothetical
               and ((o.meta.get("modality") == "none" and not o.negated)
                    or (o.negated and o.meta.get("modality") == m.meta["modality"]))]
    if not denials:
        return False
    return not _guided(x, m)


def _guided(x: Extraction, m) -> bool:
    text = x.view.text
    near = text[max(0, m.start - 25):m.start] + " " + m.text + " " + text[m.end:m.end + 25]
    return bool(x.cues.imaging_use.search(near))


def extract_contrast(x: Extraction) -> Contrast:
    view = x.view
    used = [m for m in view.of("CONTRAST") if m.current and m.section != "allergies" and not x.is_blank_field(m)]
    denied = [m for m in used if _coordinated_with_no_imaging(x, m) or _coordinated_with(x, m, "CONTRAST_REASON")]
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
