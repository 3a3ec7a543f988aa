"""Counts in words with the right plural: "1 account", "6,652 accounts".

Used by templates (the `count` filter and `plural` global, see portal.web.words), flash messages, domain errors
and CLI output alike, so every count of things reads the same way.
"""

# Plurals the simple rules below get wrong; everything else adds "s" (or "es", "ies").
IRREGULAR = {"is": "are", "was": "were", "has": "have", "this": "these", "that": "those", "person": "people",
             "uses": "use", "does": "do", "matches": "match", "it": "them"}


def plural(n, singular, plural_form=None):
    """Return the word for n things: singular for exactly 1, else plural_form or the regular English plural."""
    if n == 1:
        return singular
    if plural_form is not None:
        return plural_form
    return regular_plural(singular)


def regular_plural(word):
    """Return the English plural of word ("account" -> "accounts", "reply" -> "replies", "survey request" -> ...)."""
    if word in IRREGULAR:
        return IRREGULAR[word]
    head, _, last = word.rpartition(" ")
    if head:
        return f"{head} {regular_plural(last)}"
    if word.endswith("y") and len(word) > 1 and word[-2] not in "aeiou":
        return word[:-1] + "ies"
    if word.endswith(("s", "x", "z", "ch", "sh")):
        return word + "es"
    return word + "s"


def count(n, singular, plural_form=None):
    """Return "1 account" / "6,652 accounts": n with thousands separators and the word agreeing with it."""
    n = n or 0
    return f"{n:,} {plural(n, singular, plural_form)}"
