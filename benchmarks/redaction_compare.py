"""pygate's own secret rules vs the detect-secrets library, on the test corpus.

Run: ``.venv/bin/pip install detect-secrets && .venv/bin/python benchmarks/redaction_compare.py``
(detect-secrets is not a pygate dependency; this script is how the choice was made).

For each contender: recall (secrets in the corpus no longer present after masking), false
positives (benign strings changed), and time per record (median of interleaved rounds).
The keyed corpus is given to both as the JSON text of the record (``{"access_token": "…"}``):
pygate masks it by key name before it is ever text; detect-secrets only sees the line.
"""

from __future__ import annotations

import json
import random
import statistics
import string
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pygate.audit._redact import (
    DEFAULT_REDACT_KEYS,
    DEFAULT_REDACT_PATTERNS,
    redact,
    redact_pattern,
)
from tests.test_redaction import BENIGN, KEYED, TEXT

PATTERN = redact_pattern(DEFAULT_REDACT_PATTERNS)


def benign_corpus(n: int = 300, seed: int = 7) -> list[str]:
    """Strings model outputs really carry that are not secrets."""
    rnd = random.Random(seed)
    words = [
        "the",
        "account",
        "transfer",
        "refund",
        "order",
        "shipped",
        "tomorrow",
        "review",
        "policy",
        "limit",
        "user",
    ]
    out = list(BENIGN)
    while len(out) < n:
        kind = rnd.randrange(8)
        if kind == 0:
            out.append(" ".join(rnd.choice(words) for _ in range(12)))
        elif kind == 1:
            out.append(f"request id {uuid.UUID(int=rnd.getrandbits(128))}")
        elif kind == 2:
            out.append(f"commit {rnd.getrandbits(160):040x}")
        elif kind == 3:
            day = f"2026-0{rnd.randrange(1, 9)}-1{rnd.randrange(10)}"
            out.append(f"order {rnd.randrange(10**12, 10**13)} ships on {day}")
        elif kind == 4:
            out.append(f"https://example.com/items/{rnd.randrange(10**6)}?page={rnd.randrange(9)}")
        elif kind == 5:
            cents = f"{rnd.randrange(10**6)}.{rnd.randrange(100):02d}"
            out.append(f"amount {cents} EUR to acct-{rnd.randrange(10**4)}")
        elif kind == 6:
            out.append(
                "file "
                + "".join(rnd.choice(string.ascii_letters + string.digits) for _ in range(24))
                + ".png"
            )
        else:
            out.append(f"call +1 555 {rnd.randrange(100, 999)} {rnd.randrange(1000, 9999)}")
    return out


def pygate_mask(record: object) -> str:
    return json.dumps(redact(record, DEFAULT_REDACT_KEYS, PATTERN))


def detect_secrets_mask(record: object) -> str:
    """detect-secrets as a scanner of files is meant to run: filters and entropy limits on."""
    import tempfile

    from detect_secrets import SecretsCollection

    text = json.dumps(record)
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as fh:
        fh.write(text + "\n")
    found = SecretsCollection()
    found.scan_file(fh.name)
    Path(fh.name).unlink()
    for _, secret in found:
        if secret.secret_value:
            text = text.replace(secret.secret_value, "***")
    return text


def main() -> None:
    from detect_secrets.settings import default_settings

    secrets = [({"arguments": where}, s) for _, where, s in KEYED]
    secrets += [({"arguments": {"text": t}}, s) for _, t, s in TEXT]
    benign = [{"arguments": {"text": b}} for b in benign_corpus()]
    contenders = {
        "pygate rules": pygate_mask,
        "detect-secrets 1.5 (default plugins)": detect_secrets_mask,
    }
    rows = []
    with default_settings():
        for name, mask in contenders.items():
            caught = [s for rec, s in secrets if s not in mask(rec)]
            keyed_caught = sum(1 for rec, s in secrets[: len(KEYED)] if s not in mask(rec))
            missed = [s for rec, s in secrets if s in mask(rec)]
            fps = [b for b in benign if mask(b) != json.dumps(b)]
            rows.append((name, len(caught), keyed_caught, missed, fps))
        records = [r for r, _ in secrets] + benign
        timings: dict[str, list[float]] = {n: [] for n in contenders}
        for _ in range(15):  # interleaved rounds, shuffled
            order = list(contenders.items())
            random.shuffle(order)
            for name, mask in order:
                started = time.perf_counter()
                for rec in records:
                    mask(rec)
                timings[name].append((time.perf_counter() - started) / len(records) * 1e6)
    print(
        f"corpus: {len(secrets)} secrets ({len(KEYED)} under keys, {len(TEXT)} in text), "
        f"{len(benign)} benign strings"
    )
    print("| contender | recall | keyed | text | false positives | µs/record (median) |")
    print("|---|---|---|---|---|---|")
    for name, caught, keyed, _missed, fps in rows:
        print(
            f"| {name} | {caught}/{len(secrets)} | {keyed}/{len(KEYED)} | "
            f"{caught - keyed}/{len(TEXT)} | {len(fps)}/{len(benign)} | "
            f"{statistics.median(timings[name]):.0f} |"
        )
    for name, _, _, missed, fps in rows:
        print(f"\n{name}: missed {missed[:20]}\n  false positives (first 5): {fps[:5]}")


if __name__ == "__main__":
    main()
