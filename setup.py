"""Build hook: ship the top-level ``rego/`` (the source of truth) inside the wheel.

``rego/`` stays where policy authors and ``opa test`` expect it; at build time its
policies and data (not the ``*_test.rego`` files) are copied to ``pygate/_rego/`` in the
build tree, so an installed pygate finds its Rego library, the example policy sets and
their data without a checkout. Everything else is in ``pyproject.toml``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.command.install_lib import install_lib

HERE = Path(__file__).resolve().parent


class BuildWithRego(build_py):
    """``build_py`` that also copies ``rego/`` into ``pygate/_rego``."""

    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return  # an editable install reads the checkout's rego/ directly
        source = HERE / "rego"
        if not source.is_dir():
            raise SystemExit("rego/ is missing: the wheel cannot be built without pygate's Rego")
        target = Path(self.build_lib) / "pygate" / "_rego"
        if target.exists():
            shutil.rmtree(target)
        for src in sorted(source.rglob("*")):
            if not src.is_file() or src.name.endswith("_test.rego"):
                continue
            if src.suffix not in {".rego", ".json", ".yaml", ".yml"}:
                continue
            dest = target / src.relative_to(source)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dest)


    def byte_compile(self, files: list[str]) -> None:
        if self.compile or self.optimize:  # wheels are byte-compiled by the installer
            super().byte_compile(files)


class InstallLibQuiet(install_lib):
    """``install_lib`` without the "byte-compiling is disabled" notice wheels always get."""

    def byte_compile(self, files: list[str]) -> None:
        if self.compile or self.optimize:
            super().byte_compile(files)


setup(cmdclass={"build_py": BuildWithRego, "install_lib": InstallLibQuiet})
