"""A NoteResult as CDS Hooks 2.0 cards.

One card per missing requirement (`critical` for a payer-required element, `warning` for good practice), one
`critical` card when the note supports no 6232x code (out of family, or no procedure documented), and one
`info` card naming the supported code whenever there is something else to say. A complete, in-family note
gets no cards at all: CDS Hooks' "nothing to say" answer, so a physician signing a good note sees nothing.

Labels, sources, override reasons and the uuid namespace are data (patterns/cds_services.yaml `cards`). Card
uuids are uuid5(namespace, "<hookInstance>/<rule id>"): stable for feedback, and the same on a re-invocation.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from ..record import Evidence, Finding, NoteResult

CODE_RULE_ID = "code"  # the id of the info / no-code card, in uuids and source topics


class Coding(BaseModel):
    system: str | None = None
    code: str
    display: str | None = None


class Source(BaseModel):
    label: str
    url: str | None = None
    icon: str | None = None
    topic: Coding | None = None


class Action(BaseModel):
    model_config = ConfigDict(extra="allow")

    type: Literal["create", "update", "delete"]
    description: str
    resource: dict[str, Any] | None = None
    resourceId: list[str] | None = None  # noqa: N815 - CDS Hooks field name


class Suggestion(BaseModel):
    label: str
    uuid: str | None = None
    isRecommended: bool | None = None  # noqa: N815
    actions: list[Action] | None = None


class Link(BaseModel):
    label: str
    url: str
    type: Literal["absolute", "smart"]


class Card(BaseModel):
    uuid: str | None = None
    summary: str
    detail: str | None = None
    indicator: Literal["info", "warning", "critical"]
    source: Source
    suggestions: list[Suggestion] | None = None
    selectionBehavior: Literal["at-most-one", "any"] | None = None  # noqa: N815
    overrideReasons: list[Coding] | None = None  # noqa: N815
    links: list[Link] | None = None


class CdsResponse(BaseModel):
    cards: list[Card]
    systemActions: list[Action] | None = None  # noqa: N815


@dataclass(frozen=True)
class CardRules:
    """The `cards` section of cds_services.yaml."""

    namespace: uuid.UUID
    summary_max: int
    topic_system: str
    override_reasons: list[Coding]
    default_source: dict
    coding_source: dict
    sources: dict[str, dict]
    query_label: str
    task_code_text: str

    @classmethod
    def from_yaml(cls, data: dict) -> CardRules:
        system = data["override_reason_system"]
        return cls(namespace=uuid.UUID(data["uuid_namespace"]), summary_max=int(data["summary_max_chars"]),
                   topic_system=data["topic_system"],
                   override_reasons=[Coding(system=system, **r) for r in data["override_reasons"]],
                   default_source=data["default_source"], coding_source=data["coding_source"],
                   sources=data.get("sources") or {}, query_label=data["query_suggestion"]["label"],
                   task_code_text=data["query_suggestion"]["task_code_text"])


@dataclass(frozen=True)
class HookFacts:
    """What the cards need from the request: ids for uuids and for the suggested Task's references."""

    hook_instance: str
    patient_id: str | None = None
    user_id: str | None = None
    note_reference: str | None = None


def build_cards(result: NoteResult, facts: HookFacts, rules: CardRules, families: dict[str, dict]) -> list[Card]:
    """The cards for one checked note (status "ok"); [] when it is complete and in family."""
    cards = [_finding_card(f, facts, rules) for f in result.findings if f.status == "missing"]
    code = result.code
    if code is None or code.cpt is None:
        cards.insert(0, _no_code_card(result, facts, rules, families))
    elif cards:
        cards.append(_code_card(result, facts, rules))
    return cards


def card_uuid(rules: CardRules, hook_instance: str, rule_id: str) -> str:
    return str(uuid.uuid5(rules.namespace, f"{hook_instance}/{rule_id}"))


def _finding_card(finding: Finding, facts: HookFacts, rules: CardRules) -> Card:
    payer = finding.severity == "error"
    lead = "Payer-required" if payer else "Good practice"
    lines = [f"**{_md(finding.title)}** (`{finding.id}`, {lead.lower()}). {_md(finding.message)}"]
    if finding.query:
        lines.append(f"**Question for the author:** {_md(finding.query)}")
    lines.append(_evidence_block(finding.evidence, "Related text in the note",
                                 "No text in the note documents this element."))
    lines.append(f"**Source:** {_md(finding.source)}")
    card = Card(uuid=card_uuid(rules, facts.hook_instance, finding.id),
                summary=clamp(f"{lead}: {finding.message}", rules.summary_max),
                detail="\n\n".join(lines), indicator="critical" if payer else "warning",
                source=_source(rules, finding.id, finding.title), overrideReasons=rules.override_reasons)
    if finding.query:
        card.suggestions = [_query_suggestion(finding, facts, rules)]
        card.selectionBehavior = "at-most-one"
    return card


def _query_suggestion(finding: Finding, facts: HookFacts, rules: CardRules) -> Suggestion:
    # A Task, not a Communication: the physician signing is the one who must act, and a Task stays on the
    # work list until done. It carries the rule's question and points at the note, patient and author.
    task: dict[str, Any] = {
        "resourceType": "Task", "status": "requested", "intent": "order", "priority": "routine",
        "code": {"text": rules.task_code_text},
        "description": finding.query,
        "reasonCode": {"coding": [{"system": rules.topic_system, "code": finding.id, "display": finding.title}]},
    }
    if facts.note_reference:
        task["focus"] = {"reference": facts.note_reference}
    if facts.patient_id:
        task["for"] = {"reference": _reference("Patient", facts.patient_id)}
    if facts.user_id:
        task["owner"] = {"reference": _reference("Practitioner", facts.user_id)}
    return Suggestion(label=clamp(rules.query_label.format(title=finding.title), rules.summary_max),
                      uuid=card_uuid(rules, facts.hook_instance, f"{finding.id}/query"), isRecommended=True,
                      actions=[Action(type="create", description=finding.query, resource=task)])


def _code_card(result: NoteResult, facts: HookFacts, rules: CardRules) -> Card:
    code = result.code
    missing = sum(1 for f in result.findings if f.status == "missing")
    summary = f"Documentation supports CPT {code.cpt}; {missing} element{'s' if missing != 1 else ''} " \
              f"to complete (cards above)."
    lines = [f"**CPT {code.cpt}** is supported by the documentation:"]
    lines += [f"- **{_md(step.axis)}**: {_md(step.reason)}{_quotes(step.evidence)}" for step in code.rationale
              if step.axis != "code"]
    if code.modifiers:
        lines.append(f"Modifiers: {', '.join(code.modifiers)}")
    if code.notes:
        lines.append("**Coding notes:**\n" + "\n".join(f"- {_md(n.message)} ({_md(n.source)})" for n in code.notes))
    return Card(uuid=card_uuid(rules, facts.hook_instance, CODE_RULE_ID), summary=clamp(summary, rules.summary_max),
                detail="\n\n".join(lines), indicator="info", source=_coding_source(rules, f"CPT {code.cpt}"))


def _no_code_card(result: NoteResult, facts: HookFacts, rules: CardRules, families: dict[str, dict]) -> Card:
    code = result.code
    family = families.get(code.out_of_family or "", {}) if code else {}
    if family:
        summary = f"Not CPT 62320-62327: the note documents a {family.get('name', code.out_of_family)}" \
                  f" (see {family.get('codes', 'another code family')})."
    elif code is not None and code.out_of_family:
        summary = f"Not CPT 62320-62327: the note documents {code.out_of_family.replace('_', ' ')}."
    else:
        summary = "The note does not support any CPT 62320-62327 code."
    lines = [_md(summary)]
    if code is not None:
        lines += [f"- **{_md(s.axis)}**: {_md(s.reason)}{_quotes(s.evidence)}" for s in code.rationale]
    if family.get("source"):
        lines.append(f"**Source:** {_md(family['source'])}")
    return Card(uuid=card_uuid(rules, facts.hook_instance, CODE_RULE_ID), summary=clamp(summary, rules.summary_max),
                detail="\n\n".join(lines), indicator="critical",
                source=_coding_source(rules, "No CPT 62320-62327 code supported"),
                overrideReasons=rules.override_reasons)


def _source(rules: CardRules, rule_id: str, title: str) -> Source:
    data = rules.sources.get(rule_id) or rules.default_source
    return Source(label=data["label"], url=data.get("url"),
                  topic=Coding(system=rules.topic_system, code=rule_id, display=title))


def _coding_source(rules: CardRules, display: str) -> Source:
    data = rules.coding_source
    return Source(label=data["label"], url=data.get("url"),
                  topic=Coding(system=rules.topic_system, code=CODE_RULE_ID, display=display))


def _evidence_block(evidence: list[Evidence], heading: str, none: str) -> str:
    if not evidence:
        return f"_{none}_"
    return f"**{heading}:**\n" + "\n".join(f"- {_quote(e)}" for e in evidence[:10])


def _quotes(evidence: list[Evidence]) -> str:
    return (" — " + ", ".join(_quote(e) for e in evidence[:4])) if evidence else ""


def _quote(e: Evidence) -> str:
    return f"\u201c{_md(' '.join(e.text.split()))}\u201d (characters {e.start}\u2013{e.end})"


_MD_SPECIAL = re.compile(r"([\\`*_\[\]{}<>#|~!])")


def _md(text: str) -> str:
    """Escape Markdown so the note's words (and rule text) render as written, never as markup or links."""
    return _MD_SPECIAL.sub(r"\\\1", text)


def clamp(text: str, limit: int) -> str:
    """At most `limit` characters, cut at a word boundary with an ellipsis (CDS Hooks: summary < 140)."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    if " " in cut[limit // 2:]:
        cut = cut[: cut.rfind(" ")]
    return cut.rstrip(" ,;:.") + "\u2026"


def _reference(kind: str, value: str) -> str:
    return value if "/" in value else f"{kind}/{value}"
