"""What the keyed audit chain costs per decision, interleaved with the unkeyed chain it replaced.

Three measurements, each contender once per round in shuffled order, read as the median of
per-round ratios (CONVENTIONS.md: rows measured minutes apart are not comparable):

1. ``hash``: the chain step alone, in one process: SHA-256 over ``prev|body`` (before) against
   HMAC-SHA256 over ``prev|key_id|body`` (now), on a realistic record body.
2. ``append``: a durable SQLite ``AuditLog.append`` per decision (fsync, group commit, and now
   the key and a checkpoint file every 100 records), each round in a fresh child process
   running either the package at ``--base`` (e.g. a ``git archive`` of the commit before the
   keyed chain) or this checkout.
3. ``reserve``: a quota reservation for a user with 100 (the default quota) and 10,000 allowed
   records today against one with none (the reservation now counts them, so a reset counter
   is not honoured).

Usage::

    mkdir -p /tmp/base && git archive <commit> pygate | tar -x -C /tmp/base
    .venv/bin/python benchmarks/bench_integrity.py --base /tmp/base [--rounds 9] [--n 400]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pygate.audit._integrity import Keyring  # noqa: E402

CHILD = """
import sys, time, json
from pathlib import Path
from pygate import Decision
from pygate.audit import SqliteAuditLog
n, path = int(sys.argv[1]), Path(sys.argv[2])
log = SqliteAuditLog(path)
out = {"type": "transfer", "amount": 120, "to": "ACME-42", "memo": "invoice 2025-06"}
for i in range(20):  # warm-up
    log.append(Decision(allowed=True, reason="allowed", user_id=f"w{i}"), out)
start = time.perf_counter()
for i in range(n):
    log.append(Decision(allowed=i % 5 != 0, reason="r", user_id=f"user{i % 50}"), out)
took = time.perf_counter() - start
log.close()
print(json.dumps({"us_per_append": took / n * 1e6}))
"""


def hash_round(body: str, n: int) -> dict[str, float]:
    """Microseconds per chain step for each contender, in shuffled order."""
    keyring = Keyring({"k1234abcd": os.urandom(32)})
    prev = "0" * 64

    def unkeyed() -> None:
        p = prev
        for _ in range(n):
            p = hashlib.sha256(f"{p}|{body}".encode()).hexdigest()

    def keyed() -> None:
        p = prev
        for _ in range(n):
            p = keyring.sign(f"{p}|k1234abcd|{body}")  # what Integrity.link does

    result = {}
    contenders = [("unkeyed", unkeyed), ("keyed", keyed)]
    random.shuffle(contenders)
    for name, fn in contenders:
        start = time.perf_counter()
        fn()
        result[name] = (time.perf_counter() - start) / n * 1e6
    return result


def append_round(base: Path, n: int) -> dict[str, float]:
    """Microseconds per durable append for the base package and this checkout."""
    result = {}
    contenders = [("unkeyed", base), ("keyed", ROOT)]
    random.shuffle(contenders)
    for name, where in contenders:
        with tempfile.TemporaryDirectory() as tmp:
            env = {**os.environ, "PYTHONPATH": str(where)}
            done = subprocess.run(
                [sys.executable, "-c", CHILD, str(n), str(Path(tmp) / "a.db")],
                env=env, capture_output=True, text=True, check=True, cwd=tmp,
            )  # fmt: skip
            result[name] = float(json.loads(done.stdout)["us_per_append"])
    return result


def reserve_rounds(rounds: int, n: int, allowed: int) -> list[dict[str, float]]:
    """The quota reservation now also counts the chain's allowed records for that user and
    day (so a reset counter is not honoured): a user with ``allowed`` records today against
    one with none, interleaved, in one process (microseconds per reservation)."""
    from datetime import UTC, datetime

    from pygate import Decision
    from pygate.audit import SqliteAuditLog

    out = []
    with tempfile.TemporaryDirectory() as tmp:
        log = SqliteAuditLog(Path(tmp) / "a.db")
        now = datetime.now(UTC)
        for start in range(0, allowed, 1000):
            batch = [(Decision(allowed=True, reason="allowed", user_id="busy", decided_at=now), {})
                     for _ in range(min(1000, allowed - start))]  # fmt: skip
            log.append_many(batch)
        day = now.date().isoformat()
        for _ in range(rounds):
            result = {}
            users = [("keyed", "busy"), ("unkeyed", "idle")]  # "keyed": the counted user
            random.shuffle(users)
            for name, user in users:
                start = time.perf_counter()
                for _ in range(n):
                    log.reserve(user, day)
                result[name] = (time.perf_counter() - start) / n * 1e6
            out.append(result)
        log.close()
    return out


def summarise(rounds: list[dict[str, float]]) -> dict[str, float]:
    ratios = [r["keyed"] / r["unkeyed"] for r in rounds]
    return {
        "unkeyed_us_median": round(statistics.median(r["unkeyed"] for r in rounds), 2),
        "keyed_us_median": round(statistics.median(r["keyed"] for r in rounds), 2),
        "median_ratio_keyed_over_unkeyed": round(statistics.median(ratios), 3),
        "min_ratio": round(min(ratios), 3),
        "max_ratio": round(max(ratios), 3),
        "rounds": len(rounds),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", type=Path, required=True, help="a folder holding pygate/ before")
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--n", type=int, default=400, help="appends per child process")
    args = parser.parse_args()
    random.seed(1)
    body = json.dumps(
        ["a" * 32, "2025-06-30T12:00:00+00:00", "2025-06-30", "finance", "user1",
         '{"amount":120,"memo":"invoice 2025-06","to":"ACME-42","type":"transfer"}', 1,
         "allowed", None, "[]", None, "d" * 36, "r20260102T030405.000006Z-abc1234-0123456789ab",
         0, 0.512], separators=(",", ":"),
    )  # fmt: skip
    hashes = [hash_round(body, 20_000) for _ in range(args.rounds)]
    appends = [append_round(args.base, args.n) for _ in range(args.rounds)]
    reserves = {n: reserve_rounds(args.rounds, 200, n) for n in (100, 10_000)}
    print(json.dumps({"hash": summarise(hashes), "append": summarise(appends),
                      **{f"reserve_{n}_allowed_vs_0": summarise(r) for n, r in reserves.items()}},
                     indent=1))  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
