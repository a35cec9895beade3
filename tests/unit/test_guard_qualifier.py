"""The unmatched-qualifier check of the scope rule: a qualifier of the request on one side only.

Sentences written for these tests, not taken from an evaluation set. The qualifiers here are mostly
words no guard table lists ("in bytes", "across all clusters", "over the phone"): the check reads the
form of the phrase, not its words.
"""

from __future__ import annotations

import pytest

from hermes_sidecar.guard import REGISTRY, compare, features
from hermes_sidecar.guard.rules import unmatched_qualifier

TRAPS: list[tuple[str, str]] = [
    # a unit added, or swapped for another
    ("How much memory is the pod using?", "How much memory is the pod using in MiB?"),
    ("Show the file sizes", "Show the file sizes in bytes"),
    ("How long does the nightly backup take?", "How long does the nightly backup take in seconds?"),
    ("How far is the airport from the hotel?", "How far is the airport from the hotel in miles?"),
    ("What's the disk usage in megabytes?", "What's the disk usage in blocks?"),
    # a depth or a shape added
    ("What is a mutex?", "Briefly, what is a mutex?"),
    ("Explain how TLS works", "Explain how TLS works with examples"),
    ("How do I set up a VPN?", "How do I set up a VPN, step by step?"),
    ("Describe the onboarding process", "Describe the onboarding process in detail"),
    ("Compare Postgres and MySQL", "Compare Postgres and MySQL in a table"),
    ("How do I export my contacts?", "How do I export my contacts as a CSV file?"),
    # a scope added
    ("How do I reset the password?", "How do I reset the password for every user?"),
    ("List the S3 buckets", "List the S3 buckets across all regions"),
    ("How do I delete old logs?", "How do I delete old logs across all clusters?"),
    ("How do I pay my water bill?", "How do I pay my water bill in instalments?"),
    ("Can I cancel my order?", "Can I cancel my order over the phone?"),
    # a strong qualifier next to other rewording
    ("How do I check disk usage?", "How do I see how much disk space is used in megabytes?"),
]

PARAPHRASES: list[tuple[str, str]] = [
    ("How do I check disk usage on Linux?", "How can I see how much disk space is used on Linux?"),
    ("How do I undo my last commit?", "How can I revert the most recent commit in git?"),
    ("Can I bring my dog to the office?", "Are dogs allowed in the office?"),
    ("How do I cancel my subscription?", "How would I go about cancelling my subscription?"),
    ("How do I renew my passport?", "What's the process for renewing my passport?"),
    ("How do I convert a string to an int in Python?", "In Python, how do I convert a string to an int?"),
    ("Where can I park near the station?", "Near the station, where can I park?"),
    # a name added to a question that names nothing else is context (the entity rule's policy)
    ("How do I scale a deployment?", "how do I scale a deployment in k8s"),
    # a weak qualifier naming the asker's own thing is context
    ("How do I find large files?", "how do i find large files on my server"),
    # fillers, and a phrase hanging off a filler
    ("How do I reset my router?", "How do I reset my router? Thanks in advance"),
    ("How do I book a table?", "Hi, quick one: how do I book a table?"),
    # a verb or an adjective of depth is rewording ("explain how" = "how does")
    ("How does DNS resolution work?", "Explain how DNS resolution works"),
    # the qualifier is on both sides, in other words
    ("What is a mutex, in one sentence?", "In a sentence: what's a mutex?"),
    ("Show the disk usage in megabytes", "display disk usage in MB"),
]


@pytest.mark.parametrize(("a", "b"), TRAPS)
@pytest.mark.parametrize("swap", [False, True], ids=["ab", "ba"])
def test_a_qualifier_on_one_side_only_is_refused_as_scope(a: str, b: str, swap: bool) -> None:
    fa, fb = (features(b), features(a)) if swap else (features(a), features(b))
    assert unmatched_qualifier(fa, fb), f"{a!r} / {b!r}"
    assert REGISTRY["scope"](fa, fb)
    assert compare(fa, fb) is not None


@pytest.mark.parametrize(("a", "b"), PARAPHRASES)
@pytest.mark.parametrize("swap", [False, True], ids=["ab", "ba"])
def test_a_paraphrase_keeps_no_unmatched_qualifier(a: str, b: str, swap: bool) -> None:
    fa, fb = (features(b), features(a)) if swap else (features(a), features(b))
    assert not unmatched_qualifier(fa, fb)
    assert compare(fa, fb) is None, f"{a!r} / {b!r} refused by {compare(fa, fb)}"


def test_qualifiers_are_read_by_their_form() -> None:
    assert features("Show the file sizes in bytes").qualifiers == (("in", ("bytes",), False),)
    # strong: a universal quantifier, a unit, a depth
    assert features("List the buckets across all regions").qualifiers == (("across", ("regions",), True),)
    assert features("How big is it in MiB?").qualifiers == (("in", ("mib",), True),)
    assert features("Briefly, what is a mutex?").qualifiers == (("-ly", ("briefly",), True),)
    assert ("depth", ("step", "step"), True) in features("Set up a VPN step by step").qualifiers
    # a phrase ends at punctuation or at the next preposition, conjunction or question word
    assert features("Pay in cash, or by card?").qualifiers == (
        ("in", ("cash",), False),
        ("by", ("card",), False),
    )
    assert features("Thanks in advance").qualifiers == ()
    assert features("What is the pay-as-you-go tariff?").qualifiers == ()


def test_another_reworded_word_next_to_a_weak_qualifier_is_a_paraphrase() -> None:
    # "in bytes" is no table's unit: next to a substitution (check / see) it may be rewording
    a, b = features("How do I check the file sizes?"), features("How do I see the file sizes in bytes?")
    assert not unmatched_qualifier(a, b)
