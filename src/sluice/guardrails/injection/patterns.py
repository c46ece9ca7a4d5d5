"""The rule patterns of the injection detector (split out of `rules.py`; verdicts unchanged).

Each compiled pattern is one family of known attack phrasing; `_PLAIN_RULES` names the ones
`rules.scan` runs on every text, with the confidence a hit reports. The patterns have no
nested quantifiers over overlapping classes and bounded gaps between words (hostile input).
"""

from __future__ import annotations

import re

_F = re.IGNORECASE | re.UNICODE


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
