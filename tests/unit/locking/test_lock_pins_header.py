"""The lock header records the pins (locking/lockfile.py): deterministic, parsed back, part of the inputs digest."""

from __future__ import annotations

import pytest

from slimbuild.errors import ResolutionError
from slimbuild.locking.lockfile import ALL_PINS, inputs_digest, parse_lock, render_lock_text
from slimbuild.locking.pins import Pin
from slimbuild.locking.target import Target

H = "sha256:" + "a" * 64
T = Target("3.11", "x86_64")
BODY = f"six==1.16.0 \\\n    --hash={H}\n"
PINS = (Pin("six", "1.16.0", ".venv (importlib.metadata)"), Pin("attrs", "23.2.0", "uv.lock", 7))


def test_C17_header_lists_pins_sorted_and_parses_back() -> None:
    text = render_lock_text(BODY, T, "0" * 64, PINS)
    lines = text.splitlines()
    assert lines[3:5] == [
        "# pinned from uv.lock: attrs==23.2.0",
        "# pinned from .venv (importlib.metadata): six==1.16.0",
    ]
    lock = parse_lock(text)
    assert [(p.name, p.version, p.source) for p in lock.pins] == [
        ("attrs", "23.2.0", "uv.lock"),
        ("six", "1.16.0", ".venv (importlib.metadata)"),
    ]
    assert render_lock_text(text, T, "0" * 64, PINS) == text  # re-rendering keeps one header


def test_C17_upgrade_is_recorded_in_the_header() -> None:
    lock = parse_lock(render_lock_text(BODY, T, "0" * 64, (), (ALL_PINS,)))
    assert lock.pins == () and lock.pins_ignored == (ALL_PINS,)
    lock = parse_lock(render_lock_text(BODY, T, "0" * 64, PINS[:1], ("numpy", "attrs")))
    assert lock.pins_ignored == ("attrs", "numpy")


def test_C17_a_change_of_pins_changes_the_inputs_digest() -> None:
    plain = inputs_digest(["six"], T)
    assert inputs_digest(["six"], T, ()) == plain  # locks made before pins existed stay fresh
    pinned = inputs_digest(["six"], T, PINS[:1])
    assert pinned != plain
    assert inputs_digest(["six"], T, (Pin("six", "1.17.0", ".venv (importlib.metadata)"),)) != pinned
    assert inputs_digest(["six"], T, (Pin("six", "1.16.0", "uv.lock"),)) != pinned  # the source is recorded too


@pytest.mark.parametrize("line", ["# pinned from : six==1", "# pinned from uv.lock six==1", "# pinned from uv.lock: six"])
def test_C14_malformed_pin_header_is_file_line(line: str) -> None:
    with pytest.raises(ResolutionError, match=r"^slimbuild.lock:2: malformed pin header"):
        parse_lock(f"# x\n{line}\n{BODY}")
