"""The wheel is the product: built, installed into a fresh venv, used from an unrelated folder.

The venv gets the wheel (``--no-deps``) and reaches the already-installed dependencies
through a ``.pth`` line, so the test needs no network; pygate itself comes only from the
wheel (the checkout's editable install is not on that path).
"""

from __future__ import annotations

import json
import os
import site
import subprocess
import sys
import tarfile
import textwrap
import zipfile
from pathlib import Path

import pytest

from pygate._resources import PROJECT_ROOT
from pygate.engine._opa_process import find_opa_binary


def _run(argv: list[str], cwd: Path, env: dict[str, str] | None = None,
         stdin: str = "") -> subprocess.CompletedProcess[str]:  # fmt: skip
    return subprocess.run(argv, cwd=cwd, env=env, input=stdin, capture_output=True, text=True,
                          timeout=600, check=False)  # fmt: skip


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    built = _run([sys.executable, "-m", "build", "--outdir", str(out), str(PROJECT_ROOT)],
                 cwd=out)  # fmt: skip
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    noise = [line for line in (built.stdout + built.stderr).splitlines() if "warn" in line.lower()]
    assert noise == [], noise
    return out


@pytest.fixture(scope="module")
def venv(dist: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("venv")
    env_dir = root / "venv"
    made = _run([sys.executable, "-m", "venv", "--without-pip", str(env_dir)], cwd=root)
    assert made.returncode == 0, made.stderr
    python = env_dir / "bin" / "python"
    wheel = next(dist.glob("pygate-*.whl"))
    installed = _run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q",
                      "--no-deps", str(wheel)], cwd=root)  # fmt: skip
    assert installed.returncode == 0, installed.stderr
    purelib = _run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                   cwd=root).stdout.strip()  # fmt: skip
    # The dependencies, not pygate: the editable install's finder is a .pth file in that
    # folder, and .pth files on a plain sys.path entry are not run.
    (Path(purelib) / "deps.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    return env_dir


@pytest.fixture
def user_env(venv: Path, tmp_path: Path) -> dict[str, str]:
    """A user's shell: the venv first on PATH, OPA named, nothing from the checkout."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYGATE_", "PYTHON"))}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{os.path.dirname(find_opa_binary())}"
    env["PATH"] += f"{os.pathsep}/usr/bin:/bin"
    env["HOME"] = str(tmp_path / "home")
    return env


def test_wheel_and_sdist_carry_the_rego_library(dist: Path) -> None:
    with zipfile.ZipFile(next(dist.glob("pygate-*.whl"))) as whl:
        names = set(whl.namelist())
    for rel in ("gate/gate.rego", "lib/lib.rego", "declarative/declarative.rego",
                "approvals/approvals.rego", "log/mask.rego", "config/data.json",
                "policies/finance/finance.rego", "policies/assistant/assistant.rego"):  # fmt: skip
        assert f"pygate/_rego/pygate/{rel}" in names, rel
    assert "pygate/schemas/decision.v1.json" in names
    assert not [n for n in names if n.endswith("_test.rego")]
    with tarfile.open(next(dist.glob("pygate-*.tar.gz"))) as sdist:
        assert any(n.endswith("rego/pygate/gate/gate.rego") for n in sdist.getnames())


def test_installed_wheel_runs_the_demo_from_any_folder(venv: Path, user_env: dict[str, str],
                                                       tmp_path: Path) -> None:  # fmt: skip
    where = _run([str(venv / "bin/python"), "-c", "import pygate; print(pygate.__file__)"],
                 cwd=tmp_path, env=user_env)  # fmt: skip
    assert where.stdout.startswith(str(venv)), where.stdout + where.stderr
    demo = _run(["pygate", "demo", "--json"], cwd=tmp_path, env=user_env)
    assert demo.returncode == 0, demo.stdout[-2000:] + demo.stderr[-2000:]
    summary = json.loads(demo.stdout.splitlines()[-1])["summary"]
    assert summary["as_expected"] == summary["scenarios"] == 15


def test_installed_wheel_ten_line_script(venv: Path, user_env: dict[str, str],
                                         tmp_path: Path) -> None:  # fmt: skip
    script = tmp_path / "app.py"
    script.write_text(
        textwrap.dedent("""\
        from pygate import Gate

        with Gate("finance", audit="audit.db") as gate:
            user = {"id": "u1", "transaction_limit": 1000}
            small = gate.evaluate({"type": "transfer", "amount": 50, "to": "a"}, user)
            big = gate.evaluate({"type": "transfer", "amount": 5000, "to": "a"}, user)
            print(small.allowed, big.allowed, big.policy_id)
    """)
    )
    out = _run([str(venv / "bin/python"), str(script)], cwd=tmp_path, env=user_env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["True", "False", "FIN-002"]


def test_installed_wheel_init_opa_test_check_bundle(venv: Path, user_env: dict[str, str],
                                                    tmp_path: Path) -> None:  # fmt: skip
    assert _run(["pygate", "init", "myproj"], cwd=tmp_path, env=user_env).returncode == 0
    proj = tmp_path / "myproj"
    policy = proj / "policies/acme/payments/policy.rego"
    policy.write_text(policy.read_text().replace("default _limit := 1000",
                                                 "default _limit := 2000"))  # fmt: skip
    tested = _run(["opa", "test", "policies"], cwd=proj, env=user_env)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    ok = _run(["pygate", "check", "example.json"], cwd=proj, env=user_env)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    doc = json.loads((proj / "example.json").read_text())
    doc["output"]["amount"] = 5000
    no = _run(["pygate", "check", "--json", "-"], cwd=proj, env=user_env, stdin=json.dumps(doc))
    assert no.returncode == 1, no.stderr
    assert json.loads(no.stdout)["policy_id"] == "PAY-001"
    assert _run(["pygate", "bundle", "keys"], cwd=proj, env=user_env).returncode == 0
    built = _run(["pygate", "bundle", "build"], cwd=proj, env=user_env)
    assert built.returncode == 0, built.stdout + built.stderr
    assert (proj / "bundles/pygate.tar.gz").is_file()
