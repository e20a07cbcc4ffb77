"""mutmut 3, minus the mutants of prose string literals (run by scripts/mutation.sh).

mutmut turns every string literal into three mutants ("XX...XX", lower case, upper case).
For an error message or a log line that only says that the message changed, which a test
asserting every word would pin but nothing else depends on; the issue allows excluding them
when their number is reported. A *prose* literal is one with a space in it that is not SQL:
keys, field names, policy ids, paths and SQL keep their mutants. Every excluded literal is
appended to ``excluded-strings.txt`` in the working directory (one line each, with its three
would-be mutants counted by scripts/mutation.sh).
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable
from pathlib import Path

# Run as a script, scripts/ is first on sys.path, and scripts/coverage.py would shadow the
# coverage package mutmut imports.
_here = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _here]

import libcst as cst  # noqa: E402
from mutmut.mutation import mutators  # noqa: E402

_SQL = re.compile(r"^\s*(SELECT|INSERT|UPDATE|DELETE|CREATE|ALTER|DROP|WITH)\b|\b(FROM|WHERE)\b")
_original = mutators.operator_string


def _prose(node: cst.BaseString) -> bool:
    if not isinstance(node, cst.SimpleString):
        return False
    try:
        text = node.evaluated_value
    except Exception:
        return False
    return isinstance(text, str) and " " in text.strip() and not _SQL.search(text)


def operator_string(node: cst.BaseString) -> Iterable[cst.BaseString]:
    if _prose(node):
        with open("excluded-strings.txt", "a") as out:
            out.write(repr(node.value)[:120] + "\n")
        return
    yield from _original(node)


mutators.mutation_operators[:] = [
    (kind, operator_string if op is _original else op) for kind, op in mutators.mutation_operators
]

from mutmut.__main__ import cli  # noqa: E402 - after the patch, on purpose

if __name__ == "__main__":
    sys.exit(cli())
