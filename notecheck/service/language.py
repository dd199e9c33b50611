"""Is this note written in English? The pipeline's vocabularies and cues are English only; a note in
another language can still hit a few of them (drug names, "L4-L5", "epidural") and come out as a confident
but wrong verdict, so the service refuses it with 422 instead.

A cheap heuristic, not a language identifier: count common function words of English and of the languages
an EHR in the US or Europe is most likely to hold (Spanish, French, German, Portuguese, Italian), and
refuse a note whose letters are mostly not Latin script, or where the other languages' function words
clearly outnumber English ones. Clinical English is terse ("L4-5 ILESI under fluoro, 80 mg"), so the test
is the balance of the two counts, never a minimum of English words.
"""

from __future__ import annotations

import re

_WORD = re.compile(r"[^\W\d_]+", re.UNICODE)

_ENGLISH = frozenset(
    "the and of to was were with is in for under on at no not after before patient was then by from this "
    "that he she his her it into there without".split())
# Words that are not also common English words (no "a", "no", "con", "die" spelled as English).
_OTHER = frozenset(
    # Spanish
    "el la los las del y se por para con una uno sin paciente bajo fue realizó realizo previa tras "
    "después despues dolor inyección hubo obtuvo se le lo su sus es está esta "
    # French
    "le les des et une du avec pour sans sous était etait été ete réalisée realisee patiente douleur après "
    "apres est sur au aux sous avant aucune obtenu reçu lombaire péridurale consentement "
    # German
    "der die das und mit ein eine nicht wurde unter nach ohne bei ist zu von den dem des patientin schmerz erhielt eingeholt einwilligung lumbale durchleuchtung "
    # Portuguese / Italian
    "o os um uma em com não nao foi após apos dor il gli della di che è stato stata dopo senza paziente".split())

_SAMPLE_CHARS = 20_000  # the balance is clear long before that; keeps the check well under a millisecond
MIN_OTHER_WORDS = 6


def not_english_reason(text: str) -> str | None:
    """A short reason when the note does not look like English, else None."""
    sample = text[:_SAMPLE_CHARS]
    words = _WORD.findall(sample)
    letters = sum(len(w) for w in words)
    if letters >= 20:
        latin = sum(1 for w in words for ch in w if ch < "\u0250")
        if latin / letters < 0.5:
            return "the note is not written in Latin script; notecheck reads English notes only"
    lowered = [w.lower() for w in words]
    english = sum(1 for w in lowered if w in _ENGLISH)
    other = sum(1 for w in lowered if w in _OTHER)
    if other >= MIN_OTHER_WORDS and other > 2 * english:
        return "the note does not appear to be written in English; notecheck reads English notes only"
    return None
