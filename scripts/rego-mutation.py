#!/usr/bin/env python3
"""Mutation testing for the Rego policies: does ``opa test`` notice a small fault?

Each mutant changes one thing in one line of a policy module (never a ``*_test.rego``):

- ``cmp``: a comparison flipped or loosened (``>`` -> ``>=``, ``==`` -> ``!=``, ...);
- ``drop``: a rule-body line removed (a condition dropped);
- ``negate``: a body expression negated (``x`` -> ``not x``, ``not x`` -> ``x``);
- ``const``: a constant swapped (``true``/``false``, a number +1 or to 0, a string to ``""``).

Every mutant is written into a private copy of ``rego/`` (the tree you pass is never
touched) and tested with ``opa test``: first only the mutated package's tests (fast), then,
if they pass, the whole suite. A mutant the compiler rejects is ``invalid`` (not counted);
one every test passes on is a ``survivor``, unless ``opa check --strict`` rejects it
(``strict``: CI would catch it). Survivors are printed with the line and the change.

Usage:
    scripts/rego-mutation.py [FILE.rego ...] [--rego DIR] [--opa BIN] [--json]

Default files: the seed policies (``rego/pygate/policies/**``). Exit code: 0 no survivor,
1 survivors, 2 usage or setup error (e.g. the unmutated suite fails). Run it under ``nice``:
each mutant costs one or two ``opa test`` runs (about 1 to 5 s here).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

_CMP = {">": ">=", ">=": ">", "<": "<=", "<=": "<", "==": "!=", "!=": "=="}
_CMP_RE = re.compile(r"(?<=\s)(==|!=|>=|<=|>|<)(?=\s)")
_BOOL_RE = re.compile(r"\b(true|false)\b")
_NUM_RE = re.compile(r"(?<![\w.\"])(\d+(?:\.\d+)?)(?![\w.\"])")
_STR_RE = re.compile(r'"((?:[^"\\]|\\.)*)"')
_INVALID = ("rego_parse_error", "rego_compile_error", "rego_type_error", "rego_unsafe_var_error",
            "rego_recursion_error")  # fmt: skip


@dataclass
class Mutant:
    file: str
    line: int
    op: str
    before: str
    after: str
    status: str = ""


def _code_part(line: str) -> str:
    """The line without a trailing comment (a ``#`` outside a string)."""
    in_str = False
    escaped = False
    for i, ch in enumerate(line):
        if escaped:
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == '"':
            in_str = not in_str
        elif ch == "#" and not in_str:
            return line[:i]
    return line


def _outside_strings(code: str, start: int) -> bool:
    return code[:start].count('"') % 2 == 0


def mutants_of(path: Path, rel: str) -> list[tuple[Mutant, list[str]]]:
    """Every mutant of one module: (description, the mutated lines)."""
    lines = path.read_text().splitlines(keepends=True)
    out: list[tuple[Mutant, list[str]]] = []

    def add(index: int, op: str, new_line: str) -> None:
        if new_line == lines[index]:
            return
        mutated = list(lines)
        mutated[index] = new_line
        out.append((Mutant(rel, index + 1, op, lines[index].strip(), new_line.strip()), mutated))

    for i, raw in enumerate(lines):
        stripped = raw.strip()
        if not stripped or stripped.startswith(("#", "package ", "import ")):
            continue
        code = _code_part(raw.rstrip("\n"))
        body = raw.startswith("\t")
        for m in _CMP_RE.finditer(code):
            if _outside_strings(code, m.start()):
                new = code[: m.start()] + _CMP[m.group(1)] + code[m.end() :]
                add(i, "cmp", new + "\n")
        for m in _BOOL_RE.finditer(code):
            if _outside_strings(code, m.start()):
                flip = "false" if m.group(1) == "true" else "true"
                add(i, "const", code[: m.start()] + flip + code[m.end() :] + "\n")
        for m in _NUM_RE.finditer(code):
            if _outside_strings(code, m.start()):
                value = float(m.group(1)) if "." in m.group(1) else int(m.group(1))
                for repl in {str(value + 1), "0"} - {m.group(1)}:
                    add(i, "const", code[: m.start()] + repl + code[m.end() :] + "\n")
        if body:
            for m in _STR_RE.finditer(code):
                if m.group(1):
                    add(i, "const", code[: m.start()] + '""' + code[m.end() :] + "\n")
        if not body or stripped in ("}", "{") or stripped.startswith("}"):
            continue
        tail = code.rstrip()
        opens = tail.endswith(("{", "(", "[", "|", ",")) or stripped.startswith(("|", ")"))
        if not opens:
            add(i, "drop", "\n")
        simple = (
            not opens
            and ":=" not in code
            and not re.search(r"(?<![=!<>:])=(?!=)", code)
            and not stripped.startswith(("some ", "every ", "else", "default "))
        )
        if simple:
            indent = raw[: len(raw) - len(raw.lstrip())]
            if stripped.startswith("not "):
                add(i, "negate", indent + code.strip()[4:] + "\n")
            else:
                add(i, "negate", indent + "not " + code.strip() + "\n")
    return out


def _package(path: Path) -> str:
    for line in path.read_text().splitlines():
        if line.startswith("package "):
            return line.split()[1]
    raise SystemExit(f"{path}: no package line")


def _run(cmd: list[str]) -> subprocess.CompletedProcess[str]:
    if cmd[1] == "test":  # opa's default 5 s per test is too short on a loaded machine
        cmd = [*cmd, "--timeout", "120s"]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=900)


def _judge(opa: str, tree: Path, package: str) -> str:
    quick = _run([opa, "test", str(tree), "--run", f"data\\.{re.escape(package)}"])
    text = quick.stdout + quick.stderr
    if any(marker in text for marker in _INVALID):
        return "invalid"
    if quick.returncode != 0:
        return "killed"
    full = _run([opa, "test", str(tree)])
    if full.returncode != 0:
        text = full.stdout + full.stderr
        return "invalid" if any(marker in text for marker in _INVALID) else "killed"
    strict = _run([opa, "check", "--strict", str(tree)])
    return "strict" if strict.returncode != 0 else "survivor"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("files", nargs="*", help="policy modules to mutate (default: seeds)")
    parser.add_argument("--rego", default=str(ROOT / "rego"), help="the policy tree (rego/)")
    parser.add_argument("--opa", default=os.environ.get("PYGATE_OPA_BIN"), help="opa binary")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument(
        "--lines", default="", help="only mutants of these lines, e.g. 24,26,133 (a re-check)"
    )
    args = parser.parse_args(argv)
    opa = args.opa
    if not opa:
        path_file = ROOT / ".tools" / "opa-path"
        opa = path_file.read_text().strip() if path_file.exists() else shutil.which("opa")
    if not opa:
        print("error: no opa binary (--opa, PYGATE_OPA_BIN or ./dev setup)", file=sys.stderr)
        return 2
    rego = Path(args.rego).resolve()
    seeds = (rego / "pygate" / "policies").rglob("*.rego")
    files = [Path(f).resolve() for f in args.files] or sorted(
        p for p in seeds if not p.name.endswith("_test.rego")
    )
    for f in files:
        if f.name.endswith("_test.rego") or rego not in f.parents:
            print(f"error: {f} is not a policy module under {rego}", file=sys.stderr)
            return 2
    started = time.monotonic()
    results: list[Mutant] = []
    with tempfile.TemporaryDirectory(prefix="rego-mutation-") as tmp:
        tree = Path(tmp) / "rego"
        shutil.copytree(rego, tree)
        baseline = _run([opa, "test", str(tree)])
        if baseline.returncode != 0:
            print("error: opa test fails before any mutation:\n" + baseline.stdout[-2000:],
                  file=sys.stderr)  # fmt: skip
            return 2
        for f in files:
            rel = str(f.relative_to(rego.parent))
            target = tree / f.relative_to(rego)
            original = target.read_text()
            package = _package(f)
            only = {int(n) for n in args.lines.split(",") if n.strip()}
            for mutant, lines in mutants_of(f, rel):
                if only and mutant.line not in only:
                    continue
                target.write_text("".join(lines))
                try:
                    mutant.status = _judge(opa, tree, package)
                finally:
                    target.write_text(original)
                results.append(mutant)
                if not args.json:
                    mark = {"survivor": "SURVIVED", "strict": "strict"}.get(mutant.status, "")
                    if mark:
                        print(f"{mark:9} {rel}:{mutant.line} [{mutant.op}] "
                              f"{mutant.before!r} -> {mutant.after!r}", flush=True)  # fmt: skip
    elapsed = time.monotonic() - started
    summary = {}
    for f in files:
        rel = str(f.relative_to(rego.parent))
        mine = [m for m in results if m.file == rel]
        counts = {s: sum(m.status == s for m in mine) for s in
                  ("killed", "strict", "survivor", "invalid")}  # fmt: skip
        valid = counts["killed"] + counts["strict"] + counts["survivor"]
        score = 100.0 * (counts["killed"] + counts["strict"]) / valid if valid else 100.0
        summary[rel] = {**counts, "mutants": len(mine), "score": round(score, 1)}
    survivors = [m for m in results if m.status == "survivor"]
    if args.json:
        print(json.dumps({"seconds": round(elapsed), "modules": summary,
                          "survivors": [asdict(m) for m in survivors]}, indent=2))  # fmt: skip
    else:
        print(f"\n{'module':55} {'mutants':>7} {'killed':>6} {'strict':>6} {'invalid':>7} "
              f"{'survived':>8} {'score':>6}")  # fmt: skip
        for rel, s in summary.items():
            print(f"{rel:55} {s['mutants']:7} {s['killed']:6} {s['strict']:6} {s['invalid']:7} "
                  f"{s['survivor']:8} {s['score']:5.1f}%")  # fmt: skip
        print(f"{len(survivors)} survivor(s) in {elapsed:.0f} s")
    return 1 if survivors else 0


if __name__ == "__main__":
    sys.exit(main())
