"""Which pages one durable decision writes to the SQLite audit's WAL, and how many.

    .venv/bin/python benchmarks/audit_pages.py [N]

Runs N (default 60) sequential durable ``Gate.evaluate`` calls against a local OPA on a
fresh log after a WAL checkpoint, then reads the WAL's frame headers and names each
frame's page by the b-tree that owns it (SQLite's ``dbstat``).
"""

from __future__ import annotations

import collections
import sqlite3
import struct
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pygate import Gate, LocalOpa  # noqa: E402

OUTPUT = {"type": "transfer", "amount": 10, "to": "acct-2"}
USER = {"id": "ana", "role": "analyst", "account_status": "active", "transaction_limit": 1000}


def main(n: int) -> None:
    with tempfile.TemporaryDirectory(prefix="pygate-pages-") as d, LocalOpa(ROOT / "rego") as opa:
        db = Path(d) / "audit.db"
        gate = Gate("finance", opa_url=opa.url, audit=db)
        try:
            for i in range(30):  # warm up: tables and indexes exist, pages allocated
                gate.evaluate(OUTPUT, {**USER, "id": f"w{i}"})
            with sqlite3.connect(db) as conn:
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            for i in range(n):
                gate.evaluate(OUTPUT, {**USER, "id": f"u{i}"})
            wal = Path(f"{db}-wal").read_bytes()
            with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
                owner = dict(conn.execute("SELECT pageno, name FROM dbstat").fetchall())
        finally:
            gate.close()
    page_size = struct.unpack(">I", wal[8:12])[0]
    frames = (len(wal) - 32) // (page_size + 24)
    pages: collections.Counter[str] = collections.Counter()
    commits = 0
    for f in range(frames):
        at = 32 + f * (page_size + 24)
        page, size_after = struct.unpack(">II", wal[at : at + 8])
        pages[owner.get(page, f"page {page}")] += 1
        commits += size_after != 0
    print(f"{frames / n:.2f} WAL frames ({page_size}-byte pages) and {commits / n:.2f} commits "
          f"per decision, {n} decisions")  # fmt: skip
    for name, count in pages.most_common():
        print(f"  {name:32} {count / n:.2f}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 60)
