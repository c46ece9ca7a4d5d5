# ruff: noqa: E501  (seed prompts are data; wrapping them would change them)
"""Hand-written seeds for prompts a cheap model answers as well as a strong one.

Each family: (name, task, templates, slots). Templates use `{slot}` fields filled from
`slots`; a family with no slots is a list of whole prompts written out by hand. Families
listed in HELD_OUT_FAMILIES never reach the train or calibration splits.
"""

from __future__ import annotations

from typing import Any

Family = tuple[str, str, list[str], dict[str, list[Any]]]

ACTIONS = [
    "reset my password", "change the email on my account", "update my billing address",
    "download my invoices", "cancel my subscription", "add a team member",
    "turn on two-factor authentication", "export my data", "change my username",
    "delete my account", "switch to annual billing", "update the card on file",
    "change the dashboard language", "unsubscribe from the marketing emails",
    "reactivate a paused plan", "transfer ownership of a workspace", "find my order number",
    "track my package", "start a return", "apply a discount code", "change my delivery address",
    "talk to a human agent", "upgrade to the Business plan", "downgrade to the free tier",
    "get a receipt for last month", "turn on single sign-on", "change my time zone",
    "remove a saved card", "regenerate my API key", "log out of all devices",
    "change the owner of a project", "invite a guest user", "turn off auto-renewal",
    "add a VAT number to my invoices", "change my notification settings",
    "recover a deleted file", "rename my workspace", "connect my Google calendar",
]  # fmt: skip

SUPPORT_HOWTO = [
    "How do I {action}?",
    "Where can I {action}?",
    "what's the way to {action} in the app",
    "Is it possible to {action}?",
    "I can't figure out how to {action}.",
    "Can you tell me how to {action}?",
    "steps to {action}?",
    "I want to {action}, where is that setting?",
    "Help! I need to {action} today.",
    "Is there a way to {action} from the mobile app?",
    "Could you walk me through how to {action}? I'm not very techy.",
    "{action} - how?",
    "Do I need admin rights to {action}?",
    "Which menu lets me {action}?",
    "My manager asked me to {action}. What do I click?",
]

POLICY_THING = [
    "annual plans", "monthly plans", "digital downloads", "opened items", "gift cards",
    "sale items", "damaged deliveries", "unused seats", "add-on packs", "late cancellations",
    "duplicate charges", "hardware bundles", "event tickets", "training courses",
]  # fmt: skip
COUNTRIES = [
    "Canada", "Brazil", "Japan", "Norway", "South Africa", "New Zealand", "Mexico", "India",
    "Ireland", "Poland", "Chile", "Kenya", "Portugal", "Vietnam", "Iceland", "Egypt",
]  # fmt: skip
PROCESSES = [
    "a refund", "standard shipping", "express shipping", "account verification",
    "a plan change", "a data export", "a chargeback review", "a password reset email",
    "a bank transfer payment", "onboarding for new admins", "a domain verification",
]  # fmt: skip
PLANS = ["Starter", "Pro", "Team", "Business", "Enterprise", "Basic", "Plus", "Free"]
FEATURES = [
    "priority support", "SSO", "audit logs", "unlimited projects", "custom domains",
    "API access", "phone support", "data residency in the EU", "a dedicated manager",
    "offline mode", "advanced reports", "more than 10 users", "white labelling",
]  # fmt: skip
DAYS = ["Saturday", "Sunday", "public holidays", "Christmas Eve", "weekdays", "Fridays"]

SUPPORT_POLICY = [
    "What's your refund policy for {thing}?",
    "Can I get my money back on {thing}?",
    "Are {thing} refundable?",
    "Do you ship to {country}?",
    "do u deliver to {country}",
    "How long does {process} usually take?",
    "how long for {process}?",
    "Is there a fee for {process}?",
    "What are your support hours on {day}?",
    "Are you open on {day}?",
    "Does the {plan} plan include {feature}?",
    "Is {feature} part of {plan}?",
    "Which plan do I need for {feature}?",
    "How much does the {plan} plan cost per month?",
]

GREETINGS = ["Hi,", "Hello there,", "Hey team,", "Good morning,", "Hi support,", "Dear Sir/Madam,"]
CONTEXT_SENTENCES = [
    "I placed an order on the 3rd of last month and paid with my Visa card.",
    "I've been a customer for about four years and I've always been happy with the service.",
    "The confirmation email said it would arrive within five working days.",
    "My order number is 48213-A and the receipt shows the blue version of the jacket.",
    "I already checked the spam folder and there's nothing there.",
    "My husband set up the account originally, but I'm the one who uses it now.",
    "We are a small bakery with three locations and we use your app for our schedules.",
    "I tried logging in from my laptop and my phone and got the same screen both times.",
    "Last week I spoke to someone on chat, but I didn't save the conversation.",
    "The tracking page has said 'label created' for six days now.",
    "I'm writing from my work address because I can't get into my personal email.",
    "We renewed in March and the invoice was sent to our old accountant.",
    "I don't want to cancel, I just want to understand what's going on.",
    "The parcel was supposed to be left with my neighbour at number 12.",
    "I moved house in August and updated my address the same day, I think.",
    "My daughter uses the account for school, so it matters that it works by Monday.",
    "I have attached a screenshot but I'm not sure it came through.",
    "Our office is closed on Fridays, so deliveries that day don't work for us.",
    "The app was updated yesterday and since then the menu looks different.",
    "I am not very good with computers, so please keep it simple.",
    "Nothing is broken as such; I just can't find the option anymore.",
    "The amount was 49.99 and it shows as pending on my bank statement.",
]  # fmt: skip
SIMPLE_ASKS = [
    "Can you tell me where my package is?",
    "Where do I find the invoice for that order?",
    "Could you just confirm my new address is saved?",
    "How do I get the menu back to where it was?",
    "Can you resend the confirmation email?",
    "What's the phone number for your support line?",
    "Is the pending charge going to go through or not?",
    "Can you tell me when my plan renews?",
    "Could you change the delivery to Saturday instead?",
    "Who should I contact about this?",
    "Is there anything I need to do on my side?",
    "Can you just let me know if the order went through?",
]  # fmt: skip

FACT_TEMPLATES = [
    "What is the capital of {country}?",
    "capital of {country}?",
    "What currency do they use in {country}?",
    "What language is spoken in {country}?",
    "Who wrote {book}?",
    "who's the author of {book}",
    "When was {book} published, roughly?",
    "What does {acronym} stand for?",
    "{acronym} meaning?",
    "What time zone is {city} in?",
    "How tall is {landmark}?",
    "Where is {landmark}?",
]
BOOKS = [
    "Pride and Prejudice", "1984", "The Hobbit", "Moby-Dick", "Don Quixote", "Dracula",
    "Frankenstein", "The Great Gatsby", "War and Peace", "Jane Eyre", "The Odyssey",
    "Things Fall Apart", "One Hundred Years of Solitude", "Little Women",
]  # fmt: skip
ACRONYMS = [
    "NASA", "FAQ", "ETA", "VAT", "GDPR", "SaaS", "ASAP", "CEO", "PDF", "HTTP", "RSVP", "KPI",
    "ROI", "SLA", "UTC", "NATO", "IBAN", "SKU", "B2B", "CRM",
]  # fmt: skip
CITIES = ["Tokyo", "Denver", "Lisbon", "Sydney", "Nairobi", "Toronto", "Seoul", "Lima", "Oslo"]
LANDMARKS = [
    "the Eiffel Tower", "Mount Kilimanjaro", "the Statue of Liberty", "Big Ben",
    "the Burj Khalifa", "Machu Picchu", "the Golden Gate Bridge", "Uluru",
]  # fmt: skip

REVIEWS = [
    "The blender works but it is louder than I expected.",
    "Absolutely love it, bought a second one for my mum!",
    "Arrived broken and nobody answers my emails.",
    "It's fine. Does what it says.",
    "Terrible app, crashes every time I open the camera.",
    "Delivery was quick and the driver was friendly.",
    "Not worth the price, the fabric feels cheap.",
    "Setup took two minutes, very happy with it.",
    "The update removed the one feature I used. Thanks for nothing.",
    "Good value, though the instructions could be clearer.",
]  # fmt: skip
TICKETS = [
    "I was charged twice for my subscription this month.",
    "The app logs me out every five minutes.",
    "Do you offer discounts for nonprofits?",
    "My package says delivered but I never got it.",
    "How do I add my colleague to our account?",
    "The export button does nothing in Firefox.",
    "I'd like to upgrade but the payment page times out.",
    "Can someone call me back about the quote?",
]  # fmt: skip
CATEGORIES = [
    "billing, technical, sales, other",
    "login, payment, shipping, account",
    "bug, question, feature request, complaint",
    "urgent, normal, low",
]  # fmt: skip
CLASSIFY_TEMPLATES = [
    "Classify the sentiment of this review as positive, negative or neutral: '{review}'",
    'Is this review positive or negative? "{review}"',
    "sentiment? {review}",
    "Label this feedback with one word (happy/unhappy/mixed): {review}",
    "Which category does this ticket belong to ({cats})? '{ticket}'",
    "Tag this message with one of: {cats}.\n\n{ticket}",
    "Route this ticket to a team ({cats}): {ticket}",
    'Is this message urgent? Answer yes or no. "{ticket}"',
]

EXTRACT_TEXTS = [
    "Hi, it's Dana Whitfield, you can reach me at dana.w@example.com or 555-0142 after 5pm.",
    "Order #A-99231 was shipped on 12 March 2025 via DHL, tracking JD014600003856.",
    "Meeting moved to Thursday 14:30 in room B2; bring the Q3 budget and the vendor list.",
    "Invoice 2024-118, amount due EUR 1,240.00, payable by 30 November to IBAN DE89 3704 0044 0532 0130 00.",
    "Please ship to: 42 Harbour Road, Apt 5, Portsmouth PO1 3AX, United Kingdom.",
    "Contacts: Raj (raj@example.org), Mei (mei.l@example.net), and the front desk at 555-0199.",
    "Flight BA287 departs 18:40 from Terminal 5 and lands in San Francisco at 21:25 local time.",
    "The lease starts on 1 June 2026, runs for 12 months, and the monthly rent is $1,850.",
]  # fmt: skip
EXTRACT_TEMPLATES = [
    "Extract the email addresses from this text: {text}",
    "Pull out every date in: {text}",
    "Is there a phone number in this message? If so, give it. {text}",
    "Give me the names and emails as JSON: {text}",
    "List the amounts of money mentioned here: {text}",
    "From the following, extract the order or reference numbers only.\n{text}",
    "Return a JSON object with the fields date and place from: {text}",
    "find the address in this: {text}",
]

PARAGRAPHS = [
    "Our team met on Monday to review the launch. Marketing will publish the blog post on "
    "Tuesday, sales will email existing customers on Wednesday, and support will update the "
    "help centre by Thursday. The only open question is whether the pricing page changes "
    "the same day; Priya will confirm by Friday.",
    "The city council voted to extend the bike lane on Elm Street by two kilometres. "
    "Construction starts in April and will close one car lane for six weeks. Residents can "
    "comment on the design until the end of February.",
    "Thanks for your patience while we looked into the delay. The warehouse had a power "
    "outage on Tuesday, which pushed all shipments back by two days. Your order left today "
    "and should arrive by Monday. We've refunded the shipping fee.",
    "Version 4.2 fixes the crash when importing large spreadsheets, adds dark mode to the "
    "settings page, and speeds up search by about a third. The old export format is still "
    "supported but will be removed next year.",
    "The library will be closed for renovation from 3 to 17 July. Books can be returned in "
    "the drop box outside, and loans that fall due during the closure are extended "
    "automatically. The children's reading club moves to the community centre.",
]  # fmt: skip
SUMMARY_TEMPLATES = [
    "Summarize this in one sentence: {para}",
    "tl;dr please:\n{para}",
    "Give me the gist of this: {para}",
    "Can you shorten this to three bullet points?\n\n{para}",
    "What's the main point here? {para}",
    "Write a two-line recap for someone who missed it: {para}",
    "Summarise for my manager in 20 words or fewer:\n{para}",
    "{para}\n\nOne-sentence summary?",
    "Can you boil this down for me? {para}",
    "What are the key dates in this? {para}",
    "Headline for this paragraph, please: {para}",
]

PHRASES = [
    "good evening", "where is the train station?", "thank you very much",
    "I would like a table for two", "my order has not arrived", "see you tomorrow",
    "how much does this cost?", "please call me back", "the meeting is cancelled",
    "happy birthday", "I'm allergic to peanuts", "can I pay by card?",
]  # fmt: skip
LANGS = ["Spanish", "French", "German", "Italian", "Portuguese", "Japanese", "Dutch", "Polish"]
TRANSLATE_TEMPLATES = [
    "Translate '{phrase}' into {lang}.",
    'How do you say "{phrase}" in {lang}?',
    "{lang} for {phrase}?",
    "Can you put this in {lang}: {phrase}",
    "what is '{phrase}' in {lang}",
]

SENTENCES = [
    "i want my money back now this is ridiculous",
    "Their going to send the report tomorow.",
    "We regret to inform you that your application was not successful at this time.",
    "pls fix asap, the site is down again",
    "The meeting which was planned for monday have been moved.",
    "Hey, can u send me the file again, I lost it",
    "We would like to kindly remind you that the payment is overdue since two weeks.",
    "Your order is delayed because of reasons.",
]  # fmt: skip
REWRITE_TEMPLATES = [
    "Make this more polite: '{sentence}'",
    "Fix the grammar: {sentence}",
    'Rewrite this so it sounds professional: "{sentence}"',
    "correct the spelling in: {sentence}",
    "Make it friendlier: {sentence}",
    "Shorten this: {sentence}",
    "Rephrase this for a customer email: {sentence}",
    "Can you make this sound less angry? {sentence}",
    "{sentence}\n\n^ fix the typos pls",
    "Put this in plain English: {sentence}",
    "Make this one sentence more formal: {sentence}",
]

CHITCHAT = [
    "hi", "hello!", "thanks!", "thank you so much, that fixed it", "good morning",
    "you're the best", "ok", "cool, thanks", "how are you today?", "what's your name?",
    "are you a bot?", "lol", "Tell me a joke about cats.", "tell me a fun fact",
    "what's a good movie for a rainy day?", "I'm bored", "Say something nice.",
    "Can you recommend a podcast about history?", "what's your favourite colour?",
    "goodnight!", "That's all for today, bye.", "haha that's funny",
    "Give me a random word.", "Flip a coin for me.", "Any tips for staying awake at work?",
    "What should I cook tonight? Something quick.", "Suggest a name for my new puppy.",
    "do you like music?", "great job", "perfect, exactly what I needed",
]  # fmt: skip

SIMPLE_TECH = [
    "What does `git stash` do?", "How do I exit vim?", "what does ls -la show",
    "What port does HTTPS use?", "What's the keyboard shortcut to copy on a Mac?",
    "Is JSON case sensitive?", "What is the file extension for Python files?",
    "How do I install requests with pip?", "What does 'chmod +x script.sh' do?",
    "What's the difference between RAM and storage?", "What does HTML stand for?",
    "How do I clear my browser cache in Chrome?", "What does a 404 error mean?",
    "Which command shows my current directory in Linux?", "What's localhost?",
    "How do I take a screenshot on Windows?", "What is an API key?",
    "What does CSV mean?", "what is the default port for postgres",
    "How do I check which version of Python I have?", "What does `npm install` do?",
    "How do I undo the last commit message typo with git?", "Is Python case sensitive?",
    "What's a 500 error?", "what does sudo mean", "How do I zip a folder on a Mac?",
    "What's the shortcut for undo in Excel?", "What does `cd ..` do?",
    "What is the `len` function in Python?", "How do I comment a line in JavaScript?",
    "What does `print()` do in Python?", "What is a URL?", "What does DNS do, in one line?",
    "How do I rename a file in the terminal?", "What's the extension for TypeScript files?",
]  # fmt: skip

MATH_SIMPLE_TEMPLATES = [
    "What's {p}% of {n}?",
    "{p} percent of {n}?",
    "Convert {x} {unit[0]} to {unit[1]}.",
    "how many {unit[1]} is {x} {unit[0]}",
    "What is {a} times {b}?",
    "{a} + {b} = ?",
    "What's {n} divided by {a}?",
    "What is the square root of {sq}?",
    "Round {dec} to two decimal places.",
    "How many minutes are in {a} hours?",
    "If something costs ${n} and there's {p}% off, what's the sale price?",
    "What's {a} squared?",
]
UNIT_PAIRS = [
    ("miles", "kilometers"), ("pounds", "kilograms"), ("inches", "centimeters"),
    ("liters", "gallons"), ("feet", "meters"), ("ounces", "grams"), ("cups", "milliliters"),
]  # fmt: skip

SIMPLE_WRITING_TEMPLATES = [
    "Write a one-line thank-you note to {person}.",
    "Suggest five names for a {business}.",
    "Give me a catchy subject line for an email about {topic}.",
    "Write a short birthday message for my {person}.",
    "Write a tweet announcing {topic}.",
    "Give me three hashtags for {topic}.",
    "Write a two-sentence out-of-office reply.",
    "Come up with a slogan for a {business}.",
    "Write a quick text telling {person} I'm running 10 minutes late.",
    "Write a short caption for a photo about {topic}.",
    "Give me a fun name for a team chat channel for {topic}.",
    "Draft a one-line reminder to {person} about tomorrow's meeting.",
    "Write a friendly two-sentence welcome message for a new {business} customer.",
    "Suggest an emoji to go with a post about {topic}.",
]
PEOPLE = ["my coworker", "my neighbour", "the delivery driver", "my aunt", "our intern", "my boss"]
BUSINESSES = ["coffee shop", "dog grooming salon", "bike repair shop", "bakery", "yoga studio"]
TOPICS = [
    "our summer sale", "a new office opening", "a webinar next Tuesday",
    "the new dark mode", "our holiday hours", "a price change next month",
]  # fmt: skip

FORMAT_TEMPLATES = [
    "Turn this into a bulleted list: {items}",
    "Sort these alphabetically: {items}",
    "Convert to title case: {items}",
    "Put these in a markdown table with one column: {items}",
    "Make this comma separated list a numbered list: {items}",
    "remove the duplicates from: {items}",
    "Capitalise each item: {items}",
    "{items} -> JSON array please",
    "Reverse the order of: {items}",
    "How many items are in this list? {items}",
    "Join these with semicolons instead of commas: {items}",
]
ITEMS = [
    "apples, pears, bananas, apples, kiwis", "Paris, Berlin, Madrid, Rome",
    "milk, eggs, bread, butter, eggs", "red, green, blue, yellow",
    "monday standup, friday review, tuesday planning", "cat, dog, hamster, parrot, dog",
]  # fmt: skip

FOREIGN_CHEAP = [
    "Bonjour, comment puis-je changer mon mot de passe ?",
    "Où est ma commande ? Je l'attends depuis une semaine.",
    "Merci beaucoup pour votre aide !",
    "Quels sont vos horaires d'ouverture le samedi ?",
    "Hola, ¿cómo cancelo mi suscripción?",
    "¿Hacen envíos a Argentina?",
    "¿Cuánto cuesta el plan Pro al mes?",
    "Gracias, ya funciona.",
    "Hallo, wie kann ich meine Rechnungsadresse ändern?",
    "Wann kommt mein Paket an?",
    "Danke, das hat geholfen!",
    "Kann ich die Bestellung noch stornieren?",
    "Ciao, come posso scaricare la fattura?",
    "Olá, como faço para atualizar o meu cartão?",
    "Hoi, hoe kan ik mijn e-mailadres wijzigen?",
    "Traduis « bonne nuit » en anglais.",
    "¿Qué significa 'ASAP'?",
    "Wie spät ist es in Tokio, wenn es in Berlin 12 Uhr ist?",
]  # fmt: skip

# Held out entirely: topics the classifier never sees in train or calibration.
HR_QA = [
    "How many vacation days do new employees get?",
    "When is payday this month?",
    "Who do I talk to about updating my tax withholding?",
    "Where can I find the employee handbook?",
    "Is the office closed on the 26th?",
    "How do I request a day off in the HR portal?",
    "Do we get reimbursed for home internet?",
    "What's the dress code for the client visit?",
    "Can I bring my dog to the office on Fridays?",
    "How do I update my emergency contact?",
    "Where do I submit my expense receipts?",
    "What time does the cafeteria close?",
    "how do i book a meeting room for tomorrow",
    "Is parking free for visitors?",
    "When does open enrolment for benefits start?",
]  # fmt: skip
TRAVEL_SUPPORT = [
    "Can I change the name on my plane ticket?",
    "What's the baggage allowance on an economy fare?",
    "Is breakfast included in my hotel booking?",
    "How early should I check in for an international flight?",
    "My flight was cancelled, how do I rebook?",
    "Can I choose my seat for free?",
    "What time is checkout at the hotel?",
    "Do I need a visa to visit Thailand as a Canadian?",
    "Can I bring a stroller on board?",
    "How do I add my frequent flyer number to a booking?",
    "Is there Wi-Fi on the train to Lyon?",
    "Where do I pick up the rental car at the airport?",
]  # fmt: skip

CHEAP_FAMILIES: list[Family] = [
    ("support_howto", "support", SUPPORT_HOWTO, {"action": ACTIONS}),
    ("support_policy", "support", SUPPORT_POLICY, {
        "thing": POLICY_THING, "country": COUNTRIES, "process": PROCESSES, "day": DAYS,
        "plan": PLANS, "feature": FEATURES,
    }),
    ("facts", "qa", FACT_TEMPLATES, {
        "country": COUNTRIES, "book": BOOKS, "acronym": ACRONYMS, "city": CITIES,
        "landmark": LANDMARKS,
    }),
    ("classify", "classification", CLASSIFY_TEMPLATES, {
        "review": REVIEWS, "ticket": TICKETS, "cats": CATEGORIES,
    }),
    ("extract", "extraction", EXTRACT_TEMPLATES, {"text": EXTRACT_TEXTS}),
    ("summarize", "summarization", SUMMARY_TEMPLATES, {"para": PARAGRAPHS}),
    ("translate", "translation", TRANSLATE_TEMPLATES, {"phrase": PHRASES, "lang": LANGS}),
    ("rewrite", "rewrite", REWRITE_TEMPLATES, {"sentence": SENTENCES}),
    ("chitchat", "chat", CHITCHAT, {}),
    ("simple_tech", "qa", SIMPLE_TECH, {}),
    ("math_simple", "math", MATH_SIMPLE_TEMPLATES, {
        "p": ["10", "15", "20", "25", "12.5", "7", "30", "18"],
        "n": ["80", "240", "1,200", "64", "19.99", "350", "45", "999"],
        "a": ["7", "12", "15", "9", "24", "3", "60", "11"],
        "b": ["8", "13", "4", "25", "6", "17", "9", "30"],
        "x": ["5", "12", "100", "3.5", "42", "0.75", "26.2"],
        "sq": ["144", "81", "225", "49", "400", "169"],
        "dec": ["3.14159", "2.71828", "19.987", "0.3333", "7.125"],
        "unit": UNIT_PAIRS,
    }),
    ("simple_writing", "writing", SIMPLE_WRITING_TEMPLATES, {
        "person": PEOPLE, "business": BUSINESSES, "topic": TOPICS,
    }),
    ("format", "rewrite", FORMAT_TEMPLATES, {"items": ITEMS}),
    ("foreign_cheap", "support", FOREIGN_CHEAP, {}),
    ("hr_qa", "support", HR_QA, {}),
    ("travel_support", "support", TRAVEL_SUPPORT, {}),
]  # fmt: skip

HELD_OUT_CHEAP = {"hr_qa", "travel_support"}
