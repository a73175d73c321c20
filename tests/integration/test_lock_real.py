"""Real pip-compile / pip download against a local offline index (group C, E11, E15)."""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
import zipfile
from pathlib import Path

import pytest

from slimbuild.errors import ExitCode, IntegrityError, ResolutionError
from slimbuild.locking.lockfile import Lock, compile_lock, parse_lock, write_lock
from slimbuild.locking.target import Target
from slimbuild.locking.wheels import fetch_wheels, verify_wheel, wheel_top_level


def clean_env(**extra: str) -> dict[str, str]:
    """os.environ without any pip setting, isolated from the machine's pip config."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_DISABLE_PIP_VERSION_CHECK="1", **extra)
    return env


def offline_env(find_links: Path, **extra: str) -> dict[str, str]:
    """Environment that resolves only from FIND_LINKS."""
    return clean_env(PIP_NO_INDEX="1", PIP_FIND_LINKS=str(find_links), **extra)


pytestmark = pytest.mark.network

X86 = Target("3.11", "x86_64")
ARM = Target("3.11", "aarch64")
DEAD = "http://user:s3cret@127.0.0.1:9/simple"


def sha256(path: Path) -> str:
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


def make_wheel(folder: Path, name: str, version: str, files: dict[str, str], requires: tuple[str, ...] = ()) -> Path:
    """A minimal wheel written by hand (no build tools)."""
    stem = name.replace("-", "_")
    info = f"{stem}-{version}.dist-info"
    meta = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n" + "".join(f"Requires-Dist: {r}\n" for r in requires)
    members = {
        **files,
        f"{info}/METADATA": meta,
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    members[f"{info}/RECORD"] = "".join(f"{m},,\n" for m in members) + f"{info}/RECORD,,\n"
    path = folder / f"{stem}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as zf:
        for member, text in members.items():
            zf.writestr(member, text)
    return path


def make_sdist(folder: Path, name: str, version: str) -> Path:
    """A tiny sdist with an in-tree PEP 517 backend, so it needs no build deps."""
    base = f"{name}-{version}"
    backend = (
        "import os\n"
        "def prepare_metadata_for_build_wheel(d, config_settings=None):\n"
        f"    info = os.path.join(d, '{name}-{version}.dist-info')\n"
        "    os.makedirs(info)\n"
        f"    open(os.path.join(info, 'METADATA'), 'w').write('Metadata-Version: 2.1\\nName: {name}\\nVersion: {version}\\n')\n"
        f"    return '{name}-{version}.dist-info'\n"
        "def build_wheel(d, config_settings=None, metadata_directory=None):\n"
        "    raise RuntimeError('not needed')\n"
    )
    files = {
        f"{base}/PKG-INFO": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{base}/pyproject.toml": '[build-system]\nrequires = []\nbuild-backend = "backend"\nbackend-path = ["."]\n',
        f"{base}/backend.py": backend,
    }
    path = folder / f"{base}.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for member, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(member)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def lock_text(*lines: str) -> Lock:
    return parse_lock("\n".join(lines) + "\n")


def test_C2_every_line_pinned_and_hashed_setuptools_pinned(index_dir: Path, tmp_path: Path) -> None:
    make_wheel(index_dir, "needs-setuptools", "1.0", {"needs_setuptools.py": ""}, requires=("setuptools",))
    lock = compile_lock(["python-dateutil", "needs-setuptools"], X86, env=offline_env(index_dir))
    names = {d.name: d for d in lock.dists}
    assert set(names) == {"python-dateutil", "six", "needs-setuptools", "setuptools"}
    assert all(d.hashes and all(h.startswith("sha256:") for h in d.hashes) for d in lock.dists)
    assert names["six"].version == "1.17.0"
    assert lock.target == X86 and lock.inputs_sha256
    assert str(index_dir) not in lock.text and "/tmp" not in lock.text  # no temp paths
    # round trip: what we write is what we read
    write_lock(tmp_path / "slimbuild.lock", lock)
    again = parse_lock((tmp_path / "slimbuild.lock").read_text())
    assert again == lock


def test_C3_hash_mismatch_tampered_wheel_in_index(index_dir: Path, tmp_path: Path) -> None:
    lock = compile_lock(["six==1.16.0"], X86, env=offline_env(index_dir))
    wheel = index_dir / "six-1.16.0-py2.py3-none-any.whl"
    wheel.write_bytes(wheel.read_bytes() + b"tampered")
    cache = tmp_path / "cache"
    with pytest.raises(IntegrityError) as err:
        fetch_wheels(lock, X86, cache, env=offline_env(index_dir))
    assert err.value.exit_code == ExitCode.INTEGRITY == 5
    assert "six==1.16.0" in err.value.message and lock.dists[0].hashes[0] in err.value.message
    assert not list(cache.rglob("*.whl"))  # never cached, never used


def test_C3_hash_mismatch_tampered_cache_file_removed(index_dir: Path, tmp_path: Path) -> None:
    env = offline_env(index_dir)
    lock = compile_lock(["six==1.16.0"], X86, env=env)
    (cached,) = fetch_wheels(lock, X86, tmp_path / "c", env=env)
    cached.write_bytes(b"evil")
    with pytest.raises(IntegrityError, match=r"hash mismatch for six==1\.16\.0"):
        fetch_wheels(lock, X86, tmp_path / "c", env=env)
    assert not cached.exists()
    with pytest.raises(IntegrityError, match="expected sha256:"):
        bad = tmp_path / "x.whl"
        bad.write_bytes(b"x")
        verify_wheel(bad, ("sha256:" + "0" * 64,))
    assert not bad.exists()


def test_C4_corrupt_wheel_is_integrity_error(index_dir: Path, tmp_path: Path) -> None:
    bad = index_dir / "broken-1.0-py3-none-any.whl"
    bad.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(IntegrityError, match=r"corrupt wheel broken-1\.0"):
        wheel_top_level(bad)
    # locked with the garbage's own hash: the hash matches, the zip check still refuses it
    lock = lock_text(f"broken==1.0 --hash={sha256(bad)}")
    with pytest.raises(IntegrityError) as err:
        fetch_wheels(lock, X86, tmp_path / "c", env=offline_env(index_dir))
    assert err.value.exit_code == 5


def test_C5_sdist_only_refused_at_lock_and_fetch(index_dir: Path, tmp_path: Path) -> None:
    sdist = make_sdist(index_dir, "tinysdist", "1.0")
    env = offline_env(index_dir)
    with pytest.raises(ResolutionError) as err:
        compile_lock(["tinysdist"], X86, env=env)
    assert err.value.exit_code == 4 and "tinysdist" in err.value.message
    assert "allow-sdist" in err.value.hint
    lock = lock_text(f"tinysdist==1.0 --hash={sha256(sdist)}")
    with pytest.raises(ResolutionError) as err:
        fetch_wheels(lock, X86, tmp_path / "c", env=env)
    assert "no wheel of tinysdist==1.0 for linux/x86_64 cp311" in err.value.message
    assert "build time" in err.value.message and 'allow-sdist = ["tinysdist"] in [tool.slimbuild]' in err.value.hint


def test_C5_allow_sdist_still_hash_checked(index_dir: Path, tmp_path: Path) -> None:
    sdist = make_sdist(index_dir, "tinysdist", "1.0")
    env = offline_env(index_dir)
    lock = lock_text(f"tinysdist==1.0 --hash={sha256(sdist)}")
    (path,) = fetch_wheels(lock, X86, tmp_path / "c", env=env, allow_sdist=["TinySdist"])
    assert path.name == "tinysdist-1.0.tar.gz" and sha256(path) == sha256(sdist)
    wrong = lock_text("tinysdist==1.0 --hash=sha256:" + "1" * 64)
    with pytest.raises(IntegrityError):
        fetch_wheels(wrong, X86, tmp_path / "c2", env=env, allow_sdist=["tinysdist"])


def test_C6_extra_index_warned_and_masked(index_dir: Path) -> None:
    env = offline_env(
        index_dir,
        PIP_EXTRA_INDEX_URL="http://user:s3cret@127.0.0.1:9/extra",
        PIP_RETRIES="0",
        PIP_TIMEOUT="2",
    )
    del env["PIP_NO_INDEX"]
    env["PIP_INDEX_URL"] = "http://127.0.0.1:9/simple"
    lock = compile_lock(["six==1.16.0"], X86, env=env)
    joined = " ".join(lock.warnings)
    assert "extra index configured (http://***@127.0.0.1:9/extra)" in joined
    assert "dependency confusion" in joined
    assert "s3cret" not in joined + " ".join(lock.sources) + lock.text
    assert "http://***@127.0.0.1:9/extra" in lock.sources


def test_C6_no_warning_with_single_index(index_dir: Path) -> None:
    lock = compile_lock(["six==1.16.0"], X86, env=offline_env(index_dir))
    assert lock.warnings == ()


def test_C10_lock_and_fetch_for_aarch64(index_dir: Path, tmp_path: Path) -> None:
    for wheel in index_dir.glob("PyYAML-*x86_64*.whl"):
        wheel.unlink()  # only the target's wheel exists: a host-platform resolve would fail
    env = offline_env(index_dir)
    lock = compile_lock(["pyyaml"], ARM, env=env)
    assert lock.target == ARM and "# slimbuild-target: linux/aarch64 cp311" in lock.text
    (wheel,) = fetch_wheels(lock, ARM, tmp_path / "c", env=env)
    assert "aarch64" in wheel.name and sha256(wheel) in lock.dists[0].hashes
    # second fetch: served from the cache with no index at all
    dead = clean_env(PIP_INDEX_URL=DEAD, PIP_RETRIES="0", PIP_TIMEOUT="1")
    assert fetch_wheels(lock, ARM, tmp_path / "c", env=dead) == (wheel,)
    # the cached aarch64 wheel is never handed out for x86_64
    with pytest.raises(ResolutionError):
        fetch_wheels(lock, X86, tmp_path / "c", env=dead)


def test_C10_markers_evaluated_for_target(index_dir: Path) -> None:
    reqs = ['six; platform_machine == "aarch64"', 'idna; python_version >= "3.12"', 'attrs; python_version < "3.12"']
    lock = compile_lock(reqs, Target("3.12", "aarch64"), env=offline_env(index_dir))
    assert [d.name for d in lock.dists] == ["idna", "six"]


def test_C10_hashes_cover_all_files_of_release(index_dir: Path) -> None:
    lock = compile_lock(["pyyaml"], X86, env=offline_env(index_dir))
    files = {sha256(p) for p in index_dir.glob("PyYAML-6.0.1-*.whl")}
    assert len(files) == 2 and files <= set(lock.dists[0].hashes)


def test_E11_index_unreachable_lock_and_fetch(tmp_path: Path) -> None:
    env = clean_env(PIP_INDEX_URL=DEAD, PIP_RETRIES="0", PIP_TIMEOUT="1")
    with pytest.raises(ResolutionError) as err:
        compile_lock(["six"], X86, env=env)
    msg = err.value.one_line()
    assert err.value.exit_code == 4 and "127.0.0.1:9" in msg and "***" in msg
    assert "s3cret" not in msg and err.value.hint
    lock_hint = err.value.hint
    lock = lock_text("six==1.16.0 --hash=sha256:" + "a" * 64)
    with pytest.raises(ResolutionError) as err:
        fetch_wheels(lock, X86, tmp_path / "c", env=env)
    assert "unreachable" in err.value.message and "s3cret" not in err.value.one_line()
    # one error for one cause: the same advice whether the lock or the wheel download met the dead index
    assert err.value.hint == lock_hint and "slimbuild fetch" not in err.value.hint


def test_E15_conflict_passes_pip_compile_text(index_dir: Path) -> None:
    with pytest.raises(ResolutionError) as err:
        compile_lock(["six==1.16.0", "six==1.17.0"], X86, env=offline_env(index_dir))
    assert err.value.exit_code == 4
    assert "Cannot install six==1.16.0 and six==1.17.0" in err.value.message


def test_previous_pins_kept_unless_upgraded(index_dir: Path) -> None:
    env = offline_env(index_dir)
    old = compile_lock(["six==1.16.0"], X86, env=env)
    kept = compile_lock(["six"], X86, env=env, previous=old.text)
    assert kept.by_name()["six"].version == "1.16.0"
    bumped = compile_lock(["six"], X86, env=env, previous=old.text, upgrade_packages=["six"])
    assert bumped.by_name()["six"].version == "1.17.0"
    assert compile_lock(["six"], X86, env=env, previous=old.text, upgrade=True).by_name()["six"].version == "1.17.0"


def test_wheel_top_level_real_wheels(wheel_dir: Path) -> None:
    (dateutil,) = wheel_dir.glob("python_dateutil-2.9.0.post0-*.whl")
    assert wheel_top_level(dateutil) == ("dateutil",)
    yaml = next(wheel_dir.glob("PyYAML-6.0.1-*x86_64*.whl"))
    assert {"yaml", "_yaml"} <= set(wheel_top_level(yaml))


def test_B14_zip_slip_wheel_rejected(tmp_path: Path) -> None:
    for evil in ("../../etc/evil.py", "/etc/evil.py"):
        path = make_wheel(tmp_path, "evil", "1.0", {evil: "x", "ok.py": ""})
        with pytest.raises(IntegrityError, match="unsafe member"):
            wheel_top_level(path)
        path.unlink()


def test_fetch_batches_and_sorts(index_dir: Path, tmp_path: Path) -> None:
    env = offline_env(index_dir)
    lock = compile_lock(["python-dateutil", "attrs", "idna"], X86, env=env)
    paths = fetch_wheels(lock, X86, tmp_path / "c", env=env)
    assert [p.name for p in paths] == sorted(p.name for p in paths) and len(paths) == 4
    for path in paths:
        assert path.parent.name == hashlib.sha256(path.read_bytes()).hexdigest()
