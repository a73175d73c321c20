"""The build plan: launch commands, smoke command, SOURCE_DATE_EPOCH, tags, pruning; pure."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from slimbuild.errors import ConfigError
from slimbuild.image.plan import (
    SMOKE_RUN_NAME,
    VENV_PYTHON,
    FirstParty,
    content_tag,
    first_party_smoke,
    has_main_guard,
    make_plan,
    parse_source_date_epoch,
    plan_launch,
    repository_name,
    smoke_argv,
    smoke_commands,
)
from slimbuild.models import Analysis, Entrypoint, ImportSite, Location, Requirement


@pytest.mark.parametrize(
    ("kind", "path", "module", "function", "files", "argv", "pythonpath"),
    [
        ("script", "train.py", "__main__", "", ["train.py"], (VENV_PYTHON, "/app/train.py"), ()),
        ("notebook", "nb/w.ipynb", "__main__", "", ["nb/w.ipynb"], (VENV_PYTHON, "/app/nb/w.py"), ()),
        ("package", "app/__main__.py", "app.__main__", "", ["app/__main__.py"], (VENV_PYTHON, "-m", "app"), ()),
        ("module", "src/churn/cli.py", "churn.cli", "main", ["src/churn/cli.py"],
         (VENV_PYTHON, "-c", "import sys; from churn.cli import main as f; sys.exit(f())"), ("/app/src",)),
    ],
)
def test_launch_per_entrypoint_kind(kind: str, path: str, module: str, function: str, files: list[str],
                                    argv: tuple[str, ...], pythonpath: tuple[str, ...]) -> None:
    launch = plan_launch(kind, path, module, function, files)
    assert launch.argv == argv and launch.pythonpath == pythonpath


def test_D2_function_name_must_be_an_identifier() -> None:
    with pytest.raises(ConfigError):
        plan_launch("module", "m.py", "m", "main; import os", ["m.py"])


def test_F12_smoke_imports_every_required_top_level_module() -> None:
    loc = Location("m.py", 1)
    a = Analysis(
        "m", "m.py", "3.11", ("m.py",),
        required=(
            Requirement("scikit-learn", (ImportSite("sklearn.linear_model", loc),), ("table",), True),
            Requirement("pyyaml", (ImportSite("yaml", loc),), ("table",), True),
            Requirement("ujson", (ImportSite("ujson", loc, optional=True),), ("table",), True, optional_only=True),
        ),
        missing=(), unused=(), optional=(), unresolved=(), dynamic_unresolved=(), type_checking=(), pip_hints=(),
        findings=(),
    )
    argv = smoke_argv(a)
    assert argv[:2] == (VENV_PYTHON, "-c") and "import sklearn, yaml;" in argv[2] and "ujson" not in argv[2]
    # a Python smoke command runs in the same interpreter after the imports: one container, one import
    (one,) = smoke_commands(a, ("python", "/app/train.py", "--fast"))
    assert "import sklearn, yaml;" in one[2] and "runpy.run_path('/app/train.py'" in one[2]
    assert "sys.argv = ['/app/train.py', '--fast']" in one[2] and "sys.path[0] = '/app'" in one[2]
    (mod,) = smoke_commands(a, ("python3", "-m", "churn", "--months", "6"))
    assert "runpy.run_module('churn', run_name='__main__', alter_sys=True)" in mod[2]
    # anything else runs in a second container, exactly as written
    check, other = smoke_commands(a, ("/bin/true", "x"))
    assert other == ("/bin/true", "x") and "import sklearn" in check[2]


@pytest.mark.parametrize("value", ["abc", "1.5", "-1", str(int(time.time()) + 10 * 86400)])
def test_E16_invalid_source_date_epoch_is_an_error(value: str) -> None:
    with pytest.raises(ConfigError, match="SOURCE_DATE_EPOCH"):
        parse_source_date_epoch(value, "environment")


def test_G2_valid_source_date_epoch() -> None:
    assert parse_source_date_epoch(" 1700000000 ", "environment") == 1700000000


def test_content_tag_is_a_stable_hash_of_inputs() -> None:
    assert content_tag([b"lock", b"files"]) == content_tag([b"lock", b"files"])
    assert content_tag([b"lock", b"files"]) != content_tag([b"lock", b"files2"])
    assert len(content_tag([b"x"])) == 16


def test_repository_name_is_valid() -> None:
    assert repository_name("My Project!", "train", False) == "slimbuild/my-project"
    assert repository_name("pipeline", "Train Stage", True) == "slimbuild/pipeline-train-stage"


def test_F4_installers_pruned_unless_needed() -> None:
    common = dict(base_image="b@sha256:" + "0" * 64, pip_wheel="pip.whl", wheel_files=["a.whl"], app_files=["m.py"],
                  launch=plan_launch("script", "m.py", "__main__", "", ["m.py"]), source_date_epoch=1, labels={},
                  pyc=True, template="slim")
    pruned = make_plan(**common, needed=["pandas"]).prune  # type: ignore[arg-type]
    assert "pip" in pruned and "setuptools" in pruned and "pkg_resources" in pruned
    kept = make_plan(**common, needed=["setuptools", "pkg_resources"]).prune  # type: ignore[arg-type]
    assert "setuptools" not in kept and "pkg_resources" not in kept and "pip" in kept


def test_B5_sensitive_files_are_listed_by_name_only(tmp_path: Path) -> None:
    from slimbuild.image.context import sensitive_names

    # a sensitive dir is listed (not walked); the analysis's ignored dirs (.venv, build, ...) are not walked either
    for rel in [".env", "conf/credentials.json", "keys/id_rsa", ".git/config", "src/app.py", ".venv/lib/x.pem", "build/a.key"]:
        p = tmp_path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text("secret-token-123")
    assert sensitive_names(tmp_path) == (".env", ".git/", "conf/credentials.json", "keys/id_rsa")


def test_D4_latest_or_untagged_base_is_a_policy_violation() -> None:
    from slimbuild.errors import PolicyViolation
    from slimbuild.pipeline.building import resolve_base

    for ref in ["python:latest", "python", "registry.example:5000/team/python"]:
        with pytest.raises(PolicyViolation):
            resolve_base(None, ref)
    assert resolve_base(None, "python:3.11-slim@sha256:" + "a" * 64)[0].endswith("a" * 64)


def test_oci_labels_name_the_lock_and_the_revision_when_known() -> None:
    import hashlib

    from slimbuild.image.plan import oci_labels

    bare = oci_labels(epoch=0, title="p main", lock_text=b"x\n", version="", git=None)
    assert bare == {
        "org.opencontainers.image.created": "1970-01-01T00:00:00Z",
        "org.opencontainers.image.title": "p main",
        "io.slimbuild.lock-sha256": hashlib.sha256(b"x\n").hexdigest(),
    }
    full = oci_labels(epoch=0, title="t", lock_text=b"", version="1.2", git={"commit": "c0ffee", "remote": "https://h/r.git"})
    assert full["org.opencontainers.image.version"] == "1.2" and full["org.opencontainers.image.revision"] == "c0ffee"
    assert full["org.opencontainers.image.source"] == "https://h/r.git"
    no_remote = oci_labels(epoch=0, title="t", lock_text=b"", version="", git={"commit": "c", "remote": ""})
    assert "org.opencontainers.image.source" not in no_remote


def test_image_refs_content_tag_then_git_then_the_users() -> None:
    from slimbuild.image.plan import image_refs

    assert image_refs("slimbuild/p", "abc", None, ["u/t:1"]) == ["slimbuild/p:abc", "u/t:1"]
    assert image_refs("slimbuild/p", "abc", {"commit": "0123456789"}, ()) == ["slimbuild/p:abc", "slimbuild/p:git-0123456"]


def test_app_file_list_is_sorted_below_the_app_dir_with_the_embedded_manifest() -> None:
    from slimbuild.image.context import ContextFile
    from slimbuild.image.plan import APP_PREFIX, app_file_list

    files = [ContextFile(f"{APP_PREFIX}{n}", None, b"", 0o644) for n in ["z.py", "a/b.py"]]
    assert app_file_list(files, ".slimbuild/manifest.json") == [".slimbuild/manifest.json", "a/b.py", "z.py"]


def test_deps_key_ignores_the_app_files_and_needs_a_deps_stage() -> None:
    import dataclasses

    from slimbuild.image.context import ContextFile
    from slimbuild.image.plan import APP_PREFIX, deps_key

    dockerfile = "FROM python:3.11-slim AS deps\nCOPY wheels /w\nFROM deps AS runtime\nCOPY image/app /app\n"
    wheel = ContextFile("wheels/a.whl", Path("/nonexistent"), None, 0o644, "ab" * 32)  # the digest taken earlier: not read
    app = ContextFile(f"{APP_PREFIX}m.py", None, b"print(1)\n", 0o644)
    key = deps_key(dockerfile, [wheel, app])
    changed_app = dataclasses.replace(app, data=b"print(2)\n")
    assert key is not None and key == deps_key(dockerfile, [wheel, changed_app]) == deps_key(dockerfile, [wheel])
    assert deps_key(dockerfile, [wheel, ContextFile("wheels/b.whl", None, b"x", 0o644)]) != key
    assert deps_key("FROM python:3.11-slim AS venv\nFROM venv\n", [wheel]) is None


# ----------------------------------------------------------------------------- E24: the project's own modules


def _reached(entry: Entrypoint, modules: tuple[tuple[str, str], ...]) -> Analysis:
    return Analysis(
        entry.name, entry.path, "3.11", tuple(f for f, _ in modules), required=(), missing=(), unused=(), optional=(),
        unresolved=(), dynamic_unresolved=(), type_checking=(), pip_hints=(), findings=(), entry=entry, modules=modules,
    )


def test_E24_a_script_s_reached_modules_are_imported_by_name_on_its_own_sys_path() -> None:
    entry = Entrypoint("train", "scripts/train.py", "script", "scripts/train.py", "__main__", None)
    modules = (
        ("scripts/train.py", "__main__"), ("scripts/features.py", "features"), ("scripts/util/__init__.py", "util"),
        ("scripts/util/io.py", "util.io"), ("lib/vendored.py", "vendored"),  # found only through a sys.path edit
        ("src/core.py", "src.core"),  # found below the project root, which a script's sys.path lacks
        ("scripts/my-tool.py", "my-tool"), ("scripts/pkg/__main__.py", "pkg.__main__"),
    )
    a = _reached(entry, modules)
    launch = plan_launch(entry.kind, entry.path, entry.module, entry.function, a.files)
    fp = first_party_smoke(a, launch, entry_guarded=True)
    assert fp.path0 == "/app/scripts" and fp.modules == ("features", "util", "util.io")
    assert fp.load_path == "/app/scripts/train.py" and not fp.load_module
    (argv,) = smoke_commands(a, (), fp)
    code = argv[2]
    assert code.index("sys.path[0] = '/app/scripts'") < code.index("runpy.run_path('/app/scripts/train.py'")
    assert f"run_name={SMOKE_RUN_NAME!r}" in code and "'__main__'" not in code
    assert code.index("run_path") < code.index("import features, util, util.io") < code.index("slimbuild smoke: ok")
    # without a __main__ block the script's top level is the program: it is not run, its modules are imported
    unguarded = first_party_smoke(a, launch, entry_guarded=False)
    assert not unguarded.load_path and unguarded.modules == fp.modules
    # a configured smoke command runs the program itself: the import check stays as it was
    (user,) = smoke_commands(a, ("python", "/app/scripts/train.py"), fp)
    assert "import features" not in user[2] and "__slimbuild_smoke__" not in user[2]


def test_E24_a_package_main_is_loaded_as_a_module_and_a_runner_s_script_never() -> None:
    entry = Entrypoint("app", "app/__main__.py", "package", "app/__main__.py", "app.__main__", "app")
    a = _reached(entry, (("app/__main__.py", "app.__main__"), ("app/__init__.py", "app"), ("app/cli.py", "app.cli")))
    fp = first_party_smoke(a, plan_launch("package", entry.path, entry.module, "", a.files), entry_guarded=True)
    assert fp == FirstParty("", ("app", "app.cli"), load_module="app.__main__")
    served = Entrypoint("st", "streamlit run ui.py", "script", "ui.py", "__main__", None, runner="streamlit")
    b = _reached(served, (("ui.py", "__main__"), ("widgets.py", "widgets")))
    launch = plan_launch("script", "ui.py", "__main__", "", b.files, "streamlit")
    assert first_party_smoke(b, launch, entry_guarded=True) == FirstParty("/app", ("widgets",))
    # module:function: the module is imported (the image imports it too), nothing runs as __main__
    func = Entrypoint("f", "src/churn/cli.py:main", "module", "src/churn/cli.py", "churn.cli", "churn", function="main")
    c = _reached(func, (("src/churn/cli.py", "churn.cli"), ("src/churn/__init__.py", "churn")))
    launch = plan_launch("module", func.path, func.module, "main", c.files)
    assert first_party_smoke(c, launch, entry_guarded=True) == FirstParty("", ("churn.cli", "churn"))


@pytest.mark.parametrize(
    ("source", "guarded"),
    [
        (b'import x\nif __name__ == "__main__":\n    x.run()\n', True),
        (b"if '__main__' == __name__:\n    pass\n", True),
        (b"def f():\n    if __name__ == '__main__':\n        pass\n", False),  # not at the top level
        (b"if __name__ != '__main__':\n    pass\n", False),
        (b"print('the program')\n", False),
        (b"def broken(:\n", False),
    ],
)
def test_E24_the_main_block_is_found_at_the_top_level_only(source: bytes, guarded: bool) -> None:
    assert has_main_guard(source) is guarded
