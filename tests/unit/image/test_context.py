"""Build-context security and determinism (group B, I6, G1 for the tar)."""

from __future__ import annotations

import io
import os
import socket
import string
import tarfile
import tempfile
import zipfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from slimbuild.errors import ConfigError, ExitCode, PolicyViolation
from slimbuild.image.context import (
    ContextFile,
    build_context_tar,
    check_archive,
    collect_project_files,
    dockerignore_spec,
    find_case_clashes,
    is_sensitive,
    validate_context_tar,
    write_context_tar,
)

SDE = 1700000000
SECRET = b"OUTSIDE-SECRET-7f3a"


def _tree(root: Path, files: dict[str, str | bytes]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return root


@pytest.fixture
def layout(tmp_path: Path) -> tuple[Path, Path]:
    """A project next to an 'outside' directory holding a secret."""
    outside = _tree(tmp_path / "home", {".ssh/id_rsa": SECRET, "notes.txt": SECRET})
    project = _tree(tmp_path / "proj", {"main.py": "print(1)\n", "pkg/__init__.py": "", "pkg/mod.py": "X = 1\n"})
    return project, outside


def _names(files: tuple[ContextFile, ...]) -> list[str]:
    return [f.arcname for f in files]


def _contents(files: tuple[ContextFile, ...]) -> bytes:
    out = b""
    for f in files:
        out += f.data if f.data is not None else f.source.read_bytes() if f.source else b""
    return out


# ---------------------------------------------------------------- B1 / B2 escapes


def test_B1_file_symlink_out_of_root_is_policy_violation(layout: tuple[Path, Path]) -> None:
    project, outside = layout
    (project / "data.csv").symlink_to(outside / ".ssh" / "id_rsa")
    with pytest.raises(PolicyViolation, match="symlink escapes project root") as info:
        collect_project_files(project, ["data.csv"])
    assert info.value.exit_code == ExitCode.POLICY
    assert "data.csv" in info.value.message and str(outside / ".ssh" / "id_rsa") in info.value.message
    with pytest.raises(PolicyViolation, match="symlink escapes project root"):
        collect_project_files(project, ["."])


@pytest.mark.parametrize("kind", ["dir-absolute", "dir-relative", "chain", "nested-relative"])
def test_B2_directory_and_relative_escapes(layout: tuple[Path, Path], kind: str) -> None:
    project, outside = layout
    if kind == "dir-absolute":
        (project / "homedir").symlink_to(outside)
        wanted = ["homedir/notes.txt"]
    elif kind == "dir-relative":
        (project / "homedir").symlink_to(Path("..") / "home")
        wanted = ["homedir"]
    elif kind == "chain":
        (project / "a").symlink_to("b")
        (project / "b").symlink_to("pkg/../../home/notes.txt")
        wanted = ["a"]
    else:
        (project / "pkg" / "deep").mkdir()
        (project / "pkg" / "deep" / "l").symlink_to("../../../home/notes.txt")
        wanted = ["pkg"]
    for want in (wanted, ["."]):
        with pytest.raises(PolicyViolation, match="symlink escapes project root"):
            collect_project_files(project, want)


def test_B2_wanted_path_with_dotdot_is_refused(layout: tuple[Path, Path]) -> None:
    project, _ = layout
    with pytest.raises(PolicyViolation):
        collect_project_files(project, ["../home/notes.txt"])


# ---------------------------------------------------------------- B3 loops and dangling links


@pytest.mark.parametrize("kind", ["loop", "self", "dangling", "dir-loop"])
def test_B3_loops_and_dangling_links_terminate_and_are_reported(layout: tuple[Path, Path], kind: str) -> None:
    project, _ = layout
    if kind == "loop":
        (project / "a").symlink_to("b")
        (project / "b").symlink_to("a")
        name = "a"
    elif kind == "self":
        (project / "a").symlink_to("a")
        name = "a"
    elif kind == "dangling":
        (project / "a").symlink_to("missing.csv")
        name = "a"
    else:
        (project / "pkg" / "up").symlink_to("..")
        name = "pkg/up"
    skipped: list[tuple[str, str]] = []
    files, _ = collect_project_files(project, ["."], on_skip=lambda n, why: skipped.append((n, why)))
    assert "main.py" in _names(files)
    assert any(n in {name, "pkg"} or n.startswith(name) for n, _ in skipped), skipped
    if kind != "dir-loop":
        with pytest.raises(ConfigError):
            collect_project_files(project, [name])


# ---------------------------------------------------------------- B4 links inside


def test_B4_link_to_file_inside_is_dereferenced(layout: tuple[Path, Path]) -> None:
    project, _ = layout
    (project / "data").mkdir()
    (project / "data" / "real.csv").write_text("a,b\n")
    (project / "current.csv").symlink_to("data/real.csv")
    (project / "abs.csv").symlink_to(project / "data" / "real.csv")
    files, _ = collect_project_files(project, ["current.csv", "abs.csv"])
    assert _names(files) == ["abs.csv", "current.csv"]
    assert all(f.source is not None and f.source.read_text() == "a,b\n" for f in files)
    tar = tarfile.open(fileobj=io.BytesIO(build_context_tar(files, mtime=SDE)))
    assert all(m.isreg() or m.isdir() for m in tar.getmembers())


# ---------------------------------------------------------------- B5 / B6 sensitive files

SENSITIVE: dict[str, str | bytes] = {
    ".env": "TOKEN=1",
    ".env.local": "TOKEN=2",
    "certs/server.pem": "-----BEGIN",
    "certs/tls.key": "k",
    "id_rsa": "k",
    "id_ed25519.pub": "k",
    "config/credentials.json": "{}",
    ".netrc": "machine x login y password SECRETPW",
    ".pypirc": "p",
    ".npmrc": "n",
    ".aws/credentials": "a",
    ".docker/config.json": "{}",
    ".git/config": '[remote "origin"]\n\turl = https://user:ghp_SECRETTOKEN@github.com/x/y\n',
    ".ssh/known_hosts": "h",
    ".ipynb_checkpoints/nb-checkpoint.ipynb": "{}",
    "pkg/__pycache__/mod.cpython-311.pyc": b"\x00",
    "keystore.p12": "p",
    "pip.conf": "[global]",
}


def test_B5_sensitive_files_never_in_context(layout: tuple[Path, Path]) -> None:
    project, _ = layout
    _tree(project, SENSITIVE)
    files, excluded = collect_project_files(project, ["."])
    assert _names(files) == ["main.py", "pkg/__init__.py", "pkg/mod.py"]
    assert ".git/" in excluded and ".env" in excluded and "config/credentials.json" in excluded
    assert list(excluded) == sorted(excluded)
    blob = build_context_tar(files, mtime=SDE)
    assert b"ghp_SECRETTOKEN" not in blob and b"SECRETPW" not in blob
    assert all(is_sensitive(name) for name in SENSITIVE)
    assert not is_sensitive("environment.py") and not is_sensitive("pkg/keys.py") and not is_sensitive("docker/config.json")


@pytest.mark.parametrize("wanted", [".env", "config/credentials.json", ".git/config", "certs/server.pem", ".aws"])
def test_B6_needed_secret_is_policy_violation(layout: tuple[Path, Path], wanted: str) -> None:
    project, _ = layout
    _tree(project, SENSITIVE)
    with pytest.raises(PolicyViolation) as info:
        collect_project_files(project, [wanted])
    assert info.value.exit_code == ExitCode.POLICY and wanted in info.value.message


def test_B6_link_to_secret_is_policy_violation(layout: tuple[Path, Path]) -> None:
    project, _ = layout
    _tree(project, SENSITIVE)
    (project / "settings.txt").symlink_to(".env")
    with pytest.raises(PolicyViolation, match="sensitive"):
        collect_project_files(project, ["settings.txt"])
    files, excluded = collect_project_files(project, ["."])
    assert "settings.txt" in excluded and "settings.txt" not in _names(files)


# ---------------------------------------------------------------- B7 .dockerignore


@pytest.mark.parametrize(
    ("patterns", "paths"),
    [
        (["foo"], ["foo/x", "sub/foo", "foobar"]),
        (["/foo", "./bar"], ["foo", "bar", "sub/foo", "sub/bar"]),
        (["**/foo"], ["foo/y", "sub/foo", "a/b/foo/x"]),
        (["*.csv", "!keep*.csv"], ["a.csv", "keep1.csv", "sub/a.csv"]),
        (["data", "!data/keep*"], ["data/x", "data/keep.csv", "data/sub/keep.csv"]),
        (["*.txt", "!a.txt", "a.txt"], ["a.txt", "b.txt"]),
        (["a/../b", "c/./d"], ["b/x", "a/b", "c/d"]),
        (["# comment", "", "  spaced  "], ["# comment", "spaced"]),
        (["docs/*/x"], ["docs/a/x", "docs/a/b/x"]),
    ],
)
def test_B7_dockerignore_agrees_with_docker_py(patterns: list[str], paths: list[str], tmp_path: Path) -> None:
    build = pytest.importorskip("docker.utils.build")
    project = _tree(tmp_path / "p", dict.fromkeys(paths, "x"))
    (project / ".dockerignore").write_text("\n".join(patterns) + "\n")
    # What docker-py's .dockerignore reader hands to exclude_paths: stripped, no comments or blanks.
    read = [p.strip() for p in patterns if p.strip() and not p.strip().startswith("#")]
    reference = {p.replace(os.sep, "/") for p in build.exclude_paths(str(project), read)}
    files, _ = collect_project_files(project, ["."])
    ours = set(_names(files))
    expected = {p for p in paths if p in reference}
    assert ours == expected, (patterns, sorted(ours), sorted(expected))
    spec = dockerignore_spec(patterns)
    assert {p for p in paths if not spec.match_file(p)} >= ours


def test_B7_dockerignore_applied_when_collecting(layout: tuple[Path, Path]) -> None:
    project, _ = layout
    _tree(project, {"data/big.parquet": "x", "data/keep.csv": "y", ".dockerignore": "data\n!data/keep.csv\n"})
    files, _ = collect_project_files(project, ["."])
    assert _names(files) == ["data/keep.csv", "main.py", "pkg/__init__.py", "pkg/mod.py"]
    files, _ = collect_project_files(project, ["."], dockerignore=False)
    assert "data/big.parquet" in _names(files) and ".dockerignore" not in _names(files)
    with pytest.raises(ConfigError, match="dockerignore"):
        collect_project_files(project, ["data/big.parquet"])


# ---------------------------------------------------------------- B10 special files


def test_B10_fifo_and_socket_skipped_without_opening(layout: tuple[Path, Path]) -> None:
    project, _ = layout
    os.mkfifo(project / "pipe")
    sock = socket.socket(socket.AF_UNIX)
    sock_path: Path | None = project / "s.sock"
    try:
        sock.bind(str(project / "s.sock"))
    except OSError:  # path too long for AF_UNIX on some hosts
        sock_path = None
    skipped: list[tuple[str, str]] = []
    try:
        files, _ = collect_project_files(project, ["."], on_skip=lambda n, why: skipped.append((n, why)))
    finally:
        sock.close()
    assert "pipe" not in _names(files) and ("pipe", "not a regular file (FIFO, socket or device)") in skipped
    if sock_path is not None:
        assert "s.sock" in [n for n, _ in skipped]
    with pytest.raises(ConfigError, match="not a regular file"):
        collect_project_files(project, ["pipe"])


def test_B10_file_swapped_for_fifo_is_not_read(layout: tuple[Path, Path]) -> None:
    project, _ = layout
    files, _ = collect_project_files(project, ["main.py"])
    (project / "main.py").unlink()
    os.mkfifo(project / "main.py")
    with pytest.raises(ConfigError, match="regular file"):
        build_context_tar(files, mtime=SDE)


# ---------------------------------------------------------------- B12 case clashes


def test_B12_case_clash_is_deterministic_and_reported(tmp_path: Path) -> None:
    project = _tree(tmp_path / "p", {"data.csv": "lower", "Data.csv": "upper", "x/é.txt": "nfc"})
    if len(list(project.iterdir())) < 3:
        pytest.skip("case-insensitive file system")
    first, _ = collect_project_files(project, ["."])
    second, _ = collect_project_files(project, ["data.csv", "Data.csv", "x"])
    assert _names(first) == _names(second) == ["Data.csv", "data.csv", "x/é.txt"]
    assert find_case_clashes(first) == (("Data.csv", "data.csv"),)
    assert build_context_tar(first, mtime=SDE) == build_context_tar(second, mtime=SDE)


# ---------------------------------------------------------------- B13 tar format and validator


def test_B13_context_tar_is_normalised(layout: tuple[Path, Path]) -> None:
    project, _ = layout
    (project / "run.sh").write_text("#!/bin/sh\n")
    (project / "run.sh").chmod(0o775)
    files, _ = collect_project_files(project, ["."], arc_prefix="app/")
    extra = (ContextFile("requirements.lock", None, b"six==1 --hash=sha256:00\n", 0o600),)
    blob = build_context_tar(files + extra, mtime=SDE)
    validate_context_tar(io.BytesIO(blob))
    with tarfile.open(fileobj=io.BytesIO(blob)) as tar:
        members = tar.getmembers()
        assert tar.pax_headers == {}
    names = [m.name.rstrip("/") for m in members]
    assert names == sorted(names, key=str.encode)
    assert names == ["app", "app/main.py", "app/pkg", "app/pkg/__init__.py", "app/pkg/mod.py", "app/run.sh", "requirements.lock"]
    assert {(m.uid, m.gid, m.uname, m.gname, m.mtime) for m in members} == {(0, 0, "", "", SDE)}
    modes = {m.name.rstrip("/"): m.mode for m in members}
    assert (
        modes["app"] == 0o755
        and modes["app/run.sh"] == 0o755
        and modes["app/main.py"] == 0o644
        and modes["requirements.lock"] == 0o644
    )


def test_G1_context_tar_byte_identical_across_mtimes_and_umask(layout: tuple[Path, Path], tmp_path: Path) -> None:
    project, _ = layout
    files, _ = collect_project_files(project, ["."])
    one = build_context_tar(files, mtime=SDE)
    os.utime(project / "main.py", (1, 1))
    (project / "pkg" / "mod.py").chmod(0o600)
    again, _ = collect_project_files(project, ["."])
    out = tmp_path / "ctx.tar"
    with out.open("wb") as handle:
        write_context_tar(handle, again, mtime=SDE)
    assert out.read_bytes() == one


def _crafted(**kw: object) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo(str(kw.pop("name", "ok.txt")))
        info.mode = 0o644
        for key, value in kw.items():
            setattr(info, key, value)
        data = b"x" if info.type in {tarfile.REGTYPE, tarfile.AREGTYPE} else b""
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data) if data else None)
    return buf.getvalue()


@pytest.mark.parametrize(
    "member",
    [
        {"name": "/etc/passwd"},
        {"name": "../escape.txt"},
        {"name": "a/../../escape.txt"},
        {"name": "link", "type": tarfile.SYMTYPE, "linkname": "/etc/shadow"},
        {"name": "hard", "type": tarfile.LNKTYPE, "linkname": "ok.txt"},
        {"name": "dev", "type": tarfile.CHRTYPE, "devmajor": 1, "devminor": 3},
        {"name": "fifo", "type": tarfile.FIFOTYPE},
        {"uid": 1000},
        {"gid": 1000},
        {"mode": 0o4755},
        {"mode": 0o666},
    ],
)
def test_B13_validator_rejects_crafted_tars(member: dict[str, object]) -> None:
    with pytest.raises(PolicyViolation):
        validate_context_tar(io.BytesIO(_crafted(**member)))


def test_B13_validator_rejects_garbage_and_duplicates() -> None:
    with pytest.raises(PolicyViolation):
        validate_context_tar(io.BytesIO(b"not a tar at all" * 100))
    good = build_context_tar((ContextFile("a", None, b"1", 0o644),), mtime=SDE)
    validate_context_tar(io.BytesIO(good))
    with pytest.raises(ConfigError):
        build_context_tar((ContextFile("a", None, b"1", 0o644), ContextFile("a", None, b"2", 0o644)), mtime=SDE)
    with pytest.raises(PolicyViolation):
        build_context_tar((ContextFile("../a", None, b"1", 0o644),), mtime=SDE)


# ---------------------------------------------------------------- B14 archives from elsewhere


@pytest.mark.parametrize("name", ["../../etc/x", "/abs", "C:/win", "a/../../b"])
def test_B14_zip_slip_rejected(name: str) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        archive.writestr(name, b"x")
    buf.seek(0)
    with pytest.raises(PolicyViolation):
        check_archive(buf)


@pytest.mark.parametrize(
    "member",
    [
        {"name": "../x"},
        {"name": "l", "type": tarfile.SYMTYPE, "linkname": "../../etc/passwd"},
        {"name": "d/l", "type": tarfile.SYMTYPE, "linkname": "/etc/passwd"},
        {"name": "dev", "type": tarfile.BLKTYPE},
    ],
)
def test_B14_tar_traversal_rejected(member: dict[str, object]) -> None:
    with pytest.raises(PolicyViolation):
        check_archive(io.BytesIO(_crafted(**member)))


def test_B14_benign_archives_pass() -> None:
    check_archive(io.BytesIO(_crafted(name="pkg/mod.py")))
    check_archive(io.BytesIO(_crafted(name="pkg/l", type=tarfile.SYMTYPE, linkname="mod.py")))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        archive.writestr("six.py", b"x")
    buf.seek(0)
    check_archive(buf)


# ---------------------------------------------------------------- I6 random trees with symlinks

_names_st = st.sampled_from(list(string.ascii_lowercase[:6]))
_node = st.tuples(
    st.lists(_names_st, min_size=1, max_size=3).map("/".join),
    st.one_of(
        st.just(("file", "")),
        st.tuples(st.just("link-in"), st.lists(_names_st, min_size=1, max_size=3).map("/".join)),
        st.tuples(st.just("link-up"), st.integers(0, 4).map(lambda n: "../" * n + "outside")),
        st.tuples(st.just("link-abs"), st.just("")),
        st.tuples(st.just("link-loop"), st.just("")),
    ),
)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(nodes=st.lists(_node, max_size=12))
def test_I6_random_trees_never_yield_outside_content(nodes: list[tuple[str, tuple[str, str]]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        outside = base / "outside"
        outside.mkdir()
        (outside / "secret.txt").write_bytes(SECRET)
        root = base / "root"
        root.mkdir()
        for rel, (kind, target) in nodes:
            path = root / rel
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                if path.exists() or path.is_symlink():
                    continue
                if kind == "file":
                    path.write_bytes(b"inside:" + rel.encode())
                elif kind == "link-in":
                    path.symlink_to(os.path.relpath(root / target, path.parent))
                elif kind == "link-up":
                    path.symlink_to(target)
                elif kind == "link-abs":
                    path.symlink_to(outside / "secret.txt")
                else:
                    path.symlink_to(path.name)
            except OSError:  # a parent is a file or a link: skip this node
                continue
        real_root = os.path.realpath(root)
        for wanted in (["."], sorted({rel for rel, _ in nodes})):
            try:
                files, _ = collect_project_files(root, wanted)
            except (PolicyViolation, ConfigError):
                continue
            for f in files:
                assert f.source is not None
                assert os.path.realpath(f.source).startswith(real_root + os.sep)
            assert SECRET not in _contents(files)
            blob = build_context_tar(files, mtime=SDE)
            assert SECRET not in blob
            validate_context_tar(io.BytesIO(blob))


# ---------------------------------------------------------------- B11 very large data files


def test_B11_large_data_file_warned_only_when_needed(tmp_path: Path) -> None:
    from slimbuild.image.context import LARGE_FILE_BYTES, large_file_warnings

    root = tmp_path / "proj"
    (root / "data").mkdir(parents=True)
    (root / "main.py").write_text("print(1)\n", encoding="utf-8")
    for name in ("big.parquet", "unused.parquet"):
        with (root / "data" / name).open("wb") as fh:  # sparse: no disk, the size is what counts
            fh.truncate(LARGE_FILE_BYTES + 1)
    (root / "data" / "small.csv").write_text("a,b\n", encoding="utf-8")
    files, _ = collect_project_files(root, ["main.py", "data/big.parquet", "data/small.csv"], arc_prefix="image/app/")
    names = sorted(f.arcname for f in files)
    assert names == ["image/app/data/big.parquet", "image/app/data/small.csv", "image/app/main.py"]  # unused stays out
    (warning,) = large_file_warnings(files, "image/app/")
    assert warning.startswith("data/big.parquet is 105 MB and goes into the image") and "include" in warning
    assert large_file_warnings(files, "image/app/", limit=LARGE_FILE_BYTES + 2) == ()


def test_B11_context_tar_streams_a_large_file_in_bounded_memory(tmp_path: Path) -> None:
    # A 1 GiB (sparse) data file is archived in a child process whose peak RSS stays far below the file's size.
    big = tmp_path / "big.bin"
    with big.open("wb") as fh:
        fh.truncate(1 << 30)
    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "from slimbuild.image.context import ContextFile, write_context_tar\n"
        "with open(sys.argv[2], 'wb') as out:\n"
        "    write_context_tar(out, [ContextFile('app/big.bin', Path(sys.argv[1]), None, 0o644)], mtime=0)\n"
        # VmHWM is this process image's own peak: ru_maxrss would include the parent's RSS from before exec
        "print(next(int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('VmHWM:')))\n"
    )
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-c", script, str(big), os.devnull], capture_output=True, text=True, check=True, timeout=300
    )
    peak_kib = int(out.stdout.strip())
    assert peak_kib < 200 * 1024, f"peak RSS {peak_kib} KiB while archiving a 1 GiB file"


# ---------------------------------------------------------------- B15 the build-context temp dir


class _RecordingEngine:
    """Stands in for the engine: records the context's directory while it 'builds', then succeeds or raises."""

    def __init__(self, outcome: BaseException | None) -> None:
        self.outcome = outcome
        self.seen: list[tuple[Path, int]] = []

    def build(self, fileobj: io.BufferedReader, **_kwargs: object) -> object:
        ctx = Path(fileobj.name)
        self.seen.append((ctx.parent, ctx.parent.stat().st_mode & 0o777))
        if self.outcome is not None:
            raise self.outcome
        from slimbuild.image.build_stream import BuildOutcome

        return BuildOutcome(image_id="sha256:" + "0" * 64)


@pytest.mark.parametrize("outcome", [None, "failure", "interrupt"])
def test_B15_context_dir_is_private_and_removed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, outcome: str | None) -> None:
    from slimbuild.errors import BuildFailed
    from slimbuild.pipeline import imaging as build_mod

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # the user's temp dir ($TMPDIR)
    exc = {None: None, "failure": BuildFailed("RUN failed", hint="x"), "interrupt": KeyboardInterrupt()}[outcome]
    engine = _RecordingEngine(exc)
    files = [ContextFile("Dockerfile", None, b"FROM scratch\n", 0o644)]
    if exc is None:
        build_mod._send(engine, files, 0, labels={}, on_progress=None)  # type: ignore[arg-type]
    else:
        with pytest.raises(type(exc)):
            build_mod._send(engine, files, 0, labels={}, on_progress=None)  # type: ignore[arg-type]
    ((ctx_dir, mode),) = engine.seen
    assert ctx_dir.parent == tmp_path and ctx_dir.name.startswith("slimbuild-context-")
    assert mode == 0o700
    assert not ctx_dir.exists() and list(tmp_path.iterdir()) == []


def test_digests_are_taken_once_and_reused(tmp_path: Path) -> None:
    """with_digests reads each source once; later digests come from the file's record, not the disk."""
    import hashlib

    from slimbuild.image.context import context_digest, file_sha256, with_digests

    src = tmp_path / "m.py"
    src.write_bytes(b"print(1)\n")
    files = with_digests([ContextFile("image/app/m.py", src, None, 0o644), ContextFile("lock", None, b"x", 0o644)])
    assert files[0].sha256 == file_sha256(src) == hashlib.sha256(b"print(1)\n").hexdigest()
    src.unlink()
    assert context_digest(files[0]) == hashlib.sha256(b"print(1)\n").hexdigest()
    assert context_digest(files[1]) == hashlib.sha256(b"x").hexdigest()
    with pytest.raises(ValueError, match="digest not taken"):
        context_digest(ContextFile("a", src, None, 0o644))
