"""medspaCy rule components configured from patterns/: targets (TargetRule JSON), ConText modifiers
(ConTextRule JSON) and section headers (SectionRule JSON).

Each factory loads its own rule files and calls `.add()` itself: medspaCy 1.3.1's target matcher
fails when given a rules path in its config, and `nlp.to_disk()` saves no rules, so the pipeline is
always rebuilt from patterns/ (see ../shared/reference/ecosystem.md §0.8).
"""


import re
from bisect import bisect_left, bisect_right
from collections import defaultdict
from pathlib import Path

from medspacy.context import ConText, ConTextRule
from medspacy.context.context_graph import ConTextGraph
from medspacy.context.context_modifier import ConTextModifier
from medspacy.section_detection import Section, Sectionizer, SectionRule
from medspacy.target_matcher import TargetMatcher, TargetRule
from spacy.language import Language

from ..patterns_path import load_json, load_yaml, patterns_dir
from .regex_spans import SPAN_GROUP, doc_text
from .sentences import sentence_token_starts, token_char_starts

# ConText categories -> span attributes. CONDITIONAL plans ("if no relief, ...") read as hypothetical.
CONTEXT_ATTRIBUTES = {
    "NEGATED_EXISTENCE": {"is_negated": True},
    "POSSIBLE_EXISTENCE": {"is_uncertain": True},
    "HISTORICAL": {"is_historical": True},
    "HYPOTHETICAL": {"is_hypothetical": True},
    "FAMILY": {"is_family": True},
}

# Mentions under these headers are not facts of this procedure (applied in notecheck/extract/mentions.py).
SECTION_ATTRIBUTES = {
    "past_history": {"is_historical": True},
    "plan": {"is_hypothetical": True},
    "medications_home": {"is_historical": True},
}


def _folder(patterns_path: str | None) -> Path:
    return Path(patterns_path) if patterns_path else patterns_dir()


def load_target_rules(folder: Path) -> list[TargetRule]:
    variants = _spelling_variants(folder)
    rules = []
    for path in sorted((folder / "targets").glob("*.json")):
        data = load_json(path)["target_rules"]
        rules.extend(TargetRule.from_dict(d) for d in data)
        rules.extend(TargetRule.from_dict(d) for d in misspelled_copies(data, variants))
    return rules


def _spelling_variants(folder: Path) -> dict[str, list[str]]:
    path = folder / "spelling_variants.yaml"
    return load_yaml(path)["variants"] if path.exists() else {}


def misspelled_copies(rules: list[dict], variants: dict[str, list[str]]) -> list[dict]:
    """Copies of the literal rules with one word misspelled (patterns/spelling_variants.yaml)."""
    if not variants:
        return []
    seen = {d["literal"].lower() for d in rules if "literal" in d}
    word = re.compile(r"\b(" + "|".join(map(re.escape, variants)) + r")\b", re.IGNORECASE)
    copies = []
    for d in rules:
        if "pattern" in d or "literal" not in d:
            continue
        for hit in word.finditer(d["literal"]):
            for typo in variants[hit.group(1).lower()]:
                literal = d["literal"][:hit.start()] + typo + d["literal"][hit.end():]
                if literal.lower() in seen:
                    continue
                seen.add(literal.lower())
                metadata = {**d.get("metadata", {}), "id": f"{d['metadata']['id']}~{typo}"}
                copies.append({**d, "literal": literal, "metadata": metadata})
    return copies


@Language.factory("notecheck_targets", default_config={"patterns_path": None})
def make_target_matcher(nlp: Language, name: str, patterns_path: str | None):
    matcher = TargetMatcher(nlp, name=name, result_type="group", span_group_name=SPAN_GROUP)
    matcher.add(load_target_rules(_folder(patterns_path)))
    return matcher


@Language.factory("notecheck_context", default_config={"patterns_path": None})
def make_context(nlp: Language, name: str, patterns_path: str | None):
    context = ConText(
        nlp,
        name=name,
        rules=None,
        span_attrs=CONTEXT_ATTRIBUTES,
        input_span_type="group",
        span_group_name=SPAN_GROUP,
        # "no contrast" and "without fluoroscopy" are targets themselves; their own "no"/"without"
        # must not negate them.
        prune_on_target_overlap=True,
    )
    data = load_json(_folder(patterns_path) / "context.json")["context_rules"]
    context.add([ConTextRule.from_dict(d) for d in data])
    return SentenceScopedConText(context)


class SentenceScopedConText:
    """medspaCy ConText, applied one sentence at a time.

    Without `max_scope` a modifier's scope ends at its sentence, so pairing only the targets and
    modifiers of the same sentence gives the same edges as ConText's whole-document pass, which
    compares every target with every modifier (and every modifier with every other): on a 250-word
    note that pass was a third of the pipeline's time. The rules, matcher, modifier and graph logic
    are medspaCy's own.
    """

    def __init__(self, context: ConText) -> None:
        self.context = context
        self._matcher = context._ConText__matcher  # the rule matcher ConText built from our rules

    def __call__(self, doc):
        targets = doc.spans[SPAN_GROUP] if SPAN_GROUP in doc.spans else []
        matches = self._matcher(doc) if len(targets) else []
        if not matches:
            return doc
        sentence_starts = sentence_token_starts(doc)
        modifiers_in = defaultdict(list)
        for match_id, start, end in matches:
            rule = self._matcher.rule_map[doc.vocab[match_id].text]
            modifiers_in[bisect_right(sentence_starts, start) - 1].append(ConTextModifier(rule, start, end, doc))
        targets_in = defaultdict(list)
        for target in targets:
            targets_in[bisect_right(sentence_starts, target.start) - 1].append(target)
        edges = []
        for sentence, modifiers in modifiers_in.items():
            if sentence not in targets_in:
                continue
            graph = ConTextGraph(prune_on_modifier_overlap=self.context.prune_on_target_overlap)
            graph.targets = targets_in[sentence]
            graph.modifiers = modifiers
            graph.update_scopes()
            graph.apply_modifiers()
            edges.extend(graph.edges)
        for target, modifier in edges:
            target._.modifiers += (modifier,)
        self.context.set_context_attributes(edges)
        return doc


@Language.factory("notecheck_sections", default_config={"patterns_path": None})
def make_sectionizer(nlp: Language, name: str, patterns_path: str | None):
    sectionizer = Sectionizer(nlp, name=name, rules=None, input_span_type="group", span_group_name=SPAN_GROUP,
                              span_attrs=None)
    data = load_json(_folder(patterns_path) / "sections.json")["section_rules"]
    sectionizer.add([SectionRule.from_dict(d) for d in data])
    return SectionsOnly(sectionizer)


class SectionsOnly:
    """medspaCy's Sectionizer rules and matcher, setting `doc._.sections` only.

    The Sectionizer also links every token to its section (`token._.section`), a Python loop over
    the whole note that notecheck never reads: mentions find their section by character offset.
    Our rules have no parents, so a section runs from its header to the next header, but stops early
    so that a label does not swallow the text after it: an inline label ("DX: lumbar radiculopathy")
    ends with its line, and a header on a line of its own ends at the first blank line after its body.
    """

    def __init__(self, sectionizer: Sectionizer) -> None:
        self.sectionizer = sectionizer
        self._matcher = sectionizer._Sectionizer__matcher

    def __call__(self, doc):
        matches = self._matcher(doc)
        sections = []
        if not matches or matches[0][1] != 0:
            sections.append(Section(None, 0, 0, 0, matches[0][1] if matches else len(doc)))
        text = doc_text(doc)
        token_starts = None
        # A header on a line of its own ("ALLERGIES:") whose list holds inline labels ("- CONTRAST: hives")
        # still owns the lines after each label, up to its own paragraph break.
        outer, outer_end = None, -1
        breaks = None  # paragraph-break offsets, found once per note when a header needs them
        for i, (match_id, start, end) in enumerate(matches):
            rule = self._matcher.rule_map[doc.vocab.strings[match_id]]
            next_start = matches[i + 1][1] if i + 1 < len(matches) else len(doc)
            body_from = doc[end].idx if end < len(doc) else len(text)
            body_to = doc[next_start].idx if next_start < len(doc) else len(text)
            line_end = text.find("\n", body_from, body_to)
            inline = line_end > 0 and text[body_from:line_end].strip(" \t,.:;-")
            paragraph_end = _LINE_END.search(text, body_from, body_to) if inline else \
                _PARAGRAPH_BREAK.search(text, body_from, body_to)
            cut = paragraph_end.start() if paragraph_end else None
            # "Consent: ___ . Dx C7 radiculopathy ..." run together on one line: a label left blank owns
            # only its blank.
            blank = _BLANK_VALUE.match(text, body_from, body_to)
            if blank:
                cut, inline = blank.end(), True
            if not inline:
                if breaks is None:
                    breaks = [m.start() for m in _PARAGRAPH_BREAK.finditer(text)]
                after = bisect_left(breaks, body_from)
                outer, outer_end = rule, (breaks[after] if after < len(breaks) else len(text))
            if cut is not None:
                if token_starts is None:
                    token_starts = token_char_starts(doc)
                stop = bisect_right(token_starts, cut)
                sections.append(Section(rule.category, start, end, end, stop, None, rule))
                if stop < next_start:
                    if inline and outer is not None and cut < outer_end:
                        resume_to = min(next_start, bisect_right(token_starts, outer_end))
                        sections.append(Section(outer.category, stop, stop, stop, resume_to, None, outer))
                        stop = resume_to
                    if stop < next_start:
                        sections.append(Section(None, stop, stop, stop, next_start))
            else:
                sections.append(Section(rule.category, start, end, end, next_start, None, rule))
        doc._.sections = sections
        return doc


# A blank line after some body text ends a section; an inline label's section ends with its line.
_PARAGRAPH_BREAK = re.compile(r"(?<=\S)[ \t]*\n[ \t]*\n")
_LINE_END = re.compile(r"(?<=\S)[ \t]*\n")
_BLANK_VALUE = re.compile(r"[ \t]*(?:_{2,}|\[[ \t]*\]|\([ \t]*\))[ \t]*[.;,]?(?=[ \t]+\S)")
