"""What every role's input-check filter promises (tests/unit/test_filter_<role>.py): one
message per bad value, starting with the variable the user set."""
from __future__ import annotations


def assert_one_message_naming(found: list[str], var: str, fragment: str) -> None:
    assert len(found) == 1, found
    assert found[0].startswith(var), found
    assert fragment in found[0], found
