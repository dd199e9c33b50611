"""The current diagnoses of this procedure and their ICD-10-CM candidates (issue 6 §1, patterns/icd10cm.yaml).

A diagnosis is current when it is stated for this procedure: not negated, planned, about a relative,
uncertain ("rule out", "versus", "?"), past ("history of ..., resolved"), nor only an imaging finding
("MRI shows an L5-S1 protrusion"). Each current mention gets ICD regions, in this order: region words or roots
of its own phrase, else the levels/roots (then region words) near it in its sentence, else the injected
levels, else the procedure region (icd10cm.py). A concept takes the regions of its best-placed statements.
The concept and the regions give the codes; a code written in the note is listed as written.
Radiculopathy's M54.1x is dropped for a region whose disc/spondylosis combination code is listed (M54.1
Excludes1), but the concept stays: the note did state it.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass, field
from pathlib import Path

from ..record import Diagnosis, Evidence, Icd10Candidate
from .context import Extraction
from .icd10cm import Lexicon, crps_code, diagnosis_regions, load_lexicon, quote
from .mentions import Mention


@dataclass
class _Item:
    """One piece of evidence for a concept: a mention, or a code written in the note."""
    concept: str
    start: int
    evidence: list[Evidence]
    regions: list[str] = field(default_factory=list)
    codes: list[tuple[str, str, str | None]] = field(default_factory=list)  # (code, description, region)
    text: str = ""
    # Where its regions came from, best first: 0/1 its region words / its sentence's levels on a diagnosis
    # line, 2/3 the same elsewhere, 4-7 the same for a pain description ("low back radiating down the leg"),
    # 8 the injected levels or procedure region (§1 steps 3-4); -1 a written code, always listed.
    tier: int = -1


def extract_diagnoses(x: Extraction, folder: Path, region: str | None, levels: list[str],
                      anesthetic_for: str | None = None) -> list[Diagnosis]:
    """`anesthetic_for`: the epidural is the anesthetic of an operation or labor, so the pain after it is
    still to come (no postoperative-pain diagnosis)."""
    lex = load_lexicon(folder)
    view = x.view
    mentions = [m for m in view.of("DIAGNOSIS") if m.meta.get("concept") and _is_current(x, lex, m)]
    postoperative, planned_operation = _postoperative_mentions(x, lex, bool(anesthetic_for))
    mentions += postoperative
    written = _written_codes(x, lex)
    concept_of = {id(m): m.meta.get("concept") for m in mentions}
    # Cancer words name cancer pain only with pain near them, and not beside another pain concept.
    stated = {concept_of[id(m)] for m in mentions} | {c for c, _, _ in written}
    # An epidural for the pain of an operation still to come: the cancer is that operation's reason.
    said = stated | ({"postoperative_pain"} if planned_operation else set())
    mentions = [m for m in mentions if not _unsaid_pain(x, lex, m, concept_of[id(m)], said)]
    stated = {concept_of[id(m)] for m in mentions} | {c for c, _, _ in written}
    explained = any(lex.concepts[c].get("explains_radiating") for c in stated) or any(
        m.current and m.meta.get("context") in lex.radiating_pain_contexts for m in view.of("PAIN_CONTEXT"))
    # "zoster radiculopathy": the radicular words of a zoster sentence belong to the zoster concept.
    absorbing = {(m.sentence, lex.concepts[concept_of[id(m)]]["absorbs_in_sentence"]) for m in mentions
                 if lex.concepts[concept_of[id(m)]].get("absorbs_in_sentence")}
    patterned: dict[int, bool] = {}
    mentions = [m for m in mentions if not _descriptive_only(x, lex, m, explained, patterned)
                and (m.sentence, concept_of[id(m)]) not in absorbing]
    radicular = any(lex.concepts[concept_of[id(m)]].get("radicular")
                    and not lex.concepts[concept_of[id(m)]].get("if_no_radicular") for m in mentions) or any(
        lex.concepts[c].get("radicular") for c, _, _ in written)
    claudication = any(_resolve(lex, concept_of[id(m)], radicular, False) == "stenosis_with_claudication"
                       for m in mentions) or any(c == "stenosis_with_claudication" for c, _, _ in written)
    resolved = frozenset(_resolve(lex, c, radicular, claudication) for c in stated)
    thoracotomy = any(lex.cues["thoracotomy"].search(m.text) and not (m.negated or m.hypothetical or m.family)
                      for m in view.of("PAIN_CONTEXT"))

    items: list[_Item] = []
    by_sentence: dict = {}
    placed: set[str] = set()  # concepts an explicit statement has given regions of its own
    # Explicit statements first: a pain description ("leg pain") only stands in for their regions.
    for m in sorted(mentions, key=lambda m: bool(m.meta.get("descriptive"))):
        said_without = lex.cues["without_radicular_after"].match(view.text, m.end, m.end + 40)
        concept = _resolve(lex, concept_of[id(m)], radicular and not said_without, claudication, resolved)
        if concept is None:
            continue
        x.cite("indication", m)
        if m.meta.get("descriptive") and concept in placed:
            continue
        item = _Item(concept, m.start, [m.evidence], text=m.evidence.text)
        _code_mention(x, lex, m, item, region, levels, thoracotomy, by_sentence)
        items.append(item)
        if 0 <= item.tier < 4:
            placed.add(concept)
    for concept, code, ev in written:
        concept = _resolve(lex, concept, radicular, claudication) or concept
        code_region = lex.code_concepts.get(code, (None, None))[1]
        items.append(_Item(concept, ev.start, [ev], [code_region] if code_region else [],
                           [(code, lex.descriptions.get(code, lex.as_written), code_region)], text=ev.text))
    return _diagnoses(lex, sorted(items, key=lambda i: i.start))


def states_indication(x: Extraction, folder: Path) -> bool:
    """The note names an indication, coded or not: an MRI finding ("MRI: L5-S1 extrusion contacting the S1
    root") is no current diagnosis, but it does tell why the injection was done. A negated, planned, doubted,
    past ("history of ..., resolved") or relative's diagnosis does not."""
    lex = load_lexicon(folder)
    return any(not (m.negated or m.hypothetical or m.family or m.uncertain) and m.section not in ("plan", "allergies")
               and not (m.historical and _said_past(x, lex, m.start, m.end, m.sentence))
               for m in x.view.of("DIAGNOSIS"))


def _resolve(lex: Lexicon, concept: str, radicular: bool, claudication: bool,
             stated: frozenset = frozenset()) -> str | None:
    """The concept the words state given the rest of the note (§1: disc/spondylosis with or without a
    radicular concept, stenosis with or without neurogenic claudication, axial pain only without one)."""
    entry = lex.concepts[concept]
    if entry.get("unless_radicular") and radicular or stated & entry["unless_concepts"]:
        return None
    if entry.get("if_no_radicular") and not radicular:
        concept = entry["if_no_radicular"]
    if entry.get("if_claudication") and claudication:
        concept = entry["if_claudication"]
    return concept


def _is_current(x: Extraction, lex: Lexicon, m: Mention) -> bool:
    if m.negated or m.family or m.uncertain:
        return False
    if (m.hypothetical or m.section in lex.not_current_sections) and not _assessment_line(x, lex, m):
        return False
    # Past by our cues, not ConText's flag alone: its "ago" marks onsets, and "had injections in the past for
    # stenosis" puts the past cue before the diagnosis, out of ConText's backward scope.
    if _said_past(x, lex, m.start, m.end, m.sentence):
        return False
    text = x.view.text
    sentence_start, line_start = x.view.sentence_starts[m.sentence], text.rfind("\n", 0, m.start) + 1
    if lex.cues["risk_before"].search(text, sentence_start, m.start) or lex.cues["past_line"].match(text, line_start):
        return False
    if m.meta.get("not_vascular") and lex.cues["vascular_before"].search(text, max(0, m.start - 40), m.start):
        return False
    # "L4-L5 disc protrusion on MRI w/ moderate canal stenosis" is an imaging finding, even on a Dx line.
    return not (lex.concepts[m.meta["concept"]].get("imaging_finding") and _told_by_imaging(x, lex, m))


def _told_by_imaging(x: Extraction, lex: Lexicon, m: Mention) -> bool:
    """A study in the finding's (hard-wrapped) sentence near it, earlier on its line, or a study word right
    before it in unpunctuated dictation."""
    text, reach = x.view.text, lex.imaging_reach
    line_start = text.rfind("\n", 0, m.start) + 1
    for i in _wrapped_sentence(x, m.sentence):
        for study in x.view.in_sentence(i, "IMAGING_STUDY"):
            if (0 <= m.start - study.start <= reach or 0 <= study.start - m.end <= lex.imaging_after_reach
                    or line_start <= study.start < m.start):
                return True
    earlier = x.view.of("IMAGING_STUDY")
    if any(line_start <= s.start < m.start and m.start - s.start <= 200 for s in earlier):
        return True  # "MRI C-spine: left foraminal stenosis at C5-C6 ...; mild canal stenosis C6-C7"
    return bool(lex.cues["imaging_before"].search(text, max(0, m.start - 100), m.start))


def _assessment_line(x: Extraction, lex: Lexicon, m: Mention) -> bool:
    """"A/P:\n1. L L5 radiculopathy 2/2 L4-L5 HNP": an assessment line under a plan-type header, without
    plan words of its own."""
    if m.section != "plan":
        return False
    text = x.view.text
    section = next((sec for sec in reversed(x.view.sections) if sec.title_start <= m.start), None)
    if section is None or not lex.cues["assessment_title"].search(text, section.title_start, section.body_start):
        return False
    line_start = text.rfind("\n", 0, m.start) + 1
    line_end = text.find("\n", m.end)
    return not lex.cues["plan_words"].search(text, line_start, line_end if line_end >= 0 else len(text))


def _wrapped_sentence(x: Extraction, index: int) -> range:
    """The sentence with the lines a hard wrap cut it into ("MRI C-spine: right C5-6 disc-osteophyte complex
    with moderate to\nsevere right foraminal stenosis;"): a line without end punctuation whose next line goes
    on in lower case (template lines such as "Dx: ...\nMRI: ..." stay apart)."""
    view = x.view

    def open_end(i: int) -> bool:
        told, following = view.sentence_text(i), view.sentence_text(i + 1).lstrip()
        return told.endswith("\n") and told.rstrip()[-1:] not in ".;!?" and following[:1].islower()

    first = index
    while first > 0 and index - first < 2 and open_end(first - 1):
        first -= 1
    last = index
    while last + 1 < len(view.sentence_starts) and last - index < 2 and open_end(last):
        last += 1
    return range(first, last + 1)


def _said_past(x: Extraction, lex: Lexicon, start: int, end: int, sentence: int) -> bool:
    """ConText reads "radicular pain that began 3 months ago" as history: an onset, not a past illness. Past
    only when a past cue is in the mention's own clause ("history of cervical radiculopathy") or right
    after it ("..., resolved")."""
    text = x.view.text
    if lex.cues["past_after"].match(text, end, end + 40):
        return True
    sentence_start = x.view.sentence_starts[sentence]
    cue = lex.cues["past_before"].search(text, sentence_start, start)
    if cue is None:  # most sentences: no past cue at all, so no clause to find
        return False
    # ":" does not end the clause: "Past history: lumbar radiculopathy", "Hx: ..." label what follows.
    clause_start = max(text.rfind(c, cue.start(), start) + 1 for c in ",;()[]")
    return clause_start <= cue.start() or bool(lex.cues["past_before"].search(text, clause_start, start))


def _unsaid_pain(x: Extraction, lex: Lexicon, m: Mention, concept: str, stated: set[str]) -> bool:
    """"metastatic breast cancer" alone names no pain: a cancer word counts with pain in its sentence or
    just after it, and only words that say pain themselves count beside postoperative or zoster pain."""
    entry = lex.concepts[concept]
    if not entry.get("needs_pain_word") or lex.cues["pain_word"].search(m.text):
        return False
    if stated & entry["generic_yields_to"]:
        return True
    return not _pain_follows(x, lex, m.sentence, lex.pain_reach)


def _pain_follows(x: Extraction, lex: Lexicon, sentence: int, reach: int) -> bool:
    """Pain is said in this sentence or in the `reach` characters after it."""
    start = x.view.sentence_starts[sentence]
    end = start + len(x.view.sentence_text(sentence)) + reach
    return bool(lex.cues["pain_word"].search(x.view.text, start, end))


def _descriptive_only(x: Extraction, lex: Lexicon, m: Mention, explained: bool, patterned: dict) -> bool:
    """"leg pain" and "radiating" name radiculopathy only when their sentence tells a radicular pattern and
    no other pain concept (cancer, zoster, postoperative, CRPS, trauma) explains the pain. `patterned`
    caches the pattern test by sentence ("leg pain radiating to the foot" has two such words)."""
    if not m.meta.get("descriptive"):
        return False
    if explained:
        return True
    if m.sentence not in patterned:
        patterned[m.sentence] = bool(lex.cues["radicular_pattern"].search(x.view.sentence_text(m.sentence)))
    return not patterned[m.sentence]


def _postoperative_mentions(x: Extraction, lex: Lexicon, before_operation: bool) -> tuple[list[Mention], bool]:
    """Postoperative pain is said by the pain-context words ("for post-op pain control", "post-thoracotomy
    pain"), which are PAIN_CONTEXT targets. A catheter placed before the operation treats no pain yet:
    then none, and True (the operation is planned)."""
    found = []
    for m in x.view.of("PAIN_CONTEXT"):
        if m.negated or m.hypothetical or m.family or m.meta.get("context") != "acute_postoperative":
            continue
        if m.section in lex.not_current_sections or lex.cues["chronic_postoperative"].search(
                x.view.sentence_text(m.sentence)):
            continue
        if x.cues.analgesia_other_route.match(x.view.text[m.end:m.end + 30]):
            continue  # "Postop analgesia by IV PCA": another route gives it, not this epidural
        if (m.meta.get("analgesia_purpose") or lex.cues["surgery_pain"].match(x.view.text, m.end, m.end + 12)
                or _postoperative_day(x, lex, m) and _pain_follows(x, lex, m.sentence, lex.pain_reach)):
            found.append(Mention(m.label, m.start, m.end, m.text, {**m.meta, "concept": "postoperative_pain"},
                                 m.sentence, m.section, quoted=m.quoted))
    # The regex starts with "postop"/"post-op": most notes have neither, and a substring test is far cheaper.
    lowered = x.view.text.lower()
    said = "postop" in lowered or "post-op" in lowered
    hits = lex.cues["postoperative_pain"].finditer(x.view.text) if said else ()
    for hit in hits:
        # "postoperative right knee pain": words between, so no target matched it.
        start, end = hit.span()
        sentence = bisect_right(x.view.sentence_starts, start) - 1
        if any(m.start <= start < m.end for m in found) or _section_at(x, start) in lex.not_current_sections:
            continue
        if lex.cues["code_negated"].search(x.view.text, max(0, start - 15), start):
            continue
        found.append(Mention("PAIN_CONTEXT", start, end, x.view.text[start:end],
                             {"concept": "postoperative_pain", "context": "acute_postoperative"}, sentence,
                             _section_at(x, start), quoted=x.view.quote(start, end) if x.view.original else None))
    if found and (before_operation or lex.cues["preemptive"].search(x.view.text)):
        return [], True
    return found, False


def _postoperative_day(x: Extraction, lex: Lexicon, m: Mention) -> bool:
    """"POD 1 s/p right TKA", "post op day one status post exploratory laparotomy": the day after surgery."""
    return bool(lex.cues["postoperative_day"].match(m.text)
                or lex.cues["postoperative_day"].search(x.view.sentence_text(m.sentence)))


def _written_codes(x: Extraction, lex: Lexicon) -> list[tuple[str, str, Evidence]]:
    """Codes written in the note that look like ICD-10-CM codes, outside plans/imaging/history, and not
    negated or doubted where the pipeline read them as ICD10 mentions."""
    view, text = x.view, x.view.text
    flagged = {m.start: m for m in view.of("ICD10")}
    found: dict[str, tuple[str, str, Evidence]] = {}
    hits = [hit for pattern in lex.formats for hit in pattern.finditer(text)]  # one fast scan per format
    for hit in hits:
        if hit.re.groupindex.get("code"):
            code, start, end = hit["code"], hit.start("code"), hit.end("code")
        else:  # read around its dot
            code, start, end = f'{hit["head"]}.{hit["tail"]}', hit.start("head"), hit.end("tail")
        if code in lex.not_billable or code in found or start and text[start - 1] in lex.not_after:
            continue
        m = flagged.get(start)
        if m is not None and (m.hypothetical or m.family or m.uncertain):
            continue
        if lex.cues["code_negated"].search(text, max(0, start - 15), start):
            continue
        if _section_at(x, start) in lex.not_current_sections:
            continue
        sentence = bisect_right(view.sentence_starts, start) - 1
        if m is not None and m.historical and _said_past(x, lex, start, end, sentence):
            continue
        concept = lex.code_concepts.get(code, ("other", None))[0]
        found[code] = (concept, code, quote(x, start, end))
    return sorted(found.values(), key=lambda f: f[2].start)


def _section_at(x: Extraction, pos: int) -> str | None:
    for sec in x.view.sections:
        if sec.title_start <= pos <= sec.body_end:
            return sec.category
    return None


def _code_mention(x: Extraction, lex: Lexicon, m: Mention, item: _Item, region: str | None,
                  levels: list[str], thoracotomy: bool, by_sentence: dict) -> None:
    entry = lex.concepts[item.concept]
    regions, evidence, used_levels, step = diagnosis_regions(x, lex, m, region, levels, by_sentence)
    if step > 2 and entry.get("fallback_region"):
        regions = [entry["fallback_region"]]  # "neurogenic claudication" under a caudal catheter: lumbar
    item.regions = regions
    if step > 2:
        item.tier = 8
    else:
        item.tier = (0 if m.section == "diagnosis" else 2) + step - 1 + (4 if m.meta.get("descriptive") else 0)
    if entry.get("limb_table"):
        item.codes = [(*crps_code(x, lex, m, lex.tables[entry["limb_table"]], entry), None)]
    elif entry.get("all_regions"):
        codes = (thoracotomy and entry.get("after_thoracotomy")) or entry["all_regions"]
        item.codes = [(code, desc, None) for code, desc in codes.items()]
    for r in regions if entry.get("codes") else ():
        table = lex.tables.get(entry.get("cervical_levels")) if r == "cervical" else None
        by_level = [lv for lv in used_levels if table and lv in table["levels"]]
        chosen = [table["levels"][lv] for lv in by_level] if by_level else [entry["codes"].get(r) or {}]
        item.codes += [(code, desc, r) for codes in chosen for code, desc in codes.items()]
    if item.codes:
        item.evidence += evidence


def _diagnoses(lex: Lexicon, items: list[_Item]) -> list[Diagnosis]:
    """One Diagnosis per concept, in the order the note states them, after the combination rule."""
    by_concept: dict[str, list[_Item]] = {}
    for item in items:
        by_concept.setdefault(item.concept, []).append(item)
    for concept, group in by_concept.items():
        # A concept's regions come from its best-placed statements: the diagnosis line outranks the history,
        # region words outrank levels near them ("lumbar spinal stenosis with neurogenic claudication, L5 and
        # S1 pattern" is lumbar), and the procedure's levels/region stand in only when no statement names a
        # region ("Dx: right C7 radiculopathy" and a later "persistent radicular pain" are one cervical one).
        tiers = [i.tier for i in group if i.tier >= 0 and any(r for _, _, r in i.codes)]
        best = min(tiers, default=0)
        by_concept[concept] = [i for i in group if i.tier <= best or not any(r for _, _, r in i.codes)]
    dropped: dict[str, set[str]] = {}
    for rule in lex.combination:
        coded = {r for c in rule["when_coded"] for item in by_concept.get(c, []) for _, _, r in item.codes if r}
        dropped.setdefault(rule["suppress"], set()).update(coded)
    out = []
    for concept, group in by_concept.items():
        candidates: list[Icd10Candidate] = []
        regions: list[str] = []
        evidence: list[Evidence] = []
        spans: set[tuple[int, int]] = set()
        for item in group:
            regions += [r for r in item.regions if r not in regions]
            for ev in item.evidence:
                if (ev.start, ev.end) not in spans:
                    spans.add((ev.start, ev.end))
                    evidence.append(ev)
            for code, desc, r in item.codes:
                if r in dropped.get(concept, ()) or any(c.code == code for c in candidates):
                    continue
                candidates.append(Icd10Candidate(code=code, description=desc))
        candidates = _most_specific(candidates)
        out.append(Diagnosis(text=group[0].text, concept=concept, regions=regions,
                             icd10=candidates[0].code if candidates else None,
                             icd10_candidates=candidates, evidence=evidence))
    return out


def _most_specific(candidates: list[Icd10Candidate]) -> list[Icd10Candidate]:
    """Code to the highest specificity: an "unspecified" code goes when the same concept also has a specific
    code of its category ("CRPS" and "CRPS of the left arm": G90.511, not also G90.50)."""
    def refined(c: Icd10Candidate) -> bool:
        return "unspecified" in c.description.lower() and any(
            o.code != c.code and o.code[:3] == c.code[:3] and "unspecified" not in o.description.lower()
            for o in candidates)
    return [c for c in candidates if not refined(c)]
