"""contrast(): each category refuses look-alikes and lets real paraphrases through."""

from __future__ import annotations

import time

import pytest

from sluice.cache.semantic.guard import contrast

COMPATIBLE = [
    ("How do I reset my password?", "I forgot my password, how can I change it?"),
    ("How do I sort a list in Python?", "What's the way to order a python list?"),
    ("Why won't my app start?", "My app does not start, why?"),
    ("Refund order 1,000 please", "please refund order 1000"),
    ("Can I get a refund after 30 days?", "Is a refund possible after thirty days?"),
    ("Meeting at 3pm tomorrow", "Meeting at 15:00 tomorrow"),
    ("May I ask about my bill?", "Can I ask about my bill?"),
    ("What is the capital of France?", "France's capital city is what?"),
    ("Paris hotels near the river", "hotels in Paris close to the river"),
    ("Is it raining now?", "Is it raining today?"),
    ("Budget of 10k for the trip", "a budget of 10,000 for the trip"),
    ("Convert a PDF to Word", "How do I turn a PDF into a Word document?"),
    ("HOW DO I EXPORT MY DATA", "how do i export my data"),
    ("How To Change My Email Address", "change email address"),
    ("How far is the Moon from Earth?", "What is the distance between the Earth and the Moon?"),
    ("Is it unsafe to swim after eating?", "Is swimming after a meal unsafe?"),
]


@pytest.mark.parametrize(("a", "b"), COMPATIBLE)
def test_paraphrases_are_compatible(a: str, b: str) -> None:
    assert contrast(a, b) is None
    assert contrast(b, a) is None


REFUSED = [
    # numbers, amounts, versions
    ("number", "Install requests in Python 3.11", "Install requests in Python 3.12"),
    ("number", "Can I return it within 14 days?", "Can I return it within 30 days?"),
    ("number", "Is a $50 fee normal?", "Is a $500 fee normal?"),
    ("number", "Split the bill between two people", "Split the bill between three people"),
    ("number", "What's 15% of 80?", "What's 15% of 60?"),
    # dates, times, weekdays, months
    ("date", "Is the store open on Monday?", "Is the store open on Sunday?"),
    ("date", "Flights to London in May", "Flights to London in June"),
    ("date", "Train at 9am", "Train at 9pm"),
    ("date", "Weather forecast for tomorrow", "Weather forecast for today"),
    ("date", "Tax rules for 2023", "Tax rules for 2024"),
    ("date", "Sales figures for next week", "Sales figures for last week"),
    # named entities, products, places, codes
    ("entity", "How do I cancel my Netflix subscription?", "How do I cancel my Spotify one?"),
    ("entity", "Best time to visit Japan", "Best time to visit Korea"),
    ("entity", "What does ECONNRESET mean?", "What does ETIMEDOUT mean?"),
    ("number", "What does error E404 mean?", "What does error E500 mean?"),
    ("entity", "How do I use os.path.join?", "How do I use os.path.split?"),
    ("entity", "Connect to AWS from my laptop", "Connect to GCP from my laptop"),
    ("entity", "Set up an iPhone", "Set up a Pixel phone"),
    # negation
    ("negation", "Can I pay with a card?", "Can I pay without a card?"),
    ("negation", "Why does my build pass?", "Why doesn't my build pass?"),
    ("negation", "Is this medicine safe during pregnancy?", "Is this medicine never safe?"),
    ("negation", "Which fruits contain vitamin C?", "Which fruits contain no vitamin C?"),
    ("negation", "I can log in", "I can't log in"),
    ("negation", "Is it safe to fly while pregnant?", "Why is it unsafe to fly while pregnant?"),
    ("negation", "Is this coupon valid?", "Is this coupon invalid?"),
    # direction, comparison, opposites
    ("direction", "How do I upload a file?", "How do I download a file?"),
    ("direction", "Should I buy shares now?", "Should I sell shares now?"),
    ("direction", "Take it before meals", "Take it after meals"),
    ("direction", "Import contacts from a CSV", "Export contacts to a CSV"),
    ("direction", "Is Python faster than Java?", "Is Java faster than Python?"),
    ("direction", "Convert 100 USD to EUR", "Convert 100 EUR to USD"),
    (
        "direction",
        "Is it cheaper to fly to Rome than to Milan?",
        "Cheaper to fly to Milan than to Rome?",
    ),
    ("direction", "How to increase my credit limit", "How to decrease my credit limit"),
    ("direction", "Find the max of a list", "Find the min of a list"),
    (
        "direction",
        "Move files from the server to my laptop",
        "Move files from my laptop to the server",
    ),
]


@pytest.mark.parametrize(("kind", "a", "b"), REFUSED)
def test_look_alikes_are_refused_with_the_reason(kind: str, a: str, b: str) -> None:
    reason = contrast(a, b)
    assert reason is not None and reason.startswith(kind + ":"), reason
    back = contrast(b, a)
    assert back is not None and back.startswith(kind + ":"), back


def test_reasons_name_the_difference() -> None:
    assert contrast("Python 3.11", "Python 3.12") == "number: 3.11 vs 3.12"
    assert contrast("open on Monday", "open on Friday") == "date: monday vs friday"
    assert contrast("upload it", "download it") == "direction: upload vs download"


def test_identical_and_empty_texts_are_compatible() -> None:
    assert contrast("", "") is None
    text = "Why was I charged twice for order #4471 on 2 May?"
    assert contrast(text, text) is None


def test_is_fast() -> None:
    pairs = [(a, b) for _, a, b in REFUSED] + COMPATIBLE
    started = time.perf_counter()
    for _ in range(20):
        for a, b in pairs:
            contrast(a, b)
    per_pair = (time.perf_counter() - started) / (20 * len(pairs))
    assert per_pair < 100e-6  # memoised features: a few µs per pair


def test_a_shouted_question_has_words_not_acronyms() -> None:
    # In an all-caps question capitals mark nothing: a dictionary word there is no entity, so
    # a real-word typo ("PLANT" for "plan") reaches the verifier instead of an entity veto.
    shouted = "WHAT HAPPENS TO MY DATA WHEN I MOVE TO THE FREE PLANT?"
    assert contrast(shouted, "What happens to my data when I move to the free plan?") is None
    # ... while its non-words stay names, and a capitalised name on the other side still counts.
    refused = contrast("HOW DO I SET UP SSO FOR MY TEAM?", "How do I set up login for my team?")
    assert refused == "entity: sso on one side only"
    assert contrast("IS THE TEAM PLAN LIMIT 5?", "Is the Family plan limit 5?") is not None
