"""The user's own ``--hash`` pins (C23): pip-compile is given them, the lock keeps only them, a mismatch is exit 5.

pip-compile checks the file it resolves against the pins of ``requirements.in``, but with ``--generate-hashes`` it
still lists the hashes of every file of the release the index publishes; :func:`keep_pinned_hashes` narrows those
to the user's, so ``pip download`` and the image's ``pip install --require-hashes`` accept only the pinned files.
Pure: text in, text out; errors name the pin's ``file:line``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from slimbuild.errors import IntegrityError
from slimbuild.models import Declared

__all__ = ["keep_pinned_hashes", "raise_hash_pin_mismatch", "requirements_in", "user_hashes"]

_LOCK_LINE = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==")


def requirements_in(requirements: Sequence[str], hashes: Mapping[str, Sequence[str]]) -> str:
    """pip-compile's input: one requirement a line, with the user's ``--hash`` pins of its distribution."""
    lines = []
    for r in requirements:
        if not r.strip():
            continue
        pinned = hashes.get(canonicalize_name(Requirement(r).name), ())
        lines.append(" ".join([r.strip(), *(f"--hash={h}" for h in pinned)]) + "\n")
    return "".join(lines)


def user_hashes(hash_pins: Sequence[Declared]) -> dict[str, tuple[str, ...]]:
    """The user's ``--hash`` pins by distribution (every line that pins one adds its hashes)."""
    out: dict[str, tuple[str, ...]] = {}
    for d in hash_pins:
        if d.hashes:
            out[d.name] = tuple(sorted({*out.get(d.name, ()), *d.hashes}))
    return out


_PIN_MISMATCH_RE = re.compile(
    r"^\s*(?P<req>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<ver>\S+) from .*?\n\s*Expected \w+ .*?\n\s*Got\s+(?P<got>[0-9a-f]+)",
    re.MULTILINE | re.DOTALL,
)


def raise_hash_pin_mismatch(output: str, hash_pins: Sequence[Declared]) -> None:
    """pip-compile found a file that matches none of the user's ``--hash`` pins (C23): exit 5, both hashes named."""
    if not hash_pins or "DO NOT MATCH THE HASHES" not in output:
        return
    m = _PIN_MISMATCH_RE.search(output)
    name = canonicalize_name(m["req"]) if m else hash_pins[0].name
    pin = next((d for d in hash_pins if d.name == name), hash_pins[0])
    algo = pin.hashes[0].partition(":")[0]
    got = f"{algo}:{m['got']}" if m else "(see pip's output)"
    version = f"=={m['ver']}" if m else ""
    raise IntegrityError(
        f"{pin.source}: {name}{version}: the index serves {got}, which is none of the --hash pins there "
        f"({', '.join(pin.hashes)})",
        hint="check the index or proxy (the file is not the one you pinned); update the pin only if the "
        "release was legitimately re-uploaded",
    )




def _pin_of(name: str, hash_pins: Sequence[Declared]) -> Declared | None:
    return next((d for d in hash_pins if d.name == name and d.hashes), None)


def keep_pinned_hashes(body: str, hash_pins: Sequence[Declared]) -> str:
    """pip-compile's output with each pinned distribution's ``--hash`` lines narrowed to the user's pins."""
    wanted = user_hashes(hash_pins)
    if not wanted:
        return body
    lines, out, i = body.splitlines(), [], 0
    while i < len(lines):
        m = _LOCK_LINE.match(lines[i])
        name = canonicalize_name(m["name"]) if m else ""
        if name not in wanted:
            out.append(lines[i])
            i += 1
            continue
        head, j, found = lines[i].rstrip(" \\"), i + 1, []
        while j < len(lines) and lines[j].strip().startswith("--hash="):
            found.append(lines[j].strip().rstrip(" \\").strip()[len("--hash=") :].lower())
            j += 1
        keep = [h for h in found if h in wanted[name]]
        if not keep:
            pin = _pin_of(name, hash_pins)
            raise IntegrityError(
                f"{pin.source if pin else name}: {head.split(';')[0].strip()}: the index publishes {', '.join(found)}, "
                f"none of which is a --hash pin there ({', '.join(wanted[name])})",
                hint="check the index or proxy; update the pin only if the release was legitimately re-uploaded",
            )
        out.append(f"{head} \\")
        out.extend(f"    --hash={h}" + (" \\" if k < len(keep) - 1 else "") for k, h in enumerate(keep))
        i = j
    return "\n".join(out) + "\n"
