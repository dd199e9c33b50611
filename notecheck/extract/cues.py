"""Cue lists from patterns/cues.yaml, compiled once per rules folder."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from ..patterns_path import load_yaml
from .mentions import compile_cues


@dataclass(frozen=True)
class Cues:
    pain_pre: re.Pattern
    pain_post: re.Pattern
    procedure_action: re.Pattern
    spread: re.Pattern
    level_not_entered: re.Pattern
    catheter_tip: re.Pattern
    imaging_finding: re.Pattern
    imaging_unremarkable: re.Pattern
    affirmative: re.Pattern
    injectate_total_after: re.Pattern
    injectate_total_before: re.Pattern
    pain_pre_after: re.Pattern
    pain_post_after: re.Pattern
    clause_separator: re.Pattern
    route_before: re.Pattern
    route_after: re.Pattern
    not_injectate_sentence: re.Pattern
    other_route_clause: re.Pattern
    injection_verb: re.Pattern
    template_blank: re.Pattern
    consent_affirmed: re.Pattern
    consent_not_yet: re.Pattern
    imaging_use: re.Pattern
    analgesia_other_route: re.Pattern
    not_therapy_between: re.Pattern
    duration_onset_after: re.Pattern
    duration_started_before: re.Pattern
    pain_score_only: re.Pattern
    prior_injection_labels: frozenset
    pain_today: re.Pattern
    pain_scale_named: re.Pattern
    contrast_use: re.Pattern
    contrast_reaction: re.Pattern
    contrast_field_none: re.Pattern
    consent_discussion: re.Pattern


@cache
def load_cues(folder: Path) -> Cues:
    data = load_yaml(folder / "cues.yaml")
    blank = load_yaml(folder / "measurements.yaml")["template_blank"]
    return Cues(
        pain_pre=compile_cues(data["pain_pre_cues"]),
        pain_post=compile_cues(data["pain_post_cues"]),
        procedure_action=compile_cues(data["procedure_action_cues"]),
        spread=compile_cues(data["spread_cues"]),
        level_not_entered=compile_cues(data["level_not_entered_cues"]),
        catheter_tip=compile_cues(data["catheter_tip_cues"]),
        imaging_finding=compile_cues(data["imaging_finding_cues"]),
        imaging_unremarkable=compile_cues(data["imaging_unremarkable"]),
        affirmative=compile_cues(data["affirmative_field_values"]),
        injectate_total_after=compile_cues(data["injectate_total_after"]),
        injectate_total_before=compile_cues(data["injectate_total_before"]),
        pain_pre_after=re.compile(data["pain_cue_after"]["pre"], re.IGNORECASE),
        pain_post_after=re.compile(data["pain_cue_after"]["post"], re.IGNORECASE),
        clause_separator=compile_cues(data["clause_separators"]),
        route_before=re.compile(data["not_injectate_cues"]["before"], re.IGNORECASE),
        route_after=re.compile(data["not_injectate_cues"]["after"], re.IGNORECASE),
        not_injectate_sentence=re.compile(data["not_injectate_cues"]["sentence"], re.IGNORECASE),
        other_route_clause=re.compile(data["not_injectate_cues"]["other_route_clause"], re.IGNORECASE),
        injection_verb=compile_cues(data["injection_verb_cues"]),
        template_blank=re.compile(blank, re.IGNORECASE),
        consent_affirmed=re.compile(data["consent_affirmed"]["after"], re.IGNORECASE),
        consent_not_yet=re.compile(data["consent_affirmed"]["not_yet"], re.IGNORECASE),
        imaging_use=compile_cues(data["imaging_use_cues"]),
        analgesia_other_route=re.compile(data["analgesia_other_route"], re.IGNORECASE),
        not_therapy_between=re.compile(data["therapy_duration"]["not_between"], re.IGNORECASE),
        duration_onset_after=re.compile(data["therapy_duration"]["onset_after"], re.IGNORECASE),
        duration_started_before=re.compile(data["therapy_duration"]["started_before"], re.IGNORECASE),
        pain_score_only=re.compile(data["pain_score_only"], re.IGNORECASE),
        prior_injection_labels=frozenset(data["pain_prior_injection"]["labels"]),
        pain_today=re.compile(data["pain_prior_injection"]["today"], re.IGNORECASE),
        pain_scale_named=re.compile(data["pain_scale_named"]),
        contrast_use=re.compile(data["contrast_use"], re.IGNORECASE),
        contrast_reaction=re.compile(data["contrast_reaction"], re.IGNORECASE),
        contrast_field_none=re.compile(data["contrast_field_none"], re.IGNORECASE),
        consent_discussion=re.compile(data["consent_discussion"], re.IGNORECASE),
    )
