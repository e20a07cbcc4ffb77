"""Where pygate's own files are: its Rego library, the example policy sets, the schemas.

One function answers "where is pygate's Rego": the checkout's ``rego/`` in development
(an editable install or tests), the copy packaged as ``pygate/_rego`` when installed from a
wheel (``setup.py`` puts it there at build time; ``rego/`` stays the source of truth).
"""

from __future__ import annotations

from pathlib import Path

from pygate._errors import ConfigError

PACKAGE_DIR = Path(__file__).resolve().parent
#: The checkout root when pygate runs from one (``site-packages`` when installed).
PROJECT_ROOT = PACKAGE_DIR.parent
#: pygate's Rego library: the entry point and what policies build on (no example sets).
LIBRARY_PACKAGES = ("gate", "lib", "canonical", "contracts", "declarative", "approvals", "log")
SCHEMA_DIR = PACKAGE_DIR / "schemas"


def is_pygate_tree(folder: Path) -> bool:
    """True when ``folder`` holds a whole pygate policy tree (entry point included)."""
    return (folder / "pygate" / "gate" / "gate.rego").is_file()


def rego_root() -> Path:
    """pygate's Rego: the checkout's ``rego/`` in development, else the packaged copy.

    Raises:
        ConfigError: neither exists (a broken installation).
    """
    checkout = PROJECT_ROOT / "rego"
    if is_pygate_tree(checkout) and (PROJECT_ROOT / "pyproject.toml").is_file():
        return checkout
    packaged = PACKAGE_DIR / "_rego"
    if is_pygate_tree(packaged):
        return packaged
    raise ConfigError(
        f"pygate's Rego library is missing (looked in {checkout} and {packaged}); "
        "reinstall pygate from its wheel"
    )


def library_dirs() -> list[Path]:
    """The folders of pygate's Rego library, loaded alongside a user's own policies."""
    root = rego_root() / "pygate"
    return [root / name for name in LIBRARY_PACKAGES]


def decision_schema_path() -> Path:
    """The versioned JSON Schema of the decision document (``data.pygate.gate.decision``)."""
    return SCHEMA_DIR / "decision.v1.json"
