"""Look-alike edits: change one detail of a question so that it needs another answer.

Each kind is a list of word pairs (either side may replace the other, whole words only) or
a small function. `lookalike(text, kind, rng)` returns the edited text or None when the kind
does not apply. The pairs are deliberately broad (hundreds of them): the verifier must learn
"one meaning-carrying word changed", not a fixed list.
"""

from __future__ import annotations

import random
import re

SWAPS: dict[str, tuple[tuple[str, str], ...]] = {
    "direction": (
        ("ship to", "ship from"), ("fly to", "fly from"), ("travel to", "travel from"),
        ("calls to", "calls from"), ("transfer to", "transfer from"),
        ("to the airport", "from the airport"), ("switch to", "switch away from"),
        ("buy", "sell"), ("upload", "download"), ("import", "export"),
        ("send", "receive"), ("sent", "received"), ("incoming", "outgoing"), ("lend", "borrow"),
        ("push", "pull"), ("encrypt", "decrypt"), ("deposit", "withdraw"), ("into", "out of"),
        ("upgrade", "downgrade"), ("inbound", "outbound"), ("arrive", "depart"),
        ("arrival", "departure"), ("buying", "selling"), ("pay", "get paid"), ("give", "take"),
        ("join", "leave"), ("login", "logout"), ("sign in", "sign out"), ("log in", "log out"),
        ("enter", "exit"), ("raise", "lower"), ("increase", "decrease"), ("add", "remove"),
        ("install", "uninstall"), ("connect", "disconnect"), ("subscribe", "unsubscribe"),
        ("enable", "disable"), ("turn on", "turn off"), ("open", "close"), ("start", "stop"),
        ("lock", "unlock"), ("freeze", "unfreeze"), ("show", "hide"), ("mute", "unmute"),
        ("follow", "unfollow"), ("pause", "resume"), ("activate", "deactivate"),
        ("create", "delete"), ("encode", "decode"), ("zip", "unzip"), ("expand", "collapse"),
        ("charge", "refund"), ("charged", "refunded"), ("hire", "fire"), ("load", "unload"),
        ("read", "write"), ("copy", "move"), ("compress", "decompress"),
    ),
    "preposition": (
        ("within", "after"), ("before", "after"), ("over", "under"), ("above", "below"),
        ("during", "after"), ("until", "after"), ("inside", "outside"), ("more than", "less than"),
        ("at least", "at most"), ("up to", "over"), ("since", "until"),
        ("in advance", "afterwards"), ("with", "without"),
        ("prior to", "following"), ("earlier than", "later than"),
    ),
    "antonym": (
        ("avoid", "have"), ("avoid", "eat"), ("avoid", "drink"), ("safe", "dangerous"),
        ("allowed", "forbidden"), ("hot", "cold"), ("cheap", "expensive"), ("cheaper", "pricier"),
        ("early", "late"), ("earlier", "later"), ("lose", "gain"), ("fast", "slow"),
        ("faster", "slower"), ("higher", "lower"), ("bigger", "smaller"), ("larger", "smaller"),
        ("longer", "shorter"), ("minimum", "maximum"), ("best", "worst"), ("pass", "fail"),
        ("accept", "reject"), ("include", "exclude"), ("included", "excluded"),
        ("public", "private"), ("online", "offline"), ("free", "paid"), ("new", "old"),
        ("same", "different"), ("good", "bad"), ("heavy", "light"), ("empty", "full"),
        ("local", "remote"), ("approve", "deny"), ("win", "lose"), ("strong", "weak"),
        ("increase", "reduce"), ("raise", "lower"), ("high", "low"), ("easy", "hard"),
        ("wet", "dry"), ("healthy", "unhealthy"), ("legal", "illegal"), ("valid", "invalid"),
        ("success", "failure"), ("succeed", "fail"), ("true", "false"), ("visible", "hidden"),
        ("adult", "child"), ("adults", "children"), ("day", "night"), ("morning", "evening"),
        ("summer", "winter"), ("north", "south"), ("east", "west"), ("left", "right"),
        ("top", "bottom"), ("front", "back"), ("debit", "credit"), ("income", "expense"),
        ("profit", "loss"), ("sunrise", "sunset"), ("domestic", "international"),
        ("economy", "business"), ("fresh", "frozen"), ("raw", "cooked"), ("soft", "hard"),
        ("mild", "severe"), ("acute", "chronic"), ("positive", "negative"), ("warm", "cool"),
        ("more", "less"), ("most", "least"), ("remember", "forget"),
        ("keep", "lose"), ("accepted", "declined"), ("approved", "rejected"),
    ),
    "quantifier": (
        ("all", "some"), ("every", "one"), ("all", "none of the"), ("always", "never"),
        ("both", "either"), ("many", "few"), ("each", "any"), ("everyone", "someone"),
        ("everything", "something"), ("multiple", "single"), ("several", "one"),
        ("always", "sometimes"), ("often", "rarely"),
    ),
    "condition": (
        ("if", "unless"), ("when", "unless"), ("even if", "only if"), ("because", "although"),
        ("before", "instead of"), ("while", "after"),
    ),
    "ordinal": (
        ("first", "second"), ("first", "last"), ("second", "third"), ("next", "previous"),
        ("last", "next"), ("latest", "oldest"), ("newest", "oldest"), ("1st", "2nd"),
        ("most recent", "first"), ("primary", "secondary"), ("initial", "final"),
        ("third", "fourth"), ("final", "first"),
    ),
    "compound": (
        ("check-in", "check-out"), ("check in", "check out"), ("log in", "log out"),
        ("sign in", "sign out"), ("sign up", "sign in"), ("pick up", "drop off"),
        ("pick-up", "drop-off"), ("carry-on", "checked"), ("one-way", "round-trip"),
        ("full-time", "part-time"), ("pre-tax", "after-tax"), ("in-store", "online"),
        ("take off", "land"), ("set up", "tear down"), ("opt in", "opt out"),
        ("opt-in", "opt-out"), ("prepaid", "postpaid"), ("upstairs", "downstairs"),
        ("non-stick", "stainless steel"), ("two-factor", "single-factor"),
    ),
    "unit": (
        ("GB", "MB"), ("TB", "GB"), ("km", "miles"), ("kg", "lb"), ("mg", "g"),
        ("minutes", "hours"), ("hours", "days"), ("days", "weeks"), ("weeks", "months"),
        ("months", "years"), ("ml", "litres"), ("per day", "per week"), ("monthly", "yearly"),
        ("per month", "per year"), ("a month", "a year"), ("daily", "weekly"),
        ("Celsius", "Fahrenheit"), ("dollars", "euros"), ("USD", "EUR"), ("euros", "pounds"),
        ("Mbps", "Gbps"), ("inches", "centimetres"), ("ounces", "grams"), ("cups", "tablespoons"),
        ("teaspoons", "tablespoons"), ("hour", "day"), ("day", "week"), ("week", "month"),
        ("month", "year"), ("pounds", "kilograms"), ("IU", "mg"),
    ),
    "date": (
        ("Monday", "Friday"), ("Tuesday", "Thursday"), ("Saturday", "Sunday"),
        ("Wednesday", "Monday"), ("January", "July"), ("March", "May"), ("June", "December"),
        ("April", "October"), ("today", "tomorrow"), ("yesterday", "today"),
        ("this month", "last month"), ("this month", "next month"), ("this year", "last year"),
        ("this week", "next week"), ("tonight", "tomorrow night"), ("weekend", "weekday"),
        ("spring", "autumn"), ("Christmas", "Easter"), ("morning", "afternoon"),
        ("2024", "2025"), ("2025", "2026"), ("last year", "next year"),
    ),
}  # fmt: skip

ENTITIES: tuple[tuple[str, ...], ...] = (
    ("Python", "JavaScript", "Java", "Rust", "Go", "C#", "Ruby", "PHP", "TypeScript", "Kotlin"),
    ("Node", "Deno", "Django", "Flask", "React", "Vue", "Angular", "Spring", "Rails"),
    ("PostgreSQL", "MySQL", "SQLite", "MongoDB", "Redis", "Oracle", "Postgres"),
    ("Docker", "Kubernetes", "Podman", "Vagrant"),
    ("git", "svn", "mercurial"), ("pip", "conda", "npm", "yarn", "poetry"),
    ("pandas", "numpy", "polars"), ("CSS", "HTML", "SVG"), ("JSON", "YAML", "XML", "CSV", "PDF"),
    ("Windows", "macOS", "Linux", "Ubuntu"), ("iPhone", "Android", "iPad", "Pixel"),
    ("Chrome", "Firefox", "Safari", "Edge"), ("Alexa", "Google Home", "Siri", "HomeKit"),
    ("PayPal", "Apple Pay", "Google Pay", "Visa", "Mastercard", "bank transfer", "Klarna"),
    ("Basic", "Pro", "Team", "Enterprise", "Business", "Premium", "Starter", "Family", "Solo"),
    ("Canada", "Mexico", "Germany", "France", "Japan", "China", "Brazil", "Australia", "the UK",
     "Spain", "Italy", "India", "Norway", "Iceland", "Austria", "the US", "Ireland"),
    ("Paris", "London", "Berlin", "Tokyo", "Madrid", "Rome", "Florence", "Chicago", "Boston",
     "Edinburgh", "Lisbon", "Amsterdam", "Dublin", "Sydney", "New York", "Toronto"),
    ("Spanish", "German", "French", "Italian", "Portuguese", "Japanese", "Chinese", "English"),
    ("ibuprofen", "paracetamol", "aspirin", "naproxen", "antihistamines", "codeine"),
    ("flu", "cold", "COVID", "migraine", "allergy", "strep throat", "bronchitis"),
    ("iron", "calcium", "vitamin D", "vitamin C", "protein", "fiber", "magnesium", "zinc"),
    ("coffee", "tea", "alcohol", "milk", "juice", "water", "soda"),
    ("blender", "toaster", "kettle", "microwave", "dishwasher", "air fryer", "coffee machine",
     "vacuum", "fridge", "washing machine"),
    ("laptop", "tablet", "phone", "smartwatch", "camera", "monitor", "keyboard", "printer",
     "headphones", "earbuds", "router", "thermostat", "TV"),
    ("jacket", "shoes", "dress", "shirt", "jeans", "coat", "boots", "sofa", "bed", "table"),
    ("red", "blue", "black", "white", "green", "silver"),
    ("dog", "cat", "rabbit", "parrot", "hamster"), ("dogs", "cats", "rabbits", "horses"),
    ("grapes", "carrots", "chocolate", "apples", "onions"),
    ("rice", "pasta", "bread", "potatoes", "quinoa"),
    ("salmon", "chicken", "beef", "tofu", "pork", "steak"),
    ("eggs", "butter", "sugar", "flour", "milk"),
    ("admin", "member", "owner", "guest", "viewer", "editor"),
    ("password", "PIN", "username", "email", "phone number", "security question"),
    ("credit card", "debit card", "gift card", "bank account", "savings account",
     "checking account"),
    ("invoice", "receipt", "statement", "quote", "order confirmation"),
    ("Moon", "Sun", "Mars", "Venus"), ("Earth", "Mars", "the Moon"),
    ("Austen", "Dickens", "Tolstoy"), ("Australia", "Austria", "Canada", "New Zealand"),
    ("hotel", "hostel", "apartment", "campsite"), ("train", "bus", "ferry", "plane", "car"),
    ("carpet", "sofa", "mattress", "shirt", "wooden floor"),
    ("plants", "lawn", "tomatoes", "orchids"),
)  # fmt: skip

_NUMBER = re.compile(r"(?<![\w.])(\$|€|£)?(\d+(?:[.,]\d+)?)(?![\w.]*\d)")
_NUMBER_WORDS = (
    "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "twelve",
    "twenty", "thirty", "fifty", "hundred",
)  # fmt: skip
_NEG_ADD = (
    (r"\b(can|could|should|would|do|does|did|is|are|was|were|has|have|must)( I| you| we| they"
     r"| it| he| she| the| my| this| a| an| children| kids| dogs| pets| guests)\b", "n't"),
)  # fmt: skip
_IRREGULAR_NEG = {"can": "can't", "will": "won't", "shall": "shan't"}


def _word_re(word: str) -> re.Pattern[str]:
    return re.compile(rf"(?<![\w-]){re.escape(word)}(?![\w-])", re.IGNORECASE)


def _match_case(src: str, new: str) -> str:
    if src[:1].isupper() and new[:1].islower():
        return new[:1].upper() + new[1:]
    return new


def swap_word(text: str, pairs: tuple[tuple[str, str], ...], rng: random.Random) -> str | None:
    """Replace one side of a random applicable pair by the other side (first occurrence)."""
    options = []
    for a, b in pairs:
        for src, dst in ((a, b), (b, a)):
            m = _word_re(src).search(text)
            if m:
                options.append((m, dst))
    if not options:
        return None
    m, dst = rng.choice(options)
    return text[: m.start()] + _match_case(m.group(0), dst) + text[m.end() :]


def number(text: str, rng: random.Random) -> str | None:
    found = list(_NUMBER.finditer(text))
    if not found:
        return _number_word(text, rng)
    m = rng.choice(found)
    raw = m.group(2).replace(",", "")
    value = float(raw)
    candidates = [value + 1, value * 2, max(value - 1, 0), value + 10, value * 10, value / 2]
    new = rng.choice([c for c in candidates if c != value and c > 0] or [value + 1])
    shown = str(int(new)) if new == int(new) and "." not in raw else f"{new:.2f}".rstrip("0")
    return text[: m.start(2)] + shown + text[m.end(2) :]


def _number_word(text: str, rng: random.Random) -> str | None:
    present = [w for w in _NUMBER_WORDS if _word_re(w).search(text)]
    if not present:
        return None
    src = rng.choice(present)
    dst = rng.choice([w for w in _NUMBER_WORDS if w != src])
    return _word_re(src).sub(lambda m: _match_case(m.group(0), dst), text, count=1)


def entity(text: str, rng: random.Random) -> str | None:
    options = []
    for group in ENTITIES:
        for name in group:
            m = _word_re(name).search(text)
            if (m and m.group(0)[:1] == name[:1]) or (m and name.islower()):
                options.append((m, group, name))
    if not options:
        return None
    m, group, name = rng.choice(options)
    dst = rng.choice([g for g in group if g.lower() != name.lower()])
    return text[: m.start()] + dst + text[m.end() :]


def negation(text: str, rng: random.Random) -> str | None:
    """Negate a question that is not negated, or drop the negation of one that is."""
    m = re.search(r"\b(\w+)n't\b", text)
    if m:
        base = {"can": "can", "won": "will", "don": "do", "ca": "can", "wo": "will"}
        stem = base.get(m.group(1).lower(), m.group(1))
        return text[: m.start()] + _match_case(m.group(0), stem) + text[m.end() :]
    m = re.search(r"\b(not|never) ", text)
    if m:
        return text[: m.start()] + text[m.end() :]
    m = re.search(r"\b(without)\b", text)
    if m:
        return text[: m.start()] + "with" + text[m.end() :]
    pattern, suffix = _NEG_ADD[0]
    m = re.search(pattern, text, re.IGNORECASE)
    if m:
        aux = m.group(1)
        neg = _IRREGULAR_NEG.get(aux.lower(), aux.lower() + suffix)
        return text[: m.start(1)] + _match_case(aux, neg) + text[m.end(1) :]
    m = re.search(r"\b(I|we|they|it) (was|were|got|received|have|can|will)\b", text)
    if m:
        return text[: m.end(1)] + " " + _negate_verb(m.group(2)) + text[m.end(2) :]
    return None


def _negate_verb(verb: str) -> str:
    return {
        "was": "was not",
        "were": "were not",
        "got": "did not get",
        "received": "did not receive",
        "have": "do not have",
        "can": "cannot",
        "will": "will not",
    }[verb]


_ROLE_MARKERS = re.compile(
    r"\b(from )?([\w$€£.-]+(?: [A-Z]\w+)?) (to|than|into|over|for) ([\w$€£.-]+(?: [A-Z]\w+)?)"
)
_STOP = frozenset(
    "a an the my your our their this that it i you we do does is are be to".split()  # noqa: SIM905
)


def role(text: str, rng: random.Random) -> str | None:
    """Swap the two sides of an asymmetric relation: "A to B" -> "B to A", "A than B"."""
    spots = []
    for m in _ROLE_MARKERS.finditer(text):
        a, b = m.group(2), m.group(4)
        if a.lower() in _STOP or b.lower() in _STOP or a.lower() == b.lower():
            continue
        if not (a[:1].isupper() or a[:1].isdigit() or b[:1].isupper() or m.group(1)):
            continue
        spots.append(m)
    if not spots:
        return None
    m = rng.choice(spots)
    head = m.group(1) or ""
    new = f"{head}{m.group(4)} {m.group(3)} {m.group(2)}"
    return text[: m.start()] + new + text[m.end() :]


def lookalike(text: str, kind: str, rng: random.Random) -> str | None:
    """The edited text, or None when `kind` does not apply (or changes nothing)."""
    if kind in SWAPS:
        out = swap_word(text, SWAPS[kind], rng)
    else:
        out = {"number": number, "entity": entity, "negation": negation, "role": role}[kind](
            text, rng
        )
    return out if out is not None and out.strip() != text.strip() else None


KINDS = (*SWAPS, "number", "entity", "negation", "role")
