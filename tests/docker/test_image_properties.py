"""Security and reproducibility properties of one built image (RELIABILITY groups F, G, B5, B13).

One small project (six + python-dateutil, a local module, a data file, and every kind of
sensitive file next to them) is built ONCE per module through the CLI; every test inspects
that image, its ``docker save`` tar, its history and the manifest written beside the project.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import tarfile
import uuid
from collections.abc import Iterator, Mapping
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from slimbuild.cli import main
from slimbuild.image.build_stream import BuildOutcome
from slimbuild.image.context import validate_context_tar
from slimbuild.image.engine import DockerEngine
from slimbuild.record import image_tar, manifest
from tests.constants import OK
from tests.docker.conftest import BASE_IMAGE, TEST_LABELS
from tests.docker.test_build_examples import SHARED_CACHE

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.docker

EPOCH = 1_700_000_000
EPOCH_RFC3339 = "2023-11-14T22:13:20Z"
GIT_TOKEN = "ghp_slimbuildLeakCanary0123456789abcdef"
ENV_SECRET = "envSecretCanary-7c1f"
KEY_SECRET = "idRsaCanary-5b2e"
OUTSIDE_SECRET = "outsideLinkCanary-93ad"
EXPECTED_OUTPUT = "hello from data 42 2024 True"
UID = "10001"

SECRET_KEY = re.compile(r"(?i)(secret|token|passw|pwd|api[_-]?key|private[_-]?key|credential|auth)")
URL_CREDENTIALS = re.compile(r"://[^/\s@:]+:[^/\s@]+@")
# Dockle's credential list (CIS-DI-0010) as path components, plus what slimbuild never ships.
SENSITIVE_COMPONENTS = {".env", "id_rsa", "id_rsa.pub", ".git", "credentials.json", ".netrc", ".pypirc", ".aws", ".ssh"}


def write_project(root: Path, name: str, outside: Path, *, pyproject_extra: str = "") -> Path:
    """The test project: needed files plus sensitive ones and an unneeded symlink escaping the root."""
    files: dict[str, str] = {
        "pyproject.toml": (
            f'[project]\nname = "{name}"\nversion = "0.1.0"\ndependencies = ["six", "python-dateutil"]\n\n'
            f'[tool.slimbuild]\nentrypoint = "main.py"\ninclude = ["data/greeting.txt"]\n{pyproject_extra}'
        ),
        "main.py": (
            "import os\n\nimport six\nfrom dateutil import parser\n\nimport helper\n\n"
            "HERE = os.path.dirname(os.path.abspath(__file__))\n"
            "with open(os.path.join(HERE, 'data', 'greeting.txt'), encoding='utf-8') as fh:\n"
            "    greeting = fh.read().strip()\n"
            "print(greeting, helper.double(21), parser.parse('2024-01-02').year, six.PY3)\n"
        ),
        "helper.py": "def double(x):\n    return 2 * x\n",
        "data/greeting.txt": "hello from data\n",
        "notes.txt": "ignored by .dockerignore\n",
        ".dockerignore": "notes.txt\n*.md\n",
        ".env": f"API_KEY={ENV_SECRET}\n",
        "id_rsa": f"-----BEGIN OPENSSH PRIVATE KEY-----\n{KEY_SECRET}\n-----END OPENSSH PRIVATE KEY-----\n",
        ".git/config": f'[remote "origin"]\n\turl = https://builder:{GIT_TOKEN}@git.example.com/team/app.git\n',
        ".git/HEAD": "ref: refs/heads/main\n",
    }
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    outside.write_text(f"{OUTSIDE_SECRET}\n", encoding="utf-8")
    (root / "linked.txt").symlink_to(outside)  # NOT needed: must never be followed or copied
    return root


def cli(*args: str, env: Mapping[str, str]) -> tuple[int, str, str]:
    """Run the CLI in-process under ENV changes (module-scoped fixtures cannot use run_cli)."""
    out, err = io.StringIO(), io.StringIO()
    with pytest.MonkeyPatch.context() as mp:
        for key in list(os.environ):
            if key.startswith("SLIMBUILD_") or key == "VIRTUAL_ENV":
                mp.delenv(key, raising=False)
        for key, value in env.items():
            mp.setenv(key, value)
        with redirect_stdout(out), redirect_stderr(err):
            code = main(list(args))
    return code, out.getvalue(), err.getvalue()


def build_env() -> dict[str, str]:
    return {"SLIMBUILD_CACHE": str(SHARED_CACHE), "SOURCE_DATE_EPOCH": str(EPOCH)}


@dataclass
class Built:
    root: Path
    image_id: str
    tags: list[str]
    doc: dict[str, Any]
    saved: Path
    scan: image_tar.ImageScan
    base_layers: list[str]


@pytest.fixture(scope="module")
def built(engine: DockerEngine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Built]:
    tmp = tmp_path_factory.mktemp("props")
    root = write_project(tmp / "proj", "sbprops", tmp / "outside-secret.txt")
    extra_tag = f"slimbuild-test/props:{uuid.uuid4().hex[:12]}"
    code, out, err = cli(
        "build", str(root), "--base-image", BASE_IMAGE, "--json", "--keep-context", "--tag", extra_tag, env=build_env()
    )
    assert code == OK, err
    (image,) = json.loads(out)["images"]
    try:
        saved = tmp / "image.tar"
        with saved.open("wb") as fh:
            for chunk in engine.save(image["image_id"]):
                fh.write(chunk)
        with saved.open("rb") as fh:
            scan = image_tar.scan_image_tar(fh)
        base_layers = [str(x) for x in engine.inspect_image(BASE_IMAGE)["RootFS"]["Layers"]]
        doc = json.loads(Path(image["manifest"]).read_text(encoding="utf-8"))
        yield Built(root, image["image_id"], list(image["tags"]), doc, saved, scan, base_layers)
    finally:
        for tag in image["tags"]:
            try:
                engine.client.remove_image(tag, force=True)
            except Exception:  # noqa: BLE001 - cleanup only
                pass


def _final(b: Built) -> dict[str, image_tar.LayerFile]:
    return b.scan.final_files()


def _added_layers(b: Built) -> list[image_tar.LayerScan]:
    return [layer for layer in b.scan.layers if layer.diff_id not in b.base_layers]


def _run(engine: DockerEngine, b: Built, argv: list[str], **kwargs: Any) -> Any:
    return engine.run(b.image_id, argv, user=f"{UID}:{UID}", timeout=120, **kwargs)


# ----------------------------------------------------------------------------- F1


def test_F1_runs_as_numeric_non_root_user_and_cannot_write_app(engine: DockerEngine, built: Built) -> None:
    user = engine.inspect_image(built.image_id)["Config"]["User"]
    assert re.fullmatch(r"[1-9]\d*:[1-9]\d*", user), user
    # engine.run needs a user: pass the image's own configured one.
    ident = engine.run(built.image_id, ["id", "-u"], user=user, timeout=60)
    assert ident.exit_code == 0, ident.output
    assert ident.output.strip() != "0" and ident.output.strip() == user.split(":")[0]
    probe = (
        "import sys\n"
        "failed = 0\n"
        "for path in ('/app/new.txt', '/app/main.py', '/app/data/greeting.txt', '/opt/venv/lib/x.py'):\n"
        "    try:\n"
        "        open(path, 'a').close()\n"
        "    except PermissionError:\n"
        "        failed += 1\n"
        "    else:\n"
        "        print('writable', path)\n"
        "sys.exit(0 if failed == 4 else 1)\n"
    )
    # A writable rootfs, so only file ownership/permissions can stop the write.
    run = engine.run(built.image_id, ["/opt/venv/bin/python", "-c", probe], user=user, read_only=False, timeout=60)
    assert run.exit_code == 0, run.output


# ----------------------------------------------------------------------------- F2 / B5


def test_F2_B5_no_sensitive_files_in_any_layer(built: Built) -> None:
    offenders = []
    for layer in built.scan.layers:
        for f in layer.files:
            parts = f.path.split("/")
            if SENSITIVE_COMPONENTS & set(parts) or f.path.endswith(".docker/config.json"):
                offenders.append((layer.diff_id[:19], f.path))
            if parts[0] == "app" and parts[-1] in {"notes.txt", "linked.txt", ".dockerignore", "id_rsa"}:
                offenders.append((layer.diff_id[:19], f.path))
    assert offenders == []


def test_F2_no_secret_looking_env_or_label_keys(built: Built) -> None:
    config = built.scan.config["config"]
    env_keys = [e.split("=", 1)[0] for e in config.get("Env") or []]
    labels = config.get("Labels") or {}
    assert [k for k in env_keys if SECRET_KEY.search(k)] == []
    assert [k for k in labels if SECRET_KEY.search(k)] == []
    values = [*(config.get("Env") or []), *labels.values()]
    assert [v for v in values if URL_CREDENTIALS.search(v)] == []


def test_F2_B5_canaries_absent_from_saved_tar_and_history(engine: DockerEngine, built: Built) -> None:
    canaries = [c.encode() for c in (GIT_TOKEN, ENV_SECRET, KEY_SECRET, OUTSIDE_SECRET)]
    overlap = max(len(c) for c in canaries)
    tail = b""
    with built.saved.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            window = tail + chunk
            assert [c for c in canaries if c in window] == []
            tail = window[-overlap:]
    history = json.dumps(engine.history(built.image_id))
    assert [c for c in canaries if c.decode() in history] == []
    # The token is also absent from the manifest beside the project and from the kept context.
    assert GIT_TOKEN not in json.dumps(built.doc)
    assert GIT_TOKEN.encode() not in (built.root / ".slimbuild-context.tar").read_bytes()


# ----------------------------------------------------------------------------- F3


def test_F3_app_files_equal_manifest_files(built: Built) -> None:
    in_image = {path.removeprefix("app/") for path, f in _final(built).items() if path.startswith("app/") and f.type != "dir"}
    expected = {f["path"] for f in built.doc["files"]} | {manifest.MANIFEST_PATH_IN_IMAGE.removeprefix("/app/")}
    assert in_image == expected
    assert {f["path"] for f in built.doc["files"]} == {"main.py", "helper.py", "data/greeting.txt"}
    # The embedded copy is the one the labels vouch for (sha256 checked), with the same file list.
    embedded = image_tar.manifest_from_scan(built.scan)
    assert embedded["files"] == built.doc["files"]


# ----------------------------------------------------------------------------- F4


def test_F4_no_installers_apt_lists_or_pip_cache(engine: DockerEngine, built: Built) -> None:
    final = _final(built)
    site = [p for p in final if re.match(r"opt/venv/lib/python3\.\d+/site-packages/", p)]
    assert site, "no site-packages in the image"
    top = {p.split("/")[5] for p in site}
    banned = re.compile(r"(?i)^(pip|setuptools|wheel|pkg_resources|_distutils_hack|distutils-precedence\.pth)([-_].*dist-info)?$")
    assert sorted(n for n in top if banned.match(n)) == []
    assert sorted(p for p in final if re.fullmatch(r"opt/venv/bin/(pip|wheel|easy_install)[\d.]*", p)) == []
    assert [p for p, f in final.items() if p.startswith("var/lib/apt/lists/") and f.type == "file"] == []
    added = [f.path for layer in _added_layers(built) for f in layer.files]
    assert [p for p in added if "/.cache/pip" in f"/{p}" or p.startswith(("var/lib/apt", "var/cache/apt"))] == []
    # pyc is on by default: every pyc lies under site-packages and is hash-based (checked below). Third-party
    # packages are sourceless (legacy-layout pyc in place of the .py, strip-sources), so a pyc is either in a
    # __pycache__ beside its source or stands alone where its source was removed.
    pycs = [p for p in added if p.endswith(".pyc")]
    assert pycs, "pyc is on by default: hash-based pycs were expected"
    assert [p for p in pycs if p not in site] == []
    misplaced = [
        p
        for p in pycs
        if p.rsplit("/", 2)[-2] != "__pycache__" and p[: -len("c")] in final  # a sourceless pyc must replace its .py
    ]
    assert misplaced == []
    probe = (
        "import os, sys\n"
        "bad = []\n"
        "for d, _, names in os.walk('/opt/venv'):\n"
        "    for n in names:\n"
        "        if n.endswith('.pyc'):\n"
        "            with open(os.path.join(d, n), 'rb') as fh:\n"
        "                head = fh.read(8)\n"
        "            if int.from_bytes(head[4:8], 'little') not in (0b01, 0b11):\n"
        "                bad.append(os.path.join(d, n))\n"
        "print('bad', bad)\n"
        "sys.exit(1 if bad else 0)\n"
    )
    run = _run(engine, built, ["/opt/venv/bin/python", "-c", probe])
    assert run.exit_code == 0, run.output
    pip = _run(engine, built, ["/opt/venv/bin/python", "-m", "pip", "--version"])
    assert pip.exit_code != 0, pip.output
    assert "No module named pip" in pip.output


# ----------------------------------------------------------------------------- F6


def test_F6_no_new_setuid_setgid_files(built: Built) -> None:
    assert built.scan.layers[0].diff_id == built.base_layers[0]
    base_special = {
        f.path
        for layer in built.scan.layers
        if layer.diff_id in built.base_layers
        for f in layer.files
        if f.type == "file" and f.mode & 0o6000
    }
    added_special = [(f.path, oct(f.mode)) for layer in _added_layers(built) for f in layer.files if f.mode & 0o6000]
    assert added_special == []
    final_special = {p for p, f in _final(built).items() if f.type == "file" and f.mode & 0o6000}
    assert final_special <= base_special  # only the allow-list the Debian base already had


# ----------------------------------------------------------------------------- F8


def test_F8_entrypoint_runs_read_only_without_capabilities(engine: DockerEngine, built: Built) -> None:
    argv = built.doc["entrypoint"]["argv"]
    run = _run(engine, built, argv)  # engine.run defaults: --read-only, cap-drop ALL, no-new-privileges, tmpfs /tmp
    assert run.exit_code == 0, run.output
    assert EXPECTED_OUTPUT in run.output
    probe = (
        "import sys\n"
        "status = dict(l.split(':', 1) for l in open('/proc/self/status') if ':' in l)\n"
        "open('/tmp/ok', 'w').write('x')\n"
        "try:\n"
        "    open('/rootfs-write', 'w')\n"
        "    ro = False\n"
        "except OSError:\n"
        "    ro = True\n"
        "print(status['CapEff'].strip(), status['NoNewPrivs'].strip(), ro)\n"
        "sys.exit(0 if int(status['CapEff'], 16) == 0 and status['NoNewPrivs'].strip() == '1' and ro else 1)\n"
    )
    checked = _run(engine, built, ["/opt/venv/bin/python", "-c", probe])
    assert checked.exit_code == 0, checked.output


# ----------------------------------------------------------------------------- F9


def test_F9_oci_labels_created_and_lock_digest(built: Built) -> None:
    labels = built.scan.config["config"]["Labels"]
    assert labels["org.opencontainers.image.created"] == EPOCH_RFC3339
    lock_sha = hashlib.sha256((built.root / "slimbuild.lock").read_bytes()).hexdigest()
    assert labels["io.slimbuild.lock-sha256"] == lock_sha == built.doc["lock_sha256"]
    assert labels["org.opencontainers.image.version"] == "0.1.0"
    assert built.doc["source_date_epoch"] == EPOCH


# ----------------------------------------------------------------------------- F7


def test_F7_batch_image_has_no_healthcheck_by_the_documented_exception(built: Built) -> None:
    # A batch job (no healthcheck configured) gets no HEALTHCHECK; the exception is explicit for Dockle and the
    # README. The service case (healthcheck configured) is test_F7_distroless_template_builds_..._healthcheck.
    assert built.scan.config["config"].get("Healthcheck") is None
    ignored = [line.strip() for line in (REPO / ".dockleignore").read_text(encoding="utf-8").splitlines()]
    assert "CIS-DI-0006" in ignored
    assert "documented exception to CIS 4.6 / Dockle CIS-DI-0006" in (REPO / "README.md").read_text(encoding="utf-8")


# ----------------------------------------------------------------------------- F10


def test_F10_history_has_no_build_args_or_credentials(engine: DockerEngine, built: Built) -> None:
    for item in engine.history(built.image_id):
        created_by = str(item.get("CreatedBy") or "") + " " + str(item.get("Comment") or "")
        assert not re.match(r"\|\d+ ", created_by), created_by  # classic builder's build-arg prefix
        assert not URL_CREDENTIALS.search(created_by), created_by
        assert "PIP_" not in created_by and GIT_TOKEN not in created_by, created_by


# ----------------------------------------------------------------------------- B8 / B9

PIP_TOKEN = "pipIndexTokenCanary-4d7e"


def test_B8_B9_index_credentials_in_the_environment_never_reach_the_image(engine: DockerEngine, built: Built) -> None:
    # A private index with credentials (and a proxy with a password) in the build's environment: the wheels come
    # from the host-side wheelhouse, so nothing of it may reach the image, its history, the manifest or the output.
    env = {
        **build_env(),
        "PIP_INDEX_URL": f"https://ci-user:{PIP_TOKEN}@127.0.0.1:9/simple",
        "PIP_EXTRA_INDEX_URL": f"https://ci-user:{PIP_TOKEN}@127.0.0.1:9/extra/simple",
        "HTTPS_PROXY": f"http://proxy-user:{PIP_TOKEN}@127.0.0.1:9",
    }
    code, out, err = cli("build", str(built.root), "--base-image", BASE_IMAGE, "--locked", "--json", "--keep-context", env=env)
    assert code == OK, err
    assert PIP_TOKEN not in out and PIP_TOKEN not in err
    (image,) = json.loads(out)["images"]
    try:
        # the environment changed nothing that is built: same inputs, same image
        assert image["image_id"] == built.image_id
        assert PIP_TOKEN not in json.dumps(engine.inspect_image(image["image_id"]))
        assert PIP_TOKEN not in json.dumps(engine.history(image["image_id"]))
        assert PIP_TOKEN not in Path(image["manifest"]).read_text(encoding="utf-8")
        # C24 (G8): the manifest beside the project records the indexes, masked; the image's own copy does not
        recorded = json.loads(Path(image["manifest"]).read_text(encoding="utf-8"))["index_sources"]
        assert recorded[:2] == ["https://***@127.0.0.1:9/simple", "https://***@127.0.0.1:9/extra/simple"]
        assert PIP_TOKEN.encode() not in (built.root / ".slimbuild-context.tar").read_bytes()
        tail = b""
        for chunk in engine.save(image["image_id"]):
            window = tail + chunk
            assert PIP_TOKEN.encode() not in window
            tail = window[-len(PIP_TOKEN) :]
    finally:
        for tag in set(image["tags"]) - set(built.tags):
            engine.client.remove_image(tag, force=True)


# ----------------------------------------------------------------------------- F12


def test_F12_default_smoke_recorded_ok(built: Built) -> None:
    smoke = built.doc["smoke"]
    assert smoke and all(s["ok"] and s["exit_code"] == 0 for s in smoke), smoke
    first = " ".join(smoke[0]["command"])
    assert "import" in first and "dateutil" in first and "six" in first


# ----------------------------------------------------------------------------- G3


def test_G3_no_first_party_pyc_and_dont_write_bytecode(built: Built) -> None:
    app = [f.path for layer in built.scan.layers for f in layer.files if f.path.startswith("app/")]
    assert [p for p in app if p.endswith(".pyc") or "__pycache__" in p.split("/")] == []
    env = dict(e.split("=", 1) for e in built.scan.config["config"]["Env"])
    assert env.get("PYTHONDONTWRITEBYTECODE") == "1"


# ----------------------------------------------------------------------------- B13


def test_B13_kept_context_is_valid_sorted_and_clamped(built: Built) -> None:
    kept = built.root / ".slimbuild-context.tar"
    with kept.open("rb") as fh:
        validate_context_tar(fh)
    with tarfile.open(kept) as tar:
        members = tar.getmembers()
    names = [m.name for m in members]
    assert names == sorted(names)
    assert all(m.uid == 0 and m.gid == 0 and m.mtime == EPOCH for m in members)
    assert all(not m.issym() and not m.islnk() for m in members)
    expected = {"Dockerfile", "requirements.lock", "image/app/main.py", "image/app/helper.py", "image/app/data/greeting.txt"}
    assert expected <= set(names)
    leaked = [n for n in names if SENSITIVE_COMPONENTS & set(n.split("/")) or n.endswith(("linked.txt", "notes.txt"))]
    assert leaked == []


# ----------------------------------------------------------------------------- G4


class _NoCache:
    """The real engine with the build cache bypassed (``docker build --no-cache``)."""

    def __init__(self, engine: DockerEngine) -> None:
        self._engine = engine
        self.built: list[str] = []
        self.targets: list[str] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._engine, name)

    def build(self, context: Any, **kwargs: Any) -> BuildOutcome:
        outcome = self._engine.build(context, **{**kwargs, "nocache": True})
        self.built.append(outcome.image_id)
        self.targets.append(str(kwargs.get("target", "")))
        return outcome


def test_G4_two_no_cache_builds_have_equal_layer_diff_ids(
    engine: DockerEngine, built: Built, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from slimbuild.config import load_settings

    try:  # the build stage moved from slimbuild.pipeline to slimbuild.build
        from slimbuild.pipeline import building as pipeline
    except ImportError:  # pragma: no cover
        from slimbuild import pipeline  # type: ignore[no-redef]

    monkeypatch.setenv("SLIMBUILD_CACHE", str(SHARED_CACHE))
    monkeypatch.setenv("SOURCE_DATE_EPOCH", str(EPOCH))
    root = write_project(tmp_path / "proj", "sbprops-g4", tmp_path / "outside.txt")
    shutil.copyfile(built.root / "slimbuild.lock", root / "slimbuild.lock")
    nocache = _NoCache(engine)
    layers: list[list[str]] = []
    try:
        for _ in range(2):
            # no recorded deps image either: each build makes its venv layer from the wheels again
            shutil.rmtree(SHARED_CACHE / "deps", ignore_errors=True)
            (result,) = pipeline.build(load_settings(root), engine=nocache, base_image=BASE_IMAGE)  # type: ignore[arg-type]
            layers.append([str(x) for x in engine.inspect_image(result.image_id)["RootFS"]["Layers"]])
            for tag in result.tags:  # remove the image between (and after) the builds
                engine.client.remove_image(tag, force=True)
    finally:
        for image_id in nocache.built:
            try:
                engine.client.remove_image(image_id, force=True)
            except Exception:  # noqa: BLE001 - cleanup only
                pass
    assert nocache.targets == ["deps", "", "deps", ""]  # the deps image, then the app on it, in each build
    first, second = layers
    assert len(first) == 3, first  # base, dependencies (venv), app
    assert first == second
    assert first[0] == built.base_layers[0]


def test_G4_two_step_build_equals_the_printed_dockerfile_built_in_one_go(engine: DockerEngine, built: Built) -> None:
    """`build` makes the deps image first and the app on it; the self-contained Dockerfile that
    `slimbuild dockerfile` prints (in the kept context) gives the same layers when built in one go.

    The engine's cache serves the steps here: a step is taken from it only when its instruction and
    the checksums of the files it copies are the same, so equal layers mean the printed file is what ran
    (test_G4_two_no_cache_builds... shows the layers themselves are reproducible without any cache)."""
    with (built.root / ".slimbuild-context.tar").open("rb") as fh:
        outcome = engine.build(fh, labels=dict(TEST_LABELS))
    try:
        one_go = [str(x) for x in engine.inspect_image(outcome.image_id)["RootFS"]["Layers"]]
        two_steps = [str(x) for x in engine.inspect_image(built.image_id)["RootFS"]["Layers"]]
        assert one_go == two_steps
    finally:
        engine.remove_image(outcome.image_id)


def test_G4_user_template_without_a_deps_stage_is_built_in_one_go(
    engine: DockerEngine, built: Built, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A template of the user's own with no stage named ``deps`` cannot be split in two: one build from the
    whole context, smoke-run and tagged like any other, and its layers are those of the bundled template's."""
    from slimbuild.config import load_settings
    from slimbuild.pipeline import building as build_mod

    monkeypatch.setenv("SLIMBUILD_CACHE", str(SHARED_CACHE))
    monkeypatch.setenv("SOURCE_DATE_EPOCH", str(EPOCH))
    root = write_project(tmp_path / "proj", "sbprops-g4-nodeps", tmp_path / "outside.txt", pyproject_extra='template = "./tpl"\n')
    shutil.copyfile(built.root / "slimbuild.lock", root / "slimbuild.lock")
    text = (REPO / "templates" / "slim" / "Dockerfile.j2").read_text(encoding="utf-8")
    renamed = text.replace(" AS deps\n", " AS venv\n").replace("FROM deps AS runtime\n", "FROM venv AS runtime\n")
    assert "AS deps" not in renamed and "FROM venv AS runtime\n" in renamed, "the slim template changed: update this test"
    (root / "tpl").mkdir()
    (root / "tpl" / "Dockerfile.j2").write_text(renamed, encoding="utf-8")

    class Recording:
        def __init__(self) -> None:
            self.targets: list[str] = []

        def __getattr__(self, name: str) -> Any:
            return getattr(engine, name)

        def build(self, context: Any, **kwargs: Any) -> BuildOutcome:
            self.targets.append(str(kwargs.get("target", "")))
            return engine.build(context, **kwargs)

    recording = Recording()
    (result,) = build_mod.build(load_settings(root), engine=recording, base_image=BASE_IMAGE)  # type: ignore[arg-type]
    try:
        assert recording.targets == [""]  # no deps image: the whole Dockerfile from the whole context
        info = engine.inspect_image(result.image_id)
        assert result.tags and all(t in info["RepoTags"] for t in result.tags)
        assert info["Config"]["User"] == engine.inspect_image(built.image_id)["Config"]["User"]
        layers = [str(x) for x in info["RootFS"]["Layers"]]
        assert layers[:2] == [str(x) for x in engine.inspect_image(built.image_id)["RootFS"]["Layers"]][:2]
        run = engine.run(result.image_id, ["python", "/app/main.py"], user=info["Config"]["User"], timeout=120.0)
        assert run.exit_code == 0, run.output
    finally:
        for tag in result.tags:
            engine.client.remove_image(tag, force=True)
