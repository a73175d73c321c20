"""Requirements-file lines besides requirements: this project (`-e .`), index options, `--hash` pins (C20, C21, C25)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from slimbuild.analysis.declared import read_declared
from slimbuild.analysis.declared_lines import FileOptions, index_option
from slimbuild.errors import ConfigError, SlimbuildError
from slimbuild.locking.pip import extra_index_findings
from slimbuild.models import Location

PYPROJECT = (
    '[project]\nname = "proj"\nversion = "0.1"\ndependencies = ["pandas>=2"]\n'
    '[project.optional-dependencies]\nml = ["torch"]\n'
)


def _write(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


@pytest.mark.parametrize("line", ["-e .", "-e ./", "--editable .", "--editable=.", "-e.", ".", "./", "file:.", "-e file:."])
def test_C20_a_line_naming_this_project_reads_its_declarations(tmp_path: Path, line: str) -> None:
    root = _write(tmp_path, {"requirements.txt": f"{line}\nsix\n", "pyproject.toml": PYPROJECT})
    options = FileOptions()
    reqs, _ = read_declared(root, options=options)
    assert [(d.name, d.specifier) for d in reqs] == [("pandas", ">=2"), ("six", "")]  # no '<editable .>', no '.'
    (ref,) = options.projects
    assert ref.source == Location("requirements.txt", 1)


def test_C20_file_url_and_absolute_path_of_the_root_are_this_project(tmp_path: Path) -> None:
    root = _write(tmp_path, {"pyproject.toml": PYPROJECT})
    (root / "requirements.txt").write_text(f"-e file://{root.resolve()}\n{root.resolve()}\n")
    reqs, _ = read_declared(root)
    assert [d.name for d in reqs] == ["pandas"]


def test_C20_editable_dot_with_extras_selects_them(tmp_path: Path) -> None:
    root = _write(tmp_path, {"requirements.txt": "-e .[ml]\n", "pyproject.toml": PYPROJECT})
    assert [d.name for d in read_declared(root)[0]] == ["pandas", "torch"]
    (root / "requirements.txt").write_text("\n-e .[gpu]\n")
    with pytest.raises(ConfigError, match=r"requirements.txt:2: '\.\[gpu\]': this project has no extra 'gpu'"):
        read_declared(root)


def test_C20_a_stage_file_naming_the_root_is_this_project(tmp_path: Path) -> None:
    root = _write(
        tmp_path,
        {"stages/train/requirements.txt": "-e ../..\nsix\n", "stages/train/run.py": "", "pyproject.toml": PYPROJECT},
    )
    reqs, _ = read_declared(root, entry_dir=Path("stages/train"))
    assert sorted(d.name for d in reqs) == ["pandas", "six"]


def test_C20_setup_py_project_is_read_for_editable_dot(tmp_path: Path) -> None:
    root = _write(
        tmp_path,
        {"requirements.txt": "-e .\n", "setup.py": "from setuptools import setup\nsetup(name='p', install_requires=['numpy'])\n"},
    )
    assert [d.name for d in read_declared(root, project={})[0]] == ["numpy"]


def test_C20_editable_dot_without_a_project_definition_is_exit_2(tmp_path: Path) -> None:
    root = _write(tmp_path, {"requirements.txt": "six\n-e .\n"})
    with pytest.raises(ConfigError, match=r"requirements.txt:2: '\.' names this project, which has no pyproject.toml") as err:
        read_declared(root, project={})
    assert err.value.exit_code == 2


@pytest.mark.parametrize("line", ["-e ../other", "-e ./libs/inner", "../other", "-e file:../other"])
def test_C20_a_local_path_that_is_not_the_project_stays_a_url_declaration(tmp_path: Path, line: str) -> None:
    root = _write(tmp_path / "proj", {"requirements.txt": f"{line}\n", "pyproject.toml": PYPROJECT})
    (tmp_path / "other").mkdir()
    (d, pandas) = sorted(read_declared(root)[0], key=lambda d: d.name)
    assert pandas.name == "pandas"
    assert d.name.startswith("<local project ") and d.marker == "url" and d.source == Location("requirements.txt", 1)


@pytest.mark.parametrize(
    ("words", "expected"),
    [
        (["-i", "https://h/simple"], ("--index-url", "https://h/simple")),
        (["-ihttps://h/simple"], ("--index-url", "https://h/simple")),
        (["--index-url=https://h/simple"], ("--index-url", "https://h/simple")),
        (["--extra-index-url", "https://h/x"], ("--extra-index-url", "https://h/x")),
        (["-f", "https://h/links"], ("--find-links", "https://h/links")),
        (["--trusted-host", "h"], ("--trusted-host", "h")),
        (["--no-index"], ("--no-index", "")),
    ],
)
def test_C21_index_options_in_every_spelling(words: list[str], expected: tuple[str, str]) -> None:
    opt = index_option(words, Location("r.txt", 3), Path("."))
    assert opt is not None and (opt.option, opt.value) == expected


def test_C21_index_options_are_collected_in_file_order_through_includes(tmp_path: Path) -> None:
    root = _write(
        tmp_path,
        {
            "requirements.txt": "--index-url https://a/simple\n-r more.txt\nsix\n",
            "more.txt": "--extra-index-url https://b/simple\n-f wheels\nattrs\n",
            "wheels/.keep": "",
        },
    )
    options = FileOptions()
    reqs, _ = read_declared(root, project={}, options=options)
    assert [d.name for d in reqs] == ["attrs", "six"]
    assert [(o.option, o.value, str(o.source)) for o in options.index] == [
        ("--index-url", "https://a/simple", "requirements.txt:1"),
        ("--extra-index-url", "https://b/simple", "more.txt:1"),
        ("--find-links", str((root / "wheels").resolve()), "more.txt:2"),  # relative to the file, as pip does
    ]


def test_C23_hash_pins_are_kept_on_the_declaration(tmp_path: Path) -> None:
    h1, h2 = "sha256:" + "a" * 64, "sha256:" + "B" * 64
    root = _write(tmp_path, {"requirements.txt": f"six==1.16.0 --hash={h1} \\\n    --hash {h2}\n"})
    (d,) = read_declared(root, project={})[0]
    assert (d.name, d.specifier, d.hashes) == ("six", "==1.16.0", (h1, h2.lower()))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("six\n--index-url\n", r"requirements.txt:2: --index-url needs a value"),
        ("-i\n", r"requirements.txt:1: --index-url needs a value"),
        ("six==1 --hash=sha256:abc\n", r"requirements.txt:1: malformed hash 'sha256:abc'"),
        ("six==1 --hash=md5:" + "a" * 32 + "\n", r"requirements.txt:1: malformed hash"),
    ],
)
def test_C25_malformed_option_lines_are_exit_2_at_their_line(tmp_path: Path, text: str, message: str) -> None:
    root = _write(tmp_path, {"requirements.txt": text})
    with pytest.raises(ConfigError, match=message) as err:
        read_declared(root, project={})
    assert err.value.exit_code == 2 and err.value.hint


_SECRET = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.~", min_size=8, max_size=24)


@settings(max_examples=60, deadline=None)
@given(secret=_SECRET, option=st.sampled_from(["--index-url", "--extra-index-url", "-i", "--find-links", "--trusted-host"]),
       glue=st.sampled_from([" ", "="]), hashed=st.booleans())
def test_C25_credentials_in_option_lines_never_reach_a_message(
    tmp_path_factory: pytest.TempPathFactory, secret: str, option: str, glue: str, hashed: bool
) -> None:
    """Option lines with a credential (hypothesis: the credential, the option, its spelling) are read with it, and
    every finding, source and error about them masks it."""
    from slimbuild.locking import pip

    root = tmp_path_factory.mktemp("p")
    url = f"https://user:{secret}@idx.example/simple"
    bad = " --hash=sha256:abc" if hashed else ""
    (root / "requirements.txt").write_text(f"{option}{glue}{url}\nsix @ {url}/six.whl{bad}\n")
    options = FileOptions()
    try:
        read_declared(root, project={}, options=options)
    except SlimbuildError as exc:
        assert hashed and secret not in exc.one_line()
        return
    (opt,) = options.index
    assert opt.value == url  # pip needs the credential itself
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(pip, "pip_sources", lambda env=None: {})
        index = pip.pip_index({}, options.index)
    shown = [f.render() for f in extra_index_findings(options.index)] + list(index.sources) + list(index.warnings)
    assert all(secret not in text for text in shown)
    assert secret in " ".join(index.env.values())  # handed to pip, not printed
