"""The public surface: `__all__` is sorted and names exactly the public re-exports."""

import pygate


def test_all_is_sorted_and_complete() -> None:
    assert pygate.__all__ == sorted(pygate.__all__)
    public = {name for name in vars(pygate) if not name.startswith("_")}
    assert public == set(pygate.__all__)
