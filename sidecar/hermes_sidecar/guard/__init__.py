"""The guard: rejects a semantic match when the two questions differ in something that changes the answer.

Embedding similarity cannot tell "enable 2FA" from "disable 2FA" (they score higher than a true
paraphrase), so every semantic candidate must also pass these checks. Three parts:

- :mod:`.lexicon` loads the word tables from ``data/*.txt`` (function words, negators, months,
  quantifiers, depth and format phrases, units, antonyms, comparison scales, synonyms ...);
- :mod:`.features` extracts what a question says, once per text: word keys (one normalisation for
  inflections and possessives), negations, quantities and units, dates (a month only where it is used
  as a date), periods, entities, people, quantifiers with their nouns, depth, format, comparisons,
  directions, qualifiers of the request (prepositional phrases, -ly adverbs);
- :mod:`.rules` compares two feature sets with named rules in a registry (``RULES``, in order):
  negation, number, date, direction, entity, scope, edit. ``compare(a, b)`` returns None when reuse
  is safe, else the name of the first rule that refused; ``cache.guard.verifier.overrule`` names
  rules from the same registry.

docs/sidecar.md ("The guard") has the table of rules with an example each.
"""

from hermes_sidecar.guard.features import STOPWORDS, Features, features
from hermes_sidecar.guard.rules import REGISTRY, RULES, compare, compare_context, near_duplicate

__all__ = [
    "REGISTRY",
    "RULES",
    "STOPWORDS",
    "Features",
    "compare",
    "compare_context",
    "features",
    "near_duplicate",
]
