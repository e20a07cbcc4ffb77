"""The framework adapters stay optional: the core never imports a framework, and an adapter
without its extra says which one to install."""

from __future__ import annotations

import subprocess
import sys

import pytest

FRAMEWORK_MODULES = ["agents", "langchain", "langchain_core", "langgraph", "pydantic_ai"]


def _python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )


def test_the_core_imports_no_framework() -> None:
    done = _python(
        "import sys, pygate, pygate.integrations, pygate.integrations._tools, pygate.cli._main\n"
        f"print(sorted(m for m in {FRAMEWORK_MODULES!r} if m in sys.modules))"
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("module", "blocked", "extra"),
    [
        ("openai_agents", "agents", "openai-agents"),
        ("langchain", "langchain.agents.middleware", "langchain"),
        ("pydantic_ai", "pydantic_ai", "pydantic-ai"),
    ],
)
def test_a_missing_extra_names_itself(module: str, blocked: str, extra: str) -> None:
    # sys.modules[name] = None makes ``import name`` raise ImportError, as if not installed.
    done = _python(
        f"import sys; sys.modules[{blocked!r}] = None\nimport pygate.integrations.{module}"
    )
    assert done.returncode == 1
    assert f"pip install 'pygate[{extra}]'" in done.stderr
