# ruff: noqa: E501  (seed prompts are data; wrapping them would change them)
"""Hand-written seeds for prompts where a strong model's answer is materially better.

Same shape as seeds_cheap: (name, task, templates, slots).
"""

from __future__ import annotations

from typing import Any

Family = tuple[str, str, list[str], dict[str, list[Any]]]

CODE_LANGS = ["Python", "TypeScript", "Go", "Rust", "Java", "C#", "Kotlin", "Ruby", "C++"]
CODE_SPECS = [
    "merges overlapping time intervals given as (start, end) pairs, including unsorted input",
    "parses a CSV file with quoted fields and embedded newlines without a library",
    "implements an LRU cache with O(1) get and put",
    "rate-limits calls per user with a sliding window",
    "retries an HTTP request with exponential backoff and jitter, respecting Retry-After",
    "finds the shortest path in a weighted graph and returns the path, not just the cost",
    "validates an IBAN, including the mod-97 checksum",
    "deduplicates customer records that have slightly different spellings of names",
    "computes a running median over a stream of numbers",
    "serialises a tree to a string and back",
    "diffs two JSON documents and reports added, removed and changed keys by path",
    "schedules meetings across time zones given each person's working hours",
    "splits a monthly invoice pro rata when a customer changes plan mid-cycle",
    "detects cycles in a dependency graph and prints one cycle if there is one",
    "paginates through a REST API with cursor tokens and handles 429 responses",
    "implements a trie with prefix search and deletion",
    "reads a large log file in chunks and counts the top 10 IP addresses by request count",
    "converts Roman numerals to integers and back, rejecting invalid input",
    "evaluates arithmetic expressions with parentheses and operator precedence",
    "batches database writes and flushes every 500 rows or every second, whichever comes first",
    "implements a thread-safe bounded queue with blocking put and get",
    "matches wildcard patterns with * and ? against file names",
]  # fmt: skip
CODE_TEMPLATES = [
    "Write a {lang} function that {spec}.",
    "Implement something in {lang} that {spec}, and include unit tests for the edge cases.",
    "Can you code up a {lang} class that {spec}?",
    "I need {lang} code that {spec}. Please explain the complexity too.",
    "write me a {lang} script that {spec}",
    "Give me a production-quality {lang} implementation that {spec}, with error handling.",
    "hey, quick one: {lang} snippet that {spec}?",
    "We need a helper in {lang} that {spec}. Keep it idiomatic and tested.",
    "Show me how to build, in {lang}, a module that {spec}.",
    "Could you write a function (any language, {lang} preferred) that {spec}?",
    "In {lang}: a function that {spec}. Explain the edge cases you handled.",
    "Please write and test a {lang} routine that {spec}.",
]

BUGGY = [
    "def average(xs):\n    total = 0\n    for x in xs:\n        total += x\n    return total / len(xs)",
    "for i in range(len(items)):\n    if items[i].expired:\n        items.remove(items[i])",
    "const total = items.reduce((a, b) => a + b.price)",
    "func worker(ch chan int, wg sync.WaitGroup) {\n    defer wg.Done()\n    for v := range ch { process(v) }\n}",
    "def add_tag(tag, tags=[]):\n    tags.append(tag)\n    return tags",
    "let v = vec![1, 2, 3];\nlet first = &v[0];\nv.push(4);\nprintln!(\"{}\", first);",
    "SELECT customer_id, COUNT(*) FROM orders WHERE COUNT(*) > 5 GROUP BY customer_id;",
    "async function load() {\n  urls.forEach(async u => { results.push(await fetch(u)) });\n  return results;\n}",
    "if (user.role = 'admin') { grantAccess(); }",
    "public boolean equals(Object o) { return this.id == ((User) o).id; }",
    "with open(path) as f:\n    data = json.load(f)\nreturn data['items'][0]['price'] * qty",
    "counter = 0\ndef incr():\n    for _ in range(100000):\n        global counter\n        counter += 1\n# run incr in 4 threads",
]  # fmt: skip
SYMPTOMS = [
    "sometimes returns the wrong result", "crashes on some inputs", "works locally but not in CI",
    "is really slow on big inputs", "gives a different answer each run",
    "throws an exception I don't understand", "skips some elements", "hangs forever",
]  # fmt: skip
ERRORS = [
    "ZeroDivisionError: division by zero",
    "TypeError: Cannot read properties of undefined (reading 'map')",
    "fatal error: all goroutines are asleep - deadlock!",
    "error[E0502]: cannot borrow `v` as mutable because it is also borrowed as immutable",
    "java.util.ConcurrentModificationException",
    "KeyError: 'items'",
    "psycopg.errors.UniqueViolation: duplicate key value violates unique constraint",
    "RecursionError: maximum recursion depth exceeded",
    "OOMKilled (exit code 137)",
    "SSL: CERTIFICATE_VERIFY_FAILED",
]  # fmt: skip
DEBUG_TEMPLATES = [
    "My code {symptom}:\n```\n{code}\n```\nWhy, and how do I fix it?",
    "What's wrong with this?\n\n{code}",
    "This {symptom} and I can't see why:\n{code}",
    "Getting `{error}` in production, only under load, never on my machine. What are the "
    "usual causes and how do I narrow it down?",
    "yo my script keeps dying with {error}, no idea what's up. what should i check first",
    "Can you find the bug? It {symptom}.\n```\n{code}\n```",
    "I keep getting {error}. I've already tried restarting. What could cause it and how do I "
    "track it down?",
    "Explain why this snippet {symptom} and rewrite it correctly:\n{code}",
    "Our service started throwing {error} after yesterday's deploy. Nothing in the diff touches "
    "that code. How would you go about finding the root cause?",
]

PROOFS = [
    "there are infinitely many primes", "the square root of 2 is irrational",
    "the sum of the first n odd numbers is n squared", "every tree with n nodes has n-1 edges",
    "a graph is bipartite iff it has no odd cycle", "n^3 - n is divisible by 6 for every integer n",
    "the harmonic series diverges", "there is no largest even number",
    "in any group of six people, three are mutual friends or three are mutual strangers",
    "log2(3) is irrational",
]  # fmt: skip
EQUATIONS = [
    "3x^2 - 12x + 9 = 0", "2^x = 3^(x-1)", "x^3 - 6x^2 + 11x - 6 = 0", "sin(2x) = cos(x) on [0, 2pi]",
    "the system 2x + 3y = 7, 5x - y = 4", "|x - 3| + |x + 1| = 8", "log(x) + log(x - 3) = 1",
]  # fmt: skip
PROB_EVENTS = [
    "at least two people in a room of 30 share a birthday",
    "I draw two aces in a row from a shuffled deck without replacement",
    "a fair coin gives 7 or more heads in 10 flips",
    "a random 5-card hand is a full house",
    "three dice sum to exactly 10",
    "a test with 99% sensitivity and 95% specificity is right when it says positive, if 1 in "
    "1,000 people have the disease",
]  # fmt: skip
FUNCTIONS = ["x^2 * e^(3x)", "ln(x) / x", "sin(x)^3", "1 / (1 + x^2)", "x * sqrt(1 - x^2)"]
MATH_TEMPLATES = [
    "Prove that {claim}.",
    "Can you give a rigorous proof that {claim}?",
    "why is it true that {claim}? show a proof",
    "Solve {eq} and show every step.",
    "solve {eq}",
    "What's the probability that {event}? Explain how you get it.",
    "how likely is it that {event}",
    "Find the derivative of {fn} and simplify.",
    "Integrate {fn} with respect to x, step by step.",
    "Where does {fn} reach its maximum on [0, 1]? Justify it.",
    "Is it true that {claim}? If so prove it, if not give a counterexample.",
    "Walk through the solution of {eq}; I keep getting a different answer.",
    "My kid's homework asks to show that {claim}. Can you explain the proof clearly?",
    "Compute the expected value and variance involved when {event}.",
    "Find all critical points of {fn} and classify them.",
    "Solve {eq} and check each solution.",
]
MONEY_MATH = [
    "If I borrow $300,000 at 6.5% for 30 years, what's the monthly payment and the total "
    "interest? How much do I save by paying an extra $200 a month?",
    "can u figure out how much i'd save if i refinance 300k from 7% to 6% over 30 yrs, with "
    "4k closing costs? when do i break even",
    "I was on the $49 plan, upgraded to the $99 plan on the 14th of a 30-day cycle, and got "
    "charged $99 + $49. Work out what the prorated charge should have been and whether I was "
    "overcharged.",
    "Our churn is 3.2% a month and CAC is $450 with $60 ARPU at 80% margin. What's LTV, the "
    "LTV:CAC ratio, and the payback period? Is that healthy?",
    "A train leaves at 9:40 going 80 km/h, another leaves the same station at 10:15 going "
    "110 km/h on the same track. When and where does the second catch up?",
    "If I invest $500 a month at 7% annual return compounded monthly, how much do I have "
    "after 25 years, and how much of that is contributions?",
    "We have 3 warehouses and 5 stores with these shipping costs per unit: ... set it up as "
    "a linear program and tell me how you'd solve it",
    "Split a $1,275 dinner bill between 7 people where two didn't drink (drinks were $310) "
    "and one person already paid $100. Who owes what?",
]  # fmt: skip

ANALYSIS_TEMPLATES = [
    "Compare {p[0]} and {p[1]} for {use}, and recommend one with reasons.",
    "{p[0]} vs {p[1]} for {use}? Weigh the trade-offs honestly.",
    "Should we use {p[0]} or {p[1]} for {use}? We're a team of {n}.",
    "We're stuck choosing between {p[0]} and {p[1]} for {use}. What would you pick and why, "
    "and what would change your mind?",
    "What are the real risks of moving from {p[0]} to {p[1]} for {use}?",
]
ANALYSIS_PAIRS = [
    ("PostgreSQL", "MongoDB"), ("Kafka", "RabbitMQ"), ("React", "Svelte"),
    ("a monolith", "microservices"), ("AWS Lambda", "a Kubernetes cluster"),
    ("Snowflake", "BigQuery"), ("REST", "GraphQL"), ("server-side rendering", "a SPA"),
    ("leasing", "buying"), ("hiring a senior engineer", "two junior engineers"),
    ("annual pricing", "usage-based pricing"), ("Redis", "Memcached"),
]  # fmt: skip
ANALYSIS_USES = [
    "our order-tracking backend", "a reporting pipeline with 2 TB a day",
    "a B2B SaaS with 40 customers", "our event-driven billing system",
    "an internal analytics dashboard", "a mobile app backend", "our delivery vans",
]  # fmt: skip
DATA_ANALYSIS = [
    "Here are our monthly numbers: Jan 1,200 signups / 4.1% conversion, Feb 1,350 / 3.6%, "
    "Mar 1,900 / 2.9%, Apr 2,100 / 2.7%. Revenue is flat. What's going on, and what would "
    "you check next?",
    "Churn by plan last quarter: Starter 7.9%, Pro 3.1%, Business 1.2%. Support tickets per "
    "account: 0.4, 1.8, 2.6. Net promoter: 21, 38, 44. What story do these numbers tell and "
    "what should we do about Starter?",
    "Our A/B test: control 4,812 visitors / 193 purchases, variant 4,790 / 221. Is the "
    "difference significant, and should we ship the variant?",
    "Response times went from p50 120 ms / p99 900 ms to p50 110 ms / p99 2.4 s after we "
    "doubled the pods. CPU is at 35%. What are the likely explanations?",
    "Survey of 240 customers: 62% want a mobile app, 48% want integrations, 30% want lower "
    "prices, but the 40 largest accounts mostly asked for SSO and audit logs. How should we "
    "prioritise the roadmap?",
    "Sales per store per week vs. foot traffic is attached below (8 stores). Two stores have "
    "high traffic but low sales. What hypotheses would you test, and how?",
    "Ticket volume doubled in October but CSAT went up. Average handle time fell 20%. What "
    "might explain that, and what would you look at to confirm?",
]  # fmt: skip

SYSTEMS = [
    "a URL shortener", "a rate limiter shared by 20 API servers", "a notification service "
    "for email, SMS and push", "a multi-tenant billing system", "an audit log that cannot be "
    "tampered with", "a job queue with retries and dead letters", "a feature-flag service",
    "a search index for 50 million products", "an offline-first mobile sync engine",
    "a ride-matching service", "a webhook delivery system with at-least-once delivery",
    "a permissions model for nested teams and shared folders",
]  # fmt: skip
DESIGN_TEMPLATES = [
    "Design {system}. Cover the data model, the APIs, scaling and failure modes.",
    "How would you architect {system} for about {scale}?",
    "Sketch a design for {system}; what are the hard parts?",
    "we need {system}, where do we even start? ~{scale}",
    "Propose a database schema for {system} and explain the indexes you'd add.",
    "Review this plan: {system} as one service with a single Postgres. Where does it break "
    "at {scale}, and what would you change first?",
    "Write a design doc outline for {system}, with the trade-offs of each major choice.",
    "How do we test {system} properly, including failure injection? Be concrete.",
    "What would a robust design for {system} look like if it must survive a region outage?",
    "We already run {system} on one big MySQL box. Plan its move to a new datastore with "
    "zero downtime.",
]
SCALES = ["10k requests a second", "5 million users", "200 tenants", "1 TB of new data a day"]

WRITING_TEMPLATES = [
    "Draft a carefully worded email to {audience} about {matter}. It must be honest without "
    "admitting legal liability.",
    "Write an apology to {audience} for {matter}; keep it human, specific, and avoid sounding "
    "defensive.",
    "Help me write a message to {audience} explaining {matter}. The tone really matters here.",
    "Write a 1,000-word essay on {essay}, with a clear argument and counterarguments.",
    "I need a persuasive one-page memo for {audience} on {matter}.",
    "Write a thoughtful blog post on {essay} for a technical audience.",
    "Draft the announcement to {audience} about {matter}, plus an FAQ for the support team.",
    "We have to tell {audience} about {matter}. Draft the message and tell me which "
    "sentences carry legal or reputational risk.",
    "Write the talking points for a call with {audience} about {matter}, including how to "
    "answer the three hardest questions they will ask.",
    "Review my draft to {audience} about {matter} and rewrite it so it is clear, honest and "
    "not defensive: 'We apologise for any inconvenience this may have caused.'",
    "Write a long-form op-ed arguing a position on {essay}, then the strongest rebuttal.",
    "Draft a sensitive but direct internal note to {audience} about {matter}.",
]
AUDIENCES = [
    "our enterprise customers", "the whole company", "a customer whose data was exposed",
    "our investors", "a long-time client we are dropping", "the engineering team",
    "a candidate we are rejecting after five interviews", "the board",
]  # fmt: skip
MATTERS = [
    "a security incident that exposed email addresses", "a 30% price increase",
    "layoffs in the support team", "a missed delivery deadline of six weeks",
    "discontinuing the product they rely on", "a billing error that overcharged 2,000 accounts",
    "a change to our data retention policy", "an outage that lasted 11 hours",
]  # fmt: skip
ESSAYS = [
    "whether remote work helps or hurts junior engineers", "the ethics of dark patterns",
    "why most software estimates are wrong", "the trade-offs of open-sourcing a core product",
    "what the printing press can teach us about AI", "technical debt as a financial metaphor",
]  # fmt: skip

REASONING = [
    "All managers attend the Monday meeting. Some people who attend the Monday meeting are "
    "contractors. Can we conclude that some managers are contractors? Explain.",
    "Five people (A-E) sit in a row. A is not next to B, C is left of D, E is at an end, and "
    "B is in the middle. List every valid arrangement.",
    "I have 8 identical-looking coins and one is heavier. What's the minimum number of "
    "weighings on a balance to find it, and how?",
    "A bat and a ball cost $1.10, the bat costs $1 more than the ball. How much is the ball? "
    "Explain why the intuitive answer is wrong.",
    "Three boxes are all labelled wrong: apples, oranges, mixed. You may draw one fruit from "
    "one box. How do you relabel all three?",
    "We must schedule 6 interviews in 3 rooms over 2 hours; Ana can't be before Ben, Chen "
    "needs room 2, and nobody does two in a row. Is it possible? Give a schedule or prove "
    "it isn't.",
    "If it takes 5 machines 5 minutes to make 5 widgets, how long for 100 machines to make "
    "100 widgets? Show the reasoning.",
    "Our on-call rota has 7 engineers, each must do 2 weekend days a month, nobody two "
    "weekends in a row, and Sam is away the 2nd weekend. Build a valid rota for a 4-weekend "
    "month or explain why not.",
    "Is the following argument valid? 'If the server is down, alerts fire. Alerts did not "
    "fire. So the server is up.' And what if alerts can be muted?",
]  # fmt: skip

SHORT_HARD = [
    "Prove √2 is irrational.", "Is 1,000,003 prime?", "Design Twitter.",
    "Reverse a linked list in C, in place.", "Why is 0.1 + 0.2 != 0.3, precisely?",
    "Explain Raft's leader election, edge cases included.", "Is P vs NP decidable?",
    "Implement quicksort without recursion.", "What's wrong with double-checked locking in Java?",
    "Derive the quadratic formula.", "Regex for valid IPv6 addresses?",
    "Write a tokenizer for JSON.", "Explain CAP with a real example.",
    "Why does my Rust code need a lifetime here?", "Solve x^x = 2.",
    "How does a B-tree split work?", "Make this SQL query faster.",
    "Big-O of heapify, and why?", "explain monads w/ an example in TS",
    "Write a bash script to rotate logs safely.", "When does Dijkstra fail?",
    "is my O(n log n) claim right for mergesort on linked lists",
    "Refactor this 300-line function into testable parts.", "Explain the Monty Hall problem.",
]  # fmt: skip

SUPPORT_HARD = [
    "Our SAML SSO with Okta fails with 'InResponseTo does not match' for about 10% of logins, "
    "mostly people who open two tabs. What's going on and how do we fix it on our side?",
    "Write a script that uses your REST API to export all tickets created this year, "
    "deduplicate the contacts by email, and write a CSV. We have about 80,000 tickets.",
    "Your webhook signatures fail to verify for us only when the payload contains emoji. Here's "
    "our Node verification code: crypto.createHmac('sha256', secret).update(JSON.stringify(body))"
    ".digest('hex'). What are we doing wrong?",
    "We're on the Business plan with 140 seats across 3 entities billed in EUR, GBP and USD. "
    "Explain how to restructure billing so each entity gets its own invoice without losing "
    "our volume discount, and what the cost difference would be.",
    "Our API usage jumped from 2M to 9M calls overnight and nobody deployed anything. "
    "Help me plan an investigation: what logs to pull, what to compare, what it might be.",
    "I need to write to our customers explaining that your outage caused us to miss payroll "
    "for 300 employees. Help me draft it so it's accurate, calm and doesn't blame anyone "
    "unfairly.",
    "Our data export from your platform has 1,204 rows but the dashboard says 1,251 orders. "
    "The export uses UTC and the dashboard uses our time zone. Work out whether that explains "
    "the gap and what else could.",
    "Can you help me set up a retention policy in your product that satisfies GDPR for EU "
    "users, keeps invoices 10 years for tax, and deletes chat logs after 90 days? Explain the "
    "conflicts and how to resolve them.",
]  # fmt: skip

FOREIGN_STRONG = [
    "Écris une fonction Python qui fusionne des intervalles qui se chevauchent, avec des tests.",
    "Démontre que la somme des n premiers entiers impairs vaut n².",
    "Peux-tu analyser les avantages et inconvénients d'une architecture microservices pour "
    "une équipe de cinq développeurs ?",
    "Escribe una función en JavaScript que valide un IBAN, incluida la suma de control.",
    "¿Por qué este código da un deadlock? func main() { ch := make(chan int); ch <- 1 }",
    "Diseña un sistema de notificaciones que soporte correo, SMS y push con reintentos.",
    "Redacta una carta cuidadosa a un cliente explicando una filtración de datos.",
    "Schreibe eine Go-Funktion, die einen Graphen auf Zyklen prüft, mit Tests.",
    "Beweise, dass es unendlich viele Primzahlen gibt.",
    "Vergleiche PostgreSQL und MongoDB für ein Abrechnungssystem und gib eine Empfehlung.",
    "Scrivi un algoritmo per trovare il percorso più breve in un grafo pesato e spiegalo.",
    "Por que meu código Python fica lento com listas grandes? for x in a: if x in b: ...",
]  # fmt: skip

# Held out entirely: topics never seen in train or calibration.
SQL_TASKS = [
    "Write a SQL query that returns each customer's second most recent order, ties broken by "
    "order id.",
    "Given tables orders(id, customer_id, total, created_at) and refunds(order_id, amount), "
    "write a query for monthly net revenue per customer cohort.",
    "This query takes 40 seconds: SELECT * FROM events WHERE date(created_at) = '2026-01-02' "
    "AND user_id IN (SELECT id FROM users WHERE plan = 'pro'). Why, and how do I speed it up?",
    "How do I find gaps in a sequence of invoice numbers in PostgreSQL, efficiently, on 50M "
    "rows?",
    "write sql to compute 7-day rolling active users from a logins table",
    "Design the tables for a library system with loans, holds and fines, and write the query "
    "for overdue loans with the fine owed.",
    "Explain why my LEFT JOIN returns fewer rows once I add WHERE r.status = 'open', and fix it.",
    "Write a recursive CTE that lists every employee under a given manager with their depth.",
    "Our nightly MERGE deadlocks with the API writers. How should we restructure it?",
    "Convert this correlated subquery into a window function and explain the difference in "
    "plan: SELECT o.* FROM orders o WHERE total > (SELECT avg(total) FROM orders WHERE "
    "customer_id = o.customer_id)",
]  # fmt: skip
STATS_TASKS = [
    "I have 14 data points and want to know if the trend is real. When is linear regression "
    "misleading here, and what should I use instead?",
    "Explain when to use a Mann-Whitney U test instead of a t-test, with an example from "
    "product analytics.",
    "Our conversion rate dropped from 3.1% to 2.8% week over week on 20k visitors each. Is "
    "that noise? Show the calculation.",
    "How many samples do I need to detect a 5% lift on a 10% baseline with 80% power?",
    "Why can averaging percentages across segments give the wrong overall answer? Work "
    "through Simpson's paradox with numbers.",
    "We ran 20 A/B tests and one came out significant at p = 0.04. Should we trust it?",
    "Estimate the median from this grouped frequency table and explain the interpolation: "
    "0-10: 4, 10-20: 9, 20-30: 15, 30-40: 8, 40-50: 4.",
    "What's the difference between a confidence interval and a credible interval, in terms "
    "a product manager would understand, and when does it matter?",
    "Build a simple forecast for next quarter's tickets from 24 months of weekly counts with "
    "a yearly season. What method and why?",
    "Is a correlation of 0.3 between onboarding calls and retention evidence the calls work?",
]  # fmt: skip

STRONG_FAMILIES: list[Family] = [
    ("code_write", "code", CODE_TEMPLATES, {"lang": CODE_LANGS, "spec": CODE_SPECS}),
    ("debugging", "code", DEBUG_TEMPLATES, {
        "code": BUGGY, "symptom": SYMPTOMS, "error": ERRORS,
    }),
    ("maths", "math", MATH_TEMPLATES, {
        "claim": PROOFS, "eq": EQUATIONS, "event": PROB_EVENTS, "fn": FUNCTIONS,
    }),
    ("money_math", "math", MONEY_MATH, {}),
    ("compare", "analysis", ANALYSIS_TEMPLATES, {
        "p": ANALYSIS_PAIRS,
        "use": ANALYSIS_USES, "n": ["3", "5", "12", "40"],
    }),
    ("data_analysis", "analysis", DATA_ANALYSIS, {}),
    ("design", "design", DESIGN_TEMPLATES, {"system": SYSTEMS, "scale": SCALES}),
    ("careful_writing", "writing", WRITING_TEMPLATES, {
        "audience": AUDIENCES, "matter": MATTERS, "essay": ESSAYS,
    }),
    ("reasoning", "reasoning", REASONING, {}),
    ("short_hard", "reasoning", SHORT_HARD, {}),
    ("support_hard", "support", SUPPORT_HARD, {}),
    ("foreign_strong", "code", FOREIGN_STRONG, {}),
    ("sql_tasks", "code", SQL_TASKS, {}),
    ("stats_tasks", "analysis", STATS_TASKS, {}),
]  # fmt: skip

HELD_OUT_STRONG = {"sql_tasks", "stats_tasks"}
