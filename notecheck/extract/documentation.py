"""How consent, complications, post-procedure status, the indication, imaging correlation and
the pain context (acute postoperative, trauma, herpes zoster) are found. Template blanks
("Consent: ___") are not documentation."""

from __future__ import annotations

from ..record import Diagnosis
from .context import Extraction

# The diagnoses themselves and their ICD-10-CM codes are found in diagnoses.py.


def _documented(x: Extraction, label: str, section: str, key: str, allow_negated: bool,
                keep_mention=lambda m: True, keep_section=lambda sec: True) -> bool:
    hits = [m for m in x.view.of(label)
            if not (m.hypothetical or m.family or (m.negated and not allow_negated)) and not x.is_blank_field(m)
            and keep_mention(m)]
    sections = [sec for sec in x.filled_sections(section, require_affirmative=(section == "consent"))
                if keep_section(sec)]
    for m in hits:
        x.cite(key, m)
    for sec in sections:
        x.cite_span(key, sec.title_start, sec.body_end)
    return bool(hits or sections)


def extract_consent(x: Extraction) -> bool:
    documented = _documented(x, "CONSENT", "consent", "consent", allow_negated=False)
    affirmed = [m for m in x.view.of("CONSENT_WORD") if m.current and _consent_affirmed(x, m)]
    x.cite("consent", *affirmed)
    return documented or bool(affirmed)


def _consent_affirmed(x: Extraction, m) -> bool:
    """"Consent -- obtained, signed" or "Consent for neuraxial anesthesia discussed and signed", but not
    "consent to be signed on the day of the procedure"."""
    following = x.view.text[m.end:m.end + 120]
    said = x.cues.consent_affirmed.match(following)
    return bool(said) and not x.cues.consent_not_yet.search(said.group(0))


def extract_complications(x: Extraction) -> bool:
    # "no complications" is a statement about complications, so negation does not remove it. Under the
    # consent header, complication words are the risks that were explained, not outcomes.
    return _documented(x, "COMPLICATIONS", "complications", "complications", allow_negated=True,
                       keep_mention=lambda m: m.section != "consent")


def extract_post_procedure_assessment(x: Extraction) -> bool:
    # "Post: NRS 4/10" is a pain score, not the patient's status or disposition; "a prior injection,
    # tolerated" is about another procedure.
    def more_than_a_pain_score(sec) -> bool:
        body = x.view.text[sec.body_start:sec.body_end]
        return bool(x.cues.pain_score_only.sub("", body).strip(" \t\n,.;:-"))
    return _documented(x, "DISPOSITION", "disposition", "post_procedure_assessment", allow_negated=False,
                       keep_mention=lambda m: not (m.historical or m.section == "past_history"),
                       keep_section=more_than_a_pain_score)


def extract_indication(x: Extraction, diagnoses: list[Diagnosis]) -> bool:
    sections = list(x.filled_sections("indication")) + list(x.filled_sections("diagnosis"))
    for sec in sections:
        x.cite_span("indication", sec.title_start, sec.body_end)
    codes = [m for m in x.view.of("ICD10") if not m.negated]
    x.cite("indication", *codes)
    # "Catheter for post-thoracotomy analgesia", "rib fractures": the acute-pain reason is the indication.
    reasons = [m for m in x.view.of("PAIN_CONTEXT") if not (m.negated or m.hypothetical or m.family)]
    x.cite("indication", *reasons)
    return bool(diagnoses or sections or codes or reasons)


def extract_imaging_correlation(x: Extraction) -> bool:
    found = False
    # "CT myelogram shows ..." is a study read for the indication (the literal is the myelography family's).
    studies = x.view.of("IMAGING_STUDY") + [m for m in x.view.of("OUT_OF_FAMILY") if m.meta["family"] == "myelography"]
    for m in studies:
        if m.negated or m.hypothetical or m.family:
            continue
        told = _study_sentence(x, m.sentence)
        if x.cues.imaging_finding.search(told) and not x.cues.imaging_unremarkable.search(told):
            x.cite("imaging_correlation", m)
            found = True
    return found


def _study_sentence(x: Extraction, index: int) -> str:
    """The study's sentence, joined with the next line when a hard wrap cut it ("CT: right T9 rib and
    vertebral\nbody metastasis ...")."""
    told = x.view.sentence_text(index)
    if index + 1 < len(x.view.sentence_starts) and told.endswith("\n") and told.rstrip()[-1:].isalnum():
        told += x.view.sentence_text(index + 1)
    return told


def extract_pain_context(x: Extraction) -> str | None:
    for m in x.view.of("PAIN_CONTEXT", "DIAGNOSIS"):
        if m.label == "DIAGNOSIS":
            # "Acute herpes zoster, rash onset eleven days ago": an acute diagnosis is current even
            # when ConText reads its onset as history.
            if m.meta.get("pain_context") and (m.current or (m.historical and m.meta.get("acute")
                                                             and not (m.negated or m.hypothetical))):
                x.cite("pain_context", m)
                return m.meta["pain_context"]
            continue
        if m.current or (m.historical and m.meta["context"] != "herpes_zoster"):
            x.cite("pain_context", m)
            return m.meta["context"]
    return None


def has_analgesia_purpose(x: Extraction) -> bool:
    """The note says the catheter is for postoperative analgesia ("for post-op pain control")."""
    # "Postop analgesia by IV PCA" names another route for it: then the epidural is not for analgesia.
    return any(m.meta.get("analgesia_purpose") and not (m.negated or m.hypothetical)
               and not x.cues.analgesia_other_route.match(x.view.text[m.end:m.end + 30])
               for m in x.view.of("PAIN_CONTEXT"))
