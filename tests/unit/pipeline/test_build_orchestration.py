"""The build's sequence against an in-memory engine: what is called, in which order, and what is left behind.

No Docker and no network: a real small project, a real tiny wheel in the content-addressed cache, a FakeEngine
that records every call. The real-engine tier (tests/docker) checks the same rules against Docker itself.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import tarfile
import zipfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from slimbuild.config import Settings, load_settings
from slimbuild.errors import BuildFailed, ConfigError, EngineUnavailable, NoSuchImage, PolicyViolation
from slimbuild.image.build_stream import BuildOutcome
from slimbuild.image.engine import Engine, EngineInfo, RunOutcome
from slimbuild.locking.lockfile import Lock, LockedDist, inputs_digest, parse_lock, render_lock_text
from slimbuild.locking.pins import Pin
from slimbuild.locking.target import Target
from slimbuild.pipeline import building, outputs
from slimbuild.pipeline.locking import LockOutcome, target_of
from slimbuild.record import manifest as manifest_mod
from tests.conftest import Run
from tests.constants import BUILD, ENGINE, INTERRUPTED, OK, POLICY, USAGE

BASE = "python:3.11-slim@sha256:" + "b" * 64
BASE_PYTHON = "3.11.9"  # what the base's image config says (python:*-slim sets PYTHON_VERSION)
REPO = Path(__file__).resolve().parents[3]
APP = building.APP_PREFIX
APP_MEMBERS = {"Dockerfile", f"{APP}helper.py", f"{APP}main.py", f"{APP}{building.MANIFEST_IN_APP}"}


# ----------------------------------------------------------------------------- the fake engine


class FakeEngine:
    """The ``Engine`` protocol in memory: records every call, returns canned ids and inspect documents.

    Told to, it fails a build (``fail_build``: the exception to raise, for the build number ``fail_build_at``),
    fails the smoke run (``smoke_exit``) or raises in it (``fail_run``), or raises on tag (``fail_tag``).
    """

    def __init__(
        self,
        *,
        fail_build: BaseException | None = None,
        fail_build_at: int = 0,
        smoke_exit: int = 0,
        fail_run: BaseException | None = None,
        fail_tag: BaseException | None = None,
    ) -> None:
        self.fail_build, self.fail_build_at = fail_build, fail_build_at
        self.smoke_exit, self.fail_run, self.fail_tag = smoke_exit, fail_run, fail_tag
        self.calls: list[tuple[Any, ...]] = []
        self.contexts: list[tuple[str, bytes]] = []  # (target, context tar bytes) of each build
        self.archives: list[bytes] = []  # the tar each commit_run put into its container
        self.images: dict[str, dict[str, Any]] = {
            BASE: {"Id": "sha256:" + "b" * 64, "Size": 100_000, "Config": {"Env": [f"PYTHON_VERSION={BASE_PYTHON}"]}}
        }
        self.refs: dict[str, str] = {}  # ref -> image id

    def info(self) -> EngineInfo:
        return EngineInfo("fake://", "1.41", "0", "linux", "x86_64")

    def build(self, context: Any, *, target: str = "", labels: Mapping[str, str] = {}, **_kw: Any) -> BuildOutcome:
        data = context if isinstance(context, bytes) else context.read()
        self.calls.append(("build", target))
        self.contexts.append((target, data))
        if self.fail_build is not None and len(self.contexts) > self.fail_build_at:
            raise self.fail_build
        image_id = "sha256:" + hashlib.sha256(target.encode() + data).hexdigest()
        layers = [f"sha256:{'1' * 64}", "sha256:" + hashlib.sha256(data).hexdigest()]
        self.images[image_id] = {"Id": image_id, "Size": 100_000 + len(data), "RootFS": {"Layers": layers}, "Labels": labels,
                                 "Config": {"Labels": dict(labels)}}
        return BuildOutcome(image_id)

    def run(self, image_id: str, argv: Sequence[str], *, user: str, timeout: float, **_kw: Any) -> RunOutcome:
        self.calls.append(("run", image_id, tuple(argv)))
        if self.fail_run is not None:
            raise self.fail_run
        return RunOutcome(self.smoke_exit, "slimbuild smoke: ok\n" if self.smoke_exit == 0 else "Traceback\nImportError: x\n")

    def commit_run(self, image: str, archive: Any, argv: Sequence[str], *, timeout: float) -> str:
        """The venv image: a fresh id from the archive (what the venv container got in /tmp) and the command."""
        data = archive if isinstance(archive, bytes) else archive.read()
        self.calls.append(("commit_run", image, tuple(argv)))
        self.archives.append(data)
        image_id = "sha256:" + hashlib.sha256(b"commit\0" + data + " ".join(argv).encode()).hexdigest()
        self.images[image_id] = {"Id": image_id, "Size": 100_000 + len(data), "RootFS": {"Layers": [f"sha256:{'1' * 64}"]},
                                 "Config": {}}
        return image_id

    def tag(self, image_id: str, refs: Sequence[str]) -> None:
        self.calls.append(("tag", image_id, tuple(refs)))
        if self.fail_tag is not None:
            raise self.fail_tag  # all or none: nothing of this call is kept
        self.refs.update(dict.fromkeys(refs, image_id))

    def inspect_image(self, ref: str) -> dict[str, Any]:
        self.calls.append(("inspect_image", ref))
        found = self.images.get(self.refs.get(ref, ref))
        if found is None:
            raise NoSuchImage(f"no such image: {ref}", hint="")
        return dict(found)

    def history(self, image_id: str) -> list[dict[str, Any]]:
        """Newest first, as the engine's: the build's COPY above the base's one imported layer."""
        base = {"Id": self.images[BASE]["Id"], "CreatedBy": "", "Comment": "Imported from -", "Created": 1}
        if image_id == self.images[BASE]["Id"]:
            return [base]
        return [{"Id": image_id, "CreatedBy": "/bin/sh -c #(nop) COPY dir:x in / ", "Created": 2}, base]

    def save(self, image_id: str) -> Iterator[bytes]:
        """A ``docker save`` tar of the base: its config (one history entry) and manifest, one layer."""
        self.calls.append(("save", image_id))
        config = json.dumps({"architecture": "amd64", "os": "linux", "history": [{"created": "2020-01-01T00:00:00Z"}],
                             "rootfs": {"type": "layers", "diff_ids": [f"sha256:{'1' * 64}"]}}).encode()
        manifest = json.dumps([{"Config": "c.json", "Layers": ["l/layer.tar"]}]).encode()
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            for name, data in (("l/layer.tar", b"x" * 10), ("c.json", config), ("manifest.json", manifest)):
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        return iter([buf.getvalue()])

    def load(self, data: bytes) -> str:
        """Register the config of a config-only ``docker load`` tar under its digest (its layers must exist)."""
        self.calls.append(("load",))
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            manifest = json.loads(tar.extractfile("manifest.json").read())  # type: ignore[union-attr]
            raw = tar.extractfile(manifest[0]["Config"]).read()  # type: ignore[union-attr]
        image_id = "sha256:" + hashlib.sha256(raw).hexdigest()
        config = json.loads(raw)
        labels = config["config"].get("Labels", {})
        layers = config["rootfs"]["diff_ids"]
        self.images[image_id] = {"Id": image_id, "Size": 100_000, "RootFS": {"Layers": layers}, "Labels": labels,
                                 "Config": config["config"]}
        return image_id

    def remove_image(self, image_id: str) -> None:
        self.calls.append(("remove_image", image_id))
        if image_id not in self.refs.values():
            self.images.pop(image_id, None)

    def untag(self, ref: str) -> None:
        self.calls.append(("untag", ref))
        self.refs.pop(ref, None)

    def remove_chain(self, image_id: str) -> None:
        self.remove_image(image_id)

    def kinds(self) -> list[str]:
        """The engine operations called, in order (inspections left out)."""
        return [c[0] for c in self.calls if c[0] not in {"inspect_image", "save"}]


# The normalisation step after every build: the twin with the config at SOURCE_DATE_EPOCH is loaded and the
# image as the builder made it is removed (pipeline/normalizing.py).
NORMALISE = ["load", "remove_image"]
# The deps image of the bundled slim template (pipeline/imaging.py): the venv container committed, then target deps on it.
VENV_DEPS = ["commit_run", "build"]


def _typed(engine: FakeEngine) -> Engine:
    return engine  # mypy checks FakeEngine against the protocol here


# ----------------------------------------------------------------------------- a project, its wheel, its lock


def _tiny_wheel(folder: Path) -> Path:
    """A valid (installable-looking) wheel of tinypkg 1.0."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "tinypkg-1.0-py3-none-any.whl"
    members = {
        "tinypkg/__init__.py": "VALUE = 1\n",
        "tinypkg-1.0.dist-info/METADATA": "Metadata-Version: 2.1\nName: tinypkg\nVersion: 1.0\n",
        "tinypkg-1.0.dist-info/WHEEL": "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        "tinypkg-1.0.dist-info/top_level.txt": "tinypkg\n",
        "tinypkg-1.0.dist-info/RECORD": "",
    }
    with zipfile.ZipFile(path, "w") as zf:
        for name, text in members.items():
            zf.writestr(zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0)), text)  # the same bytes every run
    return path


def _cached_wheel(cache: Path) -> tuple[Path, str]:
    """The tiny wheel stored where fetch_wheels looks for it (the content-addressed cache), and its hash."""
    built = _tiny_wheel(cache.parent / "wheel-src")
    digest = hashlib.sha256(built.read_bytes()).hexdigest()
    stored = cache / "wheels" / "sha256" / digest / built.name
    stored.parent.mkdir(parents=True, exist_ok=True)
    stored.write_bytes(built.read_bytes())
    return stored, f"sha256:{digest}"


PIP_NAME = "pip-25.3-py3-none-any.whl"


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An isolated cache; pip's own wheel (pinned by a hash no test file can have) is served by a stub."""
    path = tmp_path / "cache"
    monkeypatch.setenv("SLIMBUILD_CACHE", str(path))
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    pip = _tiny_wheel(tmp_path / "pip-src").rename(tmp_path / "pip-src" / PIP_NAME)

    def fetch_tool(lock: Lock, _target: Target, _cache: Path, **_kw: Any) -> tuple[Path, ...]:
        assert [d.name for d in lock.dists] == ["pip"], "only pip's wheel is stubbed"
        return (pip,)

    monkeypatch.setattr(building, "fetch_wheels", fetch_tool)
    return path


def _write_project(root: Path, extra: str = "") -> Path:
    files = {
        "pyproject.toml": (
            '[project]\nname = "orch"\nversion = "0.1.0"\ndependencies = ["tinypkg==1.0"]\n\n'
            f'[tool.slimbuild]\nentrypoint = "main.py"\nbase-image = "{BASE}"\n{extra}'
        ),
        "main.py": "import tinypkg\n\nimport helper\n\nprint(helper.double(tinypkg.VALUE))\n",
        "helper.py": "def double(x):\n    return 2 * x\n",
        ".env": "TOKEN=never-shipped\n",
    }
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text, encoding="utf-8")
    return root


def _write_fresh_lock(settings: Settings, wheel_hash: str) -> None:
    """A lock whose inputs header matches the analysis: --locked accepts it without compiling anything."""
    from slimbuild.analysis.declared import read_declared
    from slimbuild.analysis.reconcile import lock_inputs
    from slimbuild.pipeline.analyzing import analyze

    (a,) = analyze(settings)
    _declared, constraints = read_declared(
        settings.root, settings.requirements, settings.optional_groups, project=settings.project
    )
    target = target_of(settings)
    body = f"tinypkg==1.0 \\\n    --hash={wheel_hash}\n"
    text = render_lock_text(body, target, inputs_digest(lock_inputs(a, constraints), target))
    parse_lock(text)  # a lock the real parser accepts
    (settings.root / "slimbuild.lock").write_text(text, encoding="utf-8")


@pytest.fixture
def proj(tmp_path: Path, cache: Path) -> Path:
    """The project with a fresh lock and its wheel in the cache (the real lock stage runs offline under --locked)."""
    root = _write_project(tmp_path / "proj")
    _stored, wheel_hash = _cached_wheel(cache)
    _write_fresh_lock(load_settings(root), wheel_hash)
    return root


@pytest.fixture
def fake_lock(tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The lock stage faked: the real analysis, a one-dist Lock and the tiny wheel; returns a call counter."""
    from slimbuild.pipeline.analyzing import analyze

    wheel = _tiny_wheel(tmp_path / "wheels")
    digest = "sha256:" + hashlib.sha256(wheel.read_bytes()).hexdigest()
    calls: list[int] = []

    def lock(settings: Settings, requested: str = "", **_kw: Any) -> tuple[LockOutcome, ...]:
        calls.append(1)
        dists = (LockedDist("tinypkg", "1.0", (digest,), 3),)
        text = f"tinypkg==1.0 \\\n    --hash={digest}\n"
        current = Lock(dists, target_of(settings), "0" * 64, text, pins=(Pin("tinypkg", "1.0", "uv.lock"),))
        return tuple(
            LockOutcome(a, settings.root / "slimbuild.lock", current, False, (wheel,), (), ())
            for a in analyze(settings, requested)
        )

    monkeypatch.setattr(building, "lock", lock)
    return calls


def _build(root: Path, engine: FakeEngine, **kw: Any) -> tuple[building.BuildResult, ...]:
    return building.build(load_settings(root), engine=_typed(engine), **kw)


def _members(tar_bytes: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(tar_bytes)) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar if m.isfile()}  # type: ignore[union-attr]


def _cli(*args: str, engine: FakeEngine | Callable[[], Any], monkeypatch: pytest.MonkeyPatch) -> Run:
    from contextlib import redirect_stderr, redirect_stdout

    from slimbuild import cli

    connect = engine if callable(engine) and not isinstance(engine, FakeEngine) else (lambda: engine)
    monkeypatch.setattr(cli, "_connect", connect)
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = cli.main(list(args))
    return Run(code, out.getvalue(), err.getvalue())


# ----------------------------------------------------------------------------- the happy path


def test_F12_E19_smoke_runs_before_any_tag_the_manifest_is_written_before_tagging_and_renamed_after(
    tmp_path: Path, fake_lock: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _write_project(tmp_path / "p")
    engine = FakeEngine()
    staged: list[list[str]] = []
    committed: list[list[str]] = []
    real_stage, real_commit = outputs.stage, outputs.Staged.commit

    def stage(path: Path, write: Callable[[Any], None], mode: int = 0o644) -> outputs.Staged:
        staged.append(engine.kinds())  # what the engine had done when the manifest was written in full
        return real_stage(path, write, mode)

    def commit(self: outputs.Staged) -> None:
        committed.append(engine.kinds())  # ... and when it was renamed into place
        real_commit(self)

    monkeypatch.setattr(outputs, "stage", stage)
    monkeypatch.setattr(outputs.Staged, "commit", commit)
    (result,) = _build(root, engine, tags=["team/orch:dev"])
    # the deps image (the venv committed, deps on it), the app image, smoke, then every ref at once
    assert engine.kinds() == [*VENV_DEPS, "build", *NORMALISE, "run", "tag"]
    assert [t for t, _ in engine.contexts] == ["deps", ""]
    assert staged == [[*VENV_DEPS, "build", *NORMALISE, "run"]] and committed == [[*VENV_DEPS, "build", *NORMALISE, "run", "tag"]]
    (tag_call,) = [c for c in engine.calls if c[0] == "tag"]
    assert tag_call[1] == result.image_id and tag_call[2] == result.tags
    repo = "slimbuild/orch"
    assert result.tags[0].startswith(f"{repo}:") and result.tags[-1] == "team/orch:dev"
    doc = manifest_mod.read_manifest_file(root / "slimbuild.manifest.json")  # its own sha256 checked and dropped
    assert doc == result.manifest and doc["image"]["tags"] == sorted(result.tags)
    assert doc["image"]["id"] == result.image_id and doc["smoke"][0]["ok"] is True
    assert doc["excluded_sensitive"] == [".env"]
    assert {f["path"] for f in doc["files"]} == {"helper.py", "main.py"}
    assert [d["required_by"] for d in doc["distributions"]] == [["tinypkg"]]
    assert result.added_bytes == result.size_bytes - 100_000


def test_the_app_context_carries_the_manifest_and_never_a_secret(tmp_path: Path, fake_lock: list[int]) -> None:
    root = _write_project(tmp_path / "p")
    engine = FakeEngine()
    _build(root, engine)
    deps, app = (_members(data) for _, data in engine.contexts)
    venv = _members(engine.archives[0])  # what the venv container got in /tmp
    assert f"slimbuild-venv/{APP}main.py" not in venv and any(n.startswith("slimbuild-venv/wheels/tinypkg-") for n in venv)
    assert set(deps) == {"Dockerfile"} and b"FROM sha256:" in deps["Dockerfile"]  # the deps stage on the venv image
    assert set(app) == APP_MEMBERS
    assert json.loads(app[f"{APP}{building.MANIFEST_IN_APP}"])["image"] is None  # the pre-build manifest
    assert not any(".env" in n for n in (*venv, *deps, *app))
    assert b"FROM sha256:" in app["Dockerfile"]  # built on the deps image


def _git(root: Path, *args: str) -> str:
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@example.com", "HOME": str(root), "PATH": os.environ["PATH"]}  # fmt: skip
    return subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True, text=True, env=env).stdout


def _committed_project(root: Path, extra: str = "", ignore: str = "") -> str:
    """The project in a fresh repository, everything committed; the commit's sha."""
    _write_project(root, extra)
    (root / ".gitignore").write_text(f".env\n{ignore}", encoding="utf-8")
    _git(root, "init", "-q")
    _git(root, "add", "-A")
    _git(root, "commit", "-qm", "init")
    return _git(root, "rev-parse", "HEAD").strip()


def test_a_git_repository_adds_a_git_tag(tmp_path: Path, fake_lock: list[int]) -> None:
    root = tmp_path / "p"
    sha = _committed_project(root)
    (root / "scratch.py").write_text("print('never imported')\n", encoding="utf-8")  # untracked, not in the image
    (result,) = _build(root, FakeEngine(), tags=["x/y:z"])
    assert result.tags[1:] == (f"slimbuild/orch:git-{sha[:7]}", "x/y:z")
    assert result.manifest["git"] == {"commit": sha, "dirty": False}


@pytest.mark.parametrize("change", ["untracked", "ignored", "modified", "untracked-dir"])
def test_E23_a_shipped_file_not_at_the_commit_makes_the_build_dirty_and_untagged_by_sha(
    tmp_path: Path, fake_lock: list[int], change: str
) -> None:
    root = tmp_path / "p"
    extra, ignore = {
        "untracked": ('include = ["data.txt"]\n', ""),
        "ignored": ('include = ["data.txt"]\n', "data.txt\n"),
        "modified": ("", ""),
        "untracked-dir": ('include = ["conf/data.txt"]\n', ""),
    }[change]
    sha = _committed_project(root, extra, ignore)
    if change == "modified":
        (root / "helper.py").write_text("def double(x):\n    return x + x\n", encoding="utf-8")
    else:
        target = root / ("conf/data.txt" if change == "untracked-dir" else "data.txt")
        target.parent.mkdir(exist_ok=True)
        target.write_text("not in the commit\n", encoding="utf-8")
    (result,) = _build(root, FakeEngine())
    assert result.manifest["git"] == {"commit": sha, "dirty": True}
    assert not any(":git-" in t for t in result.tags) and len(result.tags) == 1
    if change != "modified":
        assert any(f["path"].endswith("data.txt") for f in result.manifest["files"])  # it does go into the image


# ----------------------------------------------------------------------------- the deps image, reused


def test_a_recorded_deps_image_is_reused_and_rebuilt_once_the_engine_lost_it(
    tmp_path: Path, cache: Path, fake_lock: list[int]
) -> None:
    root = _write_project(tmp_path / "p")
    engine = FakeEngine()
    (first,) = _build(root, engine)
    (record,) = (cache / "deps").glob("*.json")
    deps_id = json.loads(record.read_text())["image_id"]
    assert deps_id in engine.images and deps_id != first.image_id
    engine.calls.clear()
    engine.contexts.clear()
    (second,) = _build(root, engine)
    assert [t for t, _ in engine.contexts] == [""]  # one build: the app on the recorded deps image
    assert set(_members(engine.contexts[0][1])) == APP_MEMBERS
    assert second.image_id == first.image_id and second.tags == first.tags
    engine.images.pop(deps_id)  # pruned (or another engine): the record is stale
    engine.calls.clear()
    engine.contexts.clear()
    _build(root, engine)
    assert [t for t, _ in engine.contexts] == ["deps", ""]


def test_a_user_template_without_a_deps_stage_is_one_build_from_the_whole_context(tmp_path: Path, fake_lock: list[int]) -> None:
    root = _write_project(tmp_path / "p", 'template = "./tpl"\n')
    text = (REPO / "templates" / "slim" / "Dockerfile.j2").read_text(encoding="utf-8")
    renamed = text.replace(" AS deps\n", " AS venv\n").replace("FROM deps AS runtime\n", "FROM venv AS runtime\n")
    assert "AS deps" not in renamed, "the slim template changed: update this test"
    (root / "tpl").mkdir()
    (root / "tpl" / "Dockerfile.j2").write_text(renamed, encoding="utf-8")
    engine = FakeEngine()
    (result,) = _build(root, engine)
    assert engine.kinds() == ["build", *NORMALISE, "run", "tag"] and [t for t, _ in engine.contexts] == [""]
    whole = _members(engine.contexts[0][1])
    assert f"{APP}main.py" in whole and any(n.startswith("wheels/tinypkg-") for n in whole)
    assert result.manifest["template"]["name"] == "./tpl"


# ----------------------------------------------------------------------------- failures leave no tag


@pytest.mark.parametrize(
    ("case", "exc", "at"),
    [
        ("E4 build error in the app stage", BuildFailed("RUN failed: exit 1 | log tail", hint="h"), 1),
        ("E4 build error in the deps stage", BuildFailed("RUN failed: exit 1", hint="h"), 0),
        ("E6 stream without a result", BuildFailed("the build stream ended without an image id", hint="h"), 1),
    ],
)
def test_E4_E6_a_failed_build_exits_7_with_no_tag_and_no_manifest(
    tmp_path: Path, fake_lock: list[int], monkeypatch: pytest.MonkeyPatch, case: str, exc: BaseException, at: int
) -> None:
    root = _write_project(tmp_path / "p")
    engine = FakeEngine(fail_build=exc, fail_build_at=at)
    run = _cli("build", str(root), engine=engine, monkeypatch=monkeypatch)
    assert run.code == BUILD, (case, run.err)
    assert "tag" not in engine.kinds() and "run" not in engine.kinds() and engine.refs == {}
    assert not (root / "slimbuild.manifest.json").exists()


def test_E10_an_interrupted_build_exits_130_with_no_tag(
    tmp_path: Path, fake_lock: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _write_project(tmp_path / "p")
    engine = FakeEngine(fail_build=KeyboardInterrupt(), fail_build_at=1)
    run = _cli("build", str(root), engine=engine, monkeypatch=monkeypatch)
    assert run.code == INTERRUPTED, run.err
    assert "tag" not in engine.kinds() and engine.refs == {}
    assert not (root / "slimbuild.manifest.json").exists()


def test_F12_a_failing_smoke_run_removes_the_untagged_image_and_applies_no_tag(
    tmp_path: Path, fake_lock: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _write_project(tmp_path / "p")
    engine = FakeEngine(smoke_exit=3)
    run = _cli("build", str(root), engine=engine, monkeypatch=monkeypatch)
    assert run.code == BUILD and "smoke run failed (exit 3)" in run.err and "ImportError: x" in run.err
    app_id = next(c[1] for c in engine.calls if c[0] == "run")
    assert engine.kinds() == [*VENV_DEPS, "build", *NORMALISE, "run", "remove_image"]
    assert ("remove_image", app_id) in engine.calls and app_id not in engine.images
    assert engine.refs == {} and not (root / "slimbuild.manifest.json").exists()


def test_E4_a_failing_tag_call_keeps_no_tag_and_records_no_success(
    tmp_path: Path, fake_lock: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _write_project(tmp_path / "p")
    engine = FakeEngine(fail_tag=BuildFailed("cannot tag image as 'team/orch:dev': engine error", hint="no tag was kept"))
    run = _cli("build", str(root), "--tag", "team/orch:dev", engine=engine, monkeypatch=monkeypatch)
    assert run.code == BUILD, run.err
    app_id = next(c[1] for c in engine.calls if c[0] == "run")
    assert engine.kinds() == [*VENV_DEPS, "build", *NORMALISE, "run", "tag", "remove_image"] and engine.refs == {}
    assert app_id not in engine.images  # the untagged image is not left behind either
    assert not (root / "slimbuild.manifest.json").exists() and run.out == ""


@pytest.mark.parametrize(
    ("case", "exc", "code"),
    [
        ("E4 smoke run times out", BuildFailed("smoke run 'python -c x' in image abc timed out after 600s", hint="h"), BUILD),
        ("E4 smoke command cannot start", BuildFailed("cannot run 'python' in image abc: not found", hint="h"), BUILD),
        ("E10 interrupted during the smoke run", KeyboardInterrupt(), INTERRUPTED),
        ("E1 engine lost during the smoke run", EngineUnavailable("Docker daemon not reachable", "start it"), ENGINE),
    ],
)
def test_F12_E10_a_smoke_run_that_raises_removes_the_untagged_image_and_applies_no_tag(
    tmp_path: Path, fake_lock: list[int], monkeypatch: pytest.MonkeyPatch, case: str, exc: BaseException, code: int
) -> None:
    root = _write_project(tmp_path / "p")
    engine = FakeEngine(fail_run=exc)
    run = _cli("build", str(root), engine=engine, monkeypatch=monkeypatch)
    assert run.code == code, (case, run.err)
    app_id = next(c[1] for c in engine.calls if c[0] == "run")
    assert engine.kinds() == [*VENV_DEPS, "build", *NORMALISE, "run", "remove_image"], case
    assert app_id not in engine.images and engine.refs == {}
    assert not (root / "slimbuild.manifest.json").exists() and "Traceback" not in run.err


def test_E1_an_unreachable_engine_exits_6_after_the_lock_held(proj: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def unreachable() -> Any:
        raise EngineUnavailable("Docker daemon not reachable at unix:///nowhere", hint="start it")

    before = (proj / "slimbuild.lock").read_bytes()
    run = _cli("build", str(proj), "--locked", engine=unreachable, monkeypatch=monkeypatch)
    assert run.code == ENGINE and "Docker daemon not reachable" in run.err
    assert (proj / "slimbuild.lock").read_bytes() == before and not (proj / "slimbuild.manifest.json").exists()


@pytest.mark.parametrize("ref", ["python:latest", "python", "registry.example:5000/team/python"])
def test_D4_an_untagged_or_latest_base_is_a_policy_violation(
    tmp_path: Path, fake_lock: list[int], monkeypatch: pytest.MonkeyPatch, ref: str
) -> None:
    root = _write_project(tmp_path / "p")
    engine = FakeEngine()
    run = _cli("build", str(root), "--base-image", ref, engine=engine, monkeypatch=monkeypatch)
    assert run.code == POLICY and "(D4)" in run.err and engine.kinds() == []


def test_D4_a_base_not_pinned_by_digest_needs_an_engine() -> None:
    with pytest.raises(ConfigError, match="no engine is available"):
        building.resolve_base(None, "python:3.11-slim")
    with pytest.raises(PolicyViolation):
        building.resolve_base(None, "python:latest")


def test_D4_a_tag_is_pinned_by_the_engine_s_registry_digest_or_local_id() -> None:
    engine = FakeEngine()
    engine.images["python:3.11-slim"] = {"Id": "sha256:" + "c" * 64, "RepoDigests": ["python@sha256:" + "d" * 64]}
    engine.images["local/py:1"] = {"Id": "sha256:" + "e" * 64, "RepoDigests": []}
    assert building.resolve_base(_typed(engine), "python:3.11-slim") == ("python:3.11-slim@sha256:" + "d" * 64, False, ())
    ref, local_only, warnings = building.resolve_base(_typed(engine), "local/py:1")
    assert ref == "sha256:" + "e" * 64 and local_only and "local only" in warnings[0]
    with pytest.raises(NoSuchImage, match=r"no such image: base image .missing/py:1. is not available"):
        building.resolve_base(_typed(engine), "missing/py:1")


def test_E22_a_target_python_the_base_lacks_is_exit_2_before_any_wheel_or_build(
    tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _write_project(tmp_path / "p", 'python = "3.12"\n')
    fetched: list[str] = []

    def lock(settings: Settings, requested: str = "", *, before_wheels: Callable[[], None], **_kw: Any) -> Any:
        before_wheels()  # the lock holds: the base is pinned and checked here, before the wheelhouse
        fetched.append("wheels")
        raise AssertionError("the build went on past a base of another Python")

    monkeypatch.setattr(building, "lock", lock)
    engine = FakeEngine()
    run = _cli("build", str(root), engine=engine, monkeypatch=monkeypatch)
    assert run.code == USAGE and "Traceback" not in run.err, run.err
    (line,) = [x for x in run.err.splitlines() if x.startswith("slimbuild: error:")]
    assert "3.12" in line and BASE_PYTHON in line and BASE in line
    assert "--base-image" in run.err and 'python = "3.11"' in run.err
    assert fetched == [] and engine.kinds() == []  # nothing fetched, built or run
    assert not (root / "slimbuild.manifest.json").exists()


def test_F12_E24_the_default_smoke_run_imports_the_project_s_own_modules(tmp_path: Path, fake_lock: list[int]) -> None:
    root = _write_project(tmp_path / "p")
    engine = FakeEngine()
    _build(root, engine)
    (smoke,) = [c[2] for c in engine.calls if c[0] == "run"]
    assert "import tinypkg" in smoke[2] and "import helper" in smoke[2]
    assert "run_path" not in smoke[2]  # main.py has no __main__ block: its top level is the program, never run


# ----------------------------------------------------------------------------- --keep-context


def test_keep_context_writes_the_whole_self_contained_context(tmp_path: Path, fake_lock: list[int]) -> None:
    root = _write_project(tmp_path / "p")
    engine = FakeEngine()
    _build(root, engine, keep_context=True)
    kept = _members((root / ".slimbuild-context.tar").read_bytes())
    _deps, app = (_members(data) for _, data in engine.contexts)
    venv = {n.removeprefix("slimbuild-venv/") for n in _members(engine.archives[0])} - {"venv.sh", "stage_inplace.py"}
    assert {*venv, *app} - {"Dockerfile"} == set(kept) - {"Dockerfile"}  # every file the venv step and the builds had
    assert b"AS builder" in kept["Dockerfile"] and kept["Dockerfile"] != app["Dockerfile"]  # the whole Dockerfile


def test_without_keep_context_nothing_is_left_in_the_project(tmp_path: Path, fake_lock: list[int]) -> None:
    root = _write_project(tmp_path / "p")
    _build(root, FakeEngine())
    assert not (root / ".slimbuild-context.tar").exists()


# ----------------------------------------------------------------------------- work done once


def test_build_locked_analyses_once_locks_once_and_reads_pyproject_once(proj: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from slimbuild import config
    from slimbuild.analysis import declared, entrypoint
    from slimbuild.pipeline import analyzing, locking

    counts = {"analyze": 0, "lock": 0, "read_pyproject": 0, "resolve_entrypoint": 0}

    def counting(name: str, real: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            counts[name] += 1
            return real(*args, **kwargs)

        return wrapper

    analyze = counting("analyze", analyzing.analyze)
    monkeypatch.setattr(analyzing, "analyze", analyze)
    monkeypatch.setattr(locking, "analyze", analyze)  # the lock's own reference
    monkeypatch.setattr(building, "lock", counting("lock", locking.lock))
    read = counting("read_pyproject", config.read_pyproject)
    monkeypatch.setattr(config, "read_pyproject", read)
    monkeypatch.setattr(declared, "read_pyproject", read)  # declared.py's own reference (a second read would count)
    resolve = counting("resolve_entrypoint", entrypoint.resolve_entrypoint)
    monkeypatch.setattr(entrypoint, "resolve_entrypoint", resolve)
    monkeypatch.setattr(analyzing, "resolve_entrypoint", resolve)
    monkeypatch.setattr(building, "resolve_entrypoint", resolve, raising=False)  # a second resolution would count
    engine = FakeEngine()
    run = _cli("build", str(proj), "--locked", engine=engine, monkeypatch=monkeypatch)
    assert run.code == OK, run.err
    assert counts == {"analyze": 1, "lock": 1, "read_pyproject": 1, "resolve_entrypoint": 1}
    assert engine.kinds() == [*VENV_DEPS, "build", *NORMALISE, "run", "tag"]


def test_C17_the_manifest_records_where_each_pin_came_from(tmp_path: Path, fake_lock: list[int]) -> None:
    (result,) = _build(_write_project(tmp_path / "p"), FakeEngine())
    assert result.manifest["pins"] == [{"name": "tinypkg", "source": "uv.lock", "version": "1.0"}]
