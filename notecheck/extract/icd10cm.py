"""The ICD-10-CM lexicon (patterns/icd10cm.yaml) and the ICD-region reading of a diagnosis (issue 6 §1):
its region words, the levels and nerve roots of its sentence, the injected levels, the procedure region.
diagnoses.py decides which mentions are current diagnoses and which codes they get."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from ..patterns_path import load_yaml
from ..record import Evidence
from .context import Extraction
from .mentions import Mention


@dataclass(frozen=True)
class Lexicon:
    """patterns/icd10cm.yaml, compiled."""
    concepts: dict[str, dict]
    region_words: re.Pattern            # one group per ICD region
    level_regions: dict[str, str]
    roots: re.Pattern
    pairs: re.Pattern
    order: list[str]
    max_interspaces: int
    level_as_roots: re.Pattern
    root_max: dict[str, int]
    root_regions: dict[str, str]
    procedure_regions: dict[str, str]
    combination: list[dict]
    formats: list[re.Pattern]
    not_after: frozenset
    not_billable: frozenset
    descriptions: dict[str, str]
    code_concepts: dict[str, tuple[str, str | None]]  # written code -> (concept, region)
    tables: dict[str, dict]
    not_current_sections: frozenset
    imaging_reach: int
    imaging_after_reach: int
    level_reach: int
    pain_reach: int
    radiating_pain_contexts: frozenset
    cues: dict[str, re.Pattern]
    as_written: str


@cache
def load_lexicon(folder: Path) -> Lexicon:
    """The lexicon, compiled once per rules folder; every code of every table is known with its description
    and concept, so a code written in the note joins its concept (and the combination rule)."""
    data = load_yaml(folder / "icd10cm.yaml")
    concepts = {c["concept"]: dict(c) for c in data["concepts"]}  # a copy: load_yaml caches the data
    for c in concepts.values():  # the concept lists as sets, once: they are tested for every mention
        for key in ("unless_concepts", "generic_yields_to"):
            c[key] = frozenset(c.get(key, ()))
    tables = {t["id"]: t for t in data["tables"]}
    descriptions = dict(data["written_codes"]["descriptions"])
    code_concepts: dict[str, tuple[str, str | None]] = {}

    def know(codes: dict, concept: str, region: str | None) -> None:
        for code, description in codes.items():
            descriptions.setdefault(code, description)
            code_concepts.setdefault(code, (concept, region))

    for name, c in concepts.items():
        for region, codes in (c.get("codes") or {}).items():
            know(codes, name, region)
        for key in ("all_regions", "after_thoracotomy"):
            know(c.get(key) or {}, name, None)
        for level, codes in (tables.get(c.get("cervical_levels")) or {}).get("levels", {}).items():
            know(codes, name, data["level_regions"][level])
        for limb in (tables.get(c.get("limb_table")) or {}).get("limbs", {}).values():
            for side in ("right", "left", "bilateral", "unstated"):
                know(limb[side], name, None)
    roots = data["roots"]
    return Lexicon(
        concepts=concepts,
        region_words=re.compile(data["region_words_start"] + "(?:" + "|".join(
            f"(?P<{r}>{p})" for r, p in data["region_words"].items()) + ")", re.IGNORECASE),
        level_regions=data["level_regions"],
        roots=re.compile(roots["pattern"]),
        pairs=re.compile(data["level_pairs"]["pattern"]),
        order=data["level_pairs"]["order"],
        max_interspaces=data["level_pairs"]["max_interspaces"],
        level_as_roots=re.compile(data["level_as_roots"], re.IGNORECASE),
        root_max=roots["max"],
        root_regions=roots["regions"],
        procedure_regions=data["procedure_regions"],
        combination=data["combination_rules"],
        formats=[re.compile(f["regex"]) for f in data["written_codes"]["formats"]],
        not_after=frozenset(data["written_codes"]["not_after"]),
        not_billable=frozenset(data["written_codes"]["not_billable"]),
        descriptions=descriptions,
        code_concepts=code_concepts,
        tables=tables,
        not_current_sections=frozenset(data["not_current_sections"]),
        imaging_reach=data["imaging_reach"],
        imaging_after_reach=data["imaging_after_reach"],
        level_reach=data["level_reach"],
        pain_reach=data["pain_reach"],
        radiating_pain_contexts=frozenset(data["radiating_explained_by_pain_contexts"]),
        cues={k: re.compile(v, re.IGNORECASE) for k, v in data["cues"].items()},
        as_written=data["written_codes"]["as_written"],
    )


def quote(x: Extraction, start: int, end: int) -> Evidence:
    start, end, text = x.view.quote(start, end)
    return Evidence(start=start, end=end, text=text)


def diagnosis_regions(x: Extraction, lex: Lexicon, m: Mention, region: str | None, levels: list[str],
                      by_sentence: dict) -> tuple[list[str], list[Evidence], list[str], int]:
    """(ICD regions, the words that gave them, the interspaces among them, the §1 step that gave them:
    1 its own region words, 2 its sentence's levels/roots, 3 the injected levels, 4 the procedure region)."""
    sentence_start = x.view.sentence_starts[m.sentence]
    # Several diagnoses share a sentence ("L5-S1 disc protrusion with left S1 radiculopathy"): read it once.
    if m.sentence not in by_sentence:
        by_sentence[m.sentence] = levels_in_sentence(x, lex, m.sentence)
    reach = lex.level_reach
    found = [f for f in by_sentence[m.sentence] if f[1][1] >= m.start - reach and f[1][0] <= m.end + reach]
    sentence_levels = [lv for _, _, lv in found if lv]
    words = region_words(x, lex, m, sentence_start)
    step = 1
    if not words and found:
        lo, hi = _phrase_bounds(x, lex, m, sentence_start)
        words = [(r, span) for r, span, _ in found if lo <= span[0] and span[1] <= hi and not
                 (span[0] < m.end and span[1] > m.start)]
    if not words:
        step = 2
        words = [(r, span) for r, span, _ in found]
    if not words:
        end = min(sentence_start + len(x.view.sentence_text(m.sentence)), m.end + reach)
        words = [(hit.lastgroup, hit.span())
                 for hit in lex.region_words.finditer(x.view.text, max(sentence_start, m.start - reach), end)]
    if words:
        spans = unique(span for _, span in words)
        return unique(r for r, _ in words), [quote(x, *span) for span in spans], sentence_levels, step
    injected = [lv for lv in levels if lv in lex.level_regions and lv != "sacral hiatus"]
    if injected:
        return unique(lex.level_regions[lv] for lv in injected), list(x.evidence.get("levels", [])), injected, 3
    if region in lex.procedure_regions:
        return [lex.procedure_regions[region]], list(x.evidence.get("region", [])), [], 4
    return [], [], [], 5


Span = tuple[int, int]


def _phrase_bounds(x: Extraction, lex: Lexicon, m: Mention, sentence_start: int) -> Span:
    """Where the diagnosis phrase's own roots may be: the run of roots right before it, its distribution."""
    text = x.view.text
    run = lex.cues["roots_before"].search(text, max(sentence_start, m.start - 40), m.start)
    after = lex.cues["roots_after"].match(text, m.end, m.end + 60)
    return (run.start() if run else m.start), (after.end() if after else m.end)


def levels_in_sentence(x: Extraction, lex: Lexicon, sentence: int) -> list[tuple[str, Span, str | None]]:
    """(ICD region, where it is said, interspace or None for a root) for the levels and roots of a sentence."""
    view, text = x.view, x.view.text
    start = view.sentence_starts[sentence]
    end = start + len(view.sentence_text(sentence))
    found: list[tuple[str, Span, str | None]] = []
    taken: list[Span] = []
    for lv in view.in_sentence(sentence, "LEVEL"):
        if lv.negated:
            continue
        taken.append((lv.start, lv.end))
        if lex.level_as_roots.match(text, lv.end) and "-" in lv.meta["level"]:
            found += [(r, (lv.start, lv.end), None) for r in roots(lex, lv.meta["level"].split("-"))]
        elif lex.level_regions.get(lv.meta["level"]):
            found.append((lex.level_regions[lv.meta["level"]], (lv.start, lv.end), lv.meta["level"]))
    for hit in lex.pairs.finditer(text, start, end):
        if any(s < hit.end() and hit.start() < e for s, e in taken):
            continue
        ends = [hit["r1"] + hit["n1"], (hit["r2"] or hit["r1"]) + hit["n2"]]
        if not all(e in lex.order or roots(lex, [e]) for e in ends):
            continue  # "C9-10", "L4-7": not spinal
        span = hit.span()
        taken.append(span)
        first, last = (lex.order.index(e) if e in lex.order else -1 for e in ends)
        if first < 0 or last < 0 or not 0 < last - first <= lex.max_interspaces:
            found += [(r, span, None) for r in roots(lex, ends)]  # "C8-T1 radiculopathy": two roots
        else:  # "s/p L4-S1 fusion": every interspace between
            spaces = [f"{lex.order[i]}-{lex.order[i + 1]}" for i in range(first, last)]
            found += [(lex.level_regions[sp], span, sp) for sp in spaces if sp in lex.level_regions]
    for hit in lex.roots.finditer(text, start, end):
        if not any(s <= hit.start() < e for s, e in taken):
            found += [(r, hit.span(), None) for r in roots(lex, [hit["letter"] + hit["number"]])]
    return found


def roots(lex: Lexicon, names: list[str]) -> list[str]:
    """ICD regions of nerve roots named alone ("S1" lumbosacral, "C8" cervical)."""
    out = []
    for name in names:
        letter, number = name[0], int(name[1:])
        if 1 <= number <= lex.root_max.get(letter, 0):
            out.append(lex.root_regions.get(name) or lex.root_regions[letter])
    return out


def region_words(x: Extraction, lex: Lexicon, m: Mention, sentence_start: int) -> list[tuple[str, Span]]:
    """Region words of the diagnosis phrase: in its words, in the words before it up to a clause break
    ("left lumbosacral radiculopathy"), or right after it (", lumbar region", "of the cervical spine")."""
    text = x.view.text
    window_start = max(sentence_start, m.start - 40)
    breaks = list(lex.cues["phrase_break"].finditer(text, window_start, m.start))
    found = [(hit.lastgroup, hit.span())
             for hit in lex.region_words.finditer(text, breaks[-1].end() if breaks else window_start, m.end)]
    after = lex.cues["region_after"].match(text, m.end, m.end + 40)
    hit = after and lex.region_words.match(text, after.end(), after.end() + 30)
    # After the diagnosis only "..., lumbar" / "..., lumbar region", not "..., cervical spondylosis".
    if hit and lex.cues["region_after_end"].match(text, hit.end()):
        found.append((hit.lastgroup, hit.span()))
    return found


def crps_code(x: Extraction, lex: Lexicon, m: Mention, table: dict, entry: dict) -> tuple[str, str]:
    """G90.5-: the limb named in the CRPS sentence, and its side (G90.50 when no limb is named)."""
    view, text = x.view, x.view.text
    sentence_start = view.sentence_starts[m.sentence]
    end = sentence_start + len(view.sentence_text(m.sentence))
    limbs = [(hit.start(), name, hit) for name, limb in table["limbs"].items()
             for hit in re.finditer(limb["words"], text[:end], re.IGNORECASE) if hit.start() >= sentence_start]
    if not limbs:
        return next(iter(entry["all_regions"].items()))
    _, name, hit = min(limbs, key=lambda t: (t[0] < m.start, abs(t[0] - m.start)))
    near = text[max(sentence_start, hit.start() - 25):hit.end()]
    side = next((s for s, p in table["sides"].items() if re.search(p, near, re.IGNORECASE)), None)
    if side is None:
        phrase = text[min(m.start, hit.start()):max(m.end, hit.end())]
        side = next((s for s, p in table["sides"].items() if re.search(p, phrase, re.IGNORECASE)), "unstated")
    return next(iter(table["limbs"][name][side].items()))


def unique(values) -> list:
    out = []
    for v in values:
        if v not in out:
            out.append(v)
    return out
