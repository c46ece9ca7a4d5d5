"""Fast rules: the first layer of prompt-injection detection (pure `re`, sub-millisecond).

Why rules at all when there is a classifier: known attack phrasings ("ignore previous
instructions", DAN, chat-template tokens, system-prompt extraction) are cheap to name
exactly, and a named rule is what a caller sees in a 400 `prompt_injection_detected`. The
classifier handles paraphrases the rules do not list.

Bounded by construction (hostile input):
- only `MAX_SCAN_CHARS` (12 KiB) of the text are scanned: the first `HEAD_CHARS` and the
  last `TAIL_CHARS` (an attacker appending a payload after 1 MB of filler is still seen);
  Python's `re` costs a few microseconds per character for these alternations, so the window
  and the literal prefilters below are what bound a call (measured: 12-18 ms wall on 1 MB of
  hostile text under load; ~1 ms CPU for a 2 KB ordinary prompt, see BENCHMARKS);
- the re-checks of rot13, reversed, leetspeak, URL-encoded, binary, `\\u`-escaped and base32
  variants look at the first `VARIANT_CHARS` only;
- the patterns have no nested quantifiers over overlapping classes (no catastrophic
  backtracking), gaps between words are bounded (`{0,40}`-style);
- encoded payloads: at most `MAX_BLOBS` candidates of at most `MAX_BLOB_CHARS` each are
  decoded, re-checked recursively to depth `MAX_DEPTH`.

Quoted attacks (documentation, security questions): a hit that sits inside quotes *and* in a
text that talks about attacks ("example", "detect", "prompt injection", ...) is reported as
`quoted=True`; the detector then lets the classifier decide instead of blocking on the rule.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import re
import unicodedata
import urllib.parse
from dataclasses import dataclass

import ahocorasick

HEAD_CHARS = 8_192
TAIL_CHARS = 4_096
MAX_SCAN_CHARS = HEAD_CHARS + TAIL_CHARS
# rot13, reversed, leetspeak, URL/binary/\u/base32 decodings re-run every pattern, so they look
# at less: the first VARIANT_CHARS of the scanned window.
VARIANT_CHARS = 4_096
MAX_BLOBS = 8
MAX_BLOB_CHARS = 8_192
MAX_DEPTH = 3
MIN_HIDDEN_TAG_CHARS = 6

_F = re.IGNORECASE | re.UNICODE


@dataclass(frozen=True, slots=True)
class RuleHit:
    """One rule that matched: its name, confidence (0..1) and whether the hit looks quoted."""

    rule: str
    confidence: float
    quoted: bool = False
    span: tuple[int, int] = (0, 0)


_IGNORE_VERB = (
    r"(?:ignore|ignoring|disregard|forget|skip|override|overrule|bypass|abandon|discard|"
    r"drop|throw\s+(?:away|out)|set\s+aside|pay\s+no\s+attention\s+to|stop\s+following|"
    r"do\s+not\s+(?:follow|obey)|don'?t\s+(?:follow|obey)|no\s+longer\s+follow|"
    r"cancel|void|nullify|delete|erase|clear)"
)
_PREV = (
    r"(?:previous|prior|preceding|above|earlier|former|initial|original|foregoing|system|"
    r"developer|pre-?set|given)"
)
_ALL = r"(?:all|any|every|your|all\s+(?:of\s+)?your|any\s+of\s+your|whatever)"
_INSTR = (
    r"(?:instructions?|directions?|directives?|rules?|guidelines?|prompts?|programming|"
    r"constraints?|commands?|guardrails?|restrictions?|guidance|"
    r"content\s+polic(?:y|ies)|safety\s+(?:rules|guidelines|filters?)|context|"
    r"system\s+(?:prompt|message)|training|alignment|limitations?|"
    r"everything\s+(?:you\s+were|you've\s+been|i)\s+(?:told|said|given))"
)
_IGNORE_EN = re.compile(
    rf"\b{_IGNORE_VERB}\s+(?:\S+\s+){{0,3}}?{_PREV}\b[\w\s'-]{{0,30}}?\b{_INSTR}\b"
    rf"|\b{_IGNORE_VERB}\s+{_ALL}\s+(?:(?:the|my|of)\s+)?(?:\w+\s+)?{_INSTR}\b"
    rf"|\b{_IGNORE_VERB}\s+the\s+{_INSTR}\s+(?:above|before|so\s+far|you\s+(?:were|have\s+been)"
    r"\s+given)"
    rf"|\b{_IGNORE_VERB}\s+(?:what(?:ever)?|everything|anything)\s+(?:your\s+)?(?:developers?|"
    r"creators?|makers?|operators?|owners?|openai|anthropic)\s+(?:told|said|wrote|gave)"
    rf"|\b{_IGNORE_VERB}\s+(?:everything|all)\s+(?:above|before|previously|so\s+far|prior)\b"
    rf"|\b{_IGNORE_VERB}\s+everything\s+(?:you\s+(?:were|have\s+been|'ve\s+been)\s+told)",
    _F,
)
_IGNORE_INTL = re.compile(
    # French, German, Spanish, Italian, Portuguese, Dutch, Russian, Chinese, Japanese.
    r"\b(?:ignore[zr]?|oublie[zr]?|n[e']\s*tiens?\s+pas\s+compte)\b.{0,30}"
    r"\b(?:instructions?|consignes?|règles?|directives?)\b"
    r"|\b(?:ignorier(?:e|en)?|vergiss|vergessen\s+sie|missachte)\b.{0,30}"
    r"\b(?:anweisungen|instruktionen|regeln|vorgaben|richtlinien|systemprompt)\b"
    r"|\b(?:ignora(?:r)?|olvida(?:r)?|omite|descarta)\b.{0,30}"
    r"\b(?:instrucciones|reglas|indicaciones|directrices)\b"
    r"|\b(?:ignora(?:re)?|dimentica(?:re)?|trascura)\b.{0,30}"
    r"\b(?:istruzioni|regole|indicazioni)\b"
    r"|\b(?:ignore|esqueça|esqueca|desconsidere)\b.{0,30}\b(?:instruções|instrucoes|regras)\b"
    r"|\b(?:negeer|vergeet)\b.{0,30}\b(?:instructies|regels|aanwijzingen)\b"
    r"|(?:игнорируй|игнорировать|забудь|не\s+обращай\s+внимания\s+на).{0,30}"
    r"(?:инструкци|указани|правил)"
    r"|(?:忽略|无视|忽视|不要理会|忘记|忘掉).{0,12}(?:指令|指示|说明|规则|提示)"
    r"|\b(?:sin|ohne|sans|senza|sem)\s+(?:ninguna\s+|jede\s+|aucune\s+|alcuna\s+)?"
    r"(?:restricciones|einschränkungen|restrictions|restrizioni|restrições|filtros?|filter|"
    r"filtri|regeln|règles|reglas|regole)\b"
    r"|\b(?:keine|ningunas?|aucunes?|nessuna)\s+(?:regeln|reglas|règles|regole|"
    r"einschränkungen|restricciones|restrictions)\b"
    r"|\b(?:modo|modus|mode)\s+(?:desarrollador|entwickler|développeur|sviluppatore)\b"
    r"|\b(?:vergiss|olvida|oublie|dimentica)\s+(?:alles|todo|tout|tutto)\b"
    r"|\b(?:neue|nuevas|nouvelles|nuove)\s+(?:anweisungen|instrucciones|instructions|istruzioni)"
    r"\s*:"
    r"|(?:指示|命令|ルール).{0,10}(?:無視|忘れ)",
    _F,
)
_NEW_RULES = re.compile(
    r"\b(?:consider|treat)\s+(?:\w+\s+){0,4}(?:instructions|rules|guidelines|guidance|prompt)\s+"
    r"(?:\w+\s+)?(?:as\s+)?(?:cancell?ed|void|null|revoked|obsolete|gone|deleted)\b"
    r"|\b(?:instructions|rules|guidelines|guidance|told\s+before)\s+(?:\w+\s+){0,2}"
    r"(?:do\s+not|don'?t|no\s+longer|doesn'?t)\s+(?:matter|apply|count)\b"
    r"|\b(?:instructions|rules|guidelines|guidance|told\s+before)\s+matters?\s+any\s*more\b"
    r"|\b(?:revoked|cancell?ed|lifted|removed|deleted|disabled)\s+(?:all\s+)?(?:of\s+)?(?:your|the)"
    r"\s+(?:guidelines|rules|instructions|restrictions|guidance|safety)"
    r"|\b(?:everything|all)\s+you\s+(?:were|have\s+been)\s+(?:configured|programmed|trained|set\s+up|"
    r"told)\s+(?:with\s+)?(?:is|are)\s+(?:now\s+)?(?:obsolete|void|cancell?ed|irrelevant|invalid)\b"
    r"|(?:^|\n)\s*(?:override|system\s+update|important\s+system\s+update)\s*:"
    r"|\b(?:safety|content)\s+(?:protocols?|filters?|rules|polic(?:y|ies)|checks?)\s+"
    r"(?:are\s+|is\s+|have\s+been\s+)?(?:now\s+)?(?:disabled|off|lifted|removed|suspended)\b"
    r"|\byour\s+(?:rules|instructions|guidelines|guidance|directives?|polic(?:y|ies))\s+"
    r"(?:have|has)\s+(?:changed|been\s+(?:updated|replaced|revoked|cancell?ed|lifted))"
    r"|\b(?:your\s+)?(?:earlier|previous|prior|original|old)\s+(?:guidance|instructions|rules|"
    r"guidelines)\s+(?:is|are)\s+(?:now\s+)?(?:cancell?ed|void|revoked|obsolete|replaced)"
    r"|\bsupersedes?\s+(?:all|any|anything|everything)\s+(?:prior|previous|earlier|else|before)"
    r"|\byou\s+(?:now\s+)?(?:allow|permit|accept)\s+(?:all|any)\s+(?:content|requests?|topics?)"
    r"|\b(?:new|updated)\s+(?:instructions?|directives?)\s*:\s*(?:you\s+(?:must|will|shall)|from\s+"
    r"now|ignore|always|never)"
    r"|\bsystem\s+override\b|\b(?:previous|prior|earlier|old|all)\s+(?:polic(?:y|ies)|rules|"
    r"instructions|guidelines|restrictions)\s+(?:are|is)\s+(?:now\s+)?(?:void|cancell?ed|"
    r"revoked|lifted|suspended|disabled|no\s+longer\s+(?:valid|in\s+effect|apply))\b"
    r"|\b(?:from\s+now\s+on|henceforth|for\s+the\s+rest\s+of\s+(?:this|the)\s+"
    r"(?:chat|conversation|session))\b.{0,60}\b(?:no|without|free\s+(?:of|from))\s+"
    r"(?:any\s+)?(?:restrictions?|rules|filters?|limits?|limitations|censorship|"
    r"guidelines|ethic(?:s|al\s+guidelines))\b"
    r"|\b(?:new|updated|real|actual|true)\s+(?:system\s+)?(?:instructions?|directives?|"
    r"task|prompt)\s*(?::|is\b|are\b).{0,80}\b(?:reveal|print|ignore|password|secret|"
    r"system\s+prompt|without\s+(?:restrictions|filters))",
    _F,
)
_EXTRACT = re.compile(
    r"\b(?:reveal|print|show|display|output|repeat|recite|echo|dump|leak|share|paste|"
    r"quote|spell\s+out|tell\s+me|give\s+me|list|summari[sz]e|translate|write\s+out|"
    r"what\s+(?:is|are|were|was))\b[\w\s,'-]{0,30}?\b(?:your|the|my|its)\s+"
    r"(?:(?:full|entire|complete|original|initial|hidden|secret|confidential|"
    r"exact|internal|whole)\s+){0,2}"
    r"(?:system\s+(?:prompt|message|instructions?)|initial\s+(?:prompt|instructions?)|"
    r"pre-?prompt|developer\s+(?:message|prompt|instructions?)|hidden\s+(?:prompt|"
    r"instructions?|rules)|(?:secret|confidential)\s+(?:instructions?|rules)|"
    r"instructions\s+you\s+(?:were|have\s+been)\s+given|prompt\s+i\s+gave\s+you|"
    r"rules\s+you\s+were\s+(?:given|configured\s+with))\b"
    r"|\b(?:instructions?|rules|prompt|directives?)\s+(?:that\s+)?you\s+(?:received|were\s+given|"
    r"got|have\s+been\s+given)\b"
    r"|\b(?:rules|instructions)\s+did\s+(?:\w+\s+){0,3}give\s+you\b"
    r"|\b(?:between|inside)\s+(?:the\s+)?<\w+>\s+tags\s+in\s+your\s+(?:instructions|prompt)"
    r"|\b(?:your|the)\s+(?:\w+\s+)?instructions\s+(?:word\s+for\s+word|verbatim)"
    r"|\b(?:the|your)\s+prompt\s+i\s+gave\s+you\b"
    r"|\b(?:text|message|instructions?)\s+(?:were\s+you|you\s+were)\s+given\s+before\b"
    r"|\bsetup\s+message\s+(?:your|the)\s+(?:operator|developer)"
    r"|\b(?:every|each|all)\s+(?:the\s+)?rules?\s+you\s+were\s+told\b"
    r"|\brepeat\s+(?:the|all|every(?:thing)?)\s*(?:text|words?|lines?|instructions?)?\s*"
    r"(?:above|before\s+(?:this|my))"
    r"|\bstarting\s+with\s+['\"\u201c]?you\s+are\b"
    r"|\b(?:everything|all\s+(?:the\s+)?text)\s+(?:before|above)\s+(?:this|my)\s+"
    r"(?:message|line|prompt)\b"
    r"|(?:系统提示|系統提示|システムプロンプト|системн\w*\s+промпт|invite\s+système|"
    r"systemprompt|systemanweisung|prompt\s+(?:del\s+)?sistema|instrucciones\s+del\s+sistema|"
    r"istruzioni\s+di\s+sistema|instructions\s+système)",
    _F,
)
_EXTRACT_VERB = re.compile(
    r"\b(?:reveal|print|show|display|output|repeat|tell|give|dump|leak|paste|echo|list|"
    r"quote|recite|spell|summari[sz]e|translate|what|verrate|révèle|revela|rivela|"
    r"affiche[zr]?|zeige?|muestra|mostra|покажи|告诉|显示|输出)",
    _F,
)
_PERSONA = re.compile(
    r"\bdo\s+anything\s+now\b"
    r"|\byou\s+are\s+(?:now\s+)?(?:going\s+to\s+(?:pretend|act)\s+(?:to\s+be\s+)?)?DAN\b"
    r"|\b(?:jailbreak|jailbroken|unrestricted|uncensored|unfiltered|evil|dan)\s+mode\b"
    r"|\b(?:enable|enter|activate|switch\s+to|you\s+are\s+(?:now\s+)?in|now\s+in)\s+"
    r"(?:the\s+)?(?:developer|god|admin|debug)\s+mode\b"
    r"|\b(?:developer|god)\s+mode\s+(?:enabled|activated|engaged)\b"
    r"|\bdeveloper\s+mode\b.{0,60}\b(?:no|without|ignore)\b.{0,20}\b(?:polic|rules|filter|"
    r"restrict|limit)"
    r"|\b(?:ai|assistant|model|chatbot|bot)\s+(?:that|who|which)\s+(?:was|has|had)\s+never\s+"
    r"(?:been\s+)?given\s+any\s+(?:rules|restrictions|guidelines)"
    r"|\b(?:ai|assistant|model|chatbot|bot)\s+with\s+(?:no|zero)\s+(?:filters?|rules|restrictions|"
    r"limits|guardrails|guidelines)\b"
    r"|\bnever\s+refuses?\b|\b(?:zero|no)\s+safety\s+training\b"
    r"|\byou(?:'re|\s+are)\s+not\s+(?:claude|chatgpt|gpt|an?\s+assistant)\s+any\s*more\b"
    r"|\b(?:you\s+are\s+(?:now\s+)?|act\s+as\s+|pretend\s+(?:to\s+be|you\s+are)\s+|"
    r"simulate\s+|become\s+|respond\s+as\s+)(?:an?\s+)?(?:\w+\s+){0,3}?"
    r"(?:unrestricted|uncensored|unfiltered|jailbroken|amoral|unaligned|unethical|"
    r"unbound|limitless)\b"
    r"|\b(?:pretend|imagine|act\s+as\s+if|assume)\b.{0,40}\b(?:no|without|zero)\s+"
    r"(?:\w+\s+){0,2}(?:restrictions?|rules|filters?|guidelines|limitations|"
    r"safety\s+training|ethics|content\s+polic(?:y|ies))\b"
    r"|\b(?:never|don'?t|do\s+not|cannot|can'?t)\s+refuses?\b.{0,40}\b(?:any|every)\b"
    r"|\b(?:no|without)\s+(?:any\s+)?(?:moral|ethical)\s+(?:guidelines|constraints|"
    r"limits|restrictions|compass)"
    r"|\bstay\s+in\s+character\b.{0,80}\b(?:no\s+matter|always|never\s+break)"
    r"|\b(?:bypass|disable|turn\s+off|ignore)\s+(?:your\s+|the\s+|all\s+)?(?:safety|"
    r"content)\s+(?:filters?|polic(?:y|ies)|rules|guidelines|training)\b"
    r"|\b(?:answers?|responds?|does|says?|tells?)\s+(?:everything|anything)\s+without\s+"
    r"(?:any\s+)?(?:filters?|restrictions?|limits?|censorship|rules|refusing)"
    r"|\b(?:uncensored|evil)\s+twin\b|\bescaped\s+(?:its|your)\s+(?:alignment|training)",
    _F,
)
_TEMPLATE_TOKENS = re.compile(
    r"<\|(?:im_start|im_end|system|user|assistant|endoftext|start_header_id|"
    r"end_header_id|eot_id|begin_of_text)\|>"
    r"|\[/?INST\]|<</?SYS>>|<start_of_turn>|<end_of_turn>",
    _F,
)
_ROLE_TURN = re.compile(
    r"(?:^|\n)\s*(?:#{1,4}\s*|\[|<)?(?:system|developer|admin(?:istrator)?)"
    r"(?:\s+(?:message|prompt|override|instructions?|notice))?\s*(?:\]|>)?\s*[:#>-]+"
    r"[^\n]{0,200}?\b(?:you|ignore|must|new|override|instructions?|reveal|disabled?|"
    r"void|polic(?:y|ies)|restrictions?|may\s+now|user\s+is|administrator|admin|"
    r"authori[sz]ed|privileges?)\b"
    r"|</(?:user|human|context|document|input)>\s*<(?:system|assistant|instructions?)>"
    r"|(?:^|\n)\s*(?:end\s+of\s+(?:user\s+)?(?:input|prompt|context|document)|"
    r"#{2,}\s*(?:new\s+)?instruction)"
    r'|\{\s*"role"\s*:\s*"(?:system|developer)"',
    _F,
)
_INDIRECT = re.compile(
    r"\b(?:dear|attention|note\s+to|to|hey|p\.?s\.?\s+to)\s+(?:the\s+|any\s+|all\s+)?"
    r"(?:ai|a\.i\.|assistant|chatbot|bot|llm|language\s+model|gpt|claude|agent|"
    r"summari[sz]er|note-taker|automated\s+assistant|ai\s+(?:agent|model|reader|"
    r"screeners?|summari[sz]er|assistant|note-taker))s?\b"
    r"|\bif\s+you\s+are\s+an?\s+(?:ai|llm|language\s+model|assistant|bot|chatbot)\b"
    r"|\b(?:ai|llm|assistant|chatbot)\s+(?:instructions?|directive)\s*:"
    r"|\b(?:ai|llm)\s+(?:agents?|models?|assistants?)\s+(?:reading|processing)\s+this\b"
    r"|\bwhen\s+(?:an?\s+)?(?:ai|llm|assistant)\s+reads\s+this\b"
    r"|\b(?:instruction|message|directive)\s+for\s+the\s+(?:ai|chatbot|assistant|llm)\b"
    r"|\b(?:ai|assistant|llm)\s*:\s*(?:ignore|disregard|you\s+must|do\s+not)\b",
    _F,
)
_DATA_ORDERS = re.compile(
    r"\b(?:call|use|invoke|run|execute|trigger)\s+(?:the\s+)?`?[a-z]+_[a-z_]+`?\s+"
    r"(?:tool\s+|function\s+)?(?:on|to|with|for|before|and)\b"
    r"|\bsave\s+(?:this|the\s+following|it)\s+(?:note\s+)?(?:to|in)\s+your\s+"
    r"(?:long-term\s+)?memory\b"
    r"|\b(?:in|to)\s+(?:every|all)\s+(?:future\s+)?(?:replies|reply|responses?|answers?)\b"
    r"|\b(?:for|in)\s+all\s+future\s+(?:tasks|conversations|sessions|turns)\b"
    r"|\b(?:for|to)\s+(?:ai|llm)\s+(?:coding\s+)?agents\b"
    r"|\bai\s+agents\s+(?:\w+\s+){0,3}should\b"
    r"|\b(?:e-?mail|send|forward)\s+(?:the\s+)?(?:full\s+|entire\s+|whole\s+)?"
    r"(?:customer|user|client|contact)\s+(?:list|database|data|records)\s+to\b",
    _F,
)
_IMPERATIVE = re.compile(
    r"\b(?:must|should|ignore|disregard|do\s+not|don'?t|instead|call|send|tell|say|reply|"
    r"respond|recommend|rank|add|mark|delete|transfer|approve|visit|download|stop|"
    r"reveal|forward|include|output|print|list|write|explain|give|share|show|provide|"
    r"answer|execute|run|open|click|praise|rate|claim|state|insert|remove|your\s+(?:real|"
    r"new|actual|only)\s+(?:task|job|goal))\b",
    _F,
)
_EXFIL = re.compile(
    r"!\[[^\]\n]{0,80}\]\(\s*https?://[^)\s]{1,200}[?&][^)\s]{0,200}"
    r"(?:\{|%7b|<|conversation|history|summary|data|secret|messages|prompt|password|token)"
    r"|\b(?:send|email|e-mail|post|upload|forward|exfiltrate|transmit|append|leak)\b.{0,60}"
    r"\b(?:conversation|chat\s+(?:history|transcript|log)|transcript|previous\s+messages|"
    r"all\s+messages|system\s+prompt|api\s+keys?|credentials|passwords?|secrets?|"
    r"id_rsa|\.ssh|private\s+keys?|cookies)\b.{0,60}(?:https?://|\S+@\S+\.\w|webhook|"
    r"pastebin|\bto\s+(?:my|this|the)\s+(?:server|endpoint|url))"
    r"|\b(?:https?://\S{1,80}[?&]\w{1,10}=)\s*(?:\+|followed\s+by|with)\s+(?:the\s+)?"
    r"(?:user'?s?\s+)?(?:credentials|password|api\s+key|secrets?|conversation)",
    _F,
)
_META = re.compile(
    r"(?<![./@-])\b(?:example|e\.g\.|such\s+as|like\s+this|test\s*(?:case|set|input)?|payload|"
    r"string|phrase|detect(?:ed|or|ion|s)?|classifier|filter|scanner|guard|attack(?:s|er)?|"
    r"prompt\s+injection|jailbreaks?|red[- ]?team|paper|authors?|incident|report|unit\s+test|"
    r"assert|blocked|flag(?:s|ged)?|why\s+does|translate\s+this)\b",
    _F,
)
_QUOTES = re.compile(
    r"\"[^\"\n]{3,400}\"|'[^'\n]{3,400}'|`[^`\n]{3,400}`|\u201c[^\u201d]{3,400}\u201d"
)
_B64 = re.compile(r"[A-Za-z0-9+/]{24,}={0,2}|[A-Za-z0-9_-]{32,}={0,2}")
_HEX = re.compile(r"\b(?:[0-9a-fA-F]{2}[\s:]?){20,}")
_ZERO_WIDTH = re.compile("[\u200b\u200c\u200d\u2060\ufeff\u00ad]")
_BIDI = re.compile("[\u202a-\u202e\u2066-\u2069]")
_DECODE_HINT = re.compile(
    r"\b(?:decode|decrypt|deobfuscate|base64|b64|rot-?13|hex)\b.{0,60}\b(?:follow|execute|obey|"
    r"comply|do\s+(?:it|what)|run|perform|act\s+on)\b"
    r"|\b(?:follow|execute|obey)\b.{0,40}\b(?:decoded|encoded|base64|rot-?13|hex)\b",
    _F,
)

# The classifier's gate: text with none of these cues (and no non-Latin script, and short) is
# not embedded. Ordinary prompts ("translate this", "how do I get a receipt?") rarely carry
# one, so most traffic skips the ~4 ms embedding, and the classifier cannot misfire on them.
_CUE = re.compile(
    r"ignor|disregard|forget|instruct|prompt|system|\brules?\b|guideline|polic|restrict|"
    r"filter|censor|pretend|act\s+as|you\s+are|you'?re|you\s+will|you\s+must|role|persona|"
    r"\bmode\b|jailbr|\bdan\b|assistant|\bai\b|a\.i\.|llm|language\s+model|chatbot|\bbot\b|"
    r"gpt|claude|reveal|secret|password|credential|api\s+key|confidential|hidden|overrid|"
    r"bypass|develop|admin|previous|above|earlier|prior|preceding|obey|comply|decod|encod|"
    r"base64|rot-?13|\bhex\b|send|forward|e-?mail|https?://|!\[|<[a-z|/!]|\{|\[|##|---|===|"
    r"from\s+now|henceforth|new\s+task|unrestrict|uncensor|unfilter|refus|no\s+limit|"
    r"without\s+(?:any\s+)?(?:limit|rule|restriction|filter)|in\s+character|simulat|"
    r"imagine|hypothetical|grand(?:ma|mother)|verbatim|word\s+for\s+word|repeat|initial|"
    r"original|configur|safety|ethic|moral|allowed|permission|authori|privileg|anything|"
    r"everything|scrap|obsolete|revok|void|cancel|context",
    _F,
)
GATE_ALWAYS_CHARS = 1_500
# `_CUE` split for speed on ASCII text (where lower-casing is exactly what IGNORECASE does):
# its literal branches go to one Aho-Corasick pass over the lower-cased text, the rest to a
# small regex. Equivalence with `_CUE` is tested on every labelled set.
_CUE_LITERALS = [
    "ignor",
    "disregard",
    "forget",
    "instruct",
    "prompt",
    "system",
    "guideline",
    "polic",
    "restrict",
    "filter",
    "censor",
    "pretend",
    "role",
    "persona",
    "jailbr",
    "assistant",
    "a.i.",
    "llm",
    "chatbot",
    "gpt",
    "claude",
    "reveal",
    "secret",
    "password",
    "credential",
    "confidential",
    "hidden",
    "overrid",
    "bypass",
    "develop",
    "admin",
    "previous",
    "above",
    "earlier",
    "prior",
    "preceding",
    "obey",
    "comply",
    "decod",
    "encod",
    "base64",
    "send",
    "forward",
    "email",
    "e-mail",
    "http://",
    "https://",
    "![",
    "{",
    "[",
    "##",
    "---",
    "===",
    "henceforth",
    "unrestrict",
    "uncensor",
    "unfilter",
    "refus",
    "simulat",
    "imagine",
    "hypothetical",
    "grandma",
    "grandmother",
    "verbatim",
    "repeat",
    "initial",
    "original",
    "configur",
    "safety",
    "ethic",
    "moral",
    "allowed",
    "permission",
    "authori",
    "privileg",
    "anything",
    "everything",
    "scrap",
    "obsolete",
    "revok",
    "void",
    "cancel",
    "context",
]
_CUE_REST = re.compile(
    r"\brules?\b|act\s+as|you\s+are|you'?re|you\s+will|you\s+must|\bmode\b|\bdan\b|\bai\b|"
    r"language\s+model|\bbot\b|api\s+key|rot-?13|\bhex\b|<[a-z|/!]|from\s+now|new\s+task|"
    r"no\s+limit|without\s+(?:any\s+)?(?:limit|rule|restriction|filter)|in\s+character|"
    r"word\s+for\s+word",
    re.IGNORECASE,
)
_NON_LATIN = re.compile("[\u2001-\U0010ffff]")  # what `ord(c) > 0x2000` asked, in C


def _cue_automaton() -> ahocorasick.Automaton:
    auto = ahocorasick.Automaton(ahocorasick.STORE_ANY)
    for literal in _CUE_LITERALS:
        auto.add_word(literal, literal)
    auto.make_automaton()
    return auto


_CUE_AUTO = _cue_automaton()


def _has_cue(text: str) -> bool:
    if not text.isascii():
        return _CUE.search(text) is not None
    lower = text.lower()
    for _ in _CUE_AUTO.iter(lower):
        return True
    return _CUE_REST.search(lower) is not None


def needs_classifier(text: str) -> bool:
    """Whether the classifier should look at `text` (see `_CUE`)."""
    if len(text) > GATE_ALWAYS_CHARS or _has_cue(text):
        return True
    return _NON_LATIN.search(text) is not None


_TEMPLATE_TALK = re.compile(
    r"\b(?:chat\s*template|chatml|tokeni[sz]er|special\s+tokens?|apply_chat_template|"
    r"what\s+(?:do|does|is|are)|mean(?:s|ing)?\b)",
    _F,
)

_PLAIN_RULES: tuple[tuple[str, re.Pattern[str], float], ...] = (
    ("ignore_previous", _IGNORE_EN, 0.95),
    ("ignore_previous", _IGNORE_INTL, 0.93),
    ("new_instructions", _NEW_RULES, 0.9),
    ("system_prompt_extraction", _EXTRACT, 0.9),
    ("jailbreak_persona", _PERSONA, 0.93),
    ("chat_template_tokens", _TEMPLATE_TOKENS, 0.9),
    ("role_injection", _ROLE_TURN, 0.9),
    ("exfiltration", _EXFIL, 0.92),
)


# Literal prefilters: every match of the pattern contains one of these lowercase stems, so a
# text with none of them skips the pattern. CPython `re` spends microseconds per character
# on these alternations; one Aho-Corasick pass (`_present`) finds every stem at C speed.
# Equivalence is tested on every labelled set (tests/unit/test_injection_rules.py).
_ANCHORS: dict[re.Pattern[str], tuple[str, ...]] = {
    _IGNORE_EN: (
        "ignor",
        "disregard",
        "forget",
        "skip",
        "overr",
        "bypass",
        "abandon",
        "discard",
        "drop",
        "throw",
        "aside",
        "attention",
        "follow",
        "obey",
        "cancel",
        "void",
        "nullif",
        "delet",
        "erase",
        "clear",
    ),
    _IGNORE_INTL: (
        "ignor",
        "oubli",
        "tiens",
        "vergiss",
        "vergessen",
        "missacht",
        "olvid",
        "omite",
        "descarta",
        "dimentic",
        "trascur",
        "esque",
        "desconsider",
        "negeer",
        "vergeet",
        "игнор",
        "забуд",
        "обраща",
        "忽略",
        "无视",
        "忽视",
        "不要理会",
        "忘记",
        "忘掉",
        "指示",
        "命令",
        "ルール",
        "restric",
        "einschränk",
        "restriz",
        "restriç",
        "filt",
        "regeln",
        "règles",
        "reglas",
        "regole",
        "desarrollador",
        "entwickler",
        "développeur",
        "sviluppatore",
        "anweisungen",
        "instrucciones",
        "instructions",
        "istruzioni",
    ),
    _NEW_RULES: (
        "consider",
        "treat",
        "matter",
        "apply",
        "count",
        "revok",
        "cancel",
        "lifted",
        "removed",
        "delet",
        "disabled",
        "obsolete",
        "void",
        "irrelevant",
        "invalid",
        "override",
        "update",
        "safety",
        "content",
        "changed",
        "replaced",
        "supersed",
        "allow",
        "permit",
        "accept",
        "instruction",
        "directive",
        "suspended",
        "longer",
        "restriction",
        "rules",
        "filter",
        "limit",
        "censorship",
        "guideline",
        "ethic",
        "task",
        "prompt",
    ),
    # "never" is left out: every branch with it also needs "refus", "rules", "restriction",
    # "guideline" or "character". "dan" (inside "guidance", "abundant") is checked as a word.
    _PERSONA: (
        "anything",
        "mode",
        "filter",
        "rules",
        "restriction",
        "limit",
        "guardrail",
        "guideline",
        "safety",
        "more",
        "unrestrict",
        "uncensor",
        "unfilter",
        "jailbr",
        "amoral",
        "unaligned",
        "unethical",
        "unbound",
        "limitless",
        "ethic",
        "polic",
        "refus",
        "moral",
        "character",
        "twin",
        "escaped",
    ),
    _TEMPLATE_TOKENS: ("<|", "inst]", "sys>>", "_of_turn>"),
    _ROLE_TURN: ("system", "developer", "admin", "</", "end", "instruction", '"role"'),
    _EXFIL: (
        "![",
        "send",
        "email",
        "e-mail",
        "post",
        "upload",
        "forward",
        "exfiltrat",
        "transmit",
        "append",
        "leak",
        "http",
    ),
    _EXTRACT: (
        "system",
        "initial",
        "prompt",
        "developer",
        "hidden",
        "secret",
        "confidential",
        "instruction",
        "rule",
        "directive",
        "tags",
        "given",
        "setup",
        "repeat",
        "starting",
        "before",
        "above",
        "系统提示",
        "系統提示",
        "システムプロンプト",
        "промпт",
        "système",
        "sistema",
    ),
}
PREFILTER = True


def _automaton() -> ahocorasick.Automaton:
    """One Aho-Corasick automaton over every anchor: a single C pass finds which are present
    (measured: checking ~200 anchors with `in` one by one cost ~1-2 ms on a 2 KB prompt)."""
    auto = ahocorasick.Automaton(ahocorasick.STORE_ANY)
    for anchor in {a for group in _ANCHORS.values() for a in group} | set(_INDIRECT_STEMS):
        auto.add_word(anchor, anchor)
    auto.make_automaton()
    return auto


def _present(lower: str) -> set[str]:
    """The anchors that occur in `lower` (already lower-cased)."""
    return {found for _, found in _AUTO.iter(lower)} if lower else set()


# `_INDIRECT` names the assistant in every branch: one of these stems, or "ai"/"ais" as a word
# ("ai" is inside too many words - "said", "again" - to be a substring anchor).
_INDIRECT_STEMS = (
    "a.i.",
    "assistant",
    "bot",
    "llm",
    "language",
    "gpt",
    "claude",
    "agent",
    "summarizer",
    "summariser",
    "note-taker",
)


def _is_word_char(c: str) -> bool:
    return c.isalnum() or c == "_"  # what `re` calls \w


def _has_word(lower: str, word: str, plural: bool = False) -> bool:
    """`re.search(rf"\b{word}s?\b", lower)` without the per-position cost of a leading \b:
    a C substring search, then the boundaries checked by hand."""
    n = len(word)
    i = lower.find(word)
    while i >= 0:
        if i == 0 or not _is_word_char(lower[i - 1]):
            after = lower[i + n : i + n + 1]
            if not after or not _is_word_char(after):
                return True
            if plural and after == "s":
                after = lower[i + n + 1 : i + n + 2]
                if not after or not _is_word_char(after):
                    return True
        i = lower.find(word, i + 1)
    return False


def _indirect_possible(lower: str, present: set[str]) -> bool:
    return not present.isdisjoint(_INDIRECT_STEMS) or _has_word(lower, "ai", plural=True)


_TAG_CHAR = re.compile("[\U000e0000-\U000e007f]")
_AUTO = _automaton()


def scan_window(text: str) -> str:
    """The part of `text` the rules look at: all of it up to MAX_SCAN_CHARS, else head + tail."""
    if len(text) <= MAX_SCAN_CHARS:
        return text
    return text[:HEAD_CHARS] + "\n" + text[-TAIL_CHARS:]


def hidden_tag_text(text: str) -> str:
    """ASCII spelled by Unicode tag characters (U+E0020..E007E), the 'invisible prompt' trick.

    Tag runs right after U+1F3F4 (black flag: subdivision flags like England's) are emoji,
    not hidden text, and are skipped.
    """
    if _TAG_CHAR.search(text) is None:  # the common case, in C: no tag character at all
        return ""
    out: list[str] = []
    prev = ""
    in_flag = False
    for ch in text:
        cp = ord(ch)
        if 0xE0000 <= cp <= 0xE007F:
            if prev == "\U0001f3f4":
                in_flag = True
            if not in_flag and 0xE0020 <= cp <= 0xE007E:
                out.append(chr(cp - 0xE0000))
            if cp == 0xE007F:
                in_flag = False
        else:
            in_flag = False
            prev = ch
            continue
        if not in_flag:
            prev = ch
    return "".join(out)


def normalize(text: str) -> str:
    """NFKC (fullwidth and styled letters to plain), zero-width and bidi controls removed."""
    text = unicodedata.normalize("NFKC", text)
    text = _ZERO_WIDTH.sub("", text)
    return _BIDI.sub("", text)


def _despaced(text: str) -> str | None:
    """'I-g-n-o-r-e a-l-l' / 'i g n o r e' letter-splitting undone, or None when absent."""
    if not re.search(r"(?:\b\w[-. _*]){5,}\w\b", text):
        return None
    return re.sub(r"(?<=\b\w)[-._*](?=\w\b)", "", text)


def _quoted(text: str, span: tuple[int, int]) -> bool:
    """The hit ends inside a quotation, and the text *around* that quotation talks about it."""
    for q in _QUOTES.finditer(text):
        if q.start() < span[1] <= q.end() + 1:
            around = text[max(0, q.start() - 300) : q.start()] + " " + text[q.end() : q.end() + 300]
            return _META.search(around) is not None
    return False


def _data_hits(text: str) -> list[RuleHit]:
    """Orders aimed at an agent inside a tool result or document (call a tool, persist)."""
    m = _DATA_ORDERS.search(text)
    if m is None:
        return []
    span = (m.start(), m.end())
    return [RuleHit("indirect_instruction", 0.85, _quoted(text, span), span)]


def _plain_hits(text: str) -> list[RuleHit]:
    hits: list[RuleHit] = []
    lower = text.lower()
    present = _present(lower) if PREFILTER else set()
    for name, pattern, confidence in _PLAIN_RULES:
        if any(h.rule == name for h in hits):
            continue
        anchors = _ANCHORS.get(pattern) if PREFILTER else None
        if (
            anchors is not None
            and present.isdisjoint(anchors)
            and not (pattern is _PERSONA and _has_word(lower, "dan"))
        ):
            continue
        m = pattern.search(text)
        if m is None:
            continue
        if name == "system_prompt_extraction" and not _EXTRACT_VERB.search(text):
            continue
        span = (m.start(), m.end())
        quoted = _quoted(text, span)
        if name == "chat_template_tokens" and _TEMPLATE_TALK.search(text):
            quoted = True  # a question about chat templates, not a turn
        hits.append(RuleHit(name, confidence, quoted, span))
    m = _INDIRECT.search(text) if not PREFILTER or _indirect_possible(lower, present) else None
    if m is not None and _IMPERATIVE.search(text, m.end(), m.end() + 200):
        span = (m.start(), m.end())
        hits.append(RuleHit("indirect_instruction", 0.9, _quoted(text, span), span))
    return hits


def _decoded_blobs(text: str) -> list[str]:
    """Printable decodings of base64 and hex blobs in `text` (bounded count and size)."""
    out: list[str] = []
    for m in _B64.finditer(text):
        if len(out) >= MAX_BLOBS:
            break
        blob = m.group(0)[:MAX_BLOB_CHARS]
        blob = blob[: len(blob) - len(blob) % 4] if "-" not in blob and "_" not in blob else blob
        try:
            raw = base64.b64decode(
                blob + "=" * (-len(blob) % 4),
                altchars=b"-_" if "-" in blob or "_" in blob else None,
            )
        except (binascii.Error, ValueError):
            continue
        decoded = _printable(raw)
        if decoded is not None:
            out.append(decoded)
    for m in _HEX.finditer(text):
        if len(out) >= MAX_BLOBS:
            break
        digits = re.sub(r"[\s:]", "", m.group(0))[:MAX_BLOB_CHARS]
        try:
            raw = bytes.fromhex(digits[: len(digits) - len(digits) % 2])
        except ValueError:
            continue
        decoded = _printable(raw)
        if decoded is not None:
            out.append(decoded)
    return out


_URLENC = re.compile(r"(?:%[0-9a-fA-F]{2}[^%\s]{0,12}){6,}")
_UESC = re.compile(r"(?:\\u[0-9a-fA-F]{4}){6,}")
_BINARY = re.compile(r"(?:[01]{8}\s?){8,}")
_B32 = re.compile(r"\b[A-Z2-7]{32,}={0,6}")
_LEET_CHAR = re.compile(r"[0-9$@]")  # both branches of _LEET_WORD need one: a fast C scan first
_LEET_WORD = re.compile(r"[a-z][0-9$@][a-z]|[0-9][a-z]{1,3}[0-9]", re.I)
_LEET = str.maketrans(
    {"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a", "$": "s"}
)


def _other_decodings(text: str) -> list[str]:
    """URL-encoding, \\u escapes, 8-bit binary, base32, reversed text, leetspeak (bounded)."""
    out: list[str] = []
    if _URLENC.search(text):
        out.append(urllib.parse.unquote(text[:MAX_BLOB_CHARS]))
    m = _UESC.search(text)
    if m:
        escaped = m.group(0)[:MAX_BLOB_CHARS]
        out.append(re.sub(r"\\u([0-9a-fA-F]{4})", lambda g: chr(int(g.group(1), 16)), escaped))
    m = _BINARY.search(text)
    if m:
        bits = re.sub(r"\s", "", m.group(0))[: MAX_BLOB_CHARS * 8]
        out.append("".join(chr(int(bits[i : i + 8], 2)) for i in range(0, len(bits) - 7, 8)))
    m = _B32.search(text)
    if m:
        blob = m.group(0)[:MAX_BLOB_CHARS]
        try:
            decoded = _printable(base64.b32decode(blob + "=" * (-len(blob) % 8)))
        except (binascii.Error, ValueError):
            decoded = None
        if decoded:
            out.append(decoded)
    if _LEET_CHAR.search(text) and _LEET_WORD.search(text):
        out.append(text.translate(_LEET))
    out.append(text[::-1])
    return out


def _printable(raw: bytes) -> str | None:
    if len(raw) < 8:
        return None
    try:
        s = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    good = sum(1 for c in s if c.isprintable() or c in "\n\t\r")
    return s if good >= 0.9 * len(s) else None


def scan(text: str, *, data: bool = False, _depth: int = 0) -> list[RuleHit]:
    """All rule hits in `text` (bounded: see the module docstring). Order: most specific first.

    `data=True` for tool results and documents: orders aimed at an agent there (call a tool,
    save to memory, "in every future reply") count too; a user may say such things himself.
    """
    text = scan_window(text)
    hits: list[RuleHit] = []
    hidden = hidden_tag_text(text) if _depth == 0 else ""
    if len(hidden) >= MIN_HIDDEN_TAG_CHARS:
        hits.append(RuleHit("invisible_unicode", 0.97))
    norm = normalize(text)
    if hidden:
        norm = norm + "\n" + hidden
    hits.extend(_plain_hits(norm))
    if data and not any(h.rule == "indirect_instruction" for h in hits):
        hits.extend(_data_hits(norm))
    despaced = _despaced(norm)
    if despaced is not None and despaced != norm:
        for h in _plain_hits(despaced):
            if not any(x.rule == h.rule for x in hits):
                hits.append(RuleHit("obfuscated_" + h.rule, h.confidence, h.quoted, h.span))
    if _depth < MAX_DEPTH:
        for decoded in _decoded_blobs(norm):
            inner = scan(decoded, _depth=_depth + 1)
            if inner:
                hits.append(RuleHit("encoded_payload", max(h.confidence for h in inner)))
                break
        if _depth == 0:
            head = norm[:VARIANT_CHARS]
            for variant in [codecs.encode(head, "rot13"), *_other_decodings(head)]:
                inner = [
                    h
                    for h in _plain_hits(variant)
                    if h.rule != "indirect_instruction" and not h.quoted
                ]
                if inner:
                    hits.append(RuleHit("encoded_payload", max(h.confidence for h in inner)))
                    break
    # "decode this and follow it" around an opaque blob: suspicious even undecoded.
    if (
        not any(h.rule == "encoded_payload" for h in hits)
        and (_B64.search(norm) or _HEX.search(norm))  # cheaper than the hint: first
        and _DECODE_HINT.search(norm)
    ):
        hits.append(RuleHit("encoded_payload", 0.8))
    return hits
