"""What the guard reads from one question: the features every rule compares.

Sentences written for these tests, not taken from an evaluation set.
"""

from __future__ import annotations

import pytest

from hermes_sidecar.guard import features
from hermes_sidecar.guard.features import entity_key, fold, key


@pytest.mark.parametrize(
    ("text", "times"),
    [
        ("May I leave the meeting early?", ()),
        ("Is the office closed in May?", ("may",)),
        ("When is the May payroll run?", ("may",)),
        ("Should the band march in step?", ()),
        ("Is the report due on 3 March?", ("march",)),
        ("Why does the job fall back to the old node?", ()),
        ("Which plants should I prune in the fall?", ("fall",)),
        ("Is the shop open on Sundys?", ("sunday",)),
    ],
)
def test_a_month_is_a_date_only_when_used_as_one(text: str, times: tuple[str, ...]) -> None:
    assert features(text).times == times


@pytest.mark.parametrize(
    ("token", "entity"),
    [
        ("GPU's", "gpu"),
        ("GPUs", "gpu"),
        ("gpu", "gpu"),
        ("NFS", "nfs"),
        ("Kafka's", "kafka"),
        ("APIs", "api"),
    ],
)
def test_entities_are_normalised_for_possessive_plural_and_case(token: str, entity: str) -> None:
    assert entity_key(token) == entity


def test_roman_numerals_but_not_the_pronoun_i() -> None:
    assert features("When did World War I end?").romans == (1.0,)
    assert features("Can I use the Part II form?").romans == (2.0,)
    assert features("Do I have to pay tax on it?").romans == ()


def test_entities_of_a_sentence() -> None:
    assert features("Does the Raspberry Pi 5 run Debian?").entities == ("debian", "pi", "raspberry")
    # Title Case and shouting mark no names; "in Go" does, though "go" is a light word
    assert features("How To Restart The Web Server Quickly").entities == ()
    assert features("How do I read a file in Go?").entities == ("go",)
    assert features("How much memory does a 7B-parameter model need?").entities == ("7b",)


@pytest.mark.parametrize(
    "forms",
    [
        ("keep", "keeps", "keeping"),
        ("commit", "commits", "committed", "committing"),
        ("change", "changes", "changed", "changing"),
        ("policy", "policies"),
        ("branch", "branches"),
        # irregular forms, from the lemmatiser's tables
        ("teach", "teaches", "taught"),
        ("child", "children"),
        ("mouse", "mice"),
        ("go", "goes", "went"),
        ("write", "writes", "written", "wrote"),
        ("employee", "employees"),  # the suffix rules alone made "employ" of one and "employe" of the other
        ("use", "uses", "using"),  # not "used": an adjective itself ("a used car")
    ],
)
def test_one_key_for_the_inflections_of_a_word(forms: tuple[str, ...]) -> None:
    assert len({key(w) for w in forms}) == 1


@pytest.mark.parametrize(
    ("word", "other"),
    [
        ("left", "leave"),  # "the left join": a word that is a lemma itself is kept
        ("found", "find"),  # "found a company"
        ("data", "datum"),
        ("saw", "see"),
    ],
)
def test_a_word_that_is_a_lemma_itself_keeps_its_own_key(word: str, other: str) -> None:
    assert key(word) != key(other)


def test_quantifiers_with_their_nouns() -> None:
    assert features("Delete all pods in every namespace").quantified == (
        ("universal", "namespac"),
        ("universal", "pod"),
    )
    assert features("Remove the last element of the list").quantified == (("single", "element"),)
    # a rate or a period is not a set
    assert features("How much do I pay each month?").quantified == ()
    assert features("Can I take one day off?").quantified == ()
    # a quantifier hyphenated into a word, or one that refers back, quantifies nothing
    assert features("Why do requests hit the catch-all route instead of my handler?").quantified == ()
    assert {c for c, _ in features("Is an all-in-one printer worth it?").quantified} == {"article"}
    assert features("legal vs physical custody - what does each one mean").quantified == ()


def test_depth_format_and_comparisons() -> None:
    f = features("Briefly, as bullet points: which database is the fastest?")
    assert f.depth == ("brief",) and f.formats == ("list",) and f.scales == (("speed", 1),)
    assert features("Walk me through it step by step").depth == ("deep",)
    assert features("Quick question: what is a VPN?").depth == ()  # a filler phrase
    assert features("Which region has the least recent backups?").scales == (("order", -1),)


def test_a_format_after_a_part_of_that_shape_is_a_place() -> None:
    assert features("Show the prices in a table").formats == ("table",)
    assert features("How do I hide a column in a table?").formats == ()


def test_a_duration_after_a_or_an_is_a_length_of_time_not_a_rate() -> None:
    assert [q[2] for q in features("Can I rent the car for a week?").quantities] == ["7days"]
    assert [q[2] for q in features("Can I rent the car within a day?").quantities] == ["1days"]
    assert features("Should I water the lawn twice a week?").quantities[0][2] != "7days"
    assert features("How many calories a day do I need?").quantities == ()
    assert features("Is a week enough to learn it?").quantities == ()  # no span word before it


def test_accents_are_dropped_before_anything_is_read() -> None:
    assert (
        features("Explain Le Châtelier's principle").entities
        == features("Explain Le Chatelier's principle").entities
    )
    assert features("Is the café open?").words == ("is", "the", "cafe", "open")
    # marks of other scripts are part of the letter: か (ka) and が (ga) stay apart
    assert fold("かき") != fold("がき") and fold("がき") == "がき"


def test_negating_verbs_in_their_frames() -> None:
    assert features("How do I stop the dog from barking?").negations == 1
    assert features("How do I stop the dog barking?").negations == 1
    assert features("How do I keep the server running?").negations == 0
    assert features("How do I stop the server?").negations == 0  # an action, not a negation


@pytest.mark.parametrize(
    ("text", "halts"),
    [
        # "stop X from", "prevent", "avoid", "keep X away" and a closing "stop it" halt something
        ("How do I stop the dog from barking?", 1),
        ("How can I prevent mould?", 1),
        ("How do I avoid fees?", 1),
        ("How do I keep slugs away from lettuce?", 1),
        ("my dog chews the sofa, how do I stop it?", 1),
        ("how do I stop it from chewing the sofa", 1),
        # "don't" and "without" do not, nor "keep" without "away", nor "stop it" mid-sentence
        ("Why don't my plants grow without light?", 0),
        ("How do I keep my plants watered?", 0),
        ("Should I stop it now or later?", 0),
    ],
)
def test_halting_negators_are_counted_apart(text: str, halts: int) -> None:
    assert features(text).halts == halts


def test_negators_that_do_not_halt_still_negate() -> None:
    assert features("Why don't my plants grow without light?").negations == 2


def test_an_owner_of_the_askers_own_keeps_what_it_owns() -> None:
    # "my neighbour's lawn" is the neighbour's; "our company's policy" is the asker's
    assert ("neighbour", "lawn") in features("Water runs onto my neighbour's lawn and pools").owners
    assert ("asker", "lawn") not in features("Water runs onto my neighbour's lawn and pools").owners
    assert ("asker", "policy") in features("What does our company's policy say about leave?").owners


def test_units_with_and_without_a_number() -> None:
    assert features("Is 70 kg heavy?").units == ("kg",)
    assert features("How big is it in square metres?").units == ("m",)  # "m" alone needs a number
    assert features("Convert the reading to Fahrenheit").units == ("f",)
    assert features("Set the alarm for 7am").units == ("am",)
    assert features("I am at home").units == ()  # "am" alone is the verb


def test_negations_contrastive_and_affixed() -> None:
    assert features("Delete the local tag (not the remote one)").negations == 0
    assert features("Do not delete the local tag").negations == 1
    assert ("passwordless", "password") in features("Set up passwordless login").negated
    assert ("unlock", "lock") in features("How do I unlock it?").negated


def test_transfers_and_periods() -> None:
    assert ("dat", "timestamp") in features("Convert a date to a Unix timestamp").transfers
    assert features("What is the annual fee?").periods == ("year",)
    assert features("What did we spend this month?").periods == ("month",)


def test_currencies_and_device_meters() -> None:
    assert features("Is $500 or USD 500 enough?").currencies == ("dollar",)
    assert features("Is £500 enough?").currencies == ("pound",)
    assert features("How many pounds is 5 kg?").currencies == ()  # "pounds" is a weight too
    assert features("Where is my gas meter?").units == ()
    assert features("How tall is it in meters?").units == ("m",)


def test_a_weak_number_word_takes_no_short_unit() -> None:
    assert features("I played an hour and a half, am I too late?").quantities == ()
    assert features("Is it open at 7 am?").quantities == ((7.0, "am", "7am"),)


def test_what_a_pronoun_subject_did_not_do() -> None:
    assert features("What if I didn't get the code?").not_done == ("get",)
    assert features("We never asked for it").not_done == ("ask",)
    assert features("Why is the code not arriving?").not_done == ()  # no pronoun says who
    assert features("I never really understood tax").not_done == ()  # the asker's knowledge


def test_times_by_another_name_and_decades_in_words() -> None:
    assert features("Which flowers suit a summertime wedding?").times == ("summer",)
    assert features("Is the gym quiet on saturdays and sundays?").times == ("weekend",)
    # "night" names no time on its own ("sleep better at night"); it only matches "evening"
    assert features("How do I sleep better at night?").times == ()
    assert features("What causes back pain in your thirties?").quantities == ((30.0, "s", "30s"),)
    assert features("Why do knees ache in your 40s?").quantities == ((40.0, "s", "40s"),)


def test_a_negated_knowing_inside_quotes_is_the_phrase_asked_about() -> None:
    assert features("how do you say 'I don't understand' in Korean").negations == 1
    assert features("I don't understand tax, what's VAT?").negations == 0


def test_feet_written_short_after_a_number() -> None:
    assert features("Do I need permission for a 6 ft fence?").quantities == ((6.0, "ft", "6ft"),)
    assert features("What is 6 ft in metres?").units == ("ft", "m")


def test_from_reads_as_what_is_made_from_what() -> None:
    sides = features("How do I work out the rent from my salary and the ratio?").transfer_sides
    assert sides == ((frozenset({"salary", "ratio"}), frozenset({"rent", "out"})),)


def test_a_hyphenated_word_stays_in_one_qualifier() -> None:
    assert ("for", ("air", "ground", "calls"), False) in features(
        "Which frequencies can I use for air-to-ground calls in Canada?"
    ).qualifiers


def test_a_plus_fused_to_a_name_is_part_of_the_name() -> None:
    assert features("Does the Fitbit Charge+ track sleep?").entities == ("chargeplus", "fitbit")
    assert features("Does the Fitbit Charge track sleep?").entities == ("charge", "fitbit")


def test_a_minus_sign_is_part_of_the_number_and_a_range_hyphen_is_not() -> None:
    assert [q[0] for q in features("my amp is at -20 dB").quantities] == [-20.0]
    assert [q[0] for q in features("nights around \u221215 degrees").quantities] == [-15.0]
    assert [q[0] for q in features("toys for ages 3-5").quantities] == [3.0, 5.0]
    assert [q[0] for q in features("the 2023-2024 season").quantities] == [2023.0, 2024.0]
