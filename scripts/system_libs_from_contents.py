"""Regenerate slimbuild/locking/data/system_libs.toml from ONE Debian Contents file.

The data file maps the shared libraries (sonames) that manylinux wheels commonly need but do not vendor to
the Debian package that ships them, so that ``slimbuild build`` can name a package for a library the base
image lacks. It never queries an index per library: download one file, then run this script on it.

    curl -fLO https://deb.debian.org/debian/dists/bookworm/main/Contents-amd64.gz
    python scripts/system_libs_from_contents.py Contents-amd64.gz --release bookworm --write

Without ``--write`` it prints the TOML and changes nothing. The alternatives (a distribution that needs no
system library, e.g. opencv-python-headless) are kept from the current data file as they are.
"""

from __future__ import annotations

import argparse
import datetime
import gzip
import sys
from collections.abc import Iterable
from pathlib import Path

import tomllib

DATA = Path(__file__).resolve().parent.parent / "slimbuild" / "locking" / "data" / "system_libs.toml"
SOURCE_URL = "https://deb.debian.org/debian/dists/{release}/main/Contents-amd64.gz"
# Where the loader looks by default on Debian (amd64); a library elsewhere (a plugin dir) is not what DT_NEEDED finds.
LIB_DIRS = ("usr/lib/x86_64-linux-gnu/", "lib/x86_64-linux-gnu/", "usr/lib/", "lib/")

# The sonames manylinux wheels commonly need from the system (auditwheel's policy leaves them out, or the
# wheel's authors link them): GL/X11 for opencv and GUI toolkits, OpenMP and Fortran runtimes, audio/video.
SONAMES = """
libGL.so.1 libEGL.so.1 libGLX.so.0 libOpenGL.so.0 libGLU.so.1 libGLESv2.so.2 libgbm.so.1 libdrm.so.2
libgomp.so.1 libomp.so.5 libgfortran.so.5 libquadmath.so.0 libstdc++.so.6 libgcc_s.so.1 libatomic.so.1
libglib-2.0.so.0 libgthread-2.0.so.0 libgobject-2.0.so.0 libgio-2.0.so.0 libgmodule-2.0.so.0
libX11.so.6 libX11-xcb.so.1 libXext.so.6 libXrender.so.1 libSM.so.6 libICE.so.6 libxcb.so.1 libXau.so.6
libXdmcp.so.6 libXi.so.6 libXrandr.so.2 libXfixes.so.3 libXcursor.so.1 libXinerama.so.1 libXxf86vm.so.1
libXcomposite.so.1 libXdamage.so.1 libXtst.so.6 libXss.so.1 libxshmfence.so.1 libxkbcommon.so.0
libxkbcommon-x11.so.0 libxcb-shm.so.0 libxcb-render.so.0 libxcb-xfixes.so.0 libxcb-icccm.so.4
libxcb-image.so.0 libxcb-keysyms.so.1 libxcb-randr.so.0 libxcb-render-util.so.0 libxcb-shape.so.0
libxcb-sync.so.1 libxcb-xinerama.so.0 libxcb-xkb.so.1 libxcb-cursor.so.0
libfontconfig.so.1 libfreetype.so.6 libcairo.so.2 libpango-1.0.so.0 libpangocairo-1.0.so.0
libgdk_pixbuf-2.0.so.0 libgtk-3.so.0 libgdk-3.so.0 libatk-1.0.so.0 libepoxy.so.0 libdbus-1.so.3
libnss3.so libnspr4.so libcups.so.2 libasound.so.2 libpulse.so.0 libportaudio.so.2
libsndfile.so.1 libopus.so.0 libvorbis.so.0 libogg.so.0 libFLAC.so.12 libmp3lame.so.0
libavcodec.so.59 libavformat.so.59 libavutil.so.57 libavdevice.so.59 libavfilter.so.8 libswscale.so.6
libswresample.so.4 libpostproc.so.56
libgstreamer-1.0.so.0 libgstbase-1.0.so.0 libgstapp-1.0.so.0 libgstvideo-1.0.so.0 libgstaudio-1.0.so.0
libgstpbutils-1.0.so.0 libgstriff-1.0.so.0
libjpeg.so.62 libpng16.so.16 libtiff.so.6 libwebp.so.7 libopenjp2.so.7
libopenblas.so.0 libblas.so.3 liblapack.so.3 libnuma.so.1 libtbb.so.12 libhwloc.so.15 libgmp.so.10
libmpfr.so.6 libhdf5_serial.so.103 libgeos_c.so.1 libproj.so.25 libgdal.so.32 libspatialindex.so.6
libssl.so.3 libcrypto.so.3 libffi.so.8 libz.so.1 libbz2.so.1.0 liblzma.so.5 libzstd.so.1 libexpat.so.1
libuuid.so.1 libmagic.so.1 libpq.so.5 libmariadb.so.3 libsqlite3.so.0 libcurl.so.4 libxml2.so.2
libxslt.so.1 libusb-1.0.so.0 libudev.so.1 libsystemd.so.0 libaio.so.1 libgssapi_krb5.so.2 libkrb5.so.3
libldap-2.5.so.0 libsasl2.so.2 libodbc.so.2 libtesseract.so.5 liblept.so.5 libzbar.so.0 libcuda.so.1
""".split()


def _better(candidate: str, current: str) -> bool:
    """Prefer a runtime package over -dev/-dbg ones and over other flavours (the shortest name, then by name)."""
    def rank(pkg: str) -> tuple[bool, int, str]:
        return (pkg.endswith(("-dev", "-dbg", "-dbgsym")), len(pkg), pkg)

    return rank(candidate) < rank(current)


def providers(lines: Iterable[str], sonames: Iterable[str]) -> dict[str, str]:
    """soname -> the Debian package that ships it in a default library dir, from Contents lines."""
    wanted = {f"{d}{s}": s for s in sonames for d in LIB_DIRS}
    found: dict[str, tuple[int, str]] = {}
    for line in lines:
        path, _, where = line.rstrip("\n").rpartition(" ")
        path = path.strip()
        soname = wanted.get(path)
        if soname is None:
            continue
        order = next(i for i, d in enumerate(LIB_DIRS) if path.startswith(d) and path[len(d) :] == soname)
        for qualified in where.split(","):
            pkg = qualified.rsplit("/", 1)[-1]
            old = found.get(soname)
            if old is None or order < old[0] or (order == old[0] and _better(pkg, old[1])):
                found[soname] = (order, pkg)
    return {s: pkg for s, (_, pkg) in sorted(found.items())}


def _toml_str(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def render(packages: dict[str, str], alternatives: dict[str, str], source: str, date: str) -> str:
    """The data file's text: a header saying where it came from, then [packages] and [alternatives], sorted."""
    lines = [
        "# Generated by scripts/system_libs_from_contents.py: do not edit [packages] by hand, re-run the script.",
        "# soname -> the Debian package that ships it in a default library directory; [alternatives]: a distribution",
        "# that needs a system library -> one that does not (kept as it is by the script).",
        f"source = {_toml_str(source)}",
        f"date = {_toml_str(date)}",
        "",
        "[packages]",
        *(f"{_toml_str(s)} = {_toml_str(p)}" for s, p in sorted(packages.items())),
        "",
        "[alternatives]",
        *(f"{_toml_str(d)} = {_toml_str(a)}" for d, a in sorted(alternatives.items())),
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("contents", type=Path, help="a Contents-<arch>.gz (or plain) file of the Debian archive")
    ap.add_argument("--release", default="bookworm")
    ap.add_argument("--date", default=datetime.date.today().isoformat(), help="when the Contents file was downloaded")
    ap.add_argument("--write", action="store_true", help=f"write {DATA.name} (else print it)")
    args = ap.parse_args(argv)
    opener = gzip.open if args.contents.suffix == ".gz" else open
    with opener(args.contents, "rt", encoding="utf-8", errors="replace") as fh:  # type: ignore[operator]
        packages = providers(fh, SONAMES)
    current = tomllib.loads(DATA.read_text(encoding="utf-8")) if DATA.exists() else {}
    text = render(packages, dict(current.get("alternatives", {})), SOURCE_URL.format(release=args.release), args.date)
    if args.write:
        DATA.write_text(text, encoding="utf-8")
        print(f"wrote {len(packages)} sonames to {DATA}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
