"""Pure tests of lock parsing, targets, input digests and URL masking (group C)."""

from __future__ import annotations

import pytest

from slimbuild.errors import ConfigError, ResolutionError
from slimbuild.locking.lockfile import check_compile_warnings, inputs_digest, parse_lock, render_lock_text
from slimbuild.locking.target import Target

H1 = "sha256:" + "a" * 64
H2 = "sha256:" + "b" * 64


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"six==1.16.0 --hash={H1}\n", [("six", "1.16.0", (H1,))]),
        (f"Six==1.16.0 \\\n    --hash={H2} \\\n    --hash={H1}\n    # via x\n", [("six", "1.16.0", (H1, H2))]),
        (f"# comment\n\nPyYAML==6.0.1 --hash {H1}  # trailing\n", [("pyyaml", "6.0.1", (H1,))]),
        (f'idna==3.7 ; python_version >= "3.12" \\\n    --hash={H1}\n', [("idna", "3.7", (H1,))]),
        (f"b==2 --hash={H1}\na==1.0 --hash={H2}\n", [("a", "1.0", (H2,)), ("b", "2", (H1,))]),
        ("", []),
    ],
)
def test_C2_parse_pinned_hashed(text: str, expected: list[tuple[str, str, tuple[str, ...]]]) -> None:
    lock = parse_lock(text)
    assert [(d.name, d.version, d.hashes) for d in lock.dists] == expected


def test_C2_parse_keeps_marker_and_line() -> None:
    (dist,) = parse_lock(f'\n\nidna==3.7 ; python_version >= "3.12" \\\n  --hash={H1}\n').dists
    assert dist.line == 3 and dist.marker == 'python_version >= "3.12"'


@pytest.mark.parametrize(
    "line",
    [
        "-e git+https://github.com/x/y.git#egg=y",
        "--editable ./local",
        "git+https://github.com/x/y.git@main#egg=y",
        "y @ git+https://github.com/x/y.git",
        "y @ https://user:tok@example.com/y-1.0.tar.gz",
        "./local/pkg",
        "https://example.com/y-1.0-py3-none-any.whl",
    ],
)
def test_C8_unhashable_requirement_cannot_hash(line: str) -> None:
    with pytest.raises(ResolutionError) as err:
        parse_lock(f"{line}\n")
    assert "cannot hash" in err.value.message and "wheel" in err.value.hint
    assert err.value.exit_code == 4 and "tok" not in err.value.one_line()


def test_C9_no_hashes_names_lines() -> None:
    with pytest.raises(ResolutionError, match=r"has no hashes: unhashed line 1 \(six\), line 2 \(idna\)"):
        parse_lock("six==1.16.0\nidna==3.7\n")


def test_C9_partly_hashed_names_unhashed_lines() -> None:
    text = f"six==1.16.0 \\\n  --hash={H1}\n# x\nidna==3.7\nattrs==23.2.0 --hash={H2}\n"
    with pytest.raises(ResolutionError) as err:
        parse_lock(text, source="my.lock")
    assert err.value.message == "my.lock is only partly hashed: unhashed line 4 (idna)"
    assert "all or nothing" in err.value.hint


@pytest.mark.parametrize(
    ("line", "fragment"),
    [
        (f"six>=1.16 --hash={H1}", "not pinned with =="),
        (f"six --hash={H1}", "not pinned with =="),
        (f"six==1.* --hash={H1}", "not pinned with =="),
        (f"six==1.16.0,<2 --hash={H1}", "not pinned with =="),
        ("-r other.txt", "includes another file"),
        ("-c constraints.txt", "includes another file"),
        ("--index-url https://user:pw@example.com/simple", "not allowed in a lock"),
        (f"six==1.16.0 --hash=md5:{'a' * 32}", "malformed hash"),
        ("six==1.16.0 --hash=sha256:abc", "malformed hash"),
        (f"six==1.16.0 --global-option=x --hash={H1}", "not allowed on a lock line"),
        (f"six==1.16.0 --hash={H1}\nsix==1.16.0 --hash={H1}", "pinned twice"),
        ("# slimbuild-target: windows/x86 cp311\n", "malformed target header"),
        ("# slimbuild-inputs-sha256: xyz\n", "malformed inputs header"),
    ],
)
def test_C9_rejected_lock_lines(line: str, fragment: str) -> None:
    with pytest.raises(ResolutionError, match=fragment) as err:
        parse_lock(line + "\n")
    assert err.value.hint and "\n" not in err.value.message
    assert "pw@" not in err.value.one_line()


def test_C2_header_round_trip() -> None:
    target = Target("3.12", "aarch64")
    digest = inputs_digest(["six"], target)
    text = render_lock_text(f"six==1.16.0 \\\n    --hash={H1}\n    # via -r requirements.in\n", target, digest)
    lock = parse_lock(text)
    assert lock.target == target and lock.inputs_sha256 == digest
    assert lock.text == text and render_lock_text(text, target, digest) == text
    assert "# slimbuild-target: linux/aarch64 cp312" in text


def test_C2_compile_warning_rejected() -> None:
    output = (
        "# WARNING: pip install will require the following package to be hashed.\n"
        "WARNING: The generated requirements file may be rejected by pip install. "
        "See # WARNING lines for details.\n"
    )
    with pytest.raises(ResolutionError, match="may be rejected by pip install"):
        check_compile_warnings(output)
    check_compile_warnings("all good\n")


@pytest.mark.parametrize(
    ("python", "machine", "describe"),
    [
        ("3.11", "x86_64", "linux/x86_64 cp311"),
        ("3.12", "aarch64", "linux/aarch64 cp312"),
        ("3.10", "x86_64", "linux/x86_64 cp310"),
    ],
)
def test_C10_target_describe(python: str, machine: str, describe: str) -> None:
    assert Target(python, machine).describe() == describe


@pytest.mark.parametrize(
    ("python", "machine"),
    [
        ("3", "x86_64"),
        ("3.11.2", "x86_64"),
        ("py311", "x86_64"),
        ("3.11", "arm64"),
        ("3.11", "amd64"),
        ("3.11", "i686"),
        ("3.11", ""),
    ],
)
def test_C10_target_invalid_is_config_error(python: str, machine: str) -> None:
    with pytest.raises(ConfigError) as err:
        Target(python, machine)
    assert err.value.exit_code == 2 and err.value.hint


def test_C10_platform_tags_x86_64() -> None:
    tags = Target("3.11", "x86_64").platform_tags()
    assert tags[0] == "manylinux_2_36_x86_64"
    assert tags.index("manylinux_2_28_x86_64") < tags.index("manylinux_2_17_x86_64")
    assert tags.index("manylinux_2_17_x86_64") + 1 == tags.index("manylinux2014_x86_64")
    assert "manylinux1_x86_64" in tags and "manylinux_2_37_x86_64" not in tags
    assert not any(t.startswith(("musllinux", "linux_")) for t in tags)


def test_C10_platform_tags_aarch64() -> None:
    tags = Target("3.12", "aarch64").platform_tags()
    assert tags[0] == "manylinux_2_36_aarch64" and tags[-1] == "manylinux2014_aarch64"
    assert all("aarch64" in t for t in tags)


def test_C10_supported_tags_contain_target_wheels() -> None:
    names = {str(t) for t in Target("3.11", "aarch64").supported_tags()}
    assert "cp311-cp311-manylinux_2_17_aarch64" in names
    assert "cp311-abi3-manylinux2014_aarch64" in names and "py3-none-any" in names
    assert "cp311-cp311-manylinux_2_17_x86_64" not in names


def test_C2_inputs_digest_order_independent_and_normalised() -> None:
    t = Target()
    a = inputs_digest(["Pandas>=2", "python_dateutil", "numpy"], t)
    b = inputs_digest(["numpy", "python-dateutil", "pandas >= 2", "numpy"], t)
    assert a == b and len(a) == 64
    assert a != inputs_digest(["numpy", "python-dateutil", "pandas>=2"], Target("3.12"))
    assert a != inputs_digest(["numpy", "python-dateutil", "pandas>=2.1"], t)
    with pytest.raises(ResolutionError, match="invalid requirement"):
        inputs_digest(["not a requirement!!"], t)
