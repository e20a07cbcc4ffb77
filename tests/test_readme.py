"""The README stays true: every shell and Python block in it runs, in order, and succeeds.

Blocks run in a scratch folder as a user would paste them. A block marked
``<!-- readme-test: user-folder -->`` runs in a fresh "user" folder outside any checkout,
with only the virtual environment the README's Install block creates there on ``PATH``
(pygate installed from the wheel this test builds, its dependencies from PyPI). Other
blocks run with the checkout's ``.venv/bin`` on ``PATH`` (an activated development venv).
A block may be skipped only with ``<!-- readme-test: skip (reason) -->`` right above it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from pygate._resources import PROJECT_ROOT
from pygate.engine._opa_process import find_opa_binary

README = PROJECT_ROOT / "README.md"
RUN_LANGS = {"sh", "bash", "shell", "console", "python", "py"}
_MARK = re.compile(r"^<!-- readme-test: (user-folder|skip \((.+)\)) -->$")


@dataclass
class Block:
    line: int
    lang: str
    code: str
    mark: str  # "", "user-folder" or "skip"
    reason: str


def blocks(text: str) -> list[Block]:
    found: list[Block] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        fence = re.match(r"^```(\w*)\s*$", lines[i])
        if not fence:
            i += 1
            continue
        end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith("```"))
        mark = _MARK.match(lines[i - 1]) if i else None
        kind = "" if mark is None else mark.group(1).split(" ", 1)[0]
        found.append(Block(i + 1, fence.group(1), "\n".join(lines[i + 1 : end]) + "\n",
                           kind, (mark.group(2) or "") if mark else ""))  # fmt: skip
        i = end + 1
    return found


def test_every_runnable_block_runs_or_says_why_not() -> None:
    runnable = [b for b in blocks(README.read_text()) if b.lang in RUN_LANGS]
    assert len(runnable) >= 15
    for b in runnable:
        assert b.mark != "skip" or b.reason.strip(), f"README.md:{b.line}: skip without a reason"
    marks = README.read_text().count("<!-- readme-test:")
    assert marks == sum(1 for b in blocks(README.read_text()) if b.mark), "a mark not above a fence"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    built = subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--outdir", str(out), str(PROJECT_ROOT)],
        capture_output=True, text=True, check=False, timeout=600,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr[-3000:]
    return next(out.glob("pygate-*.whl"))


def test_readme_blocks_run(wheel: Path, tmp_path: Path) -> None:
    repo_dir, user_dir = tmp_path / "work", tmp_path / "user"
    repo_dir.mkdir()
    user_dir.mkdir()
    shutil.copy(wheel, user_dir / wheel.name)
    assert wheel.name in README.read_text(), "the Install block names another wheel"
    base = {k: v for k, v in os.environ.items() if not k.startswith(("PYGATE_", "VIRTUAL_ENV"))}
    base["PYGATE_OPA_BIN"] = str(find_opa_binary())
    system_path = "/usr/local/bin:/usr/bin:/bin"
    for b in blocks(README.read_text()):
        if b.lang not in RUN_LANGS or b.mark == "skip":
            continue
        user = b.mark == "user-folder"
        cwd = user_dir if user else repo_dir
        venv_bin = (user_dir / ".venv/bin") if user else (PROJECT_ROOT / ".venv/bin")
        env = {**base, "PATH": f"{venv_bin}{os.pathsep}{system_path}"}
        if b.lang in ("python", "py"):
            script = tmp_path / f"block_{b.line}.py"
            script.write_text(b.code)
            argv = [str(venv_bin / "python"), str(script)]
        else:
            argv = ["bash", "-e", "-o", "pipefail", "-c", b.code]
        done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True,
                              timeout=900, check=False)  # fmt: skip
        assert done.returncode == 0, (
            f"README.md:{b.line} ({b.lang}) failed with exit {done.returncode}\n{b.code}\n"
            f"--- stdout\n{done.stdout[-3000:]}\n--- stderr\n{done.stderr[-3000:]}"
        )
