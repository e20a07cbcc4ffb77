"""Finding OPA: the documented search order, `pygate opa install`, and the message without one."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from pygate._errors import ConfigError
from pygate.engine import _opa_process
from pygate.engine._opa_process import OPA_VERSION, find_opa_binary, install_opa, opa_cache_dir


def _executable(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


@pytest.fixture
def bare(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No PYGATE_OPA_BIN, nothing on PATH, an empty cache, no checkout."""
    monkeypatch.delenv("PYGATE_OPA_BIN", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(_opa_process, "PROJECT_ROOT", tmp_path / "no-checkout")
    return tmp_path


def test_without_opa_the_message_names_every_option(bare: Path) -> None:
    with pytest.raises(ConfigError) as info:
        find_opa_binary()
    message = str(info.value)
    for option in ("pygate opa install", "PYGATE_OPA_BIN", "--opa-url", "--docker", "PATH"):
        assert option in message
    assert "scripts/install-opa.sh" not in message  # not in a wheel


def test_search_order(bare: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    checkout = _executable(bare / "no-checkout/.tools/bin/opa")
    assert find_opa_binary() == checkout
    cached = _executable(opa_cache_dir() / "opa")
    assert cached == bare / "cache/pygate/opa" / OPA_VERSION / "opa"
    assert find_opa_binary() == cached
    on_path = _executable(bare / "empty-bin/opa")
    assert find_opa_binary() == on_path
    named = _executable(bare / "named/opa")
    monkeypatch.setenv("PYGATE_OPA_BIN", str(named))
    assert find_opa_binary() == named


def test_install_reuses_the_cached_binary_and_needs_go(bare: Path) -> None:
    with pytest.raises(ConfigError, match="needs Go"):
        install_opa(go=str(bare / "no-go"))
    cached = _executable(opa_cache_dir() / "opa")
    assert install_opa(go=str(bare / "no-go")) == cached
