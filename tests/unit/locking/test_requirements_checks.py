"""What requirements files ask of a lock: index options (C21, C24), conflicting declarations (C22), `--hash` pins (C23)."""

from __future__ import annotations

import pytest

from slimbuild.analysis.declared_conflicts import conflicting, declared_at
from slimbuild.errors import IntegrityError, ResolutionError
from slimbuild.locking import hashpins, lockfile, pip
from slimbuild.locking.pip import DEFAULT_INDEX, PipRun, pip_index
from slimbuild.locking.target import Target
from slimbuild.models import Declared, IndexOption, Location

X86 = Target("3.11", "x86_64")
REQ = Location("requirements.txt", 1)
PYP = Location("pyproject.toml", 7)


def _opt(option: str, value: str = "", line: int = 1) -> IndexOption:
    return IndexOption(option, value, Location("requirements.txt", line))


@pytest.fixture
def config(monkeypatch: pytest.MonkeyPatch) -> dict[str, tuple[str, ...]]:
    """pip's own configuration (``pip config list`` + env), as the test sets it."""
    values: dict[str, tuple[str, ...]] = {}
    monkeypatch.setattr(pip, "pip_sources", lambda env=None: values)
    return values


def test_C24_nothing_configured_records_pypi(config: dict[str, tuple[str, ...]]) -> None:
    index = pip_index({})
    assert index.sources == (DEFAULT_INDEX,) and index.warnings == () and index.env == {}


def test_C21_file_options_apply_on_top_of_the_configuration_as_pip_applies_them(config: dict[str, tuple[str, ...]]) -> None:
    config.update({"index-url": ("https://cfg/simple",), "extra-index-url": ("https://cfg-extra/simple",)})
    index = pip_index(
        {"KEEP": "1"},
        [_opt("--index-url", "https://u:pw@file/simple"), _opt("--extra-index-url", "https://x/simple", 2),
         _opt("--find-links", "/wheels", 3), _opt("--trusted-host", "file", 4)],
    )
    assert index.env["PIP_INDEX_URL"] == "https://u:pw@file/simple"  # the file's index replaces the configured one
    assert index.env["PIP_EXTRA_INDEX_URL"] == "https://cfg-extra/simple https://x/simple"  # extras add up
    assert index.env["PIP_FIND_LINKS"] == "/wheels" and index.env["PIP_TRUSTED_HOST"] == "file"
    assert index.env["KEEP"] == "1"
    assert index.sources == ("https://***@file/simple", "https://cfg-extra/simple", "https://x/simple", "/wheels")
    assert len(index.warnings) == 1 and "cfg-extra" in index.warnings[0]  # the file's extra is an SB024 finding instead


def test_C21_no_index_in_a_file_leaves_only_find_links(config: dict[str, tuple[str, ...]]) -> None:
    index = pip_index({}, [_opt("--no-index"), _opt("--find-links", "/w", 2)])
    assert index.env["PIP_NO_INDEX"] == "1" and index.sources == ("/w",)


def test_C21_extra_index_in_a_file_is_an_sb024_warning_at_its_line() -> None:
    options = [_opt("--index-url", "https://a/simple"), _opt("--extra-index-url", "https://u:pw@b/s", 5)]
    (finding,) = pip.extra_index_findings(options)
    assert finding.render().startswith("requirements.txt:5: SB024 --extra-index-url https://***@b/s:")
    assert "dependency confusion" in finding.message and "pw" not in finding.render()


@pytest.mark.parametrize(
    ("specs", "conflict"),
    [
        ((">=2", "<2"), True),
        (("==1.5", ">=2"), True),
        ((">2", "<=2"), True),
        (("==1.*", ">=2"), True),
        ((">=2,<2",), True),
        ((">=1.5", "~=1.4"), False),
        ((">2", "<3"), False),
        ((">=2,!=2.0", "<2.1"), False),
        (("<2", ""), False),
        ((">=2.0rc1", "<2"), True),  # PEP 440: <2 admits no pre-release of 2
        ((">=2.0rc1", "<2.1"), False),
        (("===weird", ">=2"), False),
    ],
)
def test_C22_declarations_that_admit_no_version(specs: tuple[str, ...], conflict: bool) -> None:
    decls = [Declared("numpy", s, Location(f"f{i}.txt", i + 1)) for i, s in enumerate(specs)]
    found = conflicting(decls, (), ["numpy"])
    assert (found is not None) is conflict
    if found:
        assert found[0] == "numpy" and {d.specifier for d in found[1]} == {s for s in specs if s}


def test_C22_constraints_count_and_unrequired_names_do_not() -> None:
    decl = Declared("numpy", ">=2", REQ)
    con = Declared("numpy", "<2", Location("constraints.txt", 3))
    assert conflicting([decl], [con], ["numpy"]) is not None
    assert conflicting([decl], [con], ["pandas"]) is None


def test_C22_a_pip_compile_failure_names_the_declarations_it_mentions() -> None:
    decls = [Declared("numpy", ">2.1", REQ), Declared("numpy", "<2.2", PYP), Declared("six", ">=1", REQ)]
    where = declared_at("ERROR: No matching distribution found for numpy<2.2,>2.1", decls)
    assert where == "pyproject.toml:7 says numpy<2.2, requirements.txt:1 says numpy>2.1"


def test_C22_the_no_wheel_hint_names_the_real_setting() -> None:
    run = PipRun(1, "ERROR: No matching distribution found for tinysdist==1.0", ())
    with pytest.raises(ResolutionError) as err:
        lockfile._raise_compile_failure(run, (), X86)
    assert 'allow-sdist = ["tinysdist"] in [tool.slimbuild]' in err.value.hint and "--allow-sdist" not in err.value.hint


def test_C23_hash_pins_reach_pip_compile_and_the_digest() -> None:
    pin = Declared("six", "==1.16.0", REQ, hashes=("sha256:" + "a" * 64,))
    hashes = hashpins.user_hashes([pin])
    assert hashpins.requirements_in(["six==1.16.0", "attrs"], hashes) == f"six==1.16.0 --hash=sha256:{'a' * 64}\nattrs\n"
    plain = lockfile.inputs_digest(["six==1.16.0"], X86)
    assert lockfile.inputs_digest(["six==1.16.0"], X86, (), {}) == plain  # no pins: old locks stay fresh
    assert lockfile.inputs_digest(["six==1.16.0"], X86, (), hashes) != plain


def test_C23_a_file_matching_no_hash_pin_is_exit_5_with_both_hashes() -> None:
    want, got = "a" * 64, "b" * 64
    pin = Declared("six", "==1.16.0", Location("requirements.txt", 4), hashes=(f"sha256:{want}",))
    output = (
        "THESE PACKAGES DO NOT MATCH THE HASHES FROM THE REQUIREMENTS FILE.\n"
        "    six==1.16.0 from https://idx/six-1.16.0-py2.py3-none-any.whl (from -r requirements.in (line 1)):\n"
        f"        Expected sha256 {want}\n             Got        {got}\n"
    )
    with pytest.raises(IntegrityError) as err:
        hashpins.raise_hash_pin_mismatch(output, [pin])
    assert err.value.exit_code == 5
    assert err.value.message.startswith("requirements.txt:4: six==1.16.0:")
    assert f"sha256:{got}" in err.value.message and f"sha256:{want}" in err.value.message


def test_C23_the_lock_keeps_only_the_pinned_files_hashes() -> None:
    a, b, c = ("sha256:" + x * 64 for x in "abc")
    body = (
        f"attrs==23.2.0 \\\n    --hash={c}\n    # via -r requirements.in\n"
        f'six==1.16.0 ; python_version >= "3" \\\n    --hash={a} \\\n    --hash={b}\n    # via -r requirements.in\n'
    )
    pin = Declared("six", "==1.16.0", REQ, hashes=(b,))
    kept = hashpins.keep_pinned_hashes(body, [pin])
    lock = lockfile.parse_lock(kept)
    assert {d.name: d.hashes for d in lock.dists} == {"attrs": (c,), "six": (b,)}
    assert 'six==1.16.0 ; python_version >= "3" \\\n' in kept
    with pytest.raises(IntegrityError) as err:
        hashpins.keep_pinned_hashes(body, [Declared("six", "==1.16.0", REQ, hashes=("sha256:" + "d" * 64,))])
    assert err.value.exit_code == 5 and err.value.message.startswith("requirements.txt:1: six==1.16.0")
    assert a in err.value.message and "d" * 64 in err.value.message
