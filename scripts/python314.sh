#!/usr/bin/env bash
# A real Python 3.14 on a machine that has none (Debian bookworm): Debian sid's python3.14-minimal, installed
# once with `debootstrap --variant=minbase` under the test cache, and a wrapper that runs it.
#
#   bash scripts/python314.sh          # prints the wrapper's path (builds the root the first time, ~1 min, ~250 MB)
#   slimbuild analyze --target-python 3.14 --python "$(bash scripts/python314.sh)"
#
# The wrapper runs sid's /usr/bin/python3.14 with sid's own dynamic loader and libraries (its glibc is newer than
# bookworm's), not inside a chroot: slimbuild hands the interpreter the project's absolute paths and a copy of its
# parser in a temporary directory, which a chroot would hide. Needs root (debootstrap) and the Debian archive
# ($SLIMBUILD_DEBIAN_MIRROR, default http://deb.debian.org/debian). Cached in
# ${SLIMBUILD_TEST_CACHE:-~/.cache/slimbuild-test-cache}/python3.14-sid/; delete that directory to rebuild.
set -euo pipefail
CACHE=${SLIMBUILD_TEST_CACHE:-$HOME/.cache/slimbuild-test-cache}
DIR="$CACHE/python3.14-sid"
WRAPPER="$DIR/python3.14"
MIRROR=${SLIMBUILD_DEBIAN_MIRROR:-http://deb.debian.org/debian}
if [ -x "$WRAPPER" ] && [ -f "$DIR/root/.slimbuild-complete" ]; then
    echo "$WRAPPER"
    exit 0
fi
die() { echo "python314.sh: $*" >&2; exit 1; }
command -v debootstrap >/dev/null || die "debootstrap is not installed (apt-get install debootstrap)"
[ "$(id -u)" = 0 ] || die "debootstrap needs root (run as root, or install python3.14 and put it on PATH)"
mkdir -p "$DIR"
exec 9>"$DIR/.lock"
flock 9  # one build at a time; a second caller waits and reuses it
if [ ! -f "$DIR/root/.slimbuild-complete" ]; then
    rm -rf "$DIR/root.tmp" "$DIR/root"
    echo "python314.sh: debootstrap sid (python3.14-minimal) into $DIR/root ..." >&2
    if ! debootstrap --variant=minbase --include=python3.14-minimal sid "$DIR/root.tmp" "$MIRROR" >"$DIR/debootstrap.log" 2>&1; then
        rm -rf "$DIR/root.tmp"
        die "debootstrap failed (see $DIR/debootstrap.log): $(tail -n 1 "$DIR/debootstrap.log")"
    fi
    [ -x "$DIR/root.tmp/usr/bin/python3.14" ] || die "sid's root has no /usr/bin/python3.14"
    touch "$DIR/root.tmp/.slimbuild-complete"
    mv "$DIR/root.tmp" "$DIR/root"
fi
ROOT="$DIR/root"
LOADER=""
for candidate in "$ROOT"/lib64/ld-linux-*.so.* "$ROOT"/lib/ld-linux-*.so.*; do
    if [ -e "$candidate" ]; then LOADER=${candidate#"$ROOT"/}; break; fi
done
[ -n "$LOADER" ] || die "no dynamic loader in $ROOT/lib64 or $ROOT/lib"
TRIPLET="$(uname -m)-linux-gnu"
cat >"$WRAPPER.tmp" <<WRAP
#!/bin/sh
# Debian sid's python3.14, made by scripts/python314.sh: its own loader and libraries, this machine's files.
R="\$(dirname "\$0")/root"
exec "\$R/$LOADER" --library-path "\$R/lib/$TRIPLET:\$R/usr/lib/$TRIPLET" "\$R/usr/bin/python3.14" "\$@"
WRAP
chmod +x "$WRAPPER.tmp"
mv "$WRAPPER.tmp" "$WRAPPER"
"$WRAPPER" -I -S -c 'import sys; assert sys.version_info[:2] == (3, 14), sys.version' || die "the wrapper does not run Python 3.14"
echo "$WRAPPER"
