"""A CLI that never surprises: exit 2 naming the field, JSON errors, nothing created by reads."""

from __future__ import annotations

import io
import json
import os
import pty
import subprocess
import sys
import threading
from pathlib import Path

import click
import pytest

from pygate.cli._common import hoist_global_options, progress
from pygate.cli._main import main
from pygate.engine._opa_process import PROJECT_ROOT, find_opa_binary

DOC = json.dumps({"output": {"type": "transfer", "amount": 5, "to": "a"}, "user": {"id": "u1"},
                  "context": {"service": "finance"}})  # fmt: skip


def pygate(
    *args: str, stdin: str = "", cwd: Path = PROJECT_ROOT
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYGATE_OPA_BIN": str(find_opa_binary())}
    return subprocess.run(
        [sys.executable, "-m", "pygate", *args],
        input=stdin, text=True, capture_output=True, cwd=cwd, env=env, timeout=120, check=False,
    )  # fmt: skip


def leaf_commands(group: click.Group = main, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found: list[tuple[str, ...]] = []
    for name, cmd in sorted(group.commands.items()):
        if isinstance(cmd, click.Group):
            found += leaf_commands(cmd, (*path, name))
        else:
            found.append((*path, name))
    return found


def command(path: tuple[str, ...]) -> click.Command:
    cmd: click.Command = main
    for name in path:
        assert isinstance(cmd, click.Group)
        cmd = cmd.commands[name]
    return cmd


def test_bad_opa_url_is_exit_2_naming_the_field() -> None:
    out = pygate("--opa-url", "notaurl", "check", "-", stdin=DOC)
    assert out.returncode == 2
    assert "opa_url" in out.stderr
    assert "Traceback" not in out.stderr + out.stdout


def test_global_option_after_the_subcommand_and_json_error() -> None:
    out = pygate("check", "--json", "-", "--opa-url", "http://x:notaport", stdin=DOC)
    assert out.returncode == 2
    body = json.loads(out.stdout)
    assert body["ok"] is False
    assert "opa_url" in body["error"]


def test_hoist_global_options() -> None:
    argv = ["audit", "tail", "--audit-db", "a.db", "-n", "3", "--timeout=2", "-q", "--", "--x"]
    assert hoist_global_options(argv) == [
        "--audit-db", "a.db", "--timeout=2", "-q", "audit", "tail", "-n", "3", "--", "--x",
    ]  # fmt: skip


@pytest.mark.parametrize("path", leaf_commands(), ids=" ".join)
def test_every_command_has_json(path: tuple[str, ...]) -> None:
    options = {opt for p in command(path).params for opt in getattr(p, "opts", [])}
    assert "--json" in options


@pytest.mark.parametrize("path", leaf_commands(), ids=" ".join)
def test_usage_error_with_json_is_one_json_object(
    path: tuple[str, ...], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main.main([*path, "--json", "--no-such-flag"])
    assert exit_.value.code == 2
    body = json.loads(capsys.readouterr().out)
    assert body["ok"] is False
    assert "--no-such-flag" in body["error"]


READS = [
    ("audit", "tail"), ("audit", "summary"), ("audit", "verify"), ("audit", "refusals"),
    ("audit", "rates"), ("audit", "policies"), ("audit", "followups"), ("audit", "health"),
    ("audit", "report", "--out", "r.html"), ("audit", "export"), ("approvals", "list"),
]  # fmt: skip


@pytest.mark.parametrize("args", READS, ids=" ".join)
def test_read_commands_on_a_missing_database_create_nothing(args: tuple[str, ...],
                                                            tmp_path: Path) -> None:  # fmt: skip
    db = tmp_path / "typo" / "audit.db"
    out = pygate("--audit-db", str(db), *args, "--json", cwd=tmp_path)
    assert out.returncode == 2, out.stdout + out.stderr
    assert "does not exist" in json.loads(out.stdout)["error"]
    assert not (tmp_path / "typo").exists()


def test_policies_that_do_not_compile_show_opas_error(tmp_path: Path) -> None:
    (tmp_path / "x.rego").write_text("package acme.x\n\ndeny contains x if {\n")
    out = pygate("--policy-dir", str(tmp_path), "check", "-", stdin=DOC, cwd=tmp_path)
    assert out.returncode == 2
    assert "rego_parse_error" in out.stderr
    assert "x.rego:" in out.stderr


def test_check_says_it_reads_stdin_on_a_terminal(tmp_path: Path) -> None:
    controller, terminal = pty.openpty()
    env = {**os.environ, "PYGATE_OPA_BIN": str(find_opa_binary())}
    with subprocess.Popen(
        [sys.executable, "-m", "pygate", "--audit-db", str(tmp_path / "a.db"),
         "check", "--service", "finance", "-"],
        stdin=terminal, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        cwd=PROJECT_ROOT,
    ) as proc:  # fmt: skip
        os.close(terminal)
        os.write(controller, DOC.encode() + b"\n\x04")
        stdout, stderr = proc.communicate(timeout=120)
    os.close(controller)
    assert "reading the input document from stdin" in stderr
    assert proc.returncode == 0, stdout + stderr


class _Terminal(io.StringIO):
    def __init__(self, tty: bool) -> None:
        super().__init__()
        self.tty = tty
        self.wrote = threading.Event()

    def isatty(self) -> bool:
        return self.tty

    def write(self, s: str) -> int:
        self.wrote.set()
        return super().write(s)


def test_progress_shows_on_a_terminal_only() -> None:
    term = _Terminal(tty=True)
    with progress("working", after=0.0, stream=term):
        assert term.wrote.wait(30)
    assert "working" in term.getvalue()
    assert term.getvalue().endswith("s\n")
    piped = _Terminal(tty=False)
    with progress("working", after=0.0, stream=piped):
        pass
    assert piped.getvalue() == ""
