"""The guard refuses semantic matches that change the answer and lets true rewordings through.

The sentences here are written for these tests (not taken from the evaluation pairs), one per rule.
"""

from __future__ import annotations

import pytest

from hermes_sidecar.guard import compare, compare_context, features, near_duplicate


def verdict(a: str, b: str) -> str | None:
    return compare(features(a), features(b))


@pytest.mark.parametrize(
    ("a", "b", "rule"),
    [
        ("How do I enable autosave in the editor?", "How do I disable autosave in the editor?", "negation"),
        ("Should I water cacti in winter?", "Should I not water cacti in winter?", "negation"),
        ("Is the ferry ticket refundable?", "Is the ferry ticket non-refundable?", "negation"),
        ("How do I lock the shared folder?", "How do I unlock the shared folder?", "negation"),
        ("How do I log in to the intranet?", "How do I log out of the intranet?", "negation"),
        # the other end of a comparison scale is a direction, not a negation
        ("Which bus routes are the most crowded?", "Which bus routes are the least crowded?", "direction"),
        ("Can I cancel the order within 7 days?", "Can I cancel the order within 10 days?", "number"),
        ("Set an alarm for 6am", "Set an alarm for 6pm", "number"),
        ("Is the pharmacy open on Tuesday?", "Is the pharmacy open on Thursday?", "date"),
        ("How do I migrate from Jira to Linear?", "How do I migrate from Linear to Jira?", "direction"),
        ("Does the Thinkpad have a backlit keyboard?", "Does the Macbook have a backlit keyboard?", "entity"),
        ("How do I renew my passport?", "How do I renew my daughter's passport?", "scope"),
        ("How do I change my shipping address?", "How do I change my invoice address?", "edit"),
    ],
)
def test_answer_changing_differences_are_refused(a: str, b: str, rule: str) -> None:
    assert verdict(a, b) == rule
    assert verdict(b, a) == rule


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("How do I renew my passport?", "how do i renew my passport"),
        ("Can I cancel the order within 14 days?", "Can I still cancel the order within two weeks?"),
        ("What's 20% of 150?", "Work out twenty percent of 150"),
        ("How do I switch on two-factor authentication?", "How can I activate 2FA on my account?"),
        ("What time does the gym open on Sundays?", "What time does the gym open on Sundys?"),
        ("WHERE IS THE NEAREST PARCEL LOCKER?", "Where is the nearest parcel locker?"),
        ("How do I reset my router password?", "Hi, how do I reset my router password? Thanks!"),
        ("Can a 16-year-old open a savings account?", "Can I open a savings account at 16?"),
    ],
)
def test_rewordings_pass(a: str, b: str) -> None:
    assert verdict(a, b) is None
    assert verdict(b, a) is None


def test_conversation_facts_must_agree() -> None:
    a = features("I have a Fibre 150 plan at £26 a month. What would the TV add-on cost?")
    b = features("I have a Fibre 900 plan at £45 a month. What would the TV add-on cost?")
    assert compare_context(a, b) == "number"
    c = features("Nimbus broadband: six months into an 18 month contract at £30 a month")
    d = features("My Nimbus broadband is £30/month on an 18-month term and I'm 6 months in")
    assert compare_context(c, d) is None


def test_near_duplicates_up_to_typos() -> None:
    assert near_duplicate("How do I change the billing address?", "how do i chnage the biling adress")
    assert not near_duplicate("How do I change the billing address?", "Where can I see my invoices?")


def test_typo_near_duplicate_is_served_through_the_guard_only() -> None:
    # a near duplicate by characters that flips the meaning is still refused by the rules
    a = "How do I enable automatic backups for the shared team drive?"
    b = "How do I disable automatic backups for the shared team drive?"
    assert near_duplicate(a, b)
    assert verdict(a, b) == "negation"


@pytest.mark.parametrize(
    ("a", "b"),
    [
        # a verb or adjective swapped for a near-synonym is rewording, not a new question
        ("How do I begin the onboarding course?", "How do I start the onboarding course?"),
        ("How do I amend my flight booking?", "How do I modify my flight booking?"),
        ("How do I enrol in the evening class?", "How do I sign up for the evening class?"),
        ("Where do I lodge an appeal?", "Where do I submit an appeal?"),
        ("How do I contest a parking fine?", "How do I dispute a parking fine?"),
        ("What is the speediest way to learn Spanish?", "What is the fastest way to learn Spanish?"),
        # hesitations are not content
        ("How do I reset the thermostat?", "erm how do i reset the thermostat"),
    ],
)
def test_synonym_swaps_and_hesitations_pass(a: str, b: str) -> None:
    assert verdict(a, b) is None
    assert verdict(b, a) is None


@pytest.mark.parametrize(
    ("a", "b", "rule"),
    [
        # one magnitude scale across verbs and adjectives: the other end of it is another direction
        ("How do I raise my card's spending limit?", "I want a lower spending limit on my card", "direction"),
        # a word added to a kept noun narrows the question: a phone is not a phone case
        ("Can I return a phone?", "Can I return a phone case?", "edit"),
        # swapping two different things is still an edit even though both are common request words
        ("How do I change my work address?", "How do I change my home address?", "edit"),
    ],
)
def test_narrowing_and_polarity_are_refused(a: str, b: str, rule: str) -> None:
    assert verdict(a, b) == rule
    assert verdict(b, a) == rule
