"""Word lists the contrast guard (`guard.py`) reads: negation cues, dates, opposites, numbers."""

from __future__ import annotations

NEGATIONS = frozenset(
    [
        "not",
        "no",
        "never",
        "none",
        "nobody",
        "nothing",
        "nowhere",
        "neither",
        "nor",
        "without",
        "cannot",
        "cant",
        "dont",
        "doesnt",
        "didnt",
        "isnt",
        "arent",
        "wasnt",
        "werent",
        "wont",
        "wouldnt",
        "shouldnt",
        "couldnt",
        "hasnt",
        "havent",
        "hadnt",
        "mustnt",
        "neednt",
        "aint",
        "unable",
    ]
)

NUMBER_WORDS = {
    "zero": 0, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
    "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13,
    "fourteen": 14, "fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18,
    "nineteen": 19, "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60,
    "seventy": 70, "eighty": 80, "ninety": 90, "hundred": 100, "thousand": 1000,
    "million": 1_000_000, "billion": 1_000_000_000, "dozen": 12, "double": 2,
    "twice": 2, "triple": 3,
}  # fmt: skip

WEEKDAYS = frozenset(["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"])
MONTHS = {
    "january": 1, "jan": 1, "february": 2, "feb": 2, "march": 3, "april": 4, "apr": 4,
    "may": 5, "june": 6, "jun": 6, "july": 7, "jul": 7, "august": 8, "aug": 8,
    "september": 9, "sept": 9, "sep": 9, "october": 10, "oct": 10, "november": 11,
    "nov": 11, "december": 12, "dec": 12,
}  # fmt: skip
# Month names that are also common words count only next to a number or a date preposition.
AMBIGUOUS_MONTHS = frozenset({"may", "march", "jan", "sep", "oct", "nov", "dec", "aug"})
DATE_PREPOSITIONS = frozenset(
    ["in", "of", "since", "until", "till", "by", "early", "late", "mid", "last", "next", "this"]
)
# Words naming "when", mapped to one value so that paraphrases (now / today) agree.
WHEN_WORDS = {
    "today": "today", "now": "today", "currently": "today", "tonight": "tonight",
    "tomorrow": "tomorrow", "yesterday": "yesterday", "morning": "morning",
    "afternoon": "afternoon", "evening": "evening", "night": "night", "overnight": "night",
    "weekend": "weekend", "weekends": "weekend", "weekday": "weekday", "weekdays": "weekday",
    "noon": "noon", "midday": "noon", "midnight": "midnight", "spring": "spring",
    "summer": "summer", "autumn": "autumn", "winter": "winter", "daily": "daily",
    "weekly": "weekly", "monthly": "monthly", "yearly": "yearly", "annually": "yearly",
    "annual": "yearly", "hourly": "hourly", "quarterly": "quarterly",
}  # fmt: skip
RELATIVE_WHEN = frozenset({"next", "last", "this", "previous", "coming"})
PERIODS = frozenset({"week", "month", "year", "quarter", "day", "weekend"})


def _forms(word: str) -> set[str]:
    """A word and its regular inflections: add -> adds, added, adding."""
    forms = {word, word + "s", word + "es", word + "ed", word + "d", word + "ing"}
    if word.endswith("e"):
        forms |= {word[:-1] + "ing", word + "r", word[:-1] + "ion"}
    if word.endswith("y"):
        forms |= {word[:-1] + "ies", word[:-1] + "ied"}
    if len(word) <= 4 and word[-1] not in "aeiouwy":
        forms |= {word + word[-1] + "ed", word + word[-1] + "ing"}
    return forms


def _pair(left: str, right: str) -> tuple[frozenset[str], frozenset[str]]:
    def side(words: str) -> frozenset[str]:
        return frozenset(f for w in words.split() for f in _forms(w))

    return side(left), side(right)


# Each pair names two sides that change the answer: "buy" vs "sell", "before" vs "after".
OPPOSITES: tuple[tuple[frozenset[str], frozenset[str]], ...] = tuple(
    _pair(a, b)
    for a, b in [
        ("increase raise grow", "decrease reduce lower shrink cut"),
        ("upload", "download"),
        ("import", "export"),
        ("buy purchase", "sell"),
        ("min minimum smallest lowest", "max maximum largest biggest highest"),
        ("more", "less fewer"),
        ("most", "least fewest"),
        ("higher", "lower"),
        ("faster quicker", "slower"),
        ("bigger larger", "smaller"),
        ("cheaper", "pricier"),
        ("better", "worse"),
        ("best", "worst"),
        ("enable activate", "disable deactivate"),
        ("lock", "unlock"),
        ("install", "uninstall"),
        ("add insert", "remove delete"),
        ("encrypt", "decrypt"),
        ("encode", "decode"),
        ("compress zip", "decompress unzip extract"),
        ("push", "pull"),
        ("send", "receive"),
        ("upgrade", "downgrade"),
        ("start begin", "stop end finish"),
        ("before", "after"),
        ("above", "below"),
        ("inside", "outside"),
        ("input", "output"),
        ("left", "right"),
        ("north", "south"),
        ("east", "west"),
        ("first", "last"),
        ("earlier", "later"),
        ("early", "late"),
        ("win", "lose"),
        ("hot warm", "cold cool"),
        ("credit", "debit"),
        ("deposit", "withdraw withdrawal withdrawn"),
        ("subscribe", "unsubscribe"),
        ("connect", "disconnect"),
        ("ascending", "descending"),
        ("accept approve allow", "reject deny block decline"),
        ("include", "exclude"),
        ("serialize", "deserialize"),
        ("merge", "split"),
        ("mount", "unmount"),
        ("show", "hide"),
        ("maximize", "minimize"),
        ("advantage pro benefit", "disadvantage con drawback risk"),
        ("arrive arrival", "depart departure leave"),
        ("inbound incoming", "outbound outgoing"),
        ("positive", "negative"),
        ("true", "false"),
        ("borrow", "lend"),
        ("gain", "loss lose"),
        ("client", "server"),
        ("sender", "recipient receiver"),
        ("uppercase upper", "lowercase lower"),
        ("open", "close"),
        ("on", "off"),
        ("overweight", "underweight"),
        ("overestimate", "underestimate"),
        ("over", "under"),
        ("same", "different"),
        ("light", "dark"),
        ("public", "private"),
        ("synchronous sync", "asynchronous async"),
        ("horizontal horizontally", "vertical vertically"),
        ("long longer", "short shorter"),
        ("adult", "child"),
        ("domestic", "international"),
        ("join", "leave"),
        ("refund", "charge"),
        ("hire", "fire"),
        ("row", "column"),
        ("parent", "child"),
    ]
)

# Words whose two sides swap meaning: "from A to B" vs "from B to A", "A faster than B".
DIRECTION_MARKERS = {
    "to": "to", "into": "to", "onto": "to", "toward": "to", "towards": "to", "from": "from",
    "than": "than", "vs": "vs", "versus": "vs", "against": "vs", "compared": "vs",
    "over": "over", "instead": "instead",
}  # fmt: skip

STOPWORDS = frozenset(
    [
        "a",
        "an",
        "the",
        "my",
        "your",
        "our",
        "their",
        "his",
        "her",
        "its",
        "this",
        "that",
        "these",
        "those",
        "i",
        "me",
        "we",
        "you",
        "he",
        "she",
        "it",
        "they",
        "them",
        "us",
        "is",
        "are",
        "was",
        "were",
        "be",
        "been",
        "being",
        "am",
        "do",
        "does",
        "did",
        "doing",
        "have",
        "has",
        "had",
        "having",
        "can",
        "could",
        "should",
        "would",
        "will",
        "shall",
        "may",
        "might",
        "must",
        "of",
        "in",
        "on",
        "at",
        "by",
        "for",
        "with",
        "about",
        "as",
        "and",
        "or",
        "but",
        "if",
        "so",
        "then",
        "there",
        "here",
        "what",
        "which",
        "who",
        "whom",
        "whose",
        "when",
        "where",
        "why",
        "how",
        "please",
        "just",
        "also",
        "any",
        "some",
        "all",
        "each",
        "every",
        "very",
        "really",
        "get",
        "got",
        "make",
        "made",
        "use",
        "using",
        "want",
        "need",
        "like",
        "one",
        "way",
        "s",
        "t",
    ]
)

# Capitalised words that are not names (pronoun "I", sentence glue).
NOT_ENTITIES = frozenset(
    [
        "i",
        "i'm",
        "i've",
        "i'd",
        "i'll",
        "ok",
        "okay",
        "hi",
        "hello",
        "thanks",
        "please",
        "e.g",
        "i.e",
        "etc",
    ]
)
