"""Every guard rule fires on the trap it is for and stays silent on a paraphrase, both ways round.

The sentences are written for these tests (none comes from an evaluation set). A trap asserts the
rule itself fires (``REGISTRY[rule]``) and that ``compare`` refuses; a paraphrase asserts that no rule
at all refuses it.
"""

from __future__ import annotations

from typing import get_args

import pytest
from pydantic import ValidationError

from hermes_sidecar.config import GuardRule, SidecarConfig
from hermes_sidecar.guard import REGISTRY, RULES, compare, features

TRAPS: dict[str, list[tuple[str, str]]] = {
    "negation": [
        # a second, different negator after "and" negates a second thing
        ("my phone is charging but won't turn on", "my phone is not charging and won't turn on"),
        # a prefix that undoes what the other side's prefix does: "re-" against "de-"
        ("how do I rehydrate dried porcini", "how do I dehydrate porcini"),
        # not knowing on one side against knowing on the other is a condition, not the asker's state
        ("how do I harmonise when I know the melody", "how do I harmonise when I don't know the melody"),
        # the same thing negated, on the other side of the change
        (
            "how do i adapt a sugar cookie recipe to a no-sugar version",
            "how do i adapt a no-sugar cookie recipe to use sugar",
        ),
        # "stop" before a preposition is stopping, not stopping something: "using" / "without" differ
        (
            "how do i stop on rollerblades using the heel brake",
            "how do i stop on rollerblades without the heel brake",
        ),
        # a harm avoided, against a side that names the harm; "never ... before" against one with "before"
        ("can I repot an orchid without killing it", "can repotting kill an orchid"),
        ("what should I pack if I've never flown before", "what should I pack if I've flown before"),
        # as many negations, but another thing negated
        (
            "my dryer is spinning but the drum isn't heating",
            "my dryer isn't spinning but the drum is heating",
        ),
        ("Why does my dishwasher wash but not dry?", "why does my dishwasher dry but not wash"),
        # a negation inside quotes is the phrase asked about, not what the asker knows
        ("How do you say 'I understand' in Korean?", "how do you say 'I don't understand' in korean"),
        ("How do I enable read receipts in the mail app?", "How do I disable read receipts in the mail app?"),
        ("Can I bring a laptop on the plane?", "Can I not bring a laptop on the plane?"),
        ("How do I lock the spreadsheet?", "How do I unlock the spreadsheet?"),
        # onto against off
        ("how do I lift a paddleboard onto the roof rack", "how do I lift a paddleboard off the roof rack"),
        ("How do I opt in to the newsletter?", "How do I opt out of the newsletter?"),
        ("Is the deposit refundable?", "Is the deposit non-refundable?"),
        (
            "Which drinks should I have after a tooth extraction?",
            "Which drinks should I avoid after a tooth extraction?",
        ),
        ("How do I log in with a security key?", "How do I log in without a security key?"),
        # "-free" against a word with the same stem
        ("Is this lotion fragrance-free?", "Does this lotion contain fragrance?"),
        # "take" is no loss without a particle: a negated "taking" is not "still taking"
        ("How do I lose weight without taking pills?", "How do I lose weight while still taking pills?"),
        # "avoided" negates as "avoid" does
        ("Which foods are recommended after surgery?", "Which foods should be avoided after surgery?"),
        # "not a good idea" judges; "no idea" is what the asker knows
        (
            "When is it a good idea to refinance a mortgage?",
            "When is it not a good idea to refinance a mortgage?",
        ),
        ("What does a junior accountant earn?", "What does a senior accountant earn?"),
        ("How do I warm up a conservatory quickly?", "How do I cool down a conservatory quickly?"),
        # both sides say something was not done, but not the same thing
        ("What if I didn't receive the parcel I ordered?", "What if I received a parcel I didn't order?"),
        ("When is rush hour for buses out of Manchester?", "When is rush hour for buses into Manchester?"),
        # the same thing in the other state after a copula
        (
            "Why does the oven fan keep running when the oven is on?",
            "Why does the oven fan keep running when the oven is off?",
        ),
    ],
    "number": [
        # a share against a count: "the top 5" is five of them, "the top 5%" a twentieth
        ("excel formula to highlight the top 5 scores", "excel formula to highlight the top 5% of scores"),
        # "in" after a slash is an inch: "N/in" against "N/mm"
        ("what spring rate in N/mm do I need", "what spring rate in N/in do I need"),
        # an angle against a length: "degrees" is a unit of its own
        ("how do I set the field of view to 35mm", "how do I set the field of view to 35 degrees"),
        # a temperature in one scale against the other, however the degrees are written
        ("can I keep oyster mushrooms at 4 degrees C", "can I keep oyster mushrooms at 4 degrees F"),
        ("is 25 °C too warm for a sourdough starter", "is 25 °F too warm for a sourdough starter"),
        # a kind of a unit against the plain unit
        ("how many millilitres in a fluid ounce", "how many millilitres in an ounce"),
        ("how many litres in an imperial gallon", "how many litres in a gallon"),
        # pressure units
        ("how many psi should road bike tyres be pumped to", "how many kpa should road tyres be pumped to"),
        ("pump the pool filter to 2 bar", "pump the pool filter to 2 psi"),
        # a fraction of a thing against the whole of it
        ("how long to smoke a brisket", "how long to smoke a half brisket"),
        # a minus sign is part of the number
        ("is -10°C too cold for a summer sleeping bag", "is 10°C too cold for a summer sleeping bag"),
        # one noun counted by another multiplier word
        ("How long should I roast a half chicken?", "How long should I roast a whole chicken?"),
        # the unit a rate is per
        (
            "What will a 2 hour session cost at £40 per studio hour?",
            "What will a 2 hour session cost at £40 per studio minute?",
        ),
        # a boundary: a letter fused to a number that the other side writes as a word it also has
        ("Is the Kestrel 3 ice axe good for beginners?", "Is the Kestrel 3i ice axe good for beginners?"),
        (
            "How much batter do I need for a single-layer cake?",
            "How much batter do I need for a double-layer cake?",
        ),
        # a share against an amount of money
        ("A $50 coat with a 10% discount: what do I pay?", "A $50 coat with a $10 discount: what do I pay?"),
        ("How many calories do 1,000 steps burn?", "How many calories do 10,000 steps burn?"),
        # one noun numbered by another weak ordinal
        ("Summarise the first act of Hamlet", "Summarise the second act of Hamlet"),
        ("What does the First Amendment protect?", "What does the Second Amendment protect?"),
        # durations named without a number are units too; a rate per hour against one per day
        (
            "How do I convert hours to minutes in a spreadsheet?",
            "How do I convert hours to days in a spreadsheet?",
        ),
        (
            "How many emails per hour can a shared mailbox send?",
            "How many emails per day can a shared mailbox send?",
        ),
        # measures of volume against one another and against mass
        ("How many teaspoons of salt are in 10 grams?", "How many tablespoons of salt are in 10 grams?"),
        ("How many tablespoons are in a cup of flour?", "How many grams are in a cup of flour?"),
        ("Can I get a refund within 30 days?", "Can I get a refund within 60 days?"),
        ("Is 200 mcg of vitamin B12 a safe daily dose?", "Is 200 mg of vitamin B12 a safe daily dose?"),
        # power against energy
        ("How many kW does an electric oven draw?", "How many kWh does an electric oven draw?"),
        ("Wake me at 5am", "Wake me at 5pm"),
        ("Is 38 degrees Celsius a fever?", "Is 38 degrees Fahrenheit a fever?"),
        ("Is a 10 kg suitcase allowed in the cabin?", "Is a 10 lb suitcase allowed in the cabin?"),
        ("Give the container 512Mi of memory", "Give the container 512M of memory"),
        ("What's a normal fasting glucose in mg/dL?", "What's a normal fasting glucose in mmol/L?"),
        ("Is 70 mph too fast for a wet road?", "Is 70 kph too fast for a wet road?"),
        ("How big is a studio flat in square feet?", "How big is a studio flat in square metres?"),
        # case tells the units apart: megabits and megabytes
        (
            "How long does a 500 MB file take on a 20 Mbps line?",
            "How long does a 500 Mb file take on a 20 MBps line?",
        ),
        ("How many 2-tonne bags fill a 20 tonne truck?", "How many 2-tonne bags fill a 20 ton truck?"),
        (
            "Is 120 gsm card stiff enough for a birthday card?",
            "Is 120 lb card stiff enough for a birthday card?",
        ),
        ("How long is one bar at 90 BPM in ms?", "How many BPM is one bar of 90 ms?"),
        # "the first day of" is the start only where the other side says so
        ("How do I prepare for the first day of daycare?", "How do I prepare for daycare?"),
        # a number with one letter fused on is a quantity, in a unit the table may lack
        ("What's a good 5000m time for a beginner rower?", "What's a good 1000m time for a beginner rower?"),
        ("Set the memory limit to 256m", "Set the memory limit to 256"),
        # "zero" is a number where the other side says no "no"
        ("Is a zero-interest loan a good idea?", "Is a low-interest loan a good idea?"),
        # one number counting a noun on one side and sizing it on the other
        ("How do I batch my API calls in groups of 10?", "How do I batch my API calls into 10 groups?"),
        # the unit a count is asked in
        ("How many hours a week is a 0.8 FTE contract?", "How many days a week is a 0.8 FTE contract?"),
        # another currency; a meter that is a device is no unit, so the units the answer is in differ
        ("Is $2,000 enough for a week in Tokyo?", "Is £2,000 enough for a week in Tokyo?"),
        (
            "My water meter reads in cubic metres; how many litres is 5 units?",
            "My water meter reads in cubic feet; how many litres is 5 units?",
        ),
        # a leading zero names another number than the digits alone: cone 04 is cooler than cone 4
        ("what temperature does cone 04 reach", "what temperature does cone 4 reach"),
        ("what does a size 00 dress fit", "what does a size 0 dress fit"),
        # the same unit twice on one side, another unit in its place on the other
        (
            "what's the price per board foot for a cubic metre of walnut",
            "what's the price per board foot for a cubic foot of walnut",
        ),
    ],
    "date": [
        # a month after "this" with no verb after it
        ("what to plant this may in zone 5", "what to plant this june in zone 5"),
        # the old way against the modern one
        ("what was the old school method for curing bacon", "what's the modern method for curing bacon"),
        # what a thing was at first against what it is now
        (
            "what genus was the snake plant originally placed in",
            "which genus is the snake plant in currently",
        ),
        # the same date, before it against from it
        ("Did landlords need a licence before June 2023?", "Do landlords need a licence from June 2023?"),
        ("Is the library open on Saturday?", "Is the library open on Sunday?"),
        ("Is the conference in June?", "Is the conference in July?"),
        (
            "When is the deadline for the May billing cycle?",
            "When is the deadline for the March billing cycle?",
        ),
        ("How much did we spend on cloud this quarter?", "How much did we spend on cloud this year?"),
        ("Which flowers should I plant in the fall?", "Which flowers should I plant in spring?"),
        # a habit of the past against one still held
        ("Did the museum use to open on Mondays?", "Does the museum still open on Mondays?"),
        ("do banks still charge for paper statements", "did banks used to charge for paper statements"),
    ],
    "direction": [
        # a plural in "-is" of a word the dictionary lacks is its "-i" singular: the two swapped
        ("how many satoshis make one millibitcoin", "how many millibitcoins make one satoshi"),
        # making a process go faster against slower, said as a phrasal verb
        ("how can I speed up bread proofing", "how can I slow down bread proofing"),
        # two words swapped by their verbs with an article between: "sharpen a blunt-" / "blunt a sharp-"
        ("can i sharpen a blunt-tipped pencil", "can i blunt a sharp-tipped pencil"),
        ("how do I dry a damp-stained wall", "how do I dampen a dry-stained wall"),
        # two neighbouring verbs swapped, each in the other's form
        ("can you smoke cured bacon", "can you cure smoked bacon"),
        # active against passive with "by": the roles swap
        ("in a diagram, what does 'X containing Y' mean", "in a diagram, what does 'X contained by Y' mean"),
        # "away from" what the other side faces
        (
            "how should I stand facing the audience when presenting",
            "how should I stand facing away from the audience when presenting",
        ),
        # what comes back across the "into" may stand past the phrase after it
        (
            "how do i turn a stovetop chili recipe into one that works in a slow cooker",
            "how do i turn a slow cooker chili recipe into a stovetop chili",
        ),
        # two times swapped around "than", each keeping its own preposition
        ("why is my dog calmer at home than in the car", "why is my dog calmer in the car than at home"),
        # two things swapped around another verb; the asker against someone else in a condition
        ("can diabetes cause gum disease", "can gum disease worsen diabetes"),
        ("is the flight refunded if the airline cancels", "is the flight refunded if i cancel"),
        # two peoples swapped, each by another of its names
        ("do norwegians understand danish", "do danes understand norwegian"),
        # one word replaced by another the question already names: the doer changed
        # two places swapped, each by another of its names
        ("can I use my British licence in Canada", "can I use my Canadian licence in Britain"),
        (
            "When renting a van from a hire firm, what insurance does the driver need?",
            "When renting a van from a hire firm, what insurance does the firm need?",
        ),
        # two words swapped, a word on each side changed with them
        ("How do shops choose which brands to stock?", "How do brands choose which shops to supply?"),
        # two words swapped, a word on one side only left out
        ("Can I use alpine climbing skins on touring skis?", "Can I use touring skins on alpine skis?"),
        # subject and object swapped after a shared heading
        ("card game trivia: what does a queen beat?", "card game trivia: what beats a queen?"),
        # two words swapped far apart, one of them a negator
        (
            "Can a player without a shield block a player with a shield?",
            "Can a player with a shield block a player without a shield?",
        ),
        # given to what gives on the other side
        (
            "What are the tax rules for lending money to my sole trader business?",
            "What are the tax rules for my sole trader business lending money to me?",
        ),
        # the two sides of a comparison swapped, an intensifier on one side only
        (
            "Why does my kettle boil water so much faster than my pan?",
            "Why does my pan boil water faster than my kettle?",
        ),
        # what is worked out from what, turned round
        (
            "How do I estimate a sale price from cost and my usual markup?",
            "How do I estimate my markup from cost and sale price?",
        ),
        # each side's destination stands elsewhere in the other
        (
            "How do I convert 0600 Zulu to local time in Chicago in winter?",
            "how do i convert 0600 local Chicago time in winter to zulu",
        ),
        # the asker given something against the asker giving it to someone
        (
            "How do I gift my concert tickets to a friend?",
            "how do I claim concert tickets a friend gifted to me",
        ),
        # numbers moved across "into"
        (
            "How do I change a three-day workshop into a one-day event?",
            "how do I extend a one-day workshop into three days",
        ),
        # someone doing to themselves what the asker does to them
        (
            "How should I introduce the guest of honour at a dinner?",
            "How should the guest of honour introduce themselves at a dinner?",
        ),
        # "my" and another determiner swapped around the verb
        (
            "Does renters insurance cover my cat scratching another cat?",
            "Does renters insurance cover another cat scratching my cat?",
        ),
        # the asker takes the place of the one they do it with
        (
            "Does my rent change if I move in with my boyfriend?",
            "Does my rent change if my boyfriend moves in with me?",
        ),
        # the asker does it on one side, someone both sides name on the other
        (
            "I paid the deposit for the flat my sister and I rent. Who owes what?",
            "My sister paid the deposit for the flat we rent. Who owes what?",
        ),
        # the asker's thing against someone else's, that someone named on both sides
        (
            "How do we record a customer's refund claim against us?",
            "How do we record our refund claim against a customer?",
        ),
        # words moved across "into"/"onto", with other nouns around them
        (
            "How do I get a paper letter into an electronic document?",
            "How do I get an electronic document onto paper?",
        ),
        # the other end of the safety scale
        ("Is lavender safe for dogs?", "Is lavender toxic to dogs?"),
        (
            "How do I move files from Dropbox to Google Drive?",
            "How do I move files from Google Drive to Dropbox?",
        ),
        # the asker the subject of a verb on one side and its object on the other
        ("Do I owe my landlord a cleaning fee?", "Does my landlord owe me a cleaning fee?"),
        ("Can I sue my employer for unpaid overtime?", "Can my employer sue me for unpaid overtime?"),
        # a conditional turned round, after a sentence of context that names both sides already
        (
            "A swab test is 95% accurate. What is the chance the patient has flu given a positive swab?",
            "A swab test is 95% accurate. What is the chance of a positive swab given the patient has flu?",
        ),
        ("Convert a CSV file to a spreadsheet", "Convert a spreadsheet to a CSV file"),
        ("How do I convert miles to kilometres?", "How do I convert kilometres to miles?"),
        ("Which laptop has the longest battery life?", "Which laptop has the shortest battery life?"),
        ("Show me the oldest open tickets", "Show me the most recent open tickets"),
        # two words swapped across a role preposition, every word kept
        ("Can I substitute honey for sugar in bread?", "Can I substitute sugar for honey in bread?"),
        ("Is leasing cheaper than buying a van?", "Is buying cheaper than leasing a van?"),
        ("Can an employer fire a contractor by email?", "Can a contractor fire an employer by email?"),
        # two phrases swapped around a role word
        (
            "Can I swap a ceramic pan for a cast iron skillet?",
            "Can I swap a cast iron skillet for a ceramic pan?",
        ),
        # the name is the object on one side and the subject on the other
        ("Who inspired Monet?", "Who did Monet inspire?"),
        # two neighbouring words swapped, nothing else changed
        ("Can I give my cat dog shampoo?", "Can I give my dog cat shampoo?"),
        # someone the asker knows owns the thing: "my neighbour's lawn" is not the asker's lawn
        (
            "My neighbour's sprinkler sprays onto my lawn and kills the grass. What are my options?",
            "My sprinkler sprays onto my neighbour's lawn and kills the grass. What are their options?",
        ),
        # opposite comparatives on one scale, each side with the plain form of the other
        ("How do I make pale tiles darker with grout?", "how do I make dark tiles look lighter with grout"),
        # opposite states after "too": each side names both ends, the remedy being the other one
        ("how do I thin out paint that's too thick", "how do I thicken paint that's too thin"),
        ("how can I warm up a room that's too cold", "how can I cool down a room that's too warm"),
        # the asker does it on one side and has it done to them, through a preposition, on the other
        ("what should I do if I run towards a bear", "what should I do if a bear runs towards me"),
        ("can I shout at my neighbour over the noise", "can my neighbour shout at me over the noise"),
    ],
    "entity": [
        # the newest version against the one before it
        (
            "what changed in the newest release of the style guide",
            "what changed in the prior release of the style guide",
        ),
        # a word that picks a variant of a thing both name
        ("How do I tie a trucker's hitch?", "How do I tie an improved trucker's hitch?"),
        # a plus fused to a name is another model
        ("Does the Fitbit Charge+ track sleep?", "Does the original Fitbit Charge track sleep?"),
        # a maker on each side is another product; a size before a name is a version, not a maker
        ("How do I download offline maps in Google Maps?", "How do I download offline maps in Apple Maps?"),
        ("Create a 256-bit AES key", "Create a 128-bit AES key"),
        ("How do I reverse a string in Rust?", "How do I reverse a string in Kotlin?"),
        ("What's the capital gains tax rate in Spain?", "What's the capital gains tax rate in Portugal?"),
        ("How do I parse JSON in Java?", "How do I parse JSON in Go?"),
        ("Does API v1 support pagination?", "Does API v2 support pagination?"),
        # the first version of a thing against a version the other side names
        ("does the original roomba map rooms", "does the roomba i7 map rooms"),
    ],
    "scope": [
        # everywhere against the one place the other side names
        ("how is the tea ceremony practised in Kyoto", "how is the tea ceremony practised worldwide"),
        # just the names against the names with instructions for each
        ("just the names of the basic yoga poses", "the basic yoga poses with instructions for each"),
        # a unit after its number on one side only is a qualifier of the request: it names the scale
        ("how long do I roast a chicken at 200", "how long do I roast a chicken at 200 fahrenheit"),
        # the extreme members of a thing the other side asks about whole
        ("how do you solve kakuro", "how do you solve the very hardest kakuros"),
        # all of a set against a kind named a word further from the noun
        ("list all the greek gods", "list the olympian greek gods"),
        # an item joined before the kept one, or sharing a word with it
        ("how do I clean the chain on my bike", "how do I clean the gears and chain on my bike"),
        ("how does tyre pressure affect grip", "how do tyre pressure and tyre width affect grip"),
        # one tip against a complete guide
        ("sourdough starter: one tip", "sourdough starter: complete guide"),
        # a part of the body after the asker's possessive narrows the request
        ("what sunscreen should I use on my face for skiing", "what sunscreen should I use for skiing"),
        # a one-word answer against pros and cons; a brief answer against an explanation
        ("kindle or kobo: one-word answer", "kindle or kobo: pros and cons please"),
        (
            "is decaf coffee caffeine free? one word",
            "is decaf coffee caffeine free? explain the decaffeination process",
        ),
        ("just name the planets with rings", "which planets have rings? explain what the rings are made of"),
        (
            "Rough estimate: how much does a loft conversion cost?",
            "Itemised cost breakdown for a loft conversion?",
        ),
        # a paragraph against a full piece ("one-paragraph" is fused like "one-off")
        ("Write a one-paragraph bio for my website", "Write a full bio for my website"),
        (
            "Give me a two-line summary of how to descale a kettle",
            "Give me a detailed guide to descaling a kettle",
        ),
        # a friendly note against a formal letter; quick tips against a full lesson
        (
            "Write a short friendly email asking my landlord to fix the boiler",
            "Write a formal complaint letter asking my landlord to fix the boiler",
        ),
        (
            "Give me some quick tips for knife sharpening",
            "Give me a complete beginner lesson on knife sharpening",
        ),
        # every member of a set against one kind of it, the rest of the question kept
        (
            "What are the hearing requirements for a commercial driving licence?",
            "What are all the medical requirements for a commercial driving licence?",
        ),
        # whether one thing is included, against what is
        ("Is breakfast included in the hotel rate?", "What's included in the hotel rate?"),
        # a purpose added, written with hyphens
        (
            "Which radio frequencies can I use in Canada?",
            "Which radio frequencies can I use for air-to-ground calls in Canada?",
        ),
        # a bare list against what each item is for; a quick overview against a complete guide
        (
            "What spices do I need for a curry? just a list",
            "What spices do I need for a curry? explain what each one adds",
        ),
        ("Give me a quick summary of sourdough baking", "Give me a complete guide to sourdough baking"),
        # one more item joined to a word of the other side
        ("How do I store red wine?", "How do I store red and white wine?"),
        # the asker's own employer is someone the asker deals with
        ("Can my employer read my work email?", "can I read my work email"),
        # one named as one against a fleet of them, and against any of them
        (
            "What cover do I need for my one delivery truck?",
            "What cover do I need for my fleet of delivery trucks?",
        ),
        ("sql: find rows with NULL in a specific column", "sql: find rows with NULL in any column"),
        # a technical explanation is depth
        ("How does a thermostat work? ELI5", "How does a thermostat work? Give me a technical explanation."),
        # a one-word answer against "explain ... why"
        (
            "One word answer: is vinegar an acid or a base?",
            "Explain the chemistry of why vinegar is an acid or a base.",
        ),
        # one member against a whole named by a collective noun
        ("How much is it to replace one earbud?", "How much is it to replace a pair of earbuds?"),
        # a total against one member; one member named against the set
        ("What is the total interest on a car loan?", "What is the interest on a single car loan repayment?"),
        ("What goes in the summary section of a business plan?", "What sections go in a business plan?"),
        # only the answer against the working; one line against detail; a checklist against advice
        ("Just the result please: what is 18% of 250?", "Show me how to work out 18% of 250."),
        (
            "Answer only: how long does light take to reach Earth from the Sun?",
            "Walk me through how long light takes to reach Earth from the Sun.",
        ),
        (
            "Give me a one-line explanation of how a heat pump works.",
            "Give me a detailed explanation of how a heat pump works.",
        ),
        ("Give me a checklist for moving house.", "Explain what matters most when moving house."),
        ("How do I restart a service?", "How do I restart all services on the host?"),
        # every member of a set against some of it, or against one kind of it
        ("Are all spiders venomous?", "Are some spiders venomous?"),
        ("Do all owls hunt at night?", "Do barn owls hunt at night?"),
        # every member of a set the other side never names, against one thing named in its place
        (
            "Is my landlord responsible for fixing the water heater?",
            "Is my landlord responsible for all repairs?",
        ),
        ("How hot is the Earth's inner core?", "How hot is each layer of the Earth?"),
        (
            "What is the time complexity of deleting from a red-black tree?",
            "What are the time complexities of all the red-black tree operations?",
        ),
        # a shape with words that describe it ("as a two-column table") against a paragraph
        (
            "Summarise the tenancy rules as a two-column table.",
            "Summarise the tenancy rules in a short paragraph.",
        ),
        # a plain adjective against its superlative; a total against a share of it
        ("Recommend a cheap hotel in Lisbon.", "Recommend the cheapest hotel in Lisbon."),
        ("What is Japan's total energy use?", "What is Japan's energy use per capita?"),
        (
            "How much feed do my three goats need altogether?",
            "How much feed does each of my three goats need?",
        ),
        # "trainees" and "trainee" are one noun (a lemmatiser, not the suffix rules, makes them one)
        ("Do all trainees get a company laptop?", "Does a trainee get a company laptop?"),
        ("Delete the newest snapshot", "Delete every snapshot"),
        ("Show the size of one table", "Show the size of every table in the database"),
        ("List the users in this group", "List the users in every group"),
        ("Briefly, how does OAuth work?", "Explain step by step how OAuth works"),
        ("Summarise the release notes as bullet points", "Summarise the release notes as an essay"),
        ("How do I renew my passport?", "How do I renew my son's passport?"),
        ("How do I back up a file?", "How do I back up a folder and everything in it?"),
        (
            "How do I copy a directory to another disk?",
            "How do I copy a directory recursively to another disk?",
        ),
        ("Just give me the command to list open ports", "Explain how listing open ports works"),
        # a qualifier no table lists, on one side only (unmatched_qualifier)
        ("How do I rotate the logs?", "How do I rotate the logs across all clusters?"),
        ("Show the file sizes", "Show the file sizes in bytes"),
        # a format asked for on one side only
        ("Compare the three phone plans", "Compare the three phone plans in a table"),
        ("Summarise the meeting notes", "Summarise the meeting notes as bullet points"),
        # one member picked by its order against the set it is picked from
        ("Which of the open pull requests is the oldest?", "Which pull requests are still open?"),
        # a short answer against a full one, a draft against advice
        ("A short packing list for a weekend hike", "A detailed packing list for a weekend hike"),
        ("How do I decline a meeting politely?", "Write me a template email declining a meeting politely"),
        ("How do I water one tomato plant while away?", "How do I water several tomato plants while away?"),
        ("What's the lightest tent for two people?", "Which tents are good for two people?"),
        (
            "Draft a cover letter for a junior designer role",
            "Tips for drafting a cover letter for a junior designer role",
        ),
        ("Which Beatles album is the best?", "Which Beatles albums are worth hearing?"),
        ("What is the tallest waterfall in Norway?", "What are the tallest waterfalls in Norway?"),
        # one item against different or mixed ones
        ("How do I price a single item for shipping?", "How do I price different items for shipping?"),
        # whether one thing is so against what is
        ("Does my home insurance cover flood damage?", "What does my home insurance cover?"),
        # the whole amount against one named part of it
        ("What is the total cost of a divorce?", "What are the lawyer fees for a divorce?"),
        # a script word for word against general tips
        (
            "Write general tips for asking my boss for a raise",
            "Write a word-for-word script for asking my boss for a raise",
        ),
        # a pronoun with no one named on either side is someone else
        ("How do I help him fall asleep?", "How do I fall asleep?"),
        # a set quantified on one side that is one member on the other, beside a set both quantify
        ("awk: print the first field of each line", "awk: print every field of each line"),
        # a breakdown by member added, nothing else changed
        ("How do I check the size of a directory?", "How do I check the size of each file in a directory?"),
        # only the figure against the reasoning behind it
        (
            "Just the number: what's the standard stair riser height?",
            "Explain the reasoning behind the standard stair riser height",
        ),
        # flashcards are a shape of answer, as a table is
        ("Give me 10 Spanish verbs as flashcards", "Give me 10 Spanish verbs with conjugation tables"),
        # a student the question is about, not a student loan
        ("How do I help my student with reading?", "How do I help with reading?"),
        # the asker's tenant is someone else; only the other side of a pair is the asker
        ("Can my tenant sublet the flat?", "Can I sublet the flat?"),
        # a count of another set: a qualifier or a place on one side of a "how many" question
        ("How many lakes are there?", "How many lakes are there in Finland?"),
        ("How many volcanoes are there on Earth?", "How many volcanoes does Iceland have?"),
        ("Make a table comparing the Kindle and the Kobo.", "Compare the Kindle and the Kobo."),
        # "only" and a word naming which, everything else kept
        ("How do I export my browser bookmarks?", "how do I export only my starred browser bookmarks"),
        # everything against one thing named in its place
        ("Does my home insurance cover everything?", "Does my home insurance cover the garden shed?"),
        ("Name the layers of the OSI model", "draw an ascii diagram of the layers of the OSI model"),
        # a list of things against one of them
        ("Does the warranty cover phones, tablets and the charger?", "Does the warranty cover a phone?"),
        # one member named as one against the same noun in the plural
        (
            "What's the single most useful setting to change on a new router?",
            "What settings should I change on a new router?",
        ),
        # "brief" against a full guide
        ("Explain compound interest, brief version", "Explain compound interest with a full worked example"),
        # "to" before a noun phrase opens a qualifier like a preposition: whom it is sold or pitched to
        ("How do I pitch my app?", "How do I pitch my app to investors?"),
        ("how can I sell my old furniture", "how can I sell my old furniture to a dealer"),
        # reasons asked for against bare names
        (
            "good houseplants for low light, just the names",
            "good houseplants for low light, with a reason for each",
        ),
        # a period-by-period plan against a brief overview; a worked example against the formula alone
        ("quick overview of half marathon training", "week-by-week plan for half marathon training"),
        ("just the formula for compound interest", "a worked example of compound interest"),
        # one phrase or clause added, nothing else changed: where, from what, on which part
        ("what does my phone contract include", "what does my phone contract include when I travel abroad"),
        ("how do I clean my oven", "how do I clean my oven without harsh chemicals"),
        ("what should I check before renting", "what should I check on the boiler before renting"),
        # a brief answer against how, why or where asked besides; an overview, names only; an hour by hour
        # plan; pros and cons against a short answer
        (
            "what year did the titanic sink, just the year",
            "what year did the titanic sink, and why did it sink",
        ),
        ("what's a reverse mortgage, one sentence", "what's a reverse mortgage, how does it work"),
        ("the main greek gods, just names", "the main greek gods, explain each one"),
        ("hour-by-hour plan for a wedding day", "overview of a wedding day"),
        ("pros and cons of leasing vs buying a car", "leasing vs buying a car, short answer"),
    ],
    "edit": [
        # one thing swapped in a three-word question; one stage dropped and another added
        ("origami crane instructions", "origami frog instructions"),
        ("tips for a smoother canter-to-trot transition", "tips for a smoother trot-to-walk transition"),
        # refused whichever of the two was stored first: a part against the whole, a kind against all
        ("how do I paint my bathroom cabinet doors", "how do I paint my bathroom cabinets"),
        (
            "how much can I pay into pensions each year",
            "how much can I pay into a workplace pension each year",
        ),
        # a part of the thing the other side makes, though its name is inside the thing's name
        ("how to make a box lid", "how to make the box for a box lid"),
        # a swap beside a change of number ("symbols are" / "symbol is")
        ("what symbols are on the irish euro coin", "what symbol is on the greek euro coin"),
        ("what patterns are on the paisley wool scarf", "what pattern is on the tartan wool scarf"),
        # a swapped thing of more than three words, two of them content
        ("how long do i roast a leg of lamb before resting", "how long do i roast pork chops before resting"),
        # ... with the article changed to fit the new thing
        ("what potting mix for a cactus", "what potting mix for an orchid"),
        # a short question with a thing of two words put in place of another
        ("shoulder pain exercises for swimmers", "lower back exercises for swimmers"),
        # one word added, with the article before it changed to fit: another kind of the thing
        # one word added with the asker's possessive before it: what is worked on
        ("how do I stretch before a run", "how do I stretch my calves before a run"),
        (
            "do I need a transit visa for a layover in Dubai on my way to Sydney",
            "do I need a transit visa for an airside layover in Dubai on my way to Sydney",
        ),
        (
            "what does a warranty usually cover on a used car bought from a dealer",
            "what does an extended warranty usually cover on a used car bought from a dealer",
        ),
        # a second question joined on with "and": the asker wants more than the name
        (
            "Which birds visit a feeder in winter? Just name them",
            "Which birds visit a feeder in winter, and how do I attract each one?",
        ),
        # two dictionary words a letter or two apart are two words, not a typo
        ("Is 70 beats per minute normal at rest?", "Is 70 breaths per minute normal at rest?"),
        # a part of the whole, the article before the span or inside it, however short the rest
        ("What does the rear axle of a truck do?", "What does a truck do?"),
        ("Summarise the second chapter of Moby-Dick.", "Summarise Moby-Dick."),
        # a part of the thing added ahead of it
        ("How do I bake the base for a cheesecake?", "How do I bake a cheesecake?"),
        ("How do I change my delivery address?", "How do I change my billing address?"),
        ("Can I return a phone?", "Can I return a phone case?"),
        ("How do I reset my router?", "How do I reset my modem?"),
        # a unit for a word that is no unit
        ("How many watts does a fridge use?", "How many amps does a fridge use?"),
        ("How many cups of flour go in bread?", "How many scoops of flour go in bread?"),
        # one more item joined on
        ("What are the symptoms of the flu?", "What are the symptoms and treatments of the flu?"),
        (
            "What are the side effects of ibuprofen?",
            "What are the side effects and interactions for ibuprofen?",
        ),
        # a second request in a sentence of its own
        ("What is a hash map?", "What is a hash map? Show me one written in C with a test"),
        # two or more words asked for after the question, kept word for word
        (
            "Give me a packing list for a weekend camping trip",
            "Give me a packing list for a weekend camping trip, sorted by weight, with a price for each item",
        ),
        # one word dropped and another put in elsewhere: the thing asked about changed
        (
            "What temperature should smoked salmon be stored at?",
            "What temperature should a salmon fillet be stored at?",
        ),
        # two names close in spelling, but no slip of the finger turns one into the other
        ("what's the speed limit on motorways in ireland", "what's the speed limit on motorways in iceland"),
        # "just the element in" my kettle: a part of the whole, picked out by "just" or "only"
        ("How do I descale my kettle?", "How do I descale just the element in my kettle?"),
        ("How do I paint my bedroom?", "How do I paint only the ceiling of my bedroom?"),
        # one word added with its article
        ("Which tools do I need for tiling?", "Which tools do I need for tiling the shower?"),
        # a part taken from the whole
        ("How do I delete a photo from my shared album?", "How do I delete my shared album?"),
        # a named part of the whole added after it: a kind word and its letter or number
        ("how do I prepare for the bar exam", "how do I prepare for the bar exam part 2"),
        ("what deductions are in the tax code", "what deductions are in the tax code section 179"),
    ],
}

PARAPHRASES: dict[str, list[tuple[str, str]]] = {
    "negation": [
        # "without" a thing asks whether the thing is needed
        ("can I enter the museum without a ticket", "do I need a ticket to enter the museum"),
        # "keep ... from tearing" halts the tearing, as "without damaging" keeps the paper
        (
            "how do I undo the last crease but keep the paper from tearing",
            "revert the last crease without damaging the paper",
        ),
        # not knowing, alone, is the asker's state
        ("I don't really understand how tides work", "how do tides work"),
        # "protect ... from" with a long object between is "stop ... from"
        (
            "how do I protect the cells in my budget sheet from edits",
            "how do I stop other people from editing cells in my budget sheet",
        ),
        # wrecking and wasting are losses: not wrecking or wasting it is keeping it
        (
            "how do I strip old wax off my skis without wrecking the base",
            "remove old wax from my skis but keep the base intact",
        ),
        (
            "how do I fix a tunnelling candle but keep the wax",
            "can I fix a tunnelling candle without wasting the wax",
        ),
        # a harm avoided that the other side does not name; a yes-or-no tail; never done before
        ("how do I repot an orchid without killing it", "what's the right way to repot an orchid"),
        ("is it safe to eat bread with a little mould or not?", "is bread with a bit of mould safe to eat"),
        (
            "which language should I learn first if I've never coded before",
            "best first programming language for a complete beginner",
        ),
        # "keep X from" a person keeps X; only before an -ing does it halt
        (
            "how do I keep the comments from my tutor when I accept all changes",
            "accept all tracked changes but keep my tutor's comments",
        ),
        # both ways round asks no negation; a negative question asks the positive one
        ("what can and can't I bring in hand luggage", "what am I allowed to bring in hand luggage"),
        (
            "isn't it cheaper to fly than take the train to Edinburgh?",
            "is it cheaper to fly than take the train to Edinburgh?",
        ),
        (
            "How do I update the firmware but keep my saved settings?",
            "update the firmware without wiping my saved settings",
        ),
        # keeping a thing where it is, against not moving it
        (
            "How do I replace the grips but keep the shifters where they are?",
            "how can I swap the grips without moving the shifters",
        ),
        # "without resetting" keeps what "but keep" keeps
        (
            "How do I turn off parental controls but keep my saved settings?",
            "disable the parental controls without resetting my settings",
        ),
        # "stop it" at the end, and "keep X away", halt what the other side negates
        (
            "How do I keep my glasses from fogging up?",
            "my glasses fog up every time I wear a mask, how do I stop it",
        ),
        ("How do I store flour to keep weevils away?", "how should I store flour so weevils don't get in"),
        # "what helps" asks for a remedy
        ("What can I use to stop chafing when running?", "thighs chafe on long runs, what helps"),
        # a negator misspelt on one side, and a negating prefix against a negated verb
        ("Should I avoid coffee before a blood test?", "should i aviod coffee before a blood test"),
        ("Can I sell back unused concert tickets?", "can i sell back concert tickets i didn't use"),
        # what the asker does not know changes no answer
        ("What is a p-value?", "Can you explain what a p-value is? My stats lecture made no sense to me."),
        ("How does a capo work?", "How does a capo work? I never really understood it."),
        # one negation over a list, written once or per item
        (
            "How do I cross a river without a bridge or a boat?",
            "If there is no bridge and no boat, how do I get across a river?",
        ),
        # one lemmatisation for both rules: keep / keeping, last / most recent
        (
            "How do I undo my last save but keep my edits?",
            "revert the most recent save while keeping my edits",
        ),
        ("How do I sign in without a password?", "how can I set up passwordless sign in"),
        (
            "How do I remove the staging bucket (not the production one)?",
            "How do I remove the staging bucket?",
        ),
        ("How do I avoid roaming charges?", "How do I not get roaming charges?"),
        # verbs that negate their object, in their several frames
        ("How do I prevent mould in the bathroom?", "how to avoid mould in the bathroom"),
        ("How do I stop the cat from scratching the sofa?", "prevent my cat scratching the sofa"),
        ("How do I keep bread from going stale?", "tips to stop bread going stale"),
        ("Is this shampoo sulfate-free?", "is this shampoo sulfate free"),
        ("Is this shampoo sulfate-free?", "does this shampoo have no sulfates"),
        # a loss negated is the thing kept
        (
            "How do I remove a bumper sticker without damaging the paint?",
            "how to take off a bumper sticker and keep the paint intact",
        ),
        # "make it stop" stops what the question describes
        ("How do I stop my puppy from biting?", "my puppy bites all the time, how do I make it stop"),
        # "zero" where the other side says "no"
        ("Can I get a car loan with no credit history?", "getting a car loan with zero credit history"),
        # "safe from" keeps away what "prevent" does; against no negation it adds none
        ("How do I prevent XSS in Django?", "how do I make my django app safe from XSS"),
        ("How do I protect my garden from frost?", "ways to make my garden frost resistant"),
        (
            "How do I remove old caulk without peeling off the paint?",
            "how to take out old caulk but keep the paint intact",
        ),
        # a boundary: "a clue" with nothing between is still what the asker knows
        ("I don't have a clue how mortgages work, can you explain?", "Can you explain how mortgages work?"),
        # asking for a fix is asking how to stop the fault
        (
            "How do I stop my rug from sliding on the floor?",
            "my rug keeps slipping on the wooden floor, any fix?",
        ),
        # "wing" ends in -ing but is no verb: "stop bee wing motion" stops nothing from happening
        ("What shutter speed freezes a bee's wings?", "how fast must the shutter be to stop bee wing motion"),
        # a boundary: the same thing not done, said two ways
        ("I didn't get a refund, what can I do?", "what can I do if I never got my refund"),
    ],
    "number": [
        # "the two" after "vs" names the two already named; a number word hyphenated to the next word
        (
            "what's the difference between latex and oil paint",
            "latex vs oil paint: how do the two paints differ?",
        ),
        ("how do you play five card draw", "rules of five-card draw at home"),
        # "under a dollar" is under $1
        ("can the token price fall below $1", "could the token price drop under a dollar"),
        # a percentage written as a word or a sign; "the two" before a verb counts nothing new
        ("what is 15 percent of 80", "what's 15% of 80"),
        (
            "what's the difference between a latte and a flat white",
            "latte or flat white, how do the two differ?",
        ),
        # the same temperature written three ways; a unit after its number, fused or not
        ("keep the fridge at 4 degrees C", "keep the fridge at 4C"),
        (
            "is 25 °C too warm for a sourdough starter",
            "is 25 degrees celsius too warm for a sourdough starter",
        ),
        ("what pressure should the canner be at, 15psi", "what pressure should the canner be at, 15 psi"),
        # "the two" at the end names the things already asked about; it counts nothing
        ("brie or camembert, which is milder of the two", "brie or camembert which is milder"),
        # a Roman numeral in capitals after a word naming a numbered part
        ("what does a class IV rapid look like", "what does a class 4 rapid look like"),
        # a minus sign written as a word
        ("is -10°C cold enough for snow", "is minus 10 °C cold enough for snow"),
        # "under-18s" are people under 18, not seconds
        ("Can under-18s open a bank account?", "can you open a bank account if you are under 18"),
        # twelve months are a year; a number written apart from the word it is fused to
        (
            "Do I pay tax at home if I work abroad for a year?",
            "if I work overseas for 12 months, do I still pay tax at home?",
        ),
        ("do I need a type 2 charger for my EV?", "do I need a type2 charger for my EV"),
        # a number hyphenated to a word, or written apart
        ("How do I change the oil on a 4 stroke mower?", "how do i change the oil on a 4-stroke mower"),
        # a number hyphenated to "degree" is still a number of degrees
        ("Is a 20-degree sleeping bag warm enough?", "is a 20 degree sleeping bag warm enough"),
        # the same unit named as often on both sides
        (
            "How many square feet is a 12 foot square room?",
            "what's the area in square feet of a 12 ft square room",
        ),
        # a decade in words
        ("What causes back pain in your 30s?", "what causes back pain in your thirties"),
        # "first" alone numbers nothing
        ("First, how do I open the file?", "How do I open the file first?"),
        ("What is the integral of x squared?", "What is the integral of x^2?"),
        ("How long is a year on Mars in days?", "How many days does a year on Mars last?"),
        ("Can I return it within 14 days?", "Can I still return it within two weeks?"),
        ("What's 15% of 80?", "work out fifteen percent of 80"),
        ("Is a 3 kg laptop too heavy to carry daily?", "is a 3 kilogram laptop too heavy to carry daily"),
        # an ordinal as digits and as a word; "a week" as a length of time
        ("What does the 3rd amendment say?", "what does the third amendment say"),
        ("Who won the 2nd round?", "who won the second round"),
        ("Can I pause my plan for a week?", "can I pause my plan for 7 days"),
        ("How fast is a 100 Mbps line?", "how fast is a 100 mbps line"),
        # a thousands separator or none
        ("How many calories do 1,000 steps burn?", "how many calories do 1000 steps burn"),
        # a frequency with its unit apart or fused
        ("Should my smart plug use the 2.4 GHz band?", "should my smart plug use 2.4ghz"),
        # a Roman numeral after a name is a number
        ("When did World War I end?", "when did world war 1 end"),
        # "the first day of" against "starting"
        (
            "How do I ease my son's nerves about starting kindergarten?",
            "my son is anxious about his first day of kindergarten, how can I help",
        ),
        # the same letter fused on one side, apart on the other
        ("Should I max out my 401(k) or my IRA first?", "401k or IRA - which should I max out first"),
        # a letter in brackets after a number is the same name fused
        ("Can I withdraw from my 403(b) early?", "can i withdraw from my 403b early"),
        # "in one week" / "in the same week": one period, no number
        (
            "How do I study for several exams in one week?",
            "how to revise for multiple exams in the same week",
        ),
        # a letter hyphenated to a number is the code written fused
        ("What is an F-1 visa?", "explain the f1 visa"),
        # a letter fused to a number abbreviates the word the other side writes after it
        ("Is 9k gold good for an engagement ring?", "is 9 karat gold ok for an engagement ring"),
        # a time written with and without its leading zero is the same time
        ("set an alarm for 07:30 on weekdays", "set an alarm for 7:30 on weekdays"),
    ],
    "date": [
        # "this may" before a verb is the pronoun and the modal ("this may in zone 5" stays a date)
        ("this may sound silly but why do cats purr", "why do cats purr?"),
        # "overwinter" names the winter
        ("how do I overwinter geraniums", "how do I keep geraniums alive through the winter"),
        # "original" with no present time on the other side
        ("what was the original name of the band", "what was the band originally called"),
        # overnight is at night
        ("Should I charge my phone at night?", "should I charge my phone overnight"),
        # winterizing is getting ready for the winter
        ("How do I winterize a garden hose?", "how to get a garden hose ready for the winter"),
        # another name for the same time
        (
            "Can I take melatonin and magnesium on the same night?",
            "is it fine to take melatonin with magnesium in one evening",
        ),
        (
            "How do I stop answering work email at weekends?",
            "how do I quit checking work email on saturdays and sundays",
        ),
        ("Which flowers suit a summer wedding?", "which flowers suit a summertime wedding"),
        ("May I bring my dog to the office?", "Can I bring my dog to the office?"),
        # a number before "may" that cannot be a day; a word made from a season's name
        (
            "Which numbers from 1 to 50 may be written as a sum of two squares?",
            "Which numbers from 1 to 50 can be written as a sum of two squares?",
        ),
        ("How warm is the eastern coast of Spain in spring?", "How warm is Spain's east coast in spring?"),
        ("Why do share prices fall after a rate rise?", "why do share prices drop after a rate rise"),
        ("Why does the app fall back to SMS codes?", "why does the app fall back to sms codes"),
        ("What's the monthly fee for the gym?", "How much is the gym fee per month?"),
        # a word of its own is no misspelt season: "string" is not "spring"
        ("How do I lower my ukulele's action?", "how do you lower the string height on ukuleles"),
        # a past habit on both sides, or a present one without "use to"
        ("What did people use to eat before refrigerators?", "What did people eat before fridges existed?"),
        ("Does the bakery still make rye bread?", "does the bakery make rye bread anymore"),
    ],
    "direction": [
        ("how can I speed up bread proofing", "how can I make bread proof faster"),
        # an -ing word ending "my ..." names a thing, not someone doing it: "my filter setting"
        (
            "how do I undo the crop on my photo but keep the filter I set",
            "revert the crop on my photo while keeping my filter setting",
        ),
        # two choices named in the other order across "or"
        ("is it better to lease or buy a car", "is it better to buy or lease a car"),
        # a passive or a verb with "from" turns the roles round itself
        ("can eczema be triggered by tattoos", "can tattoos trigger eczema"),
        ("can hair loss result from stress", "does stress cause hair loss"),
        # no doer on one side: what may be eaten, not who eats
        ("can cats eat tuna safely", "is tuna okay to feed my cat"),
        # the same way between two places, written in the other order
        (
            "How do I get to Cardiff from Bristol airport?",
            "what buses are there from Bristol airport to Cardiff?",
        ),
        # who gets the photos is the same person both ways
        ("How do I send photos from my phone to my mum?", "how do I send my mum photos from my phone"),
        # someone the thing is for is no swap
        ("I need a phone case for my daughter, which one?", "my daughter needs a phone case, which one?"),
        ("How do I open the router's admin page?", "how do I open my router admin page"),
        ("How do I move photos from my phone to my laptop?", "how do I move my phone photos onto my laptop"),
        # a passive subject is the verb's object: no swap
        ("Can I be charged for a missed appointment?", "Can the clinic charge me for a missed appointment?"),
        (
            "What's the quickest way from the station to the museum?",
            "fastest way from the station to the museum",
        ),
        # a swap across "and" or "vs" keeps the question
        ("Should I pick a cat or a dog as a first pet?", "Should I pick a dog or a cat as a first pet?"),
        ("Difference between a hub and a switch", "difference between a switch and a hub"),
        ("Which plan has the most storage?", "which plan has the largest storage"),
        ("How do I copy a folder to a USB stick?", "copy a folder onto a USB stick"),
        # a "for" that is not between the two names gives them no roles
        (
            "What's the difference between oak and pine for a bookshelf?",
            "for a bookshelf, how does pine compare with oak",
        ),
        # a thing moved out of a sentence of context is no role swap
        ("My puppy might have worms, what are the symptoms?", "what are the symptoms of worms in a puppy"),
        # a word that can only be a noun does nothing: "my alarm settings" is no one setting anything
        ("How do I restore the alarm I set on my phone?", "how to restore my alarm settings on my phone"),
        # a boundary: one person's thing written with and without the apostrophe
        ("Where can I see my son's school report?", "where can i see my sons school report"),
        # the same state after "too" on both sides
        ("how do I fix soup that's too salty", "my soup is too salty, how do I fix it"),
        # a boundary: the same one does it to the asker on both sides
        ("what should I do when a dog runs towards me", "a dog is running towards me, what should I do"),
    ],
    "entity": [
        # a name's number glued on, or after a hyphen
        ("can I spray WD-40 on a bike chain", "is it ok to spray wd40 on a bike chain"),
        # an acronym written with dots
        ("what is the sales tax in the U.S.?", "what is the sales tax in the US"),
        # the words an acronym of the other side shortens
        ("How do I renew my Global Health Insurance Card?", "how do i renew my GHIC"),
        # the maker named on one side only
        (
            "How do I insert a table of contents in Word?",
            "What's the way to add a table of contents in Microsoft Word?",
        ),
        # a country and its adjective, a short name and the long one
        ("Is tipping expected in Japan?", "Do Japanese restaurants expect a tip?"),
        ("How much is a passport renewal in the UK?", "How much does it cost to renew a British passport?"),
        ("What does an API's rate limit protect against?", "what do APIs rate limits protect against"),
        ("How do I restart a k8s pod?", "How do I restart a Kubernetes pod?"),
        ("Can I set up 2FA on my account?", "can I set up two-factor authentication on my account"),
        ("How do I mount an NFS share?", "how do i mount a nfs share"),
        ("How do I scale a deployment?", "how do I scale a deployment in k8s"),
        ("Which release is the latest?", "what's the most recent release"),
        ("Who wrote Hamlet?", "who was the author of Hamlet"),
        # a short form of one long word
        ("How do I turn off the equalizer in Spotify?", "what is the way to switch the spotify EQ off"),
        # "original" without a version on the other side only describes
        ("What did the original iPhone cost?", "how much was the first iPhone"),
        ("How do I restore the original colour of teak?", "how do I get teak back to its original colour"),
    ],
    "scope": [
        # "to parent" before a noun phrase is a verb, no parent; "cat litter" is a thing, no cat
        (
            "how to parent a camera to a moving object in blender",
            "attaching my scene camera to a moving object in blender, what are the steps",
        ),
        ("can cat litter go in my compost", "is it ok to compost used kitty litter"),
        # "out" ends the noun phrase "one tile"; "all the other tiles" are the rest, not a set of their own
        (
            "how do I take one tile out of a mosaic without damaging the rest",
            "need to pull a single tile from my mosaic but keep all the other tiles intact",
        ),
        # "more than one" is "multiple"
        (
            "can a crossword clue have more than one answer",
            "is it possible for a crossword clue to have multiple answers",
        ),
        # a compound ("the belt level system") names no one level
        (
            "what are the judo grading levels like yellow orange green",
            "Explain the belt-level system (yellow/orange/green) used in judo.",
        ),
        # a qualifying adverb misspelt on one side
        ("how long does a tattoo usually take to heal", "how long does a tattoo ususally take to heal"),
        # "or nah" only hesitates
        ("should I learn python or nah", "should I learn python"),
        # "temp" before a noun is a temperature, not a temporary worker
        ("What flow temp should my boiler run at?", "what flow temperature should my boiler run at"),
        # doing it properly is what is asked anyway; a yes-or-no question that names nothing more
        ("How do I hang a picture frame?", "how do I hang a picture frame properly"),
        (
            "Is there a fee for checked bags on this airline?",
            "What's the fee for checked bags on this airline?",
        ),
        # a company named on one side only is whose rules apply, not someone else asked about
        ("Are employees paid for bank holidays?", "does a company have to pay employees for bank holidays"),
        # "all at once" says when, not which
        ("Can I take both tablets all at once?", "can I take both tablets together"),
        # "all the way around" says how far, not which
        ("How do I sew binding all the way around a quilt?", "how do I sew binding around a quilt"),
        # "each other", "every so often", "every time", "all over", "a whole number" quantify no set
        (
            "Why does my laptop fan spin up every time I open Chrome?",
            "my laptop fan gets loud whenever chrome opens, why",
        ),
        (
            "How do I stop paint from dripping all over the floor?",
            "how can I keep paint from getting on the floor",
        ),
        (
            "Is a whole number divisible by 9 when its digits add to 9?",
            "if the digits of an integer sum to 9, is it divisible by 9?",
        ),
        ("How do I log in without typing my password every single time?", "set up passwordless login"),
        # "all" against "every" on the same noun; "all frogs" against "frogs"
        ("Do all bees sting?", "does every bee sting"),
        ("Are all frogs poisonous?", "are frogs poisonous"),
        # a quantifier before a number and a unit is an interval, not a set
        (
            "Why does Old Faithful erupt every 90 minutes?",
            "what makes old faithful go off on a 90-minute cycle",
        ),
        (
            "Why do periodical cicadas come out every 17 years?",
            "why do some cicadas emerge on a 17-year cycle",
        ),
        (
            "How do the two cats in my house get used to each other?",
            "how can my two cats get used to one another",
        ),
        # "explain ... how" with nothing brief on the other side
        ("Do cats see in colour?", "Explain the biology of how cats see in colour."),
        ("What's a good pair of running shoes for flat feet?", "best running shoes for flat feet"),
        ("How do I list all the buckets in my account?", "show me every bucket in my account"),
        # a daily amount is a rate, not a share of a total
        ("What is the total daily intake of vitamin C I need?", "How much vitamin C do I need per day?"),
        ("What is the best laptop for students?", "Which laptop is best for students?"),
        ("What's the right paracetamol dose for children?", "what paracetamol dose is right for kids"),
        ("Is my 3rd grader reading well?", "is my third-grade child reading well"),
        # a unit the other side does not name is no unit swap
        ("How many hours should a teenager sleep?", "how much sleep does a teenager need each night"),
        ("What is a mutex, in one sentence?", "In a sentence: what's a mutex?"),
        ("How much do I pay each month?", "How much do I pay a month?"),
        ("How do I stop all running jobs?", "stop the running jobs"),
        # "in a table" after a part of a table is where, not a format
        ("How do I delete a row in a spreadsheet?", "spreadsheet: remove one row from a table"),
        ("Write a limerick about a cat", "could you write a limerick about a cat"),
        ("What's the best way to remove rust from tools?", "how can I get rust off my tools"),
        # a closing word of thanks asks for nothing more; "Thanks" after a question mark is no name
        ("What does DPI mean for a mouse?", "What does DPI mean for a mouse? Thanks!"),
        ("How often should I water a cactus?", "how often should I water a cactus, realistically?"),
        # a child named by age, by "infant" or "teen"; a pronoun for the pet both name
        ("How many hours should a 3 year old sleep?", "how much sleep does a three-year-old child need"),
        ("When do infants start teething?", "at what age do babies start teething"),
        ("How much screen time should a teen have?", "how much screen time is ok for a teenager"),
        (
            "How do I calm my cat during a thunderstorm?",
            "my cat is scared of thunder, how can I help her relax",
        ),
        # "each one" is the things named before it; a rough figure is the figure; how often a
        # described problem happens
        (
            "What's the difference between a Roth IRA and a traditional IRA?",
            "roth ira vs traditional ira - what does each one mean",
        ),
        ("How much does a new roof cost?", "How much does a new roof cost, roughly?"),
        ("Why does my parrot scream?", "why does my parrot scream constantly"),
        # "write off" deducts; it asks for no draft
        ("Can I write off my gym membership?", "is my gym membership deductible"),
        # "student loan", "child care": a thing named after people is no one the question is about
        ("Can I get student loan forgiveness as a nurse?", "is there loan forgiveness for nurses"),
        ("How much does child care cost per month?", "what is the monthly cost of daycare"),
        # "my landlord" makes the asker the tenant; "my employer", the employee
        (
            "Can my landlord enter my flat without notice?",
            "can a landlord enter a tenant's flat without notice",
        ),
        (
            "How long does my employer have to pay my final wages after I quit?",
            "deadline for an employer to pay a departing employee their final wages",
        ),
        # a boundary: "just" as a filler narrows nothing
        ("When does the next solar eclipse happen?", "when does the next solar eclipse happen, just curious"),
        # a boundary: everything on both sides
        ("Does my warranty cover everything?", "Is everything covered by my warranty?"),
        # "all round" says where, not how many
        ("Why are there lights all round the runway?", "what are the lights around a runway for"),
        # a boundary: the same state on both sides
        ("Why does my fan run when the heater is on?", "why does the fan run while the heater is on"),
        # "to each other" says who meets whom; "to" before a verb opens no qualifier
        ("what's the best way to introduce guinea pigs", "best way to introduce guinea pigs to each other"),
        ("how should I introduce my two cats", "how should I introduce my two cats to one another"),
        ("how long does it take to learn guitar", "how long does it take to learn to play the guitar"),
        # the qualifier's noun said on the other side too
        ("how do I get to the airport from downtown", "best way from downtown to the airport"),
        # period by period on both sides; a crew is the staff
        ("what changes week by week in a pregnancy", "how does a pregnancy progress week by week"),
        ("how much should I tip the crew on a yacht charter", "what's a normal tip for yacht charter staff"),
        # a name alone added is context; "to each other" says who meets whom
        ("how do I restart a pod", "how do I restart a pod in k8s"),
        ("how do I introduce two dogs", "how do I introduce two dogs to each other"),
        # a brief answer to a question that opens with "how"; hour by hour on both sides
        ("Short answer please: how long do I boil an egg?", "How long should I boil an egg?"),
        # a quantifier hyphenated to the next word on the other side makes a compound, not a set
        ("are all-season tyres safe in snow", "are all season tyres safe in snow"),
        # the article against the asker's possessive adds nothing; two names of one thing
        ("how do I clean the oven racks", "how do I clean my oven racks"),
        ("how do I service a motorcycle chain", "how to service a motorbike chain"),
        (
            "what happens hour by hour after you quit smoking",
            "an hour-by-hour timeline after quitting smoking",
        ),
    ],
    "edit": [
        # a bare "help" after the question mark asks for nothing more
        ("why is my sourdough so dense", "why is my sourdough so dense?? help"),
        # "them" for things already named adds nothing
        (
            "do I need to wash strawberries before freezing",
            "do I need to wash strawberries before freezing them",
        ),
        # "ur" for "your"; a short word with its double letter typed once
        (
            "how to change a bike tyre without pinching ur tube",
            "how to change a bike tyre without pinching your tube",
        ),
        ("how do I do a forward rol", "how do I do a forward roll"),
        # the article alone changed
        ("how do I apply for a fishing permit", "how do I apply for the fishing permit"),
        # an agent noun spelt with -er or -or
        ("are spark arrestors required on chainsaws", "are spark arresters required on chainsaws"),
        # British and American spellings; a number as a Roman numeral
        ("how do I make a cosy reading nook", "How do I make a cozy reading nook?"),
        ("Where can I find WW2 ration books?", "Where can I find WWII ration books?"),
        # one slip of the finger in a name the dictionary lacks; a preamble before the question
        ("how do i install kubernetes on ubuntu", "how do i install kubernets on ubuntu"),
        ("Sorry to bother you, but how do I renew a library card?", "How do I renew a library card?"),
        ("Why do leaves change colour? ty", "why do leaves change colour?"),
        # an acronym of the words the other side writes out
        ("What is return on investment?", "what is return on investment (ROI)?"),
        # British and American spelling; an attribute of the whole is no part of it
        ("How do I check the tyre pressure?", "how do I check the tire pressure?"),
        ("How much is the fee for a fishing licence?", "How much is a fishing licence?"),
        ("How do I reset my account password?", "How do I reset the password of my account?"),
        ("How do I begin the onboarding course?", "How do I start the onboarding course?"),
        # a closing sentence that asks for nothing
        ("How do magnets work? thx", "how do magnets work"),
        ("Why do cats purr? just curious", "why do cats purr?"),
        # one word or two, accents or none
        ("Is a handwritten receipt valid?", "is a hand written receipt valid"),
        ("What does a sommelier do in a café?", "what does a sommelier do in a cafe"),
        ("How do I cancel my subscription?", "How do I terminate my subscription?"),
        ("How do I delete a tag?", "How do I remove a tag?"),
        ("What are the flu's symptoms?", "what symptoms does the flu have"),
        ("How do I reset my password?", "how do I reset my password pls"),
        # a unit for the same unit spelt another way is no swap
        ("How heavy is a newborn in kg?", "how heavy is a newborn in kilograms"),
        # "different" counts how many, it names nothing: "a different way" is "another way"
        ("Is there a different way to reset my router?", "is there another way to reset my router"),
        # a plea for help after the question
        (
            "How do I get my baby to sleep through the night?",
            "How do I get my baby to sleep through the night? please help",
        ),
        ("Should I refinance my mortgage?", "Should I refinance my mortgage? Please advise."),
        ("How do I unclog a drain?", "How do I unclog a drain? Any tips?"),
        ("What is Ohm's law?", "What is Ohm's law? Please answer."),
        # a filler laugh, and a hedge on what usually holds
        ("How do I fix a squeaky door hinge?", "how do I fix a squeaky door hinge lol"),
        ("Who pays for the rehearsal dinner?", "who pays for the rehearsal dinner, typically"),
        # an irregular plural is the same noun
        ("What are the signs of a fungus on tomato leaves?", "What are the signs of fungi on tomato leaves?"),
        # the named part moved, not added
        ("what does medicare part b cover", "what does part b of medicare cover"),
        # how the asker feels, after the question, asks for nothing more
        ("why does my dog bark at night", "why does my dog bark at night?? kinda worried"),
        ("is this mole normal", "is this mole normal? so scared"),
        # "w/" is "with" and "w/o" is "without"
        ("best tent with a porch for two people", "best tent w/ a porch for two people"),
        ("can I board a domestic flight without ID", "can I board a domestic flight w/o ID"),
        ("is it safe to fly without travel insurance?", "is it safe to fly w/o travel insurance?"),
    ],
}


def _cases(table: dict[str, list[tuple[str, str]]]) -> list[tuple[str, str, str]]:
    return [(rule, a, b) for rule, pairs in table.items() for a, b in pairs]


@pytest.mark.parametrize(("rule", "a", "b"), _cases(TRAPS))
@pytest.mark.parametrize("swap", [False, True], ids=["ab", "ba"])
def test_rule_fires_on_its_trap(rule: str, a: str, b: str, swap: bool) -> None:
    fa, fb = (features(b), features(a)) if swap else (features(a), features(b))
    assert REGISTRY[rule](fa, fb), f"{rule} should refuse {a!r} / {b!r}"
    assert compare(fa, fb) is not None


@pytest.mark.parametrize(("rule", "a", "b"), _cases(PARAPHRASES))
@pytest.mark.parametrize("swap", [False, True], ids=["ab", "ba"])
def test_rule_is_silent_on_a_paraphrase(rule: str, a: str, b: str, swap: bool) -> None:
    fa, fb = (features(b), features(a)) if swap else (features(a), features(b))
    assert not REGISTRY[rule](fa, fb)
    assert compare(fa, fb) is None, f"{a!r} / {b!r} refused by {compare(fa, fb)}"


def test_every_registered_rule_has_traps_and_paraphrases() -> None:
    assert set(TRAPS) == set(PARAPHRASES) == set(REGISTRY)


def test_compare_names_the_first_rule_in_registry_order() -> None:
    # both a negation and a different number: negation is checked first
    a, b = features("Can I cancel within 7 days?"), features("Can I not cancel within 10 days?")
    assert REGISTRY["negation"](a, b) and REGISTRY["number"](a, b)
    assert compare(a, b) == "negation"
    assert compare(a, b, rules=("number", "negation")) == "number"


def test_the_config_offers_exactly_the_registered_rules() -> None:
    assert get_args(GuardRule) == RULES


def test_overrule_rejects_an_unknown_rule_and_lists_the_valid_ones() -> None:
    verifier = {"url": "http://verifier:8000", "model": "m", "overrule": ["edit", "tense"]}
    with pytest.raises(ValidationError) as err:
        SidecarConfig.model_validate({"cache": {"guard": {"verifier": verifier}}})
    text = str(err.value)
    assert "overrule.1" in text and "tense" in text
    for name in RULES:
        assert f"'{name}'" in text


@pytest.mark.parametrize("swap", [False, True], ids=["ab", "ba"])
def test_a_hyphenated_word_is_the_word_the_other_side_writes_whole(swap: bool) -> None:
    # "Wi-Fi" against "wifi": one word on both sides, so the swap of the two is seen
    a, b = "why is my Wi-Fi fast but Ethernet slow", "why is my ethernet fast but wifi slow"
    fa, fb = (features(b), features(a)) if swap else (features(a), features(b))
    assert compare(fa, fb) == "direction"
    same = features("how do I reset my wifi router")
    assert compare(features("how do I reset my Wi-Fi router"), same) is None
