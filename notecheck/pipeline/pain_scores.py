"""How pain scores are found: "7/10", "6 out of 10", "NRS 8", "VAS 70/100", "from 8 to 2".
Whether a score is before or after the injection is decided later from nearby words
(notecheck/extract/pain.py). Patterns: patterns/measurements.yaml `pain_scores`."""


from spacy.language import Language

from .regex_spans import RegexSpanRecognizer, compile_patterns, load_section


def parse_pain_score(match, pattern, text):
    spec = pattern.spec
    groups = match.groupdict()
    if spec.get("requires_nearby"):
        window = text[max(0, match.start() - 80): match.end() + 20].lower()
        if not any(word in window for word in spec["requires_nearby"]):
            return None
    top = 100 if spec.get("scale") == "VAS-100" else 10
    if groups.get("pre") is not None:
        pre, post = float(groups["pre"]), float(groups["post"])
        if pre > top or post > top:
            return None
        return {"pre": pre, "post": post, "scale": spec.get("scale"), "scale_named": bool(spec.get("names_scale"))}
    score = float(groups["score"])
    if score > top:
        return None
    scale = spec.get("scale")
    written = (groups.get("scale") or "").upper()
    if written in ("NRS", "VAS"):
        scale = written
    return {"score": score, "scale": scale, "scale_named": bool(spec.get("names_scale")) or written in ("NRS", "VAS")}


@Language.factory("notecheck_pain_scores", default_config={"patterns_path": None})
def make_pain_score_recognizer(nlp: Language, name: str, patterns_path: str | None):
    section = load_section(patterns_path, "pain_scores")
    return RegexSpanRecognizer(section["label"], compile_patterns(section), parse_pain_score)
