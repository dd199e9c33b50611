"""How injected medications and their doses, volumes and concentrations are found.

A sentence is cut into clauses ("80 mg Depo-Medrol in 4 mL total | 1 mL 1% lidocaine"); each quantity
goes to the nearest drug in its clause. Drugs named as allergies, home medications, history, plans
or conservative care are not this procedure's injectate.
"""

from __future__ import annotations

import re

from ..record import Evidence, Medication
from .context import Extraction
from .mentions import Mention

_EXCLUDED_SECTIONS = {"allergies", "medications_home", "past_history", "plan"}


def _drug_mentions(x: Extraction) -> list[Mention]:
    drugs = []
    for m in x.view.of("DRUG", "CONTRAST"):
        if not m.current or m.section in _EXCLUDED_SECTIONS:
            continue
        sentence = x.view.sentence_text(m.sentence).lower()
        if "allerg" in sentence and m.label == "CONTRAST":
            continue
        if m.label == "DRUG" and (_not_injectate(x, m, sentence) or x.told_with_past_injection(m)):
            continue
        if m.label == "CONTRAST" and not m.meta.get("agent"):
            m.meta = {**m.meta, "name": "contrast (agent not named)"}
        drugs.append(m)
    return drugs


def _not_injectate(x: Extraction, m: Mention, sentence: str) -> bool:
    """"oral dexamethasone", "a hydromorphone PCA", "failed NSAIDs and gabapentin": another route, or
    past therapy, unless the same sentence says the drug was injected or infused here."""
    text = x.view.text
    if x.cues.route_before.search(text[max(0, m.start - 25):m.start]) or x.cues.route_after.search(text[m.end:m.end + 20]):
        return True
    if not x.cues.not_injectate_sentence.search(sentence):
        return False
    # "...despite oral and then subcutaneous opioids (current subcutaneous hydromorphone infusion),
    # dexamethasone": that "infusion" is another route's, not this injection's.
    return not any(x.cues.injection_verb.search(text[lo:hi]) and not x.cues.other_route_clause.search(text[lo:hi])
                   for lo, hi in _clauses(x, m.sentence))


def _clauses(x: Extraction, sentence: int) -> list[tuple[int, int]]:
    start = x.view.sentence_starts[sentence]
    text = x.view.sentence_text(sentence)
    cuts = [start] + [start + m.start() for m in x.cues.clause_separator.finditer(text)] + [start + len(text)]
    return list(zip(cuts, cuts[1:]))


def extract_medications(x: Extraction) -> list[Medication]:
    drugs = _drug_mentions(x)
    quantities_in: dict[int, list[Mention]] = {}
    for q in x.view.of("QUANTITY"):
        if q.current:
            quantities_in.setdefault(q.sentence, []).append(q)
    drugs_in: dict[int, list[Mention]] = {}
    for d in drugs:
        drugs_in.setdefault(d.sentence, []).append(d)
    by_name: dict[str, Medication] = {}
    for sentence, in_sentence in sorted(drugs_in.items()):
        assigned: dict[int, list[Mention]] = {id(d): [] for d in in_sentence}
        for lo, hi in _clauses(x, sentence):
            in_clause = [d for d in in_sentence if lo <= d.start < hi]
            # "Kenalog 40 mg, 1 mL, mixed with ...": a clause with no drug belongs to the drug before it.
            owners = in_clause or [d for d in in_sentence if d.start < lo][-1:]
            if not owners:
                continue
            for q in (q for q in quantities_in.get(sentence, ()) if lo <= q.start < hi):
                nearest = min(owners, key=lambda d: min(abs(q.start - d.end), abs(d.start - q.end)))
                assigned[id(nearest)].append(q)
        # An infusion rate is the mixture's: "bupivacaine 0.1% with hydromorphone 10 mcg/mL at 6 mL/hr".
        rates = [q for qs in assigned.values() for q in qs if q.meta["kind"] == "rate"]
        for d in in_sentence:
            _merge(x, by_name, d, assigned[id(d)] + [r for r in rates if r not in assigned[id(d)]])
    _rates_after_the_mixture(x, drugs_in, quantities_in, by_name)
    _cite_total_volume(x, [q for qs in quantities_in.values() for q in qs])
    return list(by_name.values())


def _rates_after_the_mixture(x: Extraction, drugs_in: dict, quantities_in: dict, by_name: dict) -> None:
    """"Ropivacaine 0.1% + fentanyl 2 mcg/mL; basal 6 mL/hr": a rate told on the same line right after
    the sentence naming the mixture is that mixture's rate."""
    text = x.view.text
    for sentence, qtys in quantities_in.items():
        rates = [q for q in qtys if q.meta["kind"] == "rate"]
        if not rates or sentence in drugs_in or sentence - 1 not in drugs_in:
            continue
        if "\n" in text[x.view.sentence_starts[sentence - 1]:rates[0].start].rstrip(" \t"):
            continue
        for d in drugs_in[sentence - 1]:
            med = by_name.get(_name(d))
            if med is not None and med.rate_ml_hr is None:
                med.rate_ml_hr = rates[0].meta["number"]
                med.evidence.append(rates[0].evidence)


# "DMP 80", "dex 10": a bare number right after a steroid is its dose in the lexicon's unit.
_BARE_NUMBER = re.compile(r"[ \t]*(\d+(?:\.\d+)?)\b(?![ \t]*(?:%|mg|mcg|ml|cc|/|\.\d|-|units?))", re.IGNORECASE)


def _name(drug: Mention) -> str:
    """The key a drug's medication is filed under: the contrast agent or generic name, else the words."""
    return drug.meta.get("agent") or drug.meta.get("name") or drug.text


def _merge(x: Extraction, by_name: dict, drug: Mention, qtys: list[Mention]) -> None:
    name = _name(drug)
    category = "contrast" if drug.label == "CONTRAST" else drug.meta.get("drug_class", "other")
    med = by_name.setdefault(name, Medication(name=name, category=category))
    med.evidence.append(drug.evidence)
    bare_unit = drug.meta.get("bare_number_unit")
    if bare_unit and med.dose is None and not any(q.meta["kind"] == "dose" for q in qtys):
        bare = _BARE_NUMBER.match(x.view.text, drug.end)
        if bare:
            med.dose, med.unit = float(bare.group(1)), bare_unit
            start, end, quote = x.view.quote(bare.start(1), bare.end(1))
            med.evidence.append(Evidence(start=start, end=end, text=quote))
    for q in qtys:
        kind, number, unit = q.meta["kind"], q.meta["number"], q.meta["unit"]
        if kind == "dose" and med.dose is None:
            med.dose, med.unit = number, unit
        elif kind == "volume" and med.volume_ml is None and not _is_total(x, q):
            med.volume_ml = number
        elif kind == "rate" and med.rate_ml_hr is None:
            med.rate_ml_hr = number
        elif kind == "concentration" and med.concentration is None and number <= 100:
            if unit == "%" and number > 10:
                continue  # "60% relief" is not a drug concentration
            med.concentration = f"{number:g}{unit}" if unit == "%" else f"{number:g} {unit}"
        else:
            continue
        med.evidence.append(q.evidence)


def _is_total(x: Extraction, q: Mention) -> bool:
    text = x.view.text
    return bool(x.cues.injectate_total_after.search(text[q.end:q.end + 20])
                or x.cues.injectate_total_before.search(text[max(0, q.start - 30):q.start]))


def _cite_total_volume(x: Extraction, quantities: list[Mention]) -> None:
    for q in quantities:
        if q.meta["kind"] == "volume" and _is_total(x, q):
            x.cite("injectate_volume", q)
