"""Hand-written hard cases and multi-turn seeds: surface cues that point the wrong way.

- cheap prompts that carry code, maths symbols or long pasted text but ask for something
  simple (identify, format, convert, look up);
- conversations whose last turn is short and only makes sense with the history: a follow-up
  that asks for more hard work is strong, an acknowledgement or a cosmetic tweak is cheap.
"""

from __future__ import annotations

from typing import Any

Family = tuple[str, str, list[str], dict[str, list[Any]]]

SNIPPETS = [
    "def greet(name):\n    return f'Hello, {name}!'",
    "SELECT id, email FROM users WHERE active = true ORDER BY created_at DESC LIMIT 10;",
    "const sum = (a, b) => a + b;\nconsole.log(sum(2, 3));",
    "#include <stdio.h>\nint main() { printf(\"hi\\n\"); return 0; }",
    "fn main() {\n    let x = 5;\n    println!(\"{}\", x);\n}",
    "for f in *.txt; do echo \"$f\"; done",
    "public class Point { int x; int y; }",
    "{\"name\": \"Ada\", \"roles\": [\"admin\", \"dev\"], \"active\": true}",
]  # fmt: skip
CODE_SIMPLE_TEMPLATES = [
    "What language is this written in?\n```\n{snippet}\n```",
    "Add a comment at the top of this saying 'generated, do not edit':\n{snippet}",
    "Format this nicely:\n{snippet}",
    "Rename every variable called x to count in this (nothing else):\n```\n{snippet}\n```",
    "Is this Python or JavaScript? {snippet}",
    'Convert this JSON to YAML: {{"name": "Ada", "age": 36, "city": "London"}}',
    "What does this line print? {snippet}",
    "Translate the string literals in this snippet to French, leave the code as is:\n{snippet}",
    "Count the lines in this snippet:\n```\n{snippet}\n```",
    "Wrap this in a markdown code block with the right language tag:\n{snippet}",
]
MATHY_SIMPLE = [
    "What does the ∑ symbol mean?", "Is π exactly 3.14?", "What's the formula for the area "
    "of a circle?", "What does 'x²' mean?", "How do you write 1/4 as a percentage?",
    "What is 2^10?", "Is 0 an even number?", "What's the difference between mean and median?",
    "What does ≤ mean?", "What's 1 km in meters?", "Which is bigger, 0.5 or 0.45?",
    "What's the Pythagorean theorem?", "What is a prime number?", "Write 3.5 million in digits.",
    "Is 17 prime?", "What does 'e' stand for in 1.2e5?", "what's 12 * 12",
    "What's the derivative of x²? Just the answer.", "Round 2.675 to 1 decimal.",
    "How many sides does a hexagon have?",
]  # fmt: skip
WORDY_SIMPLE = [
    "Can you please, in detail and step by step, tell me what time your store opens on Sunday?",
    "I need a comprehensive answer: do you ship to Canada?",
    "Analyze this review and tell me if it's positive: 'Loved it, will buy again.'",
    "Compare the two prices and tell me which is cheaper: $19.99 or $21.50?",
    "Think carefully: what's the capital of Australia?",
    "Evaluate whether this sentence has a typo: 'Teh meeting is at 5.'",
    "Design question: what font does your logo use?",
    "Debug question: where do I find the error log download button in the dashboard?",
    "Explain why you need my order number to look up my order.",
    "Walk me through how to reset my password.",
    "Give me a detailed list of your office locations.",
    "Please prove you're not a robot lol",
    "Write a long, heartfelt thank-you message to the support agent who helped me yesterday.",
    "Solve this for me: what's 25% off $80?",
    "Implement the change I asked for: set my newsletter frequency to weekly.",
    "Optimize my profile: what should my username be if I like chess?",
]  # fmt: skip
CASUAL_HARD = [
    "hey so my react app re-renders like 50 times when i type in the search box, how do i "
    "make it stop without breaking the debounce",
    "quick q: whats the fastest way to check if two huge files (100GB) are identical without "
    "reading both fully twice",
    "lol my python script uses 12GB RAM reading a 2GB csv, why and how do i fix it",
    "ok so if i have 3 kids and want 200k for each by the time they're 18 (they're 2, 5 and "
    "9), how much do i save monthly at 6%?",
    "random thought but is it actually possible to sort faster than n log n? when?",
    "my cron job runs twice sometimes when we have 2 pods. ideas?",
    "can you just quickly rewrite our whole auth middleware to support both JWT and API keys "
    "without breaking existing clients",
    "pls explain like im 5 but accurately: why does https need certificates if there's "
    "already encryption",
    "whats the catch with using floats for money? give me the real answer with an example",
    "our postgres db is 900GB and backups take 9 hours. what are our options?",
    "eh, can u check my logic: if A implies B and B implies C, and not C, then not A?",
    "tiny thing: why does my docker image go from 80MB to 1.2GB when I add pandas",
]  # fmt: skip
LONG_EASY = [
    "Hello. I'm writing about the order I placed for my mother's birthday. It was a set of "
    "blue ceramic mugs, four of them, and a teapot. The website said it would arrive in 3-5 "
    "days and it has now been 8. I'm not angry, I know things get delayed, and your company "
    "has always been good to us. My mother's birthday is on Saturday so I'm a bit anxious. "
    "The order number is 77120. Can you tell me where it is?",
    "Hi, so I've been using the app for years on my old phone and I just got a new phone. "
    "I installed the app again and logged in and all my lists are there, which is great, but "
    "the reminders don't go off anymore. I checked that notifications are on in the phone "
    "settings. On the old phone they worked fine. I don't know if it's something I did. Is "
    "there a setting inside the app that I need to turn on?",
    "Good afternoon, we are a small accounting firm with six staff. Our subscription renewed "
    "last week and the invoice went to the email of someone who left the firm in the summer. "
    "Nothing is wrong with the payment itself, we just need the invoice for our records and "
    "want future invoices to go to accounts@example.com instead. Could you update that and "
    "resend the latest invoice?",
    "Dear support, I received two emails this morning, one saying my payment failed and one "
    "saying my payment was successful. I checked my bank and there is one charge of 12.99 "
    "from yesterday. My card hasn't changed and hasn't expired. I just want to know which "
    "email is right and whether I need to do anything.",
    "Hi there! I'm organising a school trip and we booked 32 tickets through your site for "
    "the 14th. One of the teachers can't come anymore and another one will go instead. The "
    "tickets have names on them. Do I need to change the name on the ticket, and if so, how?",
]  # fmt: skip

# Multi-turn: (history as alternating user/assistant texts, last user turn).
CODE_HISTORY = [
    "Write a Python function that checks whether a string is a palindrome.",
    "Here you go:\n```python\ndef is_pal(s):\n    return s == s[::-1]\n```",
]
MATH_HISTORY = [
    "What's the sum of 1 + 2 + ... + 100?",
    "It's 5050: pair 1 with 100, 2 with 99, and so on, giving 50 pairs of 101.",
]
SUPPORT_HISTORY = [
    "How do I change my billing address?",
    "Go to Settings → Billing → Address, edit the fields and press Save.",
]
ESSAY_HISTORY = [
    "Give me an outline for a report on our Q3 customer churn.",
    "1. Summary 2. Churn by segment 3. Drivers 4. Recommendations 5. Appendix",
]
DESIGN_HISTORY = [
    "We're building a job queue on PostgreSQL. Any thoughts?",
    "Use SELECT ... FOR UPDATE SKIP LOCKED to claim jobs, with a visibility timeout column.",
]
HISTORIES = {
    "code": CODE_HISTORY, "math": MATH_HISTORY, "support": SUPPORT_HISTORY,
    "essay": ESSAY_HISTORY, "design": DESIGN_HISTORY,
}  # fmt: skip
FOLLOW_STRONG = {
    "code": [
        "Now make it ignore punctuation, case and accents, and add pytest tests.",
        "ok but it has to work on a 10GB file streamed from disk",
        "Rewrite it in Rust without allocating a reversed copy.",
        "that fails on unicode combining characters, fix it properly",
    ],
    "math": [
        "Now prove the general formula for 1..n by induction.",
        "and what about the sum of the squares? derive it",
        "Generalise it to any arithmetic sequence and prove it.",
    ],
    "support": [
        "The save button errors with 'VAT ID invalid' for our Irish number IE1234567T, which is "
        "valid. Work out what format your validator expects and why it rejects this one.",
        "We have 40 sub-accounts; write a script against your API that updates all of them "
        "and reports failures.",
    ],
    "essay": [
        "Great, now write the full report from that outline, about 1,500 words, using the "
        "numbers I gave earlier.",
        "Write section 3 in depth, weighing the three drivers against each other.",
    ],
    "design": [
        "How do we make that exactly-once when the worker crashes mid-job?",
        "What happens at 5,000 jobs a second? Where does it break and what would you change?",
        "Write the schema and the claim/ack queries, with the indexes.",
    ],
}  # fmt: skip
FOLLOW_CHEAP = {
    "code": ["thanks!", "Can you rename the function to check_palindrome?", "what does [::-1] do?",
             "perfect, that works"],
    "math": ["cool, thanks", "Nice trick. Who came up with it?", "ok"],
    "support": ["thanks, found it", "And where do I change the email for invoices?",
                "great, that worked!", "Is that the same on mobile?"],
    "essay": ["Make the headings title case.", "thanks, looks good", "Add a title at the top."],
    "design": ["thanks, makes sense", "What does SKIP LOCKED stand for, is it Postgres only?",
               "ok, noted"],
}  # fmt: skip

HARD_FAMILIES_CHEAP: list[Family] = [
    ("code_simple", "qa", CODE_SIMPLE_TEMPLATES, {"snippet": SNIPPETS}),
    ("mathy_simple", "math", MATHY_SIMPLE, {}),
    ("wordy_simple", "support", WORDY_SIMPLE, {}),
    ("long_easy", "support", LONG_EASY, {}),
]
HARD_FAMILIES_STRONG: list[Family] = [
    ("casual_hard", "code", CASUAL_HARD, {}),
]
