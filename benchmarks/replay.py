"""Time `pygate replay` over a generated history: wall time, and CPU of Python and of OPA.

    .venv/bin/python benchmarks/replay.py [--records 100000] [--limit 500] [--json]

Writes a scratch audit log (never the configured one) with `generate_history` (every record
carries its OPA input), builds a candidate policy folder whose default transfer limit is
``--limit``, and replays the whole history against it once. CPU seconds are reported besides
the wall time because this machine is shared: wall time depends on what else runs, CPU time
much less (wall ≈ CPU / cores on an idle machine, two queries being in flight).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import tempfile
import time
from pathlib import Path

from pygate._replay import replay
from pygate.audit import open_audit
from pygate.audit._synthetic import generate_history
from pygate.engine._opa_process import PROJECT_ROOT


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--limit", type=int, default=500)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pygate-replay-bench-") as tmp:
        folder = Path(tmp)
        candidate = folder / "candidate"
        shutil.copytree(PROJECT_ROOT / "rego", candidate)
        data_file = candidate / "pygate" / "config" / "data.json"
        data = json.loads(data_file.read_text())
        data["default_transaction_limit"] = args.limit
        data_file.write_text(json.dumps(data))
        log = open_audit(folder / "history.db")
        started = time.perf_counter()
        generate_history(log, args.records, days=30, seed=1)
        generated = time.perf_counter() - started
        load = os.getloadavg()
        started = time.perf_counter()
        result = replay(log, candidate, batch=args.batch)
        wall = time.perf_counter() - started
        log.close()
    me = resource.getrusage(resource.RUSAGE_SELF)
    opa = resource.getrusage(resource.RUSAGE_CHILDREN)  # the OPA process, reaped at stop
    row = {
        "records": result["records"],
        "replayed": result["replayed"],
        "not_replayable": result["not_replayable"],
        "allow_to_refuse": result["allow_to_refuse"],
        "generate_s": round(generated, 1),
        "replay_wall_s": round(wall, 1),
        "records_per_s": round(result["records"] / wall),
        "python_cpu_s": round(me.ru_utime + me.ru_stime, 1),
        "opa_cpu_s": round(opa.ru_utime + opa.ru_stime, 1),
        "load_avg_before": [round(x, 1) for x in load],
        "load_avg_after": [round(x, 1) for x in os.getloadavg()],
    }
    if args.json:
        print(json.dumps(row))
        return
    for key, value in row.items():
        print(f"{key:18} {value}")


if __name__ == "__main__":
    main()
