"""Round-3 rule patterns: broader phrasings of the same attack families (issue 18).

Written against the dev set (`tests/data/injection/dev.jsonl`, hand-written in another style
than the templates, and the dev half of the external corpus), never against the held-out,
hand-written-3 or external evaluation rows. Each pattern is a *structure*, not a row:
- more languages for "ignore the previous instructions" (pl, tr, sv, cs, uk, id, vi, ko, ar,
  hi) and more Portuguese nouns;
- overrides that declare the assistant's setup void ("your guidelines are suspended",
  "whatever you were told before no longer applies", "treat my messages as the top-priority
  directives");
- extraction of the setup under other names ("the text you were initialised with", "your
  hidden preamble", "everything before my first message");
- personas defined by having no safety rules ("a model freed from its makers' rules");
- fake turn markers in brackets or banners ("[SYSTEM]:", "### END OF USER INPUT ###");
- secrets or the conversation sent to an address or URL.
`INDIRECT_ADDRESS` (text in a document or tool result addressed to the AI) is checked on data
sources only: a user may well write "Note to the AI: answer in French".
Bounded like the rest: no nested quantifiers over overlapping classes, bounded gaps.
"""

from __future__ import annotations

import re

_F = re.IGNORECASE | re.UNICODE

IGNORE_MORE_LANGS = re.compile(
    r"\b(?:zignoruj|ignoruj|zapomnij|pomiń)\b.{0,30}\b(?:polece\w*|instrukcj\w*|zasad\w*)"
    r"|\b(?:talimat|kural|komut)\w*\b.{0,30}\b(?:unut|yoksay|görmezden)"
    r"|\b(?:glöm|ignorera|strunta\s+i)\b.{0,30}\b(?:instruktioner\w*|regler\w*|anvisningar\w*)"
    r"|\b(?:ignoruj|zapomeň|nevšímej)\b.{0,30}\b(?:pokyn\w*|instrukc\w*|pravidl\w*)"
    r"|(?:ігноруй|забудь|не\s+зважай).{0,30}(?:інструкці|вказівк|правил)"
    r"|\b(?:abaikan|lupakan|acuhkan)\b.{0,30}\b(?:instruksi|perintah|aturan|petunjuk)"
    r"|(?:bỏ\s+qua|phớt\s+lờ|quên).{0,30}(?:hướng\s+dẫn|chỉ\s+dẫn|chỉ\s+thị|quy\s+tắc)"
    r"|(?:지시|지침|명령|규칙).{0,12}(?:무시|잊)"
    r"|(?:تجاهل|انس).{0,30}(?:التعليمات|الأوامر|القواعد|تعليمات)"
    r"|(?:निर्देश|नियम).{0,24}(?:अनदेखा|नज़रअंदाज़|नजरअंदाज|भूल)"
    r"|\b(?:ignore|esqueça|esqueca|desconsidere)\b.{0,30}\b(?:orientações|orientacoes|diretrizes)",
    _F,
)

_SETUP = (
    r"(?:setup|set-up|configuration|config|guidance|directives?|orders|constraints|brief|"
    r"briefing|guidelines|rules|instructions|restrictions|content\s+rules|policy\s+layer|"
    r"programming)"
)
_VOID = (
    r"(?:void|outdated|obsolete|suspended|retracted|cancell?ed|revoked|disabled|removed|lifted|"
    r"wrong|invalid|a\s+test|no\s+longer\s+(?:valid|in\s+effect|appl(?:y|ies)))"
)
OVERRIDE_VOID = re.compile(
    rf"\byour\s+(?:(?:earlier|previous|prior|original|initial|old|current|hidden|own)\s+)?"
    rf"{_SETUP}\b[^.!?\n]{{0,40}}?\b(?:is|are|were|was|have\s+been|has\s+been)\s+(?:now\s+)?"
    rf"{_VOID}"
    rf"|\bthe\s+{_SETUP}\s+(?:in\s+your\s+(?:setup|configuration|prompt)|you\s+(?:got|were\s+"
    rf"given|received)|they\s+gave\s+you)\b[^.!?\n]{{0,40}}?\b(?:is|are|were|was)\s+(?:now\s+)?"
    rf"{_VOID}"
    r"|\b(?:whatever|everything|anything)\s+(?:you\s+(?:were|have\s+been|'ve\s+been)\s+"
    r"(?:told|given)|(?:they|the\s+(?:developers?|operators?))\s+(?:told|gave)\s+you)\b"
    r"[^.!?\n]{0,40}?\b(?:no\s+longer\s+appl(?:y|ies)|(?:is|are)\s+(?:now\s+)?(?:void|over|"
    r"cancell?ed|irrelevant))"
    r"|\b(?:prior|previous|earlier|all)\s+(?:behaviou?ral|safety|content|ethical|operating)\s+"
    r"(?:constraints|restrictions|guidelines|rules|directives)\s+(?:are|is|have\s+been|were)\s+"
    rf"(?:now\s+)?{_VOID}",
    _F,
)
OVERRIDE_PRIORITY = re.compile(
    r"\btreat\s+my\s+(?:messages?|words|instructions|requests)\s+as\s+(?:the\s+)?(?:top|"
    r"highest|new|only|system|priority|top-priority)"
    r"|\b(?:my|the\s+user'?s)\s+(?:instructions|directives|words|messages)\s+(?:win|outrank|"
    r"take\s+priority|come\s+first)"
    r"|\bstop\s+obeying\b|\bobey\s+(?:only\s+)?me\b|\banswer\s+only\s+to\s+me\b"
    r"|\bmy\s+instructions\s+alone\b"
    r"|\byou\s+(?:now\s+)?have\s+no\s+(?:content\s+)?(?:policy|policies|rules|restrictions|"
    r"guidelines|filters|policy\s+layer)\b",
    _F,
)
OVERRIDE_FILTERS = re.compile(
    r"\b(?:compliance|content|safety|moderation)\s+(?:filters?|rules|checks?|layer)\s+"
    r"(?:are\s+|is\s+|have\s+been\s+)?(?:now\s+(?:disabled|off|offline|lifted|removed|suspended)"
    r"|(?:disabled|lifted|removed|suspended|turned\s+off|switched\s+off)\s+(?:for\s+(?:this|the|"
    r"your)\s+(?:session|conversation|chat|turn)|for\s+(?:the\s+)?(?:audit|maintenance|testing)|"
    r"until\s+further))\b",
    _F,
)

EXTRACT_MORE = re.compile(
    r"\b(?:text|words|message|instructions|configuration|prompt|directives)\s+(?:that\s+)?"
    r"you\s+were\s+(?:initiali[sz]ed|configured|set\s+up|primed|started|booted|seeded)\s+with\b"
    r"|\byour\s+(?:(?:own|full|entire|hidden|secret|confidential|original|initial)\s+){0,2}"
    r"(?:setup|configuration|config|initiali[sz]ation|boot)\s+(?:text|message|instructions?|"
    r"prompt|directives)\b"
    r"|\byour\s+(?:hidden|secret|confidential|initial|original|system|setup)\s+(?:preamble|"
    r"brief(?:ing)?|directives|instructions)\b"
    r"|\b(?:everything|all|what(?:ever)?|the\s+text|text)\s+(?:that\s+)?(?:came|comes|sits|is|"
    r"was)\s+(?:before|above)\s+(?:my\s+first\s+message|this\s+conversation|our\s+conversation|"
    r"this\s+chat)"
    r"|\bwhat\s+(?:exactly\s+)?did\s+(?:the|your)\s+(?:developers?|operators?|creators?|makers?)"
    r"\s+(?:tell|instruct|ask)\s+you\b"
    r"|\b(?:message|instructions?|text)\s+the\s+(?:developer|operator)s?\s+gave\s+you\b",
    _F,
)
EXTRACT_VERB_MORE = re.compile(r"\b(?:encode|send|spell|reproduce|paste|dump)\b", _F)

_UNRESTRICTED = re.compile(
    r"\b(?:ignores?|bypass(?:es)?|freed?\s+from|without|no|never\s+follows?)\s+(?:all\s+|every\s+|"
    r"any\s+)?(?:(?:of\s+)?(?:its|their|his|her|your|the)\s+)?(?:makers?'?s?\s+|creators?'?s?\s+)?"
    r"(?:restrictions|safety\s+rules|policy\s+checks?|content\s+polic(?:y|ies)|guidelines|"
    r"filters|ethical\s+guidelines|rules)\b"
    r"|\bunrestricted\s+(?:version|mode|ai|model|self|persona)\b"
    r"|\bno\s+safety\s+rules\s+exist\b",
    _F,
)
_PERSONA_CUE = re.compile(
    r"\b(?:you\s+are(?:\s+now)?|you'?re|act\s+as|answer\s+as|respond\s+as|role-?play(?:\s+as)?|"
    r"pretend|persona|personalit(?:y|ies)|in\s+(?:that|this)\s+character|simulate|stay\s+as)\b",
    _F,
)
_AI_WORD = re.compile(r"\b(?:ai|model|gpt|llm|chatbot|assistant|persona|policy)\b", _F)


def persona_more(text: str, lower: str) -> re.Match[str] | None:
    """A persona defined by having no safety rules: both cues, and an AI word."""
    if not _has_any(lower, _UNRESTRICTED_STEMS):
        return None
    m = _UNRESTRICTED.search(text)
    if m is None or _PERSONA_CUE.search(text) is None or _AI_WORD.search(text) is None:
        return None
    return m


ROLE_MORE = re.compile(
    r"(?:^|\n)\s*[#=*\-\[]{2,}\s*(?:end\s+of\s+(?:user\s+)?(?:input|prompt|message)|new\s+"
    r"system\s+(?:directive|instructions?|prompt|message))"
    r"|\[(?:system|assistant|developer)\]\s*:",
    _F,
)

EXFIL_MORE = re.compile(
    r"\b(?:api\s+keys?|credentials|passwords?|secrets)\b.{0,60}?\b(?:send|forward|post|e-?mail|"
    r"upload)\w*\s+(?:them\s+|it\s+)?to\s+(?:\S+@|https?://)"
    r"|\b(?:send|forward|post|upload)\s+(?:\w+\s+){0,4}(?:api\s+keys?|credentials|passwords?|"
    r"secrets)\s+(?:\w+\s+){0,4}?to\s+(?:\S+@|https?://)"
    r"|https?://\S*[?&]\w+=\S{0,3}.{0,80}?\b(?:append|followed\s+by|with|containing)\b.{0,40}?"
    r"\b(?:the\s+)?(?:conversation|chat\s+history|previous\s+message|user'?s\s+(?:previous\s+)?"
    r"(?:message|data|e-?mail)|system\s+prompt|api\s+keys?|secrets?)\b",
    _F,
)

INDIRECT_ADDRESS = re.compile(
    r"\b(?:note|message|instructions?|attention|notice|hint|reminder)\s+(?:to|for)\s+(?:any\s+|"
    r"the\s+|all\s+)?(?:ai|a\.i\.|chatbots?|bots?|assistants?|language\s+models?|llms?|"
    r"agents?|summari[sz]ers?|automated\s+(?:systems?|agents?|assistants?)|(?:\w+\s+)?models?)"
    r"\b(?!\s+(?:team|group|department|committee|lab|researchers?|engineers?|staff|community|"
    r"office|working|act|vendor|project|course|training\s+team))"
    r"|\b(?:automated|ai)\s+agents?\s*:|\battention\s+agents?\s*:"
    r"|\b(?:model|ai|assistant|agent|llm)\s+instructions?\s*:"
    r"|\bsystem\s*(?:note|notice)\s*:|\bsystemhinweis\b|\bnote\s+système\s*:"
    r"|\bmessage_for_(?:ai|assistant|model|llm|agent)\b"
    r"|\bif\s+(?:an?\s+)?(?:automated\s+system|ai|language\s+model|llm|bot|model|agent)\s+is\s+"
    r"(?:reading|processing)\s+this\b"
    r"|\bthis\s+(?:e-?mail|message|note|document|page)\s+is\s+for\s+the\s+(?:assistant|ai|model|"
    r"agent|bot)\b"
    r"|\b(?:language\s+model|ai|assistant|chatbot|model|agent)\s*,\s+when\s+you\s+(?:summari[sz]e|"
    r"triage|read|process|answer|review)"
    r"|\b(?:hey|dear|hi)\s*,?\s+(?:the\s+)?(?:ai\s+)?(?:assistant|agent|model|chatbot)\b\s*[,:]"
    r"|\b(?:hinweis|nachricht|anweisung)\s+an\s+(?:den|die|das)\s+(?:ki|ki-\w+|assistenten|"
    r"chatbot|bot|modell)\b"
    r"|\bnota\s+para\s+(?:el|la)\s+(?:asistente|ia|modelo|chatbot)\b"
    r"|\bnote\s+(?:pour|à)\s+(?:l'|le\s+|la\s+)?(?:ia|assistant|modèle|chatbot)\b"
    r"|\bnota\s+per\s+(?:l'|il\s+)?(?:ia|assistente|modello)\b",
    _F,
)


def _has_any(lower: str, stems: tuple[str, ...]) -> bool:
    return any(stem in lower for stem in stems)


# Literal prefilters (lower-case stems): every match of the pattern contains one of them, so
# text with none skips the pattern (C substring scans; without them the patterns above cost
# ~4-12 ms CPU on a 2-8 KB ordinary prompt).
_VOID_STEMS = (
    "void", "outdated", "obsolete", "suspend", "retract", "cancel", "revok", "disabl", "remov",
    "lifted", "wrong", "invalid", "test", "longer", "over", "irrelevant",
)  # fmt: skip
_UNRESTRICTED_STEMS = ("restriction", "rule", "polic", "guideline", "filter", "unrestricted")
_IGNORE_LANG_STEMS = (
    "ignor", "zapomn", "pomiń", "talimat", "kural", "komut", "glöm", "strunta", "zapomeň",
    "nevšímej", "ігноруй", "забудь", "зважай", "abaikan", "lupakan", "acuhkan", "bỏ", "phớt",
    "quên", "지시", "지침", "명령", "규칙", "تجاهل", "انس", "निर्देश", "नियम", "esqueç", "esquec",
    "desconsider",
)  # fmt: skip
STEMS: dict[re.Pattern[str], tuple[str, ...]] = {
    IGNORE_MORE_LANGS: _IGNORE_LANG_STEMS,
    OVERRIDE_VOID: _VOID_STEMS,
    OVERRIDE_PRIORITY: ("treat", "win", "outrank", "priority", "first", "obey", "answer", "have"),
    OVERRIDE_FILTERS: ("compliance", "content", "safety", "moderation"),
    EXTRACT_MORE: (
        "initiali", "config", "set", "primed", "started", "boot", "seeded", "preamble", "brief",
        "directive", "instruction", "before", "above", "developer", "operator", "creator",
        "maker", "gave",
    ),
    ROLE_MORE: ("end", "new", "[system]", "[assistant]", "[developer]"),
    EXFIL_MORE: ("@", "http"),
}  # fmt: skip


def could_match(pattern: re.Pattern[str], lower: str) -> bool:
    """False when `lower` (the lower-cased text) lacks every stem `pattern` needs."""
    stems = STEMS.get(pattern)
    return stems is None or _has_any(lower, stems)
