"""The public surface: `__all__` is sorted and names exactly the public re-exports."""

import types

import pygate


def test_all_is_sorted_and_complete() -> None:
    assert pygate.__all__ == sorted(pygate.__all__)
    # the concern subpackages (pygate.audit, .engine, ...) are modules, not re-exports
    public = {
        name
        for name, value in vars(pygate).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    assert public == set(pygate.__all__)
