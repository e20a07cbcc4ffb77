"""pygate's local OPA runs with its server settings (SERVER_TUNING, GOGC), and a GOGC the user
sets wins. What the settings buy is measured in benchmarks/opa_server_tuning.py."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from pygate import Gate, LocalOpa
from pygate.engine._opa_process import GOGC_DEFAULT, SERVER_TUNING, opa_environment

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="reads /proc")


def _proc(pid: int | None) -> tuple[list[str], dict[str, str]]:
    assert pid is not None
    args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    env = dict(
        item.split("=", 1)
        for item in Path(f"/proc/{pid}/environ").read_bytes().decode().split("\0")
        if "=" in item
    )
    return [a.decode() for a in args if a], env


def test_local_opa_runs_with_the_store_flag_and_gogc(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GOGC", raising=False)
    with LocalOpa() as opa:
        args, env = _proc(opa.pid)
        assert set(SERVER_TUNING) <= set(args)
        assert env["GOGC"] == GOGC_DEFAULT
        # Data written after start (a policy push writes the data API) is read back: the
        # store keeps Rego values, which OPA documents as slower writes, not lost ones.
        with Gate("finance", opa_url=opa.url, audit=None) as gate:
            allowed = gate.evaluate({"type": "transfer", "amount": 5, "to": "acct-2"}, {"id": "u"})
        assert allowed.allowed, allowed.primary


def test_a_gogc_set_by_the_user_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOGC", "150")
    with LocalOpa() as opa:
        _, env = _proc(opa.pid)
        assert env["GOGC"] == "150"
    assert opa_environment({"GOGC": "off"})["GOGC"] == "off"
    assert opa_environment({})["GOGC"] == GOGC_DEFAULT
