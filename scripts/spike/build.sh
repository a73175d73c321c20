#!/usr/bin/env bash
# Throwaway spike driver (see NOTES.md). Needs scripts/docker-up.sh to have run.
#   bash scripts/spike/build.sh            # download, lock, build both variants, measure
# Work dir (wheelhouse, build context): ${SPIKE_WORK:-/tmp/slimbuild-spike}
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
WORK="${SPIKE_WORK:-/tmp/slimbuild-spike}"
BASE="${SLIMBUILD_BASE_IMAGE:-slimbuild-test/debian-python:bookworm}"
export DOCKER_BUILDKIT=0 DOCKER_HOST="unix:///var/run/docker.sock"
mkdir -p "$WORK/ctx"
cd "$WORK/ctx"

# ---- 1. host-side download (manylinux wheels for cp311, whatever the host python is)
if [ ! -d wheelhouse ] || [ -z "$(ls wheelhouse)" ]; then
    pip download --only-binary :all: --no-deps --platform manylinux2014_x86_64 \
        --python-version 3.11 --implementation cp --abi cp311 -d wheelhouse \
        pandas numpy python-dateutil pytz tzdata six pip
fi

# ---- 2. requirements.lock from the wheels actually downloaded (pip excluded)
python3 - <<'EOF'
import hashlib, pathlib, re
lines = []
for whl in sorted(pathlib.Path("wheelhouse").glob("*.whl")):
    name, version = whl.name.split("-")[:2]
    name = re.sub(r"[-_.]+", "-", name).lower()          # PEP 503 normalisation
    if name == "pip":
        continue
    digest = hashlib.sha256(whl.read_bytes()).hexdigest()
    lines.append(f"{name}=={version} --hash=sha256:{digest}")
pathlib.Path("requirements.lock").write_text("\n".join(lines) + "\n")
EOF
cat requirements.lock

cp "$HERE/Dockerfile" Dockerfile
cat > app.py <<'EOF'
import pandas as pd
df = pd.DataFrame({"x": [1, 2, 3], "y": [10.0, 20.0, 30.0]})
print("sum", int(df["x"].sum()), "mean", df["y"].mean(), "pandas", pd.__version__)
EOF

size() { docker image inspect --format '{{.Size}}' "$1"; }
base_size="$(size "$BASE")"
timed_build() {  # tag, extra args...
    local tag="$1"; shift
    local t0 t1; t0=$(date +%s.%N)
    docker build -q --network none "$@" -t "$tag" . >/dev/null
    t1=$(date +%s.%N)
    printf '%-12s build %6.1fs  added %6.1f MB\n' "$tag" "$(echo "$t1 - $t0" | bc)" \
        "$(echo "($(size "$tag") - $base_size) / 1000000" | bc -l)"
}
startup() {  # median of 5 runs (after 1 warm-up)
    local tag="$1" i t0 t1 ts=()
    docker run --rm --network none --read-only "$tag" >/dev/null
    for i in 1 2 3 4 5; do
        t0=$(date +%s.%N)
        docker run --rm --network none --read-only "$tag" >/dev/null
        t1=$(date +%s.%N)
        ts+=("$(echo "$t1 - $t0" | bc)")
    done
    printf '%-12s docker run median %.2fs  (%s)\n' "$tag" \
        "$(printf '%s\n' "${ts[@]}" | sort -n | sed -n 3p)" "${ts[*]}"
}

# ---- 3. build + measure
timed_build spike:nopyc --build-arg PYC=0
timed_build spike:pyc --build-arg PYC=1
docker run --rm --network none --read-only spike:pyc
startup spike:nopyc
startup spike:pyc
# in-container python import time only (no container overhead)
for tag in spike:nopyc spike:pyc; do
    docker run --rm --network none --read-only --entrypoint /opt/venv/bin/python "$tag" \
        -c 'import time; t=time.perf_counter(); import pandas; print("'"$tag"' import pandas %.2fs" % (time.perf_counter()-t))'
done

# user / tmp behaviour on a read-only rootfs
docker run --rm --network none --read-only --tmpfs /tmp --entrypoint /opt/venv/bin/python spike:pyc -c \
    'import os,getpass,tempfile; print("uid", os.getuid(), "user", getpass.getuser(), "HOME", os.environ["HOME"], "tmp", tempfile.gettempdir())'

# ---- 4. rebuild after editing app.py (only the COPY app.py layer should rebuild)
echo "print('edited')" >> app.py
timed_build spike:pyc --build-arg PYC=1
docker run --rm --network none --read-only spike:pyc | tail -1

# ---- 5. reproducibility: rebuild builder with --no-cache, compare venv layer digests
layer() { docker image inspect --format '{{index .RootFS.Layers 1}}' "$1"; }
before="$(layer spike:pyc)"
docker build -q --network none --no-cache --build-arg PYC=1 -t spike:pyc2 . >/dev/null
echo "venv layer reproducible: $([ "$before" = "$(layer spike:pyc2)" ] && echo yes || echo NO) ($before)"
