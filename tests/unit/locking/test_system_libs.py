"""L10-L13: the system libraries wheels need (DT_NEEDED), what satisfies them, the soname -> Debian package data,
the base image's library set and the Debian resolution of system-packages (all pure or on local files)."""

from __future__ import annotations

import gzip
import io
import json
import shutil
import subprocess
import tarfile
import zipfile
from pathlib import Path

import pytest

from slimbuild.errors import ConfigError, IntegrityError, ResolutionError
from slimbuild.image.base_files import base_files_from_save
from slimbuild.image.stage_venv import install_debs
from slimbuild.locking.debian import check_names, deb_files, installed_names, parse_packages, release_of, resolve_packages
from slimbuild.locking.debs import fetch_deb, fetch_index
from slimbuild.locking.syslibs import MissingLibrary, elf_needed, library_data, missing_libraries, scan_wheel
from slimbuild.pipeline.system_libs import missing_message
from tests.constants import BUILD, INTEGRITY, RESOLUTION, USAGE

GCC = shutil.which("gcc")
needs_gcc = pytest.mark.skipif(GCC is None, reason="gcc is needed to build the shared objects")


def _shared_objects(tmp: Path) -> tuple[Path, Path]:
    """libsbdep.so.1 (with a DT_SONAME) and libsbuser.so, which links it and libm."""
    (tmp / "dep.c").write_text("int sb_dep(void) { return 41; }\n")
    (tmp / "user.c").write_text(
        "#include <math.h>\nint sb_dep(void);\nint sb_user(double x) { return sb_dep() + (int)floor(x); }\n"
    )
    dep = tmp / "libsbdep.so.1"
    subprocess.run([GCC, "-shared", "-fPIC", "-Wl,-soname,libsbdep.so.1", "-o", dep, tmp / "dep.c"], check=True)
    user = tmp / "libsbuser.so"
    subprocess.run(
        [GCC, "-shared", "-fPIC", "-Wl,--no-as-needed", "-o", user, tmp / "user.c", f"-L{tmp}", "-l:libsbdep.so.1", "-lm"],
        check=True,
    )
    return dep, user


def _wheel(tmp: Path, name: str, members: dict[str, bytes]) -> Path:
    path = tmp / f"{name}-1.0-py3-none-manylinux_2_17_x86_64.whl"
    with zipfile.ZipFile(path, "w") as zf:
        for arc, data in members.items():
            zf.writestr(arc, data)
    return path


@needs_gcc
def test_L10_dt_needed_and_soname_of_real_shared_objects(tmp_path: Path) -> None:
    dep, user = _shared_objects(tmp_path)
    with user.open("rb") as fh:
        found = elf_needed(fh)
    assert found is not None
    needed, soname = found
    assert "libsbdep.so.1" in needed and "libm.so.6" in needed and "libc.so.6" in needed
    assert soname == ""
    with dep.open("rb") as fh:
        dep_found = elf_needed(fh)
    assert dep_found is not None and dep_found[1] == "libsbdep.so.1" and "libsbdep.so.1" not in dep_found[0]
    assert elf_needed(io.BytesIO(b"#!/bin/sh\necho not elf\n")) is None  # a script named *.so is no ELF file


@needs_gcc
def test_L11_vendored_and_venv_libraries_satisfy_the_rest_is_missing(tmp_path: Path) -> None:
    dep, user = _shared_objects(tmp_path)
    base = {"libc.so.6", "libm.so.6"}
    vendored = scan_wheel(
        # auditwheel's renamed copy: found by its DT_SONAME, whatever the file is called
        _wheel(tmp_path, "vend", {"vend/_ext.so": user.read_bytes(), "vend.libs/libsbdep-ab12.so.1.1k": dep.read_bytes()}),
        "vend",
    )
    assert ("libsbdep.so.1", "vend/_ext.so") in vendored.needed and "libsbdep.so.1" in vendored.provided
    assert missing_libraries([vendored], base, {}, {}) == ()
    alone = scan_wheel(_wheel(tmp_path, "alone", {"alone/_ext.so": user.read_bytes()}), "alone")
    (missing,) = missing_libraries([alone], base, {}, {})
    assert (missing.soname, missing.dists, missing.members) == ("libsbdep.so.1", ("alone",), ("alone/_ext.so",))
    other = scan_wheel(_wheel(tmp_path, "other", {"other/libsbdep.so.1": dep.read_bytes()}), "other")
    assert missing_libraries([alone, other], base, {}, {}) == ()  # another wheel's .so is in the same venv
    assert [m.soname for m in missing_libraries([alone], {"libsbdep.so.1"}, {}, {})] == ["libc.so.6", "libm.so.6"]


def test_L12_soname_to_debian_package_and_alternative_in_the_message(tmp_path: Path) -> None:
    packages, alternatives = library_data()
    assert packages["libGL.so.1"] == "libgl1" and packages["libgomp.so.1"] == "libgomp1"
    assert packages["libglib-2.0.so.0"] == "libglib2.0-0" and alternatives["opencv-python"] == "opencv-python-headless"
    text = (Path(__file__).parents[3] / "slimbuild/locking/data/system_libs.toml").read_text()
    assert "Contents-amd64" in text and "\ndate = " in text  # where the data came from, and when
    wheel = scan_wheel(_wheel(tmp_path, "opencv-python", {}), "opencv-python")
    wheel = type(wheel)("opencv-python", (("libGL.so.1", "cv2/cv2.abi3.so"), ("libsbnone.so.3", "cv2/x.so")), ())
    gl, none = missing_libraries([wheel], {"libc.so.6"})
    assert (gl.package, gl.alternatives) == ("libgl1", (("opencv-python", "opencv-python-headless"),))
    assert none.package == ""
    err = missing_message([gl, none], "debian:bookworm")
    assert err.exit_code == BUILD
    line = err.one_line()
    for word in ("libGL.so.1", "opencv-python needs", "libgl1", "opencv-python-headless", "libsbnone.so.3",
                 "no Debian package", 'system-packages = ["libgl1"]'):  # fmt: skip
        assert word in line, line
    assert isinstance(gl, MissingLibrary)


def test_L12_the_script_maps_sonames_from_one_contents_file(tmp_path: Path) -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("sl", Path(__file__).parents[3] / "scripts/system_libs_from_contents.py")
    assert spec is not None and spec.loader is not None
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    lines = [
        "usr/lib/x86_64-linux-gnu/libGL.so.1                     libs/libgl1\n",
        "usr/lib/x86_64-linux-gnu/primus/libGL.so.1              utils/primus-libs\n",
        "usr/lib/x86_64-linux-gnu/libgomp.so.1                   libs/libgomp1,libdevel/libgomp-dev\n",
        "usr/share/doc/libgomp1/copyright                        libs/libgomp1\n",
    ]
    assert script.providers(lines, ["libGL.so.1", "libgomp.so.1", "libnope.so.1"]) == {
        "libGL.so.1": "libgl1", "libgomp.so.1": "libgomp1",
    }  # fmt: skip
    contents = tmp_path / "Contents-amd64.gz"
    contents.write_bytes(gzip.compress("".join(lines).encode()))
    assert script.main([str(contents), "--date", "2026-01-01"]) == 0


_PACKAGES = """\
Package: libgomp1
Version: 12.2.0-14
Architecture: amd64
Depends: gcc-12-base (= 12.2.0-14), libc6 (>= 2.34)
Filename: pool/main/g/gcc-12/libgomp1_12.2.0-14_amd64.deb
Size: 116
SHA256: AA00000000000000000000000000000000000000000000000000000000000000
Description: GCC OpenMP
 long text: with a colon

Package: libgl1
Version: 1.6.0-1
Architecture: amd64
Pre-Depends: libglvnd0
Depends: libglx0 (= 1.6.0-1) | libgl-vendor, libc6:any
Filename: pool/main/libg/libglvnd/libgl1_1.6.0-1_amd64.deb
Size: 90
SHA256: bb00000000000000000000000000000000000000000000000000000000000000

Package: libglvnd0
Version: 1.6.0-1
Architecture: amd64
Filename: pool/main/libg/libglvnd/libglvnd0_1.6.0-1_amd64.deb
Size: 50
SHA256: cc00000000000000000000000000000000000000000000000000000000000000

Package: libglx-mesa0
Version: 22.3.6-1
Architecture: amd64
Provides: libglx-vendor, libgl-vendor
Filename: pool/main/m/mesa/libglx-mesa0_22.3.6-1_amd64.deb
Size: 70
SHA256: dd00000000000000000000000000000000000000000000000000000000000000
"""
_STATUS = """\
Package: libc6
Status: install ok installed
Version: 2.36-9

Package: gcc-12-base
Status: install ok installed
Version: 12.2.0-14

Package: libgone
Status: deinstall ok config-files
Version: 1
"""


def test_L13_debian_resolution_installs_only_what_the_base_lacks() -> None:
    index = parse_packages(_PACKAGES)
    installed = installed_names(_STATUS)
    assert installed == {"libc6", "gcc-12-base"}
    (gomp,) = resolve_packages(["libgomp1"], index, installed, "bookworm")
    assert (gomp.name, gomp.version, gomp.sha256[:4]) == ("libgomp1", "12.2.0-14", "aa00")
    assert gomp.record() == {"name": "libgomp1", "version": "12.2.0-14", "sha256": "aa" + "0" * 62}
    # Pre-Depends, and an alternative group satisfied through a virtual package another package provides
    assert [p.name for p in resolve_packages(["libgl1"], index, installed, "bookworm")] == ["libgl1", "libglvnd0", "libglx-mesa0"]
    with pytest.raises(ResolutionError) as unknown:
        resolve_packages(["libgomp1", "no-such-pkg"], index, installed, "bookworm")
    assert unknown.value.exit_code == RESOLUTION and "no-such-pkg" in unknown.value.message
    with pytest.raises(ResolutionError):
        resolve_packages(["libgomp1"], index, frozenset(), "bookworm")  # libc6 is in no index here
    with pytest.raises(ConfigError) as bad:
        check_names(["libgomp1", "libgomp1=12"])
    assert bad.value.exit_code == USAGE
    assert release_of('ID=debian\nVERSION_CODENAME="bookworm"\n', "b") == "bookworm"
    with pytest.raises(ConfigError):
        release_of("ID=alpine\nVERSION_ID=3.20\n", "alpine:3.20")


def _layer(files: dict[str, bytes], links: dict[str, str] | None = None) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tar.addfile(info)
    return buf.getvalue()


def test_L13_base_library_set_from_docker_save_layers_stacked() -> None:
    lower = _layer(
        {"usr/lib/x86_64-linux-gnu/libc.so.6": b"x", "usr/lib/x86_64-linux-gnu/libgone.so.1": b"x",
         "opt/vendor/lib/libvendor.so.2": b"x", "usr/share/doc/libfoo.so.9": b"x",
         "usr/lib/os-release": b'ID=debian\nVERSION_CODENAME=bookworm\n', "var/lib/dpkg/status": _STATUS.encode()},
        {"lib": "usr/lib", "usr/lib/x86_64-linux-gnu/libm.so.6": "libm.so.6.0"},
    )  # fmt: skip
    upper = _layer({"usr/lib/x86_64-linux-gnu/.wh.libgone.so.1": b"", "etc/ld.so.conf.d/vendor.conf": b"# v\n/opt/vendor/lib\n"})
    outer = io.BytesIO()
    with tarfile.open(fileobj=outer, mode="w") as tar:
        for name, data in (("a/layer.tar", lower), ("b/layer.tar", upper),
                           ("manifest.json", json.dumps([{"Layers": ["a/layer.tar", "b/layer.tar"]}]).encode())):  # fmt: skip
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    data = outer.getvalue()
    found = base_files_from_save(data[i : i + 1000] for i in range(0, len(data), 1000))
    assert set(found.libraries) == {"libc.so.6", "libm.so.6", "libvendor.so.2"}  # whiteout applied, doc dir ignored
    assert release_of(found.os_release, "base") == "bookworm" and "gcc-12-base" in installed_names(found.dpkg_status)


@pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="dpkg-deb builds the test package")
def test_L13_deb_contents_and_offline_extraction_folded_into_merged_usr(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    (pkg / "DEBIAN").mkdir(parents=True)
    (pkg / "DEBIAN/control").write_text(
        "Package: sbtest-lib\nVersion: 1.0\nArchitecture: amd64\nMaintainer: t <t@t>\nDescription: test\n"
    )
    (pkg / "lib/x86_64-linux-gnu").mkdir(parents=True)
    (pkg / "lib/x86_64-linux-gnu/libsbtest.so.1").write_bytes(b"\x7fELF")
    (pkg / "usr/share/doc/sbtest-lib").mkdir(parents=True)
    (pkg / "usr/share/doc/sbtest-lib/copyright").write_text("MIT\n")
    deb = tmp_path / "sbtest-lib_1.0_amd64.deb"
    subprocess.run(["dpkg-deb", "-Zxz", "--build", "--root-owner-group", pkg, deb], check=True, capture_output=True)
    assert "lib/x86_64-linux-gnu/libsbtest.so.1" in deb_files(deb.read_bytes())
    system = tmp_path / "system"
    (system / "usr/lib").mkdir(parents=True)
    (system / "lib").symlink_to("usr/lib")
    stage = tmp_path / "stage"
    stage.mkdir()
    install_debs([str(deb)], str(stage), system_root=str(system))
    assert (stage / "usr/lib/x86_64-linux-gnu/libsbtest.so.1").is_file()
    assert not (stage / "lib").exists()  # a real /lib in the layer would replace the base's link
    assert (stage / "usr/share/doc/sbtest-lib/copyright").is_file()


def test_L13_index_and_debs_are_hash_checked_cached_and_an_unreachable_archive_is_exit_4(tmp_path: Path) -> None:
    import hashlib
    import lzma

    archive = tmp_path / "archive"
    deb = b"!<arch>\nnot really a package"
    (archive / "pool/main/g").mkdir(parents=True)
    (archive / "pool/main/g/libgomp1_1_amd64.deb").write_bytes(deb)
    text = _PACKAGES.replace("pool/main/g/gcc-12/libgomp1_12.2.0-14_amd64.deb", "pool/main/g/libgomp1_1_amd64.deb")
    text = text.replace("AA" + "0" * 62, hashlib.sha256(deb).hexdigest())
    packages_xz = lzma.compress(text.encode())
    (archive / "dists/bookworm/main/binary-amd64").mkdir(parents=True)
    (archive / "dists/bookworm/main/binary-amd64/Packages.xz").write_bytes(packages_xz)
    digest = hashlib.sha256(packages_xz).hexdigest()
    release = f"Codename: bookworm\nSHA256:\n {digest} {len(packages_xz)} main/binary-amd64/Packages.xz\n"
    (archive / "dists/bookworm/Release").write_text(release)
    env = {"SLIMBUILD_DEBIAN_MIRROR": archive.as_uri()}
    cache = tmp_path / "cache"
    index_text, _ = fetch_index("bookworm", "amd64", cache, env)
    gomp = parse_packages(index_text)["libgomp1"]
    path = fetch_deb(gomp, cache, env)
    assert path.read_bytes() == deb and path.parent.name == gomp.sha256
    dead = {"SLIMBUILD_DEBIAN_MIRROR": "http://127.0.0.1:9/debian"}
    assert fetch_index("bookworm", "amd64", cache, dead)[0] == index_text  # cached: no network
    assert fetch_deb(gomp, cache, dead) == path
    with pytest.raises(ResolutionError) as unreachable:
        fetch_index("bookworm", "amd64", tmp_path / "cold", dead)
    assert unreachable.value.exit_code == RESOLUTION and "127.0.0.1:9" in unreachable.value.message
    (archive / "pool/main/g/libgomp1_1_amd64.deb").write_bytes(deb + b"tampered")
    with pytest.raises(IntegrityError) as tampered:
        fetch_deb(gomp, tmp_path / "cold", env)
    assert tampered.value.exit_code == INTEGRITY and gomp.sha256 in tampered.value.message
