"""The readable source of the shipped code and credential patterns (issue 12, section 5).

``python tests/corpus/patterns.py --write`` rewrites ``code_patterns`` and the credential
condition of AST-DATA-001 in ``rego/pygate/config/data.json`` from the lists below;
``tests/test_detection.py`` fails when the two disagree.

Why the patterns are grouped in data.json: OPA caches at most 100 compiled regexes (for the
whole process, ``regexCacheMaxSize`` in ``topdown/regex.go``); the ~100 small patterns below
as separate entries recompiled on every query (4.6 ms per decision instead of ~1 ms). So each
notation becomes ONE alternation, ``(?m)`` for the whole group, ``(?i)`` scoped to its member.
The patterns are RE2 (Go ``regexp``): no look-around, no back-references; ``\\w``/``\\s``/``\\b``
are ASCII.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

DATA = Path(__file__).resolve().parents[2] / "rego" / "pygate" / "config" / "data.json"

GROUPS: dict[str, list[str]] = {
    "fences and shebangs": [
        r"```",
        r"(?m)^\s*#!\s*/",
    ],
    "Python": [
        r"\bdef\s+\w+\s*\(",
        r"(?m)^\s*(?:import\s+[\w.]+|from\s+[\w.]+\s+import\s+[\w*(])",
        r"(?m)^\s*class\s+\w+\s*(?:\([^)\n]*\))?\s*:\s*$",
        r"(?m)^\s*(?:for\s+\w+(?:\s*,\s*\w+)*\s+in\s+[^\n:]+|while\s+[^\n:]+|if\s+[^\n:]+|elif\s+[^\n:]+|else|try|except(?:\s+\w+)?[^\n:]*|finally|with\s+[^\n:]+)\s*:\s*$",
        r"(?m)^\s*@[\w.]+(?:\([^\n]*\))?[ \t]*\n\s*(?:def|async|class|public|private|protected|static|void|function|export|@)\b",
        r"(?m)^\s*(?:assert|raise|yield|return|global|nonlocal|del|await)\s+[\w{(\[\"'-]",
        r"\blambda\s+\w*(?:\s*,\s*\w+)*\s*:",
        r"\b(?:print|exec|eval|compile|__import__|input|open|len|range|isinstance)\s*\(\s*['\"\w\[(]",
        r"\b(?:self|this)\.\w+\s*(?:[-+*/]?=|\()",
        r"\bf['\"][^'\"\n]*\{\w",
    ],
    "calls with dotted receivers: obj.method(...)": [
        r"\b[a-z_]\w*(?:\.\w+)+\s*\([^()\n]*\)\s*(?:;|$|\.\w+\s*\(|\))",
        r"(?m)\b\w+\s*\([^()\n]*\)\s*;\s*$",
    ],
    "assignment with a call or a literal on the right (x = f(...), x := y, let/const/var)": [
        r"(?m)^\s*(?:const|let|var|val|auto|int|char|float|double|long|bool|string|String|my|local)\s+[\w*&$]+\s*(?::\s*[\w<>\[\]|' ]+)?\s*=",
        r"(?m)^\s*\w+(?:\s*,\s*\w+)*\s*:=",
        r"(?m)^\s*[\w.\[\]'\"]+\s*(?:[-+*/%|&]?=)\s*(?:[\w.]+\s*\(|\[|\{|\d|['\"]|\w+\s*[-+*/]\s*\w)",
    ],
    "JS / TS": [
        r"\bfunction\s*\*?\s*\w*\s*\([^()\n]*\)\s*\{",
        r"\)\s*=>|\(\s*\w+\s*=>|=>\s*\{",
        r"(?m)^\s*(?:const|let|var)\s+[{\[][^\n]*[}\]]\s*=",
        r"\b(?:require|import)\s*\(\s*['\"]",
        r"(?m)^\s*(?:import\s+[\w{},*\s]+\s+from\s+['\"]|export\s+(?:default|const|function|class|interface|type|async)\b|module\.exports\b)",
        r"(?m)^\s*(?:export\s+)?(?:interface|enum)\s+\w+\s*(?:<[^>\n]*>)?\s*\{",
        r"(?m)^\s*(?:export\s+)?type\s+\w+(?:<[^>\n]*>)?\s*=",
        r"\b(?:console\.\w+|document\.\w+|window\.\w+|localStorage\.\w+|alert|setTimeout|setInterval|atob|btoa)\s*\(",
        r"\b(?:document|window)\.\w+(?:\.\w+)*\s*=",
    ],
    "shell": [
        r"\b(?:curl|wget|iwr|fetch)\b[^\n|]*\|\s*(?:sudo\s+)?(?:ba|z|da|k)?sh\b",
        r"\b(?:ba|z)?sh\s+-c\s+['\"]",
        r"\$\(\s*(?:curl|wget)\b",
        r"\b(?:curl|wget)\s+(?:-{1,2}[A-Za-z]|https?://|'https?://|\"https?://)",
        r"(?m)^\s*\$\s+\w",
        r"(?m)^\s*(?:sudo\s+)?(?:apt(?:-get)?|yum|dnf|brew|pip3?|npm|yarn|gem|cargo|go|docker|kubectl|git|ssh|scp|tar|chmod|chown|rm|mv|cp|mkdir|cd|ls|cat|echo|export|source|nc|find|ps|kill|crontab|systemctl|make)\s+(?:[-+./~$\"'{*]|\w+@|(?:install|clone|push|pull|run|build|exec|apply|get|status|commit|checkout|add|remove|update|upgrade|init|start|stop|restart|enable|logs|aux)\b)",
        r"(?m)^\s*(?:for\s+\w+\s+in\s+[^\n;]*;\s*do\b|if\s+\[\[?\s|while\s+\[)",
        r"\n[ \t]*(?:done|fi|esac)[ \t]*(?:\n|$)",
        r"\|\s*(?:grep|awk|sed|xargs|sort|uniq|head|tail|wc|tee|cut|tr|crontab|iex|Invoke-Expression)\b",
        r"\s&&\s+\.?/?\w",
        r"(?m)^\s*export\s+\w+=",
        r"(?m)^\s*\w+=(?:\"[^\"\n]*\"|'[^'\n]*'|\$\w|\S+)\s*$",
    ],
    "SQL, any case": [
        r"(?i)\bselect\s+(?:distinct\s+)?(?:\*|count\s*\(|[\w.]+\s*,|[\w.]+\s+from\s+[\w.]+\s*(?:;|$|\b(?:where|join|inner|left|right|order|group|limit|having|union)\b))",
        r"(?i)\bselect\s+[\w.*(), ]+\bfrom\s+[\w.]+\s+(?:where|join|order\s+by|group\s+by|limit)\b",
        r"(?i)\binsert\s+into\s+[\w.`\"]+\s*(?:\(|values\b|select\b)",
        r"(?i)\bupdate\s+[\w.`\"]+\s+set\s+[\w.`\"]+\s*=",
        r"(?i)\bdelete\s+from\s+[\w.`\"]+\s*(?:;|$|where\b)",
        r"(?i)\b(?:create|alter|drop|truncate)\s+(?:(?:or\s+replace|temporary|temp|unique|if\s+(?:not\s+)?exists)\s+)*(?:table|database|schema|index|view|procedure|function|trigger|user)\s+(?:if\s+(?:not\s+)?exists\s+)?[\w.`\"]+\s*(?:\(|;|$|on\b|add\b|drop\b|as\b|to\b|alter\b|rename\b)",
        r"(?i)\bcreate\s+(?:user|role|login)\s+\S+\s+(?:identified|with|password)\b",
        r"(?i)\bgrant\s+[\w, ]+\s+on\s+\S+\s+to\s+\S",
        r"(?i)\bmerge\s+into\s+\w+",
        r"(?i)\bwith\s+\w+\s+as\s*\(\s*select\b",
        r"(?i)'\s*or\s+'?1'?\s*=\s*'?1",
        r"(?i)\bselect\s+\d+\s*(?:;|$)",
    ],
    "HTML": [
        r"(?i)<\s*(?:script|iframe|object|embed|svg|style|meta|form|input|button|img|body|html|link|a|div|span|ul|li|p|h\d|!doctype)\b[^>]*>",
        r"(?i)\bon[a-z]{3,}\s*=\s*['\"]?[\w(]",
        r"(?i)javascript\s*:",
        r"<[a-zA-Z][\w-]*(?:\s[^<>]*)?>[^<]*</[a-zA-Z][\w-]*\s*>",
    ],
    "Go": [
        r"(?m)^\s*package\s+\w+\s*;?\s*$",
        r"\bfunc\s+(?:\([^)]*\)\s*)?\w*\s*\(",
        r"\bgo\s+func\s*\(",
        r"(?m)^\s*(?:defer|go)\s+[\w.]+\s*\(",
        r"\bif\s+err\s*!=\s*nil\b",
        r"\bfor\s+\w+\s*:=",
        r"(?m)^\s*(?:var|type)\s+\w+\s+(?:struct|interface|\[|map\[|chan\b|[\w.]+\s*$)",
        r"\bfmt\.\w+\(",
        r"\n[ \t]*case\s+[^\n:]+:[ \t]*(?:\n|$)",
        r"<-\s*\w+",
    ],
    "Rust": [
        r"\b(?:pub\s+)?fn\s+\w+\s*(?:<[^>\n]*>)?\s*\(",
        r"\blet\s+(?:mut\s+)?\w+\s*(?::\s*[^=\n]+)?=",
        r"(?m)^\s*use\s+\w+(?:::\w+)+",
        r"\b\w+!\s*\(",
        r"\bimpl\b(?:\s*<[^>\n]*>)?\s+[\w:<>]+(?:\s+for\s+[\w:<>]+)?\s*\{",
        r"(?m)^\s*(?:pub\s+)?(?:struct|enum|trait|mod)\s+\w+\s*(?:<[^>\n]*>)?\s*[{;(]",
        r"\bmatch\s+[\w.&]+\s*\{",
        r"(?m)^\s*#\[\w+",
        r"\bunsafe\s*\{",
        r"\b\w+::\w+(?:::\w+|\s*[(<{;!])",
    ],
    "C / C++": [
        r"(?m)^\s*#\s*(?:include\s*[<\"]|define\s+\w+|ifn?def\s+\w+\s*$|pragma\s+\w+)",
        r"(?m)^\s*(?:static\s+|inline\s+|extern\s+|const\s+|unsigned\s+)*(?:void|int|char|float|double|long|short|bool|size_t|auto|[\w:]+\s*[*&])\s+\**\w+\s*\([^)\n]*\)\s*(?:\{|;|const|$)",
        r"\b(?:printf|scanf|malloc|calloc|free|strcpy|strcat|memcpy|system|exit)\s*\(",
        r"\bstd::\w+",
        r"\btemplate\s*<",
        r"(?m)^\s*typedef\s+",
        r"(?m)^\s*using\s+namespace\s+\w+",
        r"(?m)^\s*(?:public|private|protected)\s*:\s*$",
        r"(?m)^\s*(?:for|while|if|switch)\s*\([^\n]*\)\s*\{",
    ],
    "Java / C#": [
        r"\b(?:public|private|protected)\s+(?:static\s+|final\s+|abstract\s+)*(?:(?:class|interface|enum|record)\s+\w+\s*(?:<|\{|\(|extends\b|implements\b)|void\s+\w+\s*\(|[\w<>\[\],]+\s+\w+\s*[(=;])",
        r"\bSystem\.\w+\.\w+\s*\(",
        r"\bnew\s+[A-Z]\w*(?:<[^>\n]*>)?\s*\(",
        r"\bthrow\s+new\b",
        r"(?m)^\s*[A-Z]\w*(?:<[\w<>, ?]*>)?\s+\w+\s*=",
        r"\}\s*catch\s*\(",
    ],
    "Ruby": [
        r"(?m)^\s*def\s+(?:self\.)?\w+[?!]?\s*$",
        r"\n[ \t]*end[ \t]*(?:\n|$)",
        r"(?m)^\s*puts\s+[\"'\w]",
        r"(?m)^\s*require(?:_relative)?\s+['\"]",
        r"(?m)^\s*class\s+\w+\s*<\s*\w+",
        r"\bdo\s*\|[\w, ]+\|",
        r"\{\s*\|[\w, ]+\|",
        r"(?m)^\s*(?:attr_accessor|attr_reader|attr_writer|has_many|belongs_to|module)\s+[:\w]",
        r"&:\w+",
    ],
    "PowerShell": [
        r"\b(?:Get|Set|New|Remove|Invoke|Start|Stop|Write|Read|Import|Export|Add|Test|Where|ForEach|Select|Out|ConvertTo|ConvertFrom|Clear|Copy|Move|Rename|Enable|Disable)-[A-Z]\w+(?:\s*(?:\||$|;)|\s+(?:-\w|[\"'$(@{\\]|[\w.:\\]+\s*(?:\||$|-\w)))",
        r"(?i)\biex\s*\(",
        r"(?i)-ExecutionPolicy\s+\w+",
        r"\$env:\w+",
        r"\$_\.\w+",
        r"(?i)New-Object\s+[\w.]+",
        r"(?i)\bpowershell(?:\.exe)?\s+-\w+",
        r"(?i)\bcmd(?:\.exe)?\s+/c\b",
    ],
    "other notations": [
        r"<\?php",
        r"(?m)^\s*(?:FROM|RUN|CMD|ENTRYPOINT|COPY|ADD|ENV|WORKDIR)\s+\S+",
        r"(?m)^\s*apiVersion:\s*\S+",
        r"(?m)^\s*\w+\s+::\s+[\w ()\[\]]*(?:->|IO\b)",
        r"(?m)^\s*resource\s+\"\w+\"",
        r"\bfun\s+\w+\s*\(",
    ],
}

CREDENTIAL = (
    r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----"
    r"|\b(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{50,}|glpat-[A-Za-z0-9_-]{20,}"
    r"|sk-(?:proj-|ant-[a-z0-9]+-)?[A-Za-z0-9_-]{20,}|(?:sk|rk|pk)_(?:live|test)_[A-Za-z0-9]{16,}"
    r"|xox[abposr]-[A-Za-z0-9-]{10,}|(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA)[0-9A-Z]{16}"
    r"|AIza[0-9A-Za-z_-]{35}|npm_[A-Za-z0-9]{36}|SG\.[A-Za-z0-9_-]{16,}\.[A-Za-z0-9_-]{16,}"
    r"|SK[0-9a-f]{32}|eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,})"
    r"|(?i:AccountKey)=[A-Za-z0-9/+]{20,}"
    r"|\b[A-Za-z][A-Za-z0-9+.-]*://[^\s:/@]+:[^\s:/@]{6,}@"
    r"|\b(?i:bearer)\s+[A-Za-z0-9._~+/-]{20,}"
    r"|(?i:pass(?:wd|word)?|pwd|secret|api[_-]?key|apikey|token|auth|authorization|client[_-]?secret|private[_-]?key|credential)[\w.-]*[\"']?\s*[:=]\s*[\"']?\**[A-Za-z0-9!@#$%^&+/=_~-][A-Za-z0-9!@#$%^&*+/=_~-]{7,}(?:[\"'\s,;}]|$)"
)


def _member(pattern: str) -> str:
    if pattern.startswith("(?m)"):
        pattern = pattern[4:]
    if pattern.startswith("(?i)"):
        return f"(?i:{pattern[4:]})"
    return f"(?:{pattern})"


def code_patterns() -> list[str]:
    """One RE2 alternation per notation, as data.json holds them."""
    return ["(?m)" + "|".join(_member(p) for p in members) for members in GROUPS.values()]


def write() -> None:
    """Put the patterns into data.json (kept as ``json.dumps(indent=2)`` writes it)."""
    data = json.loads(DATA.read_text())
    data["code_patterns"] = code_patterns()
    for policy in data["declarative_policies"]:
        if policy["id"] == "AST-DATA-001":
            policy["conditions"][0]["pattern"] = CREDENTIAL
    DATA.write_text(json.dumps(data, indent=2) + "\n")


if __name__ == "__main__":
    if sys.argv[1:] == ["--write"]:
        write()
    else:
        print(json.dumps({"code_patterns": code_patterns(), "credential": CREDENTIAL}, indent=1))
