"""1. Quality on every labelled set, holdout halves: Hermes Cache vs RedisVL SemanticCache vs GPTCache.

The sets (SETS): fow-cache's questions and conversations (PyPI fow-cache) and the sets in
bench/data/ whose holdout halves nobody tuned on (devops, business, support, home, trades, media,
civic, health, leisure, office, study, gadgets, nature, travel, food, motoring, pets, family,
fitness, money, coding, diy, education, legal, science, sports, careers, music, garden, photo,
gaming, housing, cloud, security, shopping, commute, beauty, wellbeing, events, crafts, weather,
insurance, languages, analytics, appliances, outdoors, nutrition, hr, boating, cycling, retail,
astronomy, printing, aviation, drinks, energy, fishing, boardgames, tax, networking, skiing,
interiors, dental, genealogy, sewing, campervans, baking, birdwatching, equestrian, pools,
podcasting, watches, charities, art, homesecurity, models, beekeeping, aquariums, immigration,
climbing, pottery, diving, farming, eldercare, woodworking, homebrewing, running, foraging, chess,
motorcycling, newborns, hamradio, golf, houseplants, hifi, weddings, surfing, tattoos, videoediting,
bbq, drones, speaking, cosplay, cheese, kayaking, knitting, sleep, bonsai, magic, calligraphy,
skateboarding, archery, dance, canning, puzzles, coins, rowing, fragrance, bookbinding, mushrooms,
hydroponics, glass, blender, piano, spreadsheets, soapmaking, tennis, composting, crypto,
welding, origami, triathlon, ebooks, poker, theatre, knives, vinyl, fencing, pilates,
lockpicking).
Each is split into a tune and a holdout half by the rule of `hermes-sidecar evaluate --split`
(imported, not copied: the first byte of sha256(id)). Every figure the report quotes is on the
holdout half; the tune half only fits the "threshold fitted on the tune half" rows, which are then
scored on the holdout half.

Every system gets the same embedding model (the sidecar's local embedder) and runs its real code:
- Hermes: `hermes-sidecar evaluate --pairs FILE... --split holdout` at its defaults, the decision path
  of live requests (partitions, guard, threshold); the threshold sweep runs the same evaluation
  in-process with the shared embedder, and must reproduce the CLI at the default threshold.
- RedisVL: `SemanticCache` on the same Redis, through fow-cache's own adapter (store the cached side,
  `check` the new side, cleared between pairs), at its default `distance_threshold` (0.1).
- GPTCache: `init_similar_cache` with its default data manager (sqlite + faiss), its default similarity
  evaluation (`SearchDistanceEvaluation`) and threshold (`Config().similarity_threshold`), a fresh cache
  per pair; the rank its evaluation computes is recorded so its threshold can be swept too.
Conversations are keyed on the last user message for RedisVL and GPTCache, as they do by default.

    scripts/bench.sh full quality    every set at full size, into docs/benchmarks.md (section 1)
    python -m bench.quality          quick sizes into bench/out/quality.json (Redis at HERMES_BENCH_REDIS_URL)
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import metadata, resources
from pathlib import Path
from typing import Any

from bench.common import OUT, ROOT, Context, Skip, Timer, write_json
from bench.embedding import MemoEmbedder, gptcache_embedding, hermes_embedder, redisvl_vectorizer
from hermes_sidecar.evaluate import in_split, load_pairs

GPTCACHE_DIR = OUT / "gptcache-data"
MAX_WRONG = 0.02  # the target: >= 85% served with <= 2% wrong
SPLIT = "holdout"  # the half every reported figure is on
FIT = "tune"  # the half the fitted thresholds are chosen on
DATA = ROOT / "bench" / "data"
Point = dict[str, float]
Item = dict[str, Any]


# ---------------------------------------------------------------------------------------------- the sets


def _fow_data() -> Path:
    return Path(str(resources.files("fow_cache") / "data"))


@dataclass(frozen=True)
class PairSet:
    """One labelled set: the JSONL files `hermes-sidecar evaluate --pairs` reads, and how to name them."""

    name: str  # the key in the result and the plot's file name
    title: str
    questions: bool  # single questions, or conversations (keyed on the last turn by RedisVL and GPTCache)
    fow_cache: bool  # fow-cache's own data (the <= 1% wrong target applies)
    files: Callable[[], list[Path]]
    shown: str  # the --pairs arguments as a reader types them (FOW = fow-cache's data folder)


SETS: dict[str, PairSet] = {
    s.name: s
    for s in (
        PairSet("questions", "fow-cache questions", True, True,
                lambda: [_fow_data() / "pairs.jsonl"], '--pairs "$FOW/pairs.jsonl"'),
        PairSet("conversations", "fow-cache conversations", False, True,
                lambda: sorted((_fow_data() / "conv-parts").glob("*.jsonl"))
                + sorted((_fow_data() / "conv-long").glob("*.jsonl")),
                "$(printf -- '--pairs %s ' \"$FOW\"/conv-*/*.jsonl)"),
        PairSet("devops", "DevOps and programming (bench/data)", True, False,
                lambda: [DATA / "devops.jsonl"], "--pairs bench/data/devops.jsonl"),
        PairSet("business", "finance, HR, health, travel (bench/data)", True, False,
                lambda: [DATA / "business.jsonl"], "--pairs bench/data/business.jsonl"),
        PairSet("support", "consumer support, shopping, data, homework, cooking (bench/data)", True, False,
                lambda: [DATA / "support.jsonl"], "--pairs bench/data/support.jsonl"),
        PairSet("home", "housing, everyday law, cars, pets, fitness, school (bench/data)", True, False,
                lambda: [DATA / "home.jsonl"], "--pairs bench/data/home.jsonl"),
        PairSet("trades", "trades, small firms, farming, freight, electronics, lab (bench/data)", True, False,
                lambda: [DATA / "trades.jsonl"], "--pairs bench/data/trades.jsonl"),
        PairSet("media", "photography, music, games, film, writing, art, trivia (bench/data)", True, False,
                lambda: [DATA / "media.jsonl"], "--pairs bench/data/media.jsonl"),
        PairSet("civic", "public services, transport, climate, sports, science, economics (bench/data)", True,
                False, lambda: [DATA / "civic.jsonl"], "--pairs bench/data/civic.jsonl"),
        PairSet("health", "health, medicines, school, languages, pets, law, tax, travel (bench/data)", True,
                False, lambda: [DATA / "health.jsonl"], "--pairs bench/data/health.jsonl"),
        PairSet("leisure", "cooking, gardening, sport, outdoors, investing, hobbies (bench/data)", True,
                False, lambda: [DATA / "leisure.jsonl"], "--pairs bench/data/leisure.jsonl"),
        PairSet("office", "insurance, property, sales, contracts, office work, careers (bench/data)", True,
                False, lambda: [DATA / "office.jsonl"], "--pairs bench/data/office.jsonl"),
        PairSet("study", "history, literature, maths, physics, biology, grammar, theory (bench/data)", True,
                False, lambda: [DATA / "study.jsonl"], "--pairs bench/data/study.jsonl"),
        PairSet("gadgets", "phones, PCs, home networks, smart home, EVs, solar (bench/data)", True,
                False, lambda: [DATA / "gadgets.jsonl"], "--pairs bench/data/gadgets.jsonl"),
        PairSet("nature", "weather, wildlife, oceans, geology, night sky, fishing, disasters (bench/data)",
                True, False, lambda: [DATA / "nature.jsonl"], "--pairs bench/data/nature.jsonl"),
        PairSet("travel", "flights, hotels, trains, visas, car rental, cruises, luggage (bench/data)",
                True, False, lambda: [DATA / "travel.jsonl"], "--pairs bench/data/travel.jsonl"),
        PairSet("food", "cooking, baking, food safety, restaurants, drinks, diets, preserving (bench/data)",
                True, False, lambda: [DATA / "food.jsonl"], "--pairs bench/data/food.jsonl"),
        PairSet("motoring", "cars, repairs, tyres, EVs, licences, insurance, bikes, fines (bench/data)",
                True, False, lambda: [DATA / "motoring.jsonl"], "--pairs bench/data/motoring.jsonl"),
        PairSet("pets", "dogs, cats, vets, insurance, fish, birds, reptiles, horses, grooming (bench/data)",
                True, False, lambda: [DATA / "pets.jsonl"], "--pairs bench/data/pets.jsonl"),
        PairSet("family", "pregnancy, children, teens, elder care, weddings, budgets, custody (bench/data)",
                True, False, lambda: [DATA / "family.jsonl"], "--pairs bench/data/family.jsonl"),
        PairSet("fitness", "gym, running, yoga, swimming, injuries, sports food, team sports (bench/data)",
                True, False, lambda: [DATA / "fitness.jsonl"], "--pairs bench/data/fitness.jsonl"),
        PairSet("money", "banking, credit, loans, mortgages, tax, pensions, investing, scams (bench/data)",
                True, False, lambda: [DATA / "money.jsonl"], "--pairs bench/data/money.jsonl"),
        PairSet("coding", "git, Python, JavaScript, SQL, APIs, tests, Docker, shell, cloud (bench/data)",
                True, False, lambda: [DATA / "coding.jsonl"], "--pairs bench/data/coding.jsonl"),
        PairSet("diy", "plumbing, electrics, painting, tools, floors, lawns, appliances, roofs (bench/data)",
                True, False, lambda: [DATA / "diy.jsonl"], "--pairs bench/data/diy.jsonl"),
        PairSet("education", "applications, loans, majors, exams, languages, teaching, tests (bench/data)",
                True, False, lambda: [DATA / "education.jsonl"], "--pairs bench/data/education.jsonl"),
        PairSet("legal", "tenancy, jobs, refunds, small claims, wills, visas, IP, privacy (bench/data)",
                True, False, lambda: [DATA / "legal.jsonl"], "--pairs bench/data/legal.jsonl"),
        PairSet("science", "physics, chemistry, space, biology, geology, weather, lab safety (bench/data)",
                True, False, lambda: [DATA / "science.jsonl"], "--pairs bench/data/science.jsonl"),
        PairSet("sports", "soccer, basketball, tennis, cricket, golf, races, fantasy, tickets (bench/data)",
                True, False, lambda: [DATA / "sports.jsonl"], "--pairs bench/data/sports.jsonl"),
        PairSet("careers", "job search, CVs, interviews, pay, HR policy, remote work (bench/data)",
                True, False, lambda: [DATA / "careers.jsonl"], "--pairs bench/data/careers.jsonl"),
        PairSet("music", "instruments, theory, singing, recording, concerts, royalties (bench/data)",
                True, False, lambda: [DATA / "music.jsonl"], "--pairs bench/data/music.jsonl"),
        PairSet("garden", "vegetables, lawns, houseplants, pruning, compost, pests, seeds (bench/data)",
                True, False, lambda: [DATA / "garden.jsonl"], "--pairs bench/data/garden.jsonl"),
        PairSet("photo", "camera settings, lenses, editing, printing, portraits, drones, film (bench/data)",
                True, False, lambda: [DATA / "photo.jsonl"], "--pairs bench/data/photo.jsonl"),
        PairSet("gaming", "PC, consoles, stores, multiplayer, streaming, mods, VR, tabletop (bench/data)",
                True, False, lambda: [DATA / "gaming.jsonl"], "--pairs bench/data/gaming.jsonl"),
        PairSet("housing", "buying, mortgages, renting, moving, insurance, property tax (bench/data)",
                True, False, lambda: [DATA / "housing.jsonl"], "--pairs bench/data/housing.jsonl"),
        PairSet("cloud", "AWS, Azure, GCP billing, IAM, storage, VMs, serverless, DNS (bench/data)",
                True, False, lambda: [DATA / "cloud.jsonl"], "--pairs bench/data/cloud.jsonl"),
        PairSet("security", "passwords, 2FA, phishing, malware, VPNs, Wi-Fi, breaches, backups (bench/data)",
                True, False, lambda: [DATA / "security.jsonl"], "--pairs bench/data/security.jsonl"),
        PairSet("shopping", "delivery, returns, discounts, loyalty, BNPL, warranties, sizing (bench/data)",
                True, False, lambda: [DATA / "shopping.jsonl"], "--pairs bench/data/shopping.jsonl"),
        PairSet("commute", "trains, buses, cycling, scooters, parking, taxis, EV charging (bench/data)",
                True, False, lambda: [DATA / "commute.jsonl"], "--pairs bench/data/commute.jsonl"),
        PairSet("beauty", "skincare, acne, makeup, hair, nails, fragrance, treatments (bench/data)",
                True, False, lambda: [DATA / "beauty.jsonl"], "--pairs bench/data/beauty.jsonl"),
        PairSet("wellbeing", "sleep, stress, meditation, therapy, burnout, habits, grief (bench/data)",
                True, False, lambda: [DATA / "wellbeing.jsonl"], "--pairs bench/data/wellbeing.jsonl"),
        PairSet("events", "weddings, parties, venues, catering, conferences, speeches (bench/data)",
                True, False, lambda: [DATA / "events.jsonl"], "--pairs bench/data/events.jsonl"),
        PairSet("crafts", "knitting, sewing, quilting, 3D printing, pottery, candles, resin (bench/data)",
                True, False, lambda: [DATA / "crafts.jsonl"], "--pairs bench/data/crafts.jsonl"),
        PairSet("weather", "forecasts, storms, heat, UV, pollen, tides, instruments, records (bench/data)",
                True, False, lambda: [DATA / "weather.jsonl"], "--pairs bench/data/weather.jsonl"),
        PairSet("insurance", "car, home, travel, health, life and pet cover, claims, premiums (bench/data)",
                True, False, lambda: [DATA / "insurance.jsonl"], "--pairs bench/data/insurance.jsonl"),
        PairSet("languages", "grammar, vocabulary, pronunciation, translation, exams, scripts (bench/data)",
                True, False, lambda: [DATA / "languages.jsonl"], "--pairs bench/data/languages.jsonl"),
        PairSet("analytics", "spreadsheets, pivot tables, SQL, pandas, statistics, A/B tests (bench/data)",
                True, False, lambda: [DATA / "analytics.jsonl"], "--pairs bench/data/analytics.jsonl"),
        PairSet("appliances", "laundry, dishwashers, fridges, ovens, vacuums, boilers (bench/data)",
                True, False, lambda: [DATA / "appliances.jsonl"], "--pairs bench/data/appliances.jsonl"),
        PairSet("outdoors", "hiking, camping, climbing, fishing, kayaking, navigation, safety (bench/data)",
                True, False, lambda: [DATA / "outdoors.jsonl"], "--pairs bench/data/outdoors.jsonl"),
        PairSet("nutrition", "macros, protein, vitamins, supplements, labels, diets, fasting (bench/data)",
                True, False, lambda: [DATA / "nutrition.jsonl"], "--pairs bench/data/nutrition.jsonl"),
        PairSet("hr", "leave, payroll, contracts, notice, reviews, remote work, dismissal (bench/data)",
                True, False, lambda: [DATA / "hr.jsonl"], "--pairs bench/data/hr.jsonl"),
        PairSet("boating", "sailing, outboards, licences, moorings, anchoring, navigation, VHF (bench/data)",
                True, False, lambda: [DATA / "boating.jsonl"], "--pairs bench/data/boating.jsonl"),
        PairSet("cycling", "maintenance, gears, tyres, brakes, e-bikes, bike fit, touring (bench/data)",
                True, False, lambda: [DATA / "cycling.jsonl"], "--pairs bench/data/cycling.jsonl"),
        PairSet("retail", "running a shop: POS, stock, suppliers, pricing, rotas, card fees (bench/data)",
                True, False, lambda: [DATA / "retail.jsonl"], "--pairs bench/data/retail.jsonl"),
        PairSet("astronomy", "telescopes, planets, eclipses, meteors, astrophotography (bench/data)",
                True, False, lambda: [DATA / "astronomy.jsonl"], "--pairs bench/data/astronomy.jsonl"),
        PairSet("printing", "printers, 3D printing, print quality, paper, print shops (bench/data)",
                True, False, lambda: [DATA / "printing.jsonl"], "--pairs bench/data/printing.jsonl"),
        PairSet("aviation", "learning to fly, drones, flight planning, airspace, gliding (bench/data)",
                True, False, lambda: [DATA / "aviation.jsonl"], "--pairs bench/data/aviation.jsonl"),
        PairSet("drinks", "coffee and tea, wine, home brewing, cocktails, fermentation (bench/data)",
                True, False, lambda: [DATA / "drinks.jsonl"], "--pairs bench/data/drinks.jsonl"),
        PairSet("energy", "home energy bills, solar, heat pumps, insulation, EV charging (bench/data)",
                True, False, lambda: [DATA / "energy.jsonl"], "--pairs bench/data/energy.jsonl"),
        PairSet("fishing", "angling, fly fishing, sea fishing, tackle, licences and rules (bench/data)",
                True, False, lambda: [DATA / "fishing.jsonl"], "--pairs bench/data/fishing.jsonl"),
        PairSet("boardgames", "chess, board and card games, tabletop role-playing, poker, Go (bench/data)",
                True, False, lambda: [DATA / "boardgames.jsonl"], "--pairs bench/data/boardgames.jsonl"),
        PairSet("tax", "income tax, self-assessment, capital gains, VAT, pensions (bench/data)",
                True, False, lambda: [DATA / "tax.jsonl"], "--pairs bench/data/tax.jsonl"),
        PairSet("networking", "home Wi-Fi and routers, mesh, VPNs, NAS, DNS, broadband (bench/data)",
                True, False, lambda: [DATA / "networking.jsonl"], "--pairs bench/data/networking.jsonl"),
        PairSet("skiing", "skiing and snowboarding, gear and sizing, resorts, avalanche safety (bench/data)",
                True, False, lambda: [DATA / "skiing.jsonl"], "--pairs bench/data/skiing.jsonl"),
        PairSet("interiors", "paint and colour, lighting, furniture layout, styles, storage (bench/data)",
                True, False, lambda: [DATA / "interiors.jsonl"], "--pairs bench/data/interiors.jsonl"),
        PairSet("dental", "brushing, fillings, braces, whitening, gum disease, dental costs (bench/data)",
                True, False, lambda: [DATA / "dental.jsonl"], "--pairs bench/data/dental.jsonl"),
        PairSet("genealogy", "family trees, census and civil records, DNA tests, archives (bench/data)",
                True, False, lambda: [DATA / "genealogy.jsonl"], "--pairs bench/data/genealogy.jsonl"),
        PairSet("sewing", "sewing machines, patterns, fabric, alterations, quilting, mending (bench/data)",
                True, False, lambda: [DATA / "sewing.jsonl"], "--pairs bench/data/sewing.jsonl"),
        PairSet("campervans", "campervans and motorhomes, conversions, power, campsites (bench/data)",
                True, False, lambda: [DATA / "campervans.jsonl"], "--pairs bench/data/campervans.jsonl"),
        PairSet("baking", "bread, cakes, pastry, ovens, yeast, substitutions, tins and sizes (bench/data)",
                True, False, lambda: [DATA / "baking.jsonl"], "--pairs bench/data/baking.jsonl"),
        PairSet("birdwatching", "garden birds, binoculars, feeders, song, migration, birding (bench/data)",
                True, False, lambda: [DATA / "birdwatching.jsonl"], "--pairs bench/data/birdwatching.jsonl"),
        PairSet("equestrian", "horses and riding, care, tack, livery, vets, competing (bench/data)",
                True, False, lambda: [DATA / "equestrian.jsonl"], "--pairs bench/data/equestrian.jsonl"),
        PairSet("pools", "swimming pools and hot tubs, chemistry, pumps, heating (bench/data)",
                True, False, lambda: [DATA / "pools.jsonl"], "--pairs bench/data/pools.jsonl"),
        PairSet("podcasting", "podcasting, microphones, editing, hosting, audience (bench/data)",
                True, False, lambda: [DATA / "podcasting.jsonl"], "--pairs bench/data/podcasting.jsonl"),
        PairSet("watches", "watches and jewellery, movements, metals, gems, sizing (bench/data)",
                True, False, lambda: [DATA / "watches.jsonl"], "--pairs bench/data/watches.jsonl"),
        PairSet("charities", "volunteering and charities, donations, Gift Aid, trustees (bench/data)",
                True, False, lambda: [DATA / "charities.jsonl"], "--pairs bench/data/charities.jsonl"),
        PairSet("art", "art collecting and museums, prints, auctions, framing (bench/data)",
                True, False, lambda: [DATA / "art.jsonl"], "--pairs bench/data/art.jsonl"),
        PairSet("homesecurity", "home security, locks, alarms, cameras, safes (bench/data)",
                True, False, lambda: [DATA / "homesecurity.jsonl"], "--pairs bench/data/homesecurity.jsonl"),
        PairSet("models", "model railways and model making, DCC, kits, RC, LiPo (bench/data)",
                True, False, lambda: [DATA / "models.jsonl"], "--pairs bench/data/models.jsonl"),
        PairSet("beekeeping", "beekeeping, hives, swarms, varroa, honey, queens (bench/data)",
                True, False, lambda: [DATA / "beekeeping.jsonl"], "--pairs bench/data/beekeeping.jsonl"),
        PairSet("aquariums", "aquariums, tanks, water, fish, plants, reefs (bench/data)",
                True, False, lambda: [DATA / "aquariums.jsonl"], "--pairs bench/data/aquariums.jsonl"),
        PairSet("immigration", "immigration, visas, residency, citizenship, fees (bench/data)",
                True, False, lambda: [DATA / "immigration.jsonl"], "--pairs bench/data/immigration.jsonl"),
        PairSet("climbing", "rock climbing, bouldering, grades, gear, training (bench/data)",
                True, False, lambda: [DATA / "climbing.jsonl"], "--pairs bench/data/climbing.jsonl"),
        PairSet("pottery", "pottery, ceramics, clay, glazes, kilns, firing (bench/data)",
                True, False, lambda: [DATA / "pottery.jsonl"], "--pairs bench/data/pottery.jsonl"),
        PairSet("diving", "scuba diving, freediving, gear, gas, decompression (bench/data)",
                True, False, lambda: [DATA / "diving.jsonl"], "--pairs bench/data/diving.jsonl"),
        PairSet("farming", "small farms, smallholdings, livestock, crops, machinery, grants (bench/data)",
                True, False, lambda: [DATA / "farming.jsonl"], "--pairs bench/data/farming.jsonl"),
        PairSet("eldercare", "caring for elderly parents, care homes, funding, dementia (bench/data)",
                True, False, lambda: [DATA / "eldercare.jsonl"], "--pairs bench/data/eldercare.jsonl"),
        PairSet("woodworking", "woodworking, joinery, finishing, tools, lumber (bench/data)",
                True, False, lambda: [DATA / "woodworking.jsonl"], "--pairs bench/data/woodworking.jsonl"),
        PairSet("homebrewing", "home brewing, beer, cider, wine, fermentation (bench/data)",
                True, False, lambda: [DATA / "homebrewing.jsonl"], "--pairs bench/data/homebrewing.jsonl"),
        PairSet("running", "running, marathon training, shoes, injuries, races (bench/data)",
                True, False, lambda: [DATA / "running.jsonl"], "--pairs bench/data/running.jsonl"),
        PairSet("foraging", "foraging, wild mushrooms, plants, laws, seasons (bench/data)",
                True, False, lambda: [DATA / "foraging.jsonl"], "--pairs bench/data/foraging.jsonl"),
        PairSet("chess", "chess, openings, engines, ratings, tournaments (bench/data)",
                True, False, lambda: [DATA / "chess.jsonl"], "--pairs bench/data/chess.jsonl"),
        PairSet("motorcycling", "motorcycles, licences, gear, maintenance, riding (bench/data)",
                True, False, lambda: [DATA / "motorcycling.jsonl"], "--pairs bench/data/motorcycling.jsonl"),
        PairSet("newborns", "newborn babies, feeding, sleep, health, leave (bench/data)",
                True, False, lambda: [DATA / "newborns.jsonl"], "--pairs bench/data/newborns.jsonl"),
        PairSet("hamradio", "amateur radio, licences, bands, antennas, modes (bench/data)",
                True, False, lambda: [DATA / "hamradio.jsonl"], "--pairs bench/data/hamradio.jsonl"),
        PairSet("golf", "golf, clubs, handicaps, rules (bench/data)",
                True, False, lambda: [DATA / "golf.jsonl"], "--pairs bench/data/golf.jsonl"),
        PairSet("houseplants", "houseplants, watering, light, pests (bench/data)",
                True, False, lambda: [DATA / "houseplants.jsonl"], "--pairs bench/data/houseplants.jsonl"),
        PairSet("hifi", "home audio and hi-fi (bench/data)",
                True, False, lambda: [DATA / "hifi.jsonl"], "--pairs bench/data/hifi.jsonl"),
        PairSet("weddings", "wedding planning (bench/data)",
                True, False, lambda: [DATA / "weddings.jsonl"], "--pairs bench/data/weddings.jsonl"),
        PairSet("surfing", "surfing, boards, waves, safety (bench/data)",
                True, False, lambda: [DATA / "surfing.jsonl"], "--pairs bench/data/surfing.jsonl"),
        PairSet("tattoos", "tattoos, aftercare, removal, laws (bench/data)",
                True, False, lambda: [DATA / "tattoos.jsonl"], "--pairs bench/data/tattoos.jsonl"),
        PairSet("videoediting", "video editing and YouTube (bench/data)",
                True, False, lambda: [DATA / "videoediting.jsonl"], "--pairs bench/data/videoediting.jsonl"),
        PairSet("bbq", "barbecue and smoking meat (bench/data)",
                True, False, lambda: [DATA / "bbq.jsonl"], "--pairs bench/data/bbq.jsonl"),
        PairSet("drones", "consumer and hobby drones (bench/data)",
                True, False, lambda: [DATA / "drones.jsonl"], "--pairs bench/data/drones.jsonl"),
        PairSet("speaking", "public speaking and presentations (bench/data)",
                True, False, lambda: [DATA / "speaking.jsonl"], "--pairs bench/data/speaking.jsonl"),
        PairSet("cosplay", "cosplay and costume making (bench/data)",
                True, False, lambda: [DATA / "cosplay.jsonl"], "--pairs bench/data/cosplay.jsonl"),
        PairSet("cheese", "home cheesemaking (bench/data)",
                True, False, lambda: [DATA / "cheese.jsonl"], "--pairs bench/data/cheese.jsonl"),
        PairSet("kayaking", "kayaking, canoeing and paddleboarding (bench/data)",
                True, False, lambda: [DATA / "kayaking.jsonl"], "--pairs bench/data/kayaking.jsonl"),
        PairSet("knitting", "knitting and crochet (bench/data)",
                True, False, lambda: [DATA / "knitting.jsonl"], "--pairs bench/data/knitting.jsonl"),
        PairSet("sleep", "sleep and sleep problems (bench/data)",
                True, False, lambda: [DATA / "sleep.jsonl"], "--pairs bench/data/sleep.jsonl"),
        PairSet("bonsai", "bonsai trees (bench/data)",
                True, False, lambda: [DATA / "bonsai.jsonl"], "--pairs bench/data/bonsai.jsonl"),
        PairSet("magic", "magic tricks and stage magic (bench/data)",
                True, False, lambda: [DATA / "magic.jsonl"], "--pairs bench/data/magic.jsonl"),
        PairSet("calligraphy", "calligraphy and hand lettering (bench/data)",
                True, False, lambda: [DATA / "calligraphy.jsonl"], "--pairs bench/data/calligraphy.jsonl"),
        PairSet("skateboarding", "skateboarding (bench/data)",
                True, False, lambda: [DATA / "skateboarding.jsonl"],
                "--pairs bench/data/skateboarding.jsonl"),
        PairSet("archery", "archery (bench/data)",
                True, False, lambda: [DATA / "archery.jsonl"], "--pairs bench/data/archery.jsonl"),
        PairSet("dance", "dance classes and social dancing (bench/data)",
                True, False, lambda: [DATA / "dance.jsonl"], "--pairs bench/data/dance.jsonl"),
        PairSet("canning", "home canning and preserving (bench/data)",
                True, False, lambda: [DATA / "canning.jsonl"], "--pairs bench/data/canning.jsonl"),
        PairSet("puzzles", "puzzles and puzzle solving (bench/data)",
                True, False, lambda: [DATA / "puzzles.jsonl"], "--pairs bench/data/puzzles.jsonl"),
        PairSet("coins", "coin collecting (bench/data)",
                True, False, lambda: [DATA / "coins.jsonl"], "--pairs bench/data/coins.jsonl"),
        PairSet("rowing", "rowing and indoor rowing (bench/data)",
                True, False, lambda: [DATA / "rowing.jsonl"], "--pairs bench/data/rowing.jsonl"),
        PairSet("fragrance", "perfume and fragrance (bench/data)",
                True, False, lambda: [DATA / "fragrance.jsonl"], "--pairs bench/data/fragrance.jsonl"),
        PairSet("bookbinding", "bookbinding and book repair (bench/data)",
                True, False, lambda: [DATA / "bookbinding.jsonl"], "--pairs bench/data/bookbinding.jsonl"),
        PairSet("mushrooms", "growing mushrooms at home (bench/data)",
                True, False, lambda: [DATA / "mushrooms.jsonl"], "--pairs bench/data/mushrooms.jsonl"),
        PairSet("hydroponics", "hydroponics and aquaponics at home (bench/data)",
                True, False, lambda: [DATA / "hydroponics.jsonl"], "--pairs bench/data/hydroponics.jsonl"),
        PairSet("glass", "stained, fused and lampworked glass (bench/data)",
                True, False, lambda: [DATA / "glass.jsonl"], "--pairs bench/data/glass.jsonl"),
        PairSet("blender", "3D modelling and rendering in Blender (bench/data)",
                True, False, lambda: [DATA / "blender.jsonl"], "--pairs bench/data/blender.jsonl"),
        PairSet("piano", "playing, learning and buying a piano (bench/data)",
                True, False, lambda: [DATA / "piano.jsonl"], "--pairs bench/data/piano.jsonl"),
        PairSet("spreadsheets", "Excel, Google Sheets and Calc formulas and data (bench/data)",
                True, False, lambda: [DATA / "spreadsheets.jsonl"], "--pairs bench/data/spreadsheets.jsonl"),
        PairSet("soapmaking", "making soap and candles at home (bench/data)",
                True, False, lambda: [DATA / "soapmaking.jsonl"], "--pairs bench/data/soapmaking.jsonl"),
        PairSet("tennis", "tennis, padel, squash, badminton and pickleball (bench/data)",
                True, False, lambda: [DATA / "tennis.jsonl"], "--pairs bench/data/tennis.jsonl"),
        PairSet("composting", "composting, recycling and household waste (bench/data)",
                True, False, lambda: [DATA / "composting.jsonl"], "--pairs bench/data/composting.jsonl"),
        PairSet("crypto", "crypto wallets, exchanges, fees, staking and tax (bench/data)",
                True, False, lambda: [DATA / "crypto.jsonl"], "--pairs bench/data/crypto.jsonl"),
        PairSet("welding", "welding and metalwork at home (bench/data)",
                True, False, lambda: [DATA / "welding.jsonl"], "--pairs bench/data/welding.jsonl"),
        PairSet("origami", "origami and paper crafts (bench/data)",
                True, False, lambda: [DATA / "origami.jsonl"], "--pairs bench/data/origami.jsonl"),
        PairSet("triathlon", "triathlon and multisport training and racing (bench/data)",
                True, False, lambda: [DATA / "triathlon.jsonl"], "--pairs bench/data/triathlon.jsonl"),
        PairSet("ebooks", "e-books, e-readers and library lending apps (bench/data)",
                True, False, lambda: [DATA / "ebooks.jsonl"], "--pairs bench/data/ebooks.jsonl"),
        PairSet("poker", "poker, blackjack and other card games (bench/data)",
                True, False, lambda: [DATA / "poker.jsonl"], "--pairs bench/data/poker.jsonl"),
        PairSet("theatre", "theatre, amateur dramatics and musicals (bench/data)",
                True, False, lambda: [DATA / "theatre.jsonl"], "--pairs bench/data/theatre.jsonl"),
        PairSet("knives", "kitchen and pocket knives and sharpening (bench/data)",
                True, False, lambda: [DATA / "knives.jsonl"], "--pairs bench/data/knives.jsonl"),
        PairSet("vinyl", "vinyl records, turntables and record collecting (bench/data)",
                True, False, lambda: [DATA / "vinyl.jsonl"], "--pairs bench/data/vinyl.jsonl"),
        PairSet("fencing", "the sport of fencing: foil, epee and sabre (bench/data)",
                True, False, lambda: [DATA / "fencing.jsonl"], "--pairs bench/data/fencing.jsonl"),
        PairSet("pilates", "pilates and barre (bench/data)",
                True, False, lambda: [DATA / "pilates.jsonl"], "--pairs bench/data/pilates.jsonl"),
        PairSet("lockpicking", "locks, keys, locksport and smart locks (bench/data)",
                True, False, lambda: [DATA / "lockpicking.jsonl"], "--pairs bench/data/lockpicking.jsonl"),
    )
}  # fmt: skip
FOW_DIR_COMMAND = (
    "FOW=$(.venv/bin/python -c 'import fow_cache, os; print(os.path.dirname(fow_cache.__file__))')/data"
)


def command(pset: PairSet, split: str = SPLIT) -> str:
    """The command that reproduces Hermes Cache's row for one set."""
    return f"hermes-sidecar evaluate {pset.shown} --split {split}"


def load(pset: PairSet) -> list[Item]:
    """The pairs exactly as `hermes-sidecar evaluate` reads them (its own loader)."""
    return [p for f in pset.files() for p in load_pairs(f)]


def category(item: Item) -> str:
    """The key `hermes-sidecar evaluate` groups a pair by."""
    return str(item.get("category") or item.get("subtype") or "uncategorised")


def split(items: Sequence[Item]) -> tuple[list[Item], list[Item]]:
    """(tune, holdout) by the rule of `hermes-sidecar evaluate --split`."""
    return (
        [i for i in items if in_split(str(i["id"]), FIT)],
        [i for i in items if in_split(str(i["id"]), SPLIT)],
    )


# ---------------------------------------------------------------------------------------------- rates


def rates(labels: Sequence[bool], served: Sequence[bool]) -> dict[str, float | None]:
    """served = share of should-hit pairs served; wrong = share of traps served (None: there are none)."""
    pos = [s for s, y in zip(served, labels, strict=True) if y]
    neg = [s for s, y in zip(served, labels, strict=True) if not y]
    return {
        "served": sum(pos) / len(pos) if pos else None,
        "wrong": sum(neg) / len(neg) if neg else None,
    }


def by_category(items: Sequence[Item], served: Sequence[bool]) -> dict[str, dict[str, Any]]:
    """Per category (evaluate's key): how many should-hit pairs and traps, and the rates over each."""
    groups: dict[str, tuple[list[bool], list[bool]]] = {}
    for item, s in zip(items, served, strict=True):
        labels, hits = groups.setdefault(category(item), ([], []))
        labels.append(bool(item["same_answer"]))
        hits.append(s)
    return {
        c: {"should_hit": sum(labels), "traps": len(labels) - sum(labels), **rates(labels, hits)}
        for c, (labels, hits) in sorted(groups.items())
    }


def _curve(scores: Sequence[float], labels: Sequence[bool], thresholds: Sequence[float]) -> list[Point]:
    """(threshold, served, wrong) for a score where higher means 'serve'."""
    pos = sum(labels) or 1
    neg = (len(labels) - sum(labels)) or 1
    out = []
    for t in thresholds:
        served = sum(1 for s, y in zip(scores, labels, strict=True) if y and s >= t) / pos
        wrong = sum(1 for s, y in zip(scores, labels, strict=True) if not y and s >= t) / neg
        out.append({"threshold": t, "served": served, "wrong": wrong})
    return out


def _sweep_thresholds(scores: Sequence[float]) -> list[float]:
    """Every distinct score is a threshold where the curve can change: the curve is exact, not sampled."""
    return sorted({round(s, 6) for s in scores} | {0.0, 1.0})


def _best(curve: Sequence[Point]) -> Point | None:
    """The point that serves most at <= 2% wrong (the higher threshold on a tie); None if none serves."""
    ok = [p for p in curve if p["wrong"] <= MAX_WRONG and p["served"] > 0]
    return max(ok, key=lambda p: (p["served"], p["threshold"])) if ok else None


def fitted(tune_curve: Sequence[Point], holdout_at: Callable[[float], Point]) -> Point | None:
    """The threshold that serves most on the tune half at <= 2% wrong, scored on the holdout half."""
    best = _best(tune_curve)
    if best is None:
        return None
    return {**holdout_at(best["threshold"]), "tune_served": best["served"], "tune_wrong": best["wrong"]}


def score_system(scores: Sequence[float], items: Sequence[Item], hold: Sequence[bool]) -> dict[str, Any]:
    """Curves of a score over the two halves of `items` (hold[i]: item i is in the holdout half)."""
    labels = [bool(i["same_answer"]) for i in items]
    h_scores = [s for s, h in zip(scores, hold, strict=True) if h]
    h_labels = [y for y, h in zip(labels, hold, strict=True) if h]
    t_scores = [s for s, h in zip(scores, hold, strict=True) if not h]
    t_labels = [y for y, h in zip(labels, hold, strict=True) if not h]
    return {
        "curve": _curve(h_scores, h_labels, _sweep_thresholds(h_scores)),
        "fitted": fitted(
            _curve(t_scores, t_labels, _sweep_thresholds(t_scores)),
            lambda t: _curve(h_scores, h_labels, [t])[0],
        ),
    }


def _text(x: Any) -> str:
    return str(x[-1]["content"]) if isinstance(x, list) else str(x)


# ---------------------------------------------------------------------------------------------- RedisVL


def redisvl_scores(ctx: Context, embedder: MemoEmbedder, items: list[Item]) -> dict[str, Any]:
    from fow_cache.adapters import redisvl_check
    from redisvl.extensions.cache.llm import SemanticCache

    cache = SemanticCache(
        name="hermes-bench-quality",
        redis_url=ctx.redis_url,
        vectorizer=redisvl_vectorizer(embedder),
        overwrite=True,
    )
    default_distance = float(cache.distance_threshold)
    check = redisvl_check(cache)
    with Timer() as t:
        scores = [float(check(i["a"], i["b"])) for i in items]
    cache.delete()
    return {
        "scores": scores,
        "default_threshold": 1.0 - default_distance,
        "default_distance_threshold": default_distance,
        "seconds": t.seconds,
    }


# ---------------------------------------------------------------------------------------------- GPTCache


def gptcache_scores(embedder: MemoEmbedder, items: list[Item]) -> dict[str, Any]:
    try:
        from gptcache import Cache, Config
        from gptcache.adapter.api import get, init_similar_cache, put
        from gptcache.similarity_evaluation.distance import SearchDistanceEvaluation
    except Exception as exc:  # any import failure is the finding, recorded verbatim
        return {"error": f"{type(exc).__name__}: {exc}"}

    class Recording(SearchDistanceEvaluation):  # type: ignore[misc]
        """GPTCache's default evaluation, unchanged, remembering the rank it returned."""

        last: float | None = None

        def evaluation(self, src_dict: Any, cache_dict: Any, **kw: Any) -> float:
            rank = float(super().evaluation(src_dict, cache_dict, **kw))
            self.last = rank
            return rank

    embedding = gptcache_embedding(embedder)
    default_threshold = float(Config().similarity_threshold)
    scores: list[float] = []
    hits: list[bool] = []
    # GPTCache flushes every cache again at interpreter exit (an atexit hook per Cache), so its
    # folders must outlive this function: they live under bench/out/ and are replaced on the next run.
    GPTCACHE_DIR.mkdir(parents=True, exist_ok=True)
    tmp = tempfile.mkdtemp(dir=GPTCACHE_DIR)
    with Timer() as t:
        for n, item in enumerate(items):
            evaluation = Recording()
            lo, hi = evaluation.range()
            cache = Cache()
            init_similar_cache(
                data_dir=f"{tmp}/{n}", cache_obj=cache, embedding=embedding, evaluation=evaluation
            )
            put(_text(item["a"]), "cached", cache_obj=cache)
            hits.append(get(_text(item["b"]), cache_obj=cache) is not None)
            # GPTCache serves when rank >= (hi - lo) * similarity_threshold: rank / (hi - lo) is a
            # score on the same 0..1 scale as its similarity_threshold.
            scores.append(0.0 if evaluation.last is None else (evaluation.last - lo) / (hi - lo))
            cache.data_manager.close()
            # gptcache 0.1's SQLStorage.close() does nothing, so SQLAlchemy's pool keeps every pair's
            # sqlite file open: over ~20,000 pairs that is the process's whole file-descriptor limit
            engine = getattr(cache.data_manager.s, "_engine", None)
            if engine is not None:
                engine.dispose()
    return {
        "scores": scores,
        "hits_at_default": hits,
        "default_threshold": default_threshold,
        "evaluation": "SearchDistanceEvaluation",
        "data_manager": "sqlite,faiss",
        "seconds": t.seconds,
    }


# ---------------------------------------------------------------------------------------------- Hermes


def hermes_cli(files: Sequence[Path], split_name: str = SPLIT) -> dict[str, Any]:
    """`hermes-sidecar evaluate --pairs FILE... --split holdout` at the sidecar's defaults: the number a
    user reproduces."""
    cmd = [str(Path(sys.executable).with_name("hermes-sidecar")), "evaluate"]
    for f in files:
        cmd += ["--pairs", str(f)]
    cmd += ["--split", split_name, "--details"]
    with Timer() as t:
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, check=False)
    if proc.returncode != 0:
        raise Skip(f"`hermes-sidecar evaluate` failed (exit {proc.returncode}): {proc.stderr.strip()[-600:]}")
    try:
        report: dict[str, Any] = json.loads(proc.stdout)
    except json.JSONDecodeError:
        raise Skip(f"`hermes-sidecar evaluate` printed no JSON: {proc.stdout[-300:]!r}") from None
    report["_seconds"] = t.seconds
    return report


def _reasons(rows: Any, key: str = "reason") -> dict[str, int]:
    out: dict[str, int] = {}
    for r in rows:
        k = str(r.get(key) or ("below-threshold" if key == "reason" else "?"))
        out[k] = out.get(k, 0) + 1
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))


def cli_categories(cli: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The CLI's per-category report in by_category's shape."""
    return {
        c: {
            "should_hit": v["should_hit"],
            "traps": v["traps"],
            "served": v["served_rate"],
            "wrong": v["wrong_rate"],
        }
        for c, v in sorted((cli.get("categories") or {}).items())
    }


class SidecarEmbedder:
    """The memoised embedder behind the sidecar's Embedder protocol, for the in-process sweep."""

    def __init__(self, memo: MemoEmbedder) -> None:
        self.name = memo.name
        self.dim = memo.dims
        self._memo = memo

    async def embed(self, texts: Any) -> Any:
        return self._memo.batch(list(texts))

    async def aclose(self) -> None:
        return None


def _write_pairs(items: Sequence[Item], path: Path) -> Path:
    """A subsample (quick mode) as a pairs file; the loader's own fields (`_file`) are left out."""
    path.write_text(
        "".join(json.dumps({k: v for k, v in i.items() if not k.startswith("_")}) + "\n" for i in items)
    )
    return path


def hermes_results(
    embedder: MemoEmbedder, files: Sequence[Path], tune: list[Item], holdout: list[Item], points: int
) -> dict[str, Any]:
    cli = hermes_cli(files)
    d: Point = {
        "served": float(cli["served_rate"]),
        "wrong": float(cli["wrong_rate"]),
        "threshold": float(cli["threshold"]),
    }
    mine = by_category(holdout, [False] * len(holdout))
    theirs = cli_categories(cli)
    out: dict[str, Any] = {
        "default": d,
        "pairs": cli["pairs"],
        # the CLI's split and grouping must be the one the other systems were scored on
        "split_matches": cli["pairs"] == len(holdout)
        and {c: (v["should_hit"], v["traps"]) for c, v in mine.items()}
        == {c: (v["should_hit"], v["traps"]) for c, v in theirs.items()},
        "by_category": theirs,
        "decisions": cli.get("decisions"),
        "refusals": cli.get("refusals"),
        # why should-hit pairs were not served, from --details (the decision's reason, or the threshold)
        "unserved_should_hit_by_reason": _reasons(r for r in cli.get("wrong", []) if r.get("same_answer")),
        "served_traps_by_category": _reasons(
            (r for r in cli.get("wrong", []) if not r.get("same_answer")), "category"
        ),
        "embedder": cli.get("embedder"),
        "guard": cli.get("guard"),
        "seconds": cli["_seconds"],
    }
    # The sweep calls the same evaluation in-process (hermes_sidecar.evaluate.evaluate_pairs, the live
    # decision path) with the memoised embedder, so every threshold costs no embedding.
    import asyncio

    from hermes_sidecar.config import SidecarConfig
    from hermes_sidecar.evaluate import evaluate_pairs

    emb = SidecarEmbedder(embedder)
    thresholds = sorted(
        {round(0.60 + 0.39 * k / max(1, points - 1), 3) for k in range(points)} | {d["threshold"]}
    )

    def sweep(pairs: list[Item]) -> list[Point]:
        curve = []
        for t in thresholds:
            rep = asyncio.run(evaluate_pairs(pairs, SidecarConfig(), embedder=emb, threshold=t))
            curve.append(
                {
                    "threshold": t,
                    "served": float(rep["served_rate"] or 0.0),
                    "wrong": float(rep["wrong_rate"] or 0.0),
                }
            )
        return curve

    with Timer() as t:
        curve = sweep(holdout)
        at = {p["threshold"]: p for p in curve}
        out["fitted"] = fitted(sweep(tune), lambda th: at[th])
    out["curve"] = curve
    out["sweep_seconds"] = t.seconds
    # The in-process sweep must reproduce the CLI at the default threshold, or the curve is not ours.
    out["sweep_matches_cli"] = (
        abs(at[d["threshold"]]["served"] - d["served"]) < 1e-3
        and abs(at[d["threshold"]]["wrong"] - d["wrong"]) < 1e-3
    )
    return out


# ---------------------------------------------------------------------------------------------- run


def sidecar_digest() -> str:
    """A digest of the sidecar's code and data files: if it changes during a run, the Hermes figures of
    the sets may come from different code (another change landing meanwhile)."""
    import hermes_sidecar

    root = Path(hermes_sidecar.__file__).parent
    h = hashlib.sha256()
    for f in sorted(p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        h.update(str(f.relative_to(root)).encode() + b"\0" + f.read_bytes())
    return h.hexdigest()[:16]


@dataclass(frozen=True)
class Prepared:
    """One set, loaded and split, with the files `hermes-sidecar evaluate` reads for it."""

    pset: PairSet
    items: list[Item]
    tune: list[Item]
    holdout: list[Item]
    hold: list[bool]  # hold[i]: items[i] is in the holdout half
    files: list[Path]

    @property
    def labels(self) -> list[bool]:
        """The holdout half's labels."""
        return [bool(i["same_answer"]) for i in self.holdout]


def prepare(pset: PairSet, stride: int, tmp: Path) -> Prepared:
    items = load(pset)[::stride]
    tune, holdout = split(items)
    files = pset.files() if stride == 1 else [_write_pairs(items, tmp / f"{pset.name}.jsonl")]
    return Prepared(pset, items, tune, holdout, [in_split(str(i["id"]), SPLIT) for i in items], files)


def describe(p: Prepared, stride: int) -> dict[str, Any]:
    labels = p.labels
    return {
        "title": p.pset.title,
        "questions": p.pset.questions,
        "fow_cache": p.pset.fow_cache,
        "command": command(p.pset),
        "split": SPLIT,
        "stride": stride,
        "n": len(p.holdout),
        "should_hit": sum(labels),
        "traps": len(labels) - sum(labels),
        "n_tune": len(p.tune),
        "categories": {
            c: {"should_hit": v["should_hit"], "traps": v["traps"]}
            for c, v in by_category(p.holdout, labels).items()
        },
    }


def others(ctx: Context, embedder: MemoEmbedder, p: Prepared) -> dict[str, Any]:
    """RedisVL and GPTCache on every pair of the set, reported on the holdout half."""
    labels, out = p.labels, {}
    rv = redisvl_scores(ctx, embedder, p.items)
    rv_served = [s >= rv["default_threshold"] for s, h in zip(rv["scores"], p.hold, strict=True) if h]
    out["redisvl"] = {
        "default": {
            **rates(labels, rv_served),
            "threshold": rv["default_threshold"],
            "distance_threshold": rv["default_distance_threshold"],
        },
        **score_system(rv["scores"], p.items, p.hold),
        "by_category": by_category(p.holdout, rv_served),
        "seconds": rv["seconds"],
    }
    if out["redisvl"]["fitted"]:
        out["redisvl"]["fitted"]["distance_threshold"] = round(1 - out["redisvl"]["fitted"]["threshold"], 6)

    gc = gptcache_scores(embedder, p.items)
    if "error" in gc:
        out["gptcache"] = {"error": gc["error"]}
    else:
        gc_served = [s for s, h in zip(gc["hits_at_default"], p.hold, strict=True) if h]
        out["gptcache"] = {
            "default": {**rates(labels, gc_served), "threshold": gc["default_threshold"]},
            **score_system(gc["scores"], p.items, p.hold),
            "by_category": by_category(p.holdout, gc_served),
            "evaluation": gc["evaluation"],
            "data_manager": gc["data_manager"],
            "seconds": gc["seconds"],
        }
    return out


def run(ctx: Context) -> dict[str, Any]:
    shutil.rmtree(GPTCACHE_DIR, ignore_errors=True)
    unknown = [s for s in ctx.sizes.quality_datasets if s not in SETS]
    if unknown:
        raise ValueError(f"quality_datasets {unknown}: unknown set; choose from {', '.join(SETS)}")
    code = sidecar_digest()  # the code imported here (bench.quality imports hermes_sidecar.evaluate)
    embedder = hermes_embedder()
    versions: dict[str, str | None] = {}
    for dist in ("redisvl", "gptcache", "faiss-cpu", "sqlalchemy", "fow-cache"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = None
    result: dict[str, Any] = {
        "versions": versions,
        "embedder": embedder.name,
        "dims": embedder.dims,
        "max_wrong": MAX_WRONG,
        "split": SPLIT,
        "fow_dir_command": FOW_DIR_COMMAND,
        "datasets": {},
    }
    stride = ctx.sizes.quality_stride
    sets = result["datasets"]
    with tempfile.TemporaryDirectory(prefix="bench-quality-") as tmp:
        prepared = {name: prepare(SETS[name], stride, Path(tmp)) for name in ctx.sizes.quality_datasets}
        # Embed every text once, up front, so no cache's timing includes first-time embedding.
        embedder.batch([_text(i[side]) for p in prepared.values() for i in p.items for side in ("a", "b")])
        # Hermes first, every set back to back: the sidecar's code is read at import and by each CLI run,
        # so the time in which a change to it can split one run's figures is kept short (and detected).
        for name, p in prepared.items():
            sets[name] = describe(p, stride)
            try:
                sets[name]["hermes"] = hermes_results(
                    embedder, p.files, p.tune, p.holdout, ctx.sizes.quality_sweep_points
                )
            except Skip as exc:
                sets[name]["hermes"] = {"skipped": str(exc)}
            print(f"[bench] quality: Hermes Cache on {name}", file=sys.stderr, flush=True)
        result["sidecar_code"] = code
        result["sidecar_code_changed"] = sidecar_digest() != code
        for name, p in prepared.items():
            with Timer() as t:
                sets[name].update(others(ctx, embedder, p))
            print(
                f"[bench] quality: RedisVL, GPTCache on {name} in {t.seconds:.0f} s",
                file=sys.stderr,
                flush=True,
            )
    result["texts_embedded"] = embedder.texts_embedded
    result["embedding_seconds"] = embedder.seconds_embedding
    return result


if __name__ == "__main__":  # pragma: no cover - manual use: python -m bench.quality
    from bench.common import QUICK, context_from_env

    write_json(ROOT / "bench" / "out" / "quality.json", run(context_from_env(QUICK)))
