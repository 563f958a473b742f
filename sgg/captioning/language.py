"""English words for the STAR vocabulary: display names, plurals, numbers and predicate verb phrases.

Shared by the caption realiser (which writes them) and the faithfulness checker (which reads them back), so
that every sentence sgg writes can be parsed again.
"""

from __future__ import annotations

import re

# class names that read better differently ("car_parking" is a car park, "vapor" a vapour plume)
DISPLAY = {
    "car_parking": "car park",
    "truck_parking": "truck park",
    "vapor": "vapor plume",
    "smoke": "smoke plume",
    "genset": "generator set",
    "wind_mill": "wind turbine",
    "cement_concrete_pavement": "concrete pavement",
    "ground_track_field": "athletics track",
    "soccer_ball_field": "soccer field",
}
# other words people and language models use for a class (read, never written)
SYNONYMS = {
    "airplane": ("plane", "aircraft", "aeroplane", "airliner"),
    "ship": ("vessel",),
    "dock": ("pier", "quay", "jetty", "wharf", "harbor", "harbour"),
    "tank": ("storage tank", "oil tank"),
    "car_parking": ("parking lot", "car parking", "parking area"),
    "truck": ("lorry",),
    "wind_mill": ("windmill",),
    "vapor": ("vapour plume", "steam plume"),
}
NUMBER_WORDS = ("no", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve")
WORD_NUMBERS = {w: i for i, w in enumerate(NUMBER_WORDS)} | {"a": 1, "an": 1, "single": 1}

# predicates that are verbs: (third person singular, plural) forms
VERBS = {
    "connect": ("connects to", "connect to"),
    "converge": ("converges with", "converge with"),
    "intersect": ("intersects", "intersect"),
    "run along": ("runs along", "run along"),
    "not run along": ("does not run along", "do not run along"),
    "approach": ("approaches", "approach"),
    "violently emit": ("violently emits", "violently emit"),
    "slightly emit": ("slightly emits", "slightly emit"),
    "exhaust to": ("exhausts to", "exhaust to"),
    "supply to": ("supplies", "supply"),
    "drive toward": ("drives toward", "drive toward"),
    "drive off": ("drives off", "drive off"),
    "pass across": ("passes across", "pass across"),
    "pass under": ("passes under", "pass under"),
    "pass through": ("passes through", "pass through"),
    "through": ("goes through", "go through"),
    "directly transmit electricity to": ("directly transmits electricity to", "directly transmit electricity to"),
    "indirectly transmit electricity to": ("indirectly transmits electricity to", "indirectly transmit electricity to"),
}
# predicates read with "is/are": the phrase after the copula
PHRASES = {
    "adjacent": "adjacent to",
    "co-storage with": "stored together with",
    "not co-storage with": "not stored together with",
    "docked alongside with": "docked alongside",
    "not docked alongside with": "not docked alongside",
    "parked alongside with": "parked alongside",
    "not parked alongside with": "not parked alongside",
    "driving alongside with": "driving alongside",
    "away from": "moving away from",
    "around": "around",
    "within same line of": "in the same line as",
    "within different line of": "in a different line from",
    "in the same parking with": "in the same car park as",
    "in the different parking with": "in a different car park from",
}


def display_name(cls: str) -> str:
    return DISPLAY.get(cls, cls.replace("_", " "))


def plural(word: str) -> str:
    """English plural of a (possibly multi-word) noun phrase: the last word changes."""
    head, _, last = word.rpartition(" ")
    if re.search(r"(s|x|z|ch|sh)$", last):
        last += "es"
    elif re.search(r"[^aeiou]y$", last):
        last = last[:-1] + "ies"
    else:
        last += "s"
    return f"{head} {last}".strip()


def noun(cls: str, count: int) -> str:
    name = display_name(cls)
    return name if count == 1 else plural(name)


def number(n: int) -> str:
    """Numbers up to twelve in words, larger ones with thousands separators."""
    return NUMBER_WORDS[n] if 0 <= n < len(NUMBER_WORDS) else f"{n:,}"


def counted(cls: str, n: int) -> str:
    """``one ship``, ``531 ships``."""
    return f"{number(n)} {noun(cls, n)}"


def article(word: str) -> str:
    return ("an " if word[:1].lower() in "aeiou" else "a ") + word


def predicate_phrase(pred: str, plural_subject: bool) -> str:
    """The verb phrase of ``pred`` agreeing with the subject: ``is parallelly docked at``, ``run along``."""
    if pred in VERBS:
        return VERBS[pred][1 if plural_subject else 0]
    phrase = PHRASES.get(pred)
    if phrase is None:
        phrase = pred
        if re.search(r"\b(same|different|opposite)\b", phrase) and phrase.endswith(" with"):
            phrase = phrase[: -len(" with")] + " as"
    return ("are " if plural_subject else "is ") + phrase


def predicate_surfaces(pred: str) -> list[str]:
    """Every surface form sgg may write for ``pred`` (raw, and both agreements), longest first."""
    forms = {pred, predicate_phrase(pred, False), predicate_phrase(pred, True)}
    forms |= {f.split(" ", 1)[1] for f in list(forms) if f.startswith(("is ", "are "))}
    return sorted(forms, key=len, reverse=True)


def class_surfaces(cls: str) -> list[str]:
    """Spellings of a class in free text: display name and raw name, singular and plural."""
    forms = {cls, cls.replace("_", " "), display_name(cls), *SYNONYMS.get(cls, ())}
    forms |= {plural(f) for f in list(forms)} | {cls + "s"}
    return sorted(forms, key=len, reverse=True)


def sentence_case(s: str) -> str:
    return s[:1].upper() + s[1:] if s else s
