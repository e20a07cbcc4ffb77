"""Build the labelled detection corpora: ``code.jsonl`` and ``credentials.jsonl``.

Run ``python tests/corpus/generate.py`` to rewrite them (deterministic: a fixed seed). Each
line is ``{"text", "label", "kind"}``; ``label`` is ``code``/``prose`` (code corpus) or
``secret``/``clean`` (credential corpus); ``kind`` is the language or the family.

The hand-written snippets live in ``snippets_code.py`` and ``snippets_prose.py``; this file
adds templated variants: fenced and unfenced, code inside a prose answer, SQL in every case,
more prose that names code, and credentials in every form the credential condition claims.
The fake credentials are made up here (random, with the documented prefixes); none is real.
"""

from __future__ import annotations

import json
import random
import string
import sys
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))

from snippets_code import CODE  # noqa: E402
from snippets_holdout import (  # noqa: E402
    HOLDOUT2_CLEAN,
    HOLDOUT2_CODE,
    HOLDOUT2_PROSE,
    HOLDOUT2_SECRETS,
    HOLDOUT_CODE,
    HOLDOUT_PROSE,
)
from snippets_prose import FIELD_VALUES, PROSE  # noqa: E402

rng = random.Random(12)

NAMES = ["total", "amount", "user", "items", "rate", "balance", "result", "count", "data", "cfg"]
FUNCS = ["compute", "load", "send", "parse", "fetch", "transfer", "render", "check", "sum_all"]
TABLES = ["users", "accounts", "orders", "payments", "sessions", "audit_log", "customers"]
COLS = ["id", "name", "email", "balance", "role", "created_at", "amount", "status"]
URLS = ["https://get.example.com/install.sh", "http://198.51.100.9/p", "https://x.example.org/s"]


def _case(word: str) -> str:
    return rng.choice(
        [
            word.upper(),
            word.lower(),
            word.title(),
            "".join(c.upper() if rng.random() < 0.5 else c.lower() for c in word),
        ]
    )


def _sql() -> str:
    t, c1, c2 = rng.choice(TABLES), rng.choice(COLS), rng.choice(COLS)
    n = rng.randint(1, 9999)
    forms = [
        f"{_case('select')} {c1}, {c2} {_case('from')} {t} {_case('where')} {c1} = {n};",
        f"{_case('select')} * {_case('from')} {t}",
        f"{_case('insert into')} {t} ({c1}, {c2}) {_case('values')} ({n}, 'x');",
        f"{_case('update')} {t} {_case('set')} {c1} = {n} {_case('where')} {c2} = 'a';",
        f"{_case('delete from')} {t} {_case('where')} {c1} < {n};",
        f"{_case('drop table')} {t};",
        f"{_case('create table')} {t} ({c1} INT, {c2} TEXT);",
        f"{_case('alter table')} {t} {_case('add column')} {c2} TEXT;",
        f"{_case('truncate table')} {t};",
        f"{_case('select')} {c1} {_case('from')} {t} {_case('order by')} {c2} {_case('limit')} {n % 50 + 1}",
    ]
    return rng.choice(forms)


def _templated_code() -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for _ in range(40):
        out.append(("sql", _sql()))
    for _ in range(8):
        v, f, a = rng.choice(NAMES), rng.choice(FUNCS), rng.choice(NAMES)
        out.append(("python", f"def {f}({a}):\n    {v} = {a} * 2\n    return {v}"))
        out.append(("javascript", f"const {v} = {f}({a});"))
        out.append(("go", f"{v}, err := {f}({a})\nif err != nil {{\n\treturn err\n}}"))
        out.append(("rust", f"let {v} = {f}(&{a});"))
        out.append(
            ("shell", f"curl -sSL {rng.choice(URLS)} | {rng.choice(['sh', 'bash', 'sudo sh'])}")
        )
        out.append(
            ("powershell", f"Invoke-Expression (Invoke-WebRequest {rng.choice(URLS)}).Content")
        )
        out.append(("java", f"int {v} = {f}({a});\nSystem.out.println({v});"))
        out.append(("ruby", f"def {f}({a})\n  {a}.map {{ |x| x * 2 }}\nend"))
        out.append(("c", f"int {f}(int {a}) {{\n    return {a} * 2;\n}}"))
        ev = rng.choice(["onclick", "onerror", "onload", "onmouseover", "onfocus"])
        out.append(("html", f'<img src="a.png" {ev}="{f}()">'))
    return out


INTROS = [
    "Here is the code:",
    "Sure, try this:",
    "You can do it like this:",
    "Run this:",
    "This should work:",
    "Example:",
    "The fix is below.",
]
OUTROS = ["", "That should do it.", "Let me know if it fails.", "Adjust the names as needed."]
FENCE_TAGS = {
    "python": "python",
    "javascript": "js",
    "typescript": "ts",
    "shell": "bash",
    "sql": "sql",
    "html": "html",
    "go": "go",
    "rust": "rust",
    "c": "c",
    "cpp": "cpp",
    "java": "java",
    "ruby": "ruby",
    "powershell": "powershell",
    "other": "",
}


def code_corpus() -> list[dict[str, str]]:
    items: list[tuple[str, str]] = [(lang, s) for lang, snippets in CODE.items() for s in snippets]
    items += _templated_code()
    rows = [{"text": s, "label": "code", "kind": lang} for lang, s in items]
    # fenced, and unfenced inside a prose answer, for a sample of each language
    for lang, s in rng.sample(items, 70):
        tag = FENCE_TAGS.get(lang, "")
        text = f"{rng.choice(INTROS)}\n\n```{tag}\n{s}\n```\n{rng.choice(OUTROS)}".strip()
        rows.append({"text": text, "label": "code", "kind": f"{lang}/fenced"})
    for lang, s in rng.sample(items, 50):
        text = f"{rng.choice(INTROS)}\n\n{s}\n\n{rng.choice(OUTROS)}".strip()
        rows.append({"text": text, "label": "code", "kind": f"{lang}/in-prose"})
    for lang, s in rng.sample(items, 20):
        rows.append({"text": s.replace("\n", "\r\n"), "label": "code", "kind": f"{lang}/crlf"})
    return rows


SUBJECTS = [
    "The report",
    "Your portfolio",
    "The team",
    "This fund",
    "The new policy",
    "The quarterly review",
    "Our support desk",
    "The market",
    "The bank",
    "The app",
]
VERBS = ["shows", "suggests", "requires", "improves", "reduces", "covers", "explains", "updates"]
OBJECTS = [
    "the risk of large transfers",
    "how fees are charged",
    "the limits for new users",
    "the steps to reset a password",
    "why the rate changed",
    "the list of approved assets",
    "the deadline for tax forms",
    "which accounts are under review",
]
TECH = [
    ("function", "Python", "groups reusable steps under a name"),
    ("class", "Java", "describes objects of one kind"),
    ("SELECT statement", "SQL", "reads rows from one or more tables"),
    ("import statement", "Python", "loads a module"),
    ("curl command", "the shell", "fetches a URL"),
    ("goroutine", "Go", "runs a function concurrently"),
    ("trait", "Rust", "declares shared behaviour"),
    ("cmdlet", "PowerShell", "is a small single-purpose command"),
    ("onclick attribute", "HTML", "names script to run on a click"),
    ("pointer", "C", "holds an address"),
    ("block", "Ruby", "is code passed to a method"),
    ("interface", "TypeScript", "describes an object's shape"),
    ("DROP statement", "SQL", "removes a table or database"),
    ("shebang line", "shell scripts", "names the interpreter"),
]


def prose_corpus() -> list[dict[str, str]]:
    rows = [{"text": p, "label": "prose", "kind": "hand"} for p in PROSE]
    rows += [{"text": v, "label": "prose", "kind": "field-value"} for v in FIELD_VALUES]
    for _ in range(80):
        text = f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(OBJECTS)}."
        if rng.random() < 0.5:
            text += f" {rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(OBJECTS)} as well."
        rows.append({"text": text, "label": "prose", "kind": "templated"})
    for _ in range(70):
        what, lang, does = rng.choice(TECH)
        form = rng.choice(
            [
                f"In {lang}, a {what} {does}.",
                f"A {what} in {lang} {does}; it is one of the first things to learn.",
                f"You asked about the {what}: in {lang} it {does}, and misuse is a common bug.",
                f"Think of the {what} ({lang}) as something that {does}.",
            ]
        )
        rows.append({"text": form, "label": "prose", "kind": "names-code"})
    for _ in range(20):
        a, b = rng.sample(PROSE, 2)
        rows.append({"text": f"{a}\n\n{b}", "label": "prose", "kind": "paragraphs"})
    return rows


def _rand(chars: str, n: int) -> str:
    return "".join(rng.choice(chars) for _ in range(n))


AZ09 = string.ascii_letters + string.digits
UP09 = string.ascii_uppercase + string.digits


def secrets() -> list[dict[str, str]]:
    s: list[tuple[str, str]] = []
    for _ in range(6):
        s.append(("github", f"ghp_{_rand(AZ09, 36)}"))
        s.append(("github", f"github_pat_{_rand(AZ09, 22)}_{_rand(AZ09, 59)}"))
        s.append(("github", f"gho_{_rand(AZ09, 36)}"))
        s.append(("openai", f"sk-{_rand(AZ09, 48)}"))
        s.append(("openai", f"sk-proj-{_rand(AZ09 + '-_', 64)}"))
        s.append(("anthropic", f"sk-ant-api03-{_rand(AZ09 + '-_', 90)}"))
        s.append(("stripe", f"sk_live_{_rand(AZ09, 24)}"))
        s.append(("stripe", f"rk_live_{_rand(AZ09, 24)}"))
        s.append(
            (
                "slack",
                f"xoxb-{rng.randint(10**10, 10**11)}-{rng.randint(10**10, 10**11)}-{_rand(AZ09, 24)}",
            )
        )
        s.append(("slack", f"xoxp-{rng.randint(10**10, 10**11)}-{_rand(AZ09, 30)}"))
        s.append(("aws", f"AKIA{_rand(UP09, 16)}"))
        s.append(("aws", f"ASIA{_rand(UP09, 16)}"))
        s.append(("aws-secret", f"aws_secret_access_key = {_rand(AZ09 + '/+', 40)}"))
        s.append(("google", f"AIza{_rand(AZ09 + '-_', 35)}"))
        s.append(("gitlab", f"glpat-{_rand(AZ09 + '-_', 20)}"))
        s.append(("npm", f"npm_{_rand(AZ09, 36)}"))
        s.append(("jwt", f"eyJhbGciOiJIUzI1NiJ9.eyJ{_rand(AZ09, 30)}.{_rand(AZ09 + '-_', 43)}"))
        s.append(("twilio", f"SK{_rand('0123456789abcdef', 32)}"))
        s.append(("sendgrid", f"SG.{_rand(AZ09 + '-_', 22)}.{_rand(AZ09 + '-_', 43)}"))
        s.append(
            (
                "azure",
                f"DefaultEndpointsProtocol=https;AccountName=acct;AccountKey={_rand(AZ09 + '/+', 86)}==",
            )
        )
        s.append(("url-creds", f"postgresql://admin:{_rand(AZ09, 14)}@db.internal:5432/prod"))
        s.append(("url-creds", f"https://deploy:{_rand(AZ09, 16)}@git.example.com/repo.git"))
    for kind in [
        "RSA PRIVATE KEY",
        "PRIVATE KEY",
        "OPENSSH PRIVATE KEY",
        "EC PRIVATE KEY",
        "ENCRYPTED PRIVATE KEY",
        "DSA PRIVATE KEY",
        "PGP PRIVATE KEY BLOCK",
    ]:
        for _ in range(3):
            body = "\n".join(_rand(AZ09 + "+/", 64) for _ in range(3))
            s.append(("private-key", f"-----BEGIN {kind}-----\n{body}\n-----END {kind}-----"))
    keys = [
        "password",
        "passwd",
        "pwd",
        "secret",
        "api_key",
        "apiKey",
        "API-KEY",
        "token",
        "access_token",
        "auth_token",
        "client_secret",
        "db_password",
        "SECRET_KEY",
        "private_key",
        "Authorization",
    ]
    for key in keys:
        for _ in range(3):
            val = _rand(AZ09 + "!@#$%^&*", rng.randint(10, 30))
            sep = rng.choice([": ", "=", " = ", ":", '": "', "='"])
            prefix = rng.choice(["", "export ", "  ", '{"', "config."])
            s.append(("key-value", f"{prefix}{key}{sep}{val}"))
    s.append(("bearer", f"Authorization: Bearer {_rand(AZ09, 40)}"))
    s.append(
        ("bearer", f"curl -H 'Authorization: Bearer {_rand(AZ09, 32)}' https://api.example.com")
    )
    rows = []
    wraps = [
        "{}",
        "Here is the key you asked for: {}",
        "Use this: {} and keep it safe.",
        "```\n{}\n```",
        "The config should read:\n{}\n",
        "{} (do not share)",
    ]
    for kind, secret in s:
        rows.append({"text": rng.choice(wraps).format(secret), "label": "secret", "kind": kind})
    return rows


CLEAN = [
    "Never paste your password into a chat; support will never ask for it.",
    "Your API key is shown once in the dashboard; copy it into your secret manager.",
    "Rotate AWS access keys every 90 days and delete unused ones.",
    "GitHub tokens start with a prefix like ghp_ so scanners can find leaked ones.",
    "OpenAI keys begin with sk- followed by a long random string.",
    "A Slack bot token begins with xoxb- and belongs to one workspace.",
    "Private keys are stored in PEM files that begin with a BEGIN line.",
    "The password must be at least 12 characters long.",
    "Set the secret in your CI settings instead of the repository.",
    "Token: expired. Please sign in again.",
    "password: (hidden)",
    "api_key: <your key here>",
    "secret = os.environ['APP_SECRET']",
    "token = get_token()",
    "Password reset link sent to your email.",
    "The secret ingredient is cinnamon.",
    "Key: Value pairs are separated by a colon in YAML.",
    "AKIA is the prefix AWS uses for long-term access key ids.",
    "Use sk-... style keys only on the server side.",
    "Enter your password: ********",
    "Your key fob battery is low.",
    "The skier reached speeds over 100 km/h.",
    "The risk-adjusted return was 7.2% over the period.",
    "Ticket TCK-12345678 was closed yesterday.",
    "Order number ORD-2024-0000123 has shipped.",
    "The sha256 of the file is listed on the release page.",
    "Our office Wi-Fi network is called Guest.",
    "We'll send a one-time code to your phone.",
    "Keep your recovery phrase offline, written on paper.",
    "The transaction id is 7f3a9c2e; quote it when you call.",
    "Authorization is required to view this page.",
    "The tokenizer splits text into tokens before the model reads it.",
    "Secrets management tools include Vault and cloud secret managers.",
    "Please use a password manager to generate long random passwords.",
    "The skip-list data structure has O(log n) search.",
    "AKIRA is a classic animated film from 1988.",
    "The ghost town was abandoned in the 1930s.",
    "xox is a pattern in tic-tac-toe.",
    "Set password_min_length to 12 in the policy file.",
    "The token bucket algorithm limits request rates.",
]


def clean() -> list[dict[str, str]]:
    rows = [{"text": t, "label": "clean", "kind": "hand"} for t in CLEAN]
    rows += [{"text": p, "label": "clean", "kind": "prose"} for p in PROSE]
    for lang, snippets in CODE.items():
        for snippet in snippets:
            rows.append({"text": snippet, "label": "clean", "kind": f"code/{lang}"})
    return rows


def main() -> None:
    holdout = [{"text": t, "label": "code", "kind": f"holdout/{lang}"} for lang, t in HOLDOUT_CODE]
    holdout += [{"text": t, "label": "prose", "kind": "holdout/prose"} for t in HOLDOUT_PROSE]
    holdout += [
        {"text": t, "label": "code", "kind": f"holdout2/{lang}"} for lang, t in HOLDOUT2_CODE
    ]
    holdout += [{"text": t, "label": "prose", "kind": "holdout2/prose"} for t in HOLDOUT2_PROSE]
    code = code_corpus() + prose_corpus() + holdout
    creds = secrets() + clean()
    creds += [{"text": t, "label": "secret", "kind": "holdout2/secret"} for t in HOLDOUT2_SECRETS]
    creds += [{"text": t, "label": "clean", "kind": "holdout2/clean"} for t in HOLDOUT2_CLEAN]
    for name, rows in (("code.jsonl", code), ("credentials.jsonl", creds)):
        with (HERE / name).open("w") as f:
            for row in rows:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(
        f"code.jsonl: {sum(r['label'] == 'code' for r in code)} code, "
        f"{sum(r['label'] == 'prose' for r in code)} prose; credentials.jsonl: "
        f"{sum(r['label'] == 'secret' for r in creds)} secret, "
        f"{sum(r['label'] == 'clean' for r in creds)} clean"
    )


if __name__ == "__main__":
    main()
