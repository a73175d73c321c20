#!/usr/bin/env bash
# Bring up a local Docker engine and the test base image for slimbuild's
# Docker test tier.  Idempotent: a second run does nothing but print the
# summary line (well under a second when everything is already up).
#
#   1. apt-get install docker.io / debootstrap / docker-registry / diffoscope-minimal / podman / openssh-server when missing
#   2. start dockerd (no iptables, no bridge: containers have no network on purpose)
#      unless the unix socket already answers; wait for it (bounded)
#   3. build `slimbuild-test/debian-python:bookworm` once (debootstrap minbase +
#      python3 -> docker import), caching the rootfs tarball so that a fresh
#      engine (e.g. after /var/lib/docker was wiped) re-imports in seconds.
#   4. print one summary line.
#
# Environment knobs (all optional):
#   SLIMBUILD_STATE            state dir (dockerd log, rootfs tarball)  [/var/tmp/slimbuild-ci]
#   SLIMBUILD_STORAGE_DRIVER   force a dockerd storage driver (overlay2|fuse-overlayfs|vfs)
#   SLIMBUILD_DOCKERD_TIMEOUT  seconds to wait for the socket             [60]
#   SLIMBUILD_BASE_IMAGE       tag of the base image          [slimbuild-test/debian-python:bookworm]
#   SLIMBUILD_DEBIAN_MIRROR    debootstrap mirror             [debootstrap's default]
#
# Storage driver notes (measured in this sandbox: kernel 6.x, ext4 root, cgroup v1,
# docker.io 20.10.24 from bookworm):
#   * overlay2 works here (d_type=true on ext4) and is by far the fastest: layers
#     are not copied, `docker build` RUN steps and `docker run` start in ~0.2-0.5 s.
#   * vfs always works but copies the whole parent rootfs for every layer/container
#     (~260 MB for the base) -> every RUN step and every `docker run` pays seconds
#     and disk.  Used only as the fallback when the kernel refuses an overlay mount.
#   * fuse-overlayfs (package fuse-overlayfs, needs /dev/fuse) is the middle ground
#     for rootless/nested setups; we pick it only when forced via
#     SLIMBUILD_STORAGE_DRIVER because plain overlay2 is available here.
#   We probe an actual overlay mount before starting dockerd and pin the driver
#   explicitly, rather than letting dockerd guess (it silently falls back to vfs,
#   which makes the Docker tier ~10x slower without any error).
set -euo pipefail

STATE="${SLIMBUILD_STATE:-/var/tmp/slimbuild-ci}"
SOCK=/var/run/docker.sock
BASE_IMAGE="${SLIMBUILD_BASE_IMAGE:-slimbuild-test/debian-python:bookworm}"
TIMEOUT="${SLIMBUILD_DOCKERD_TIMEOUT:-60}"
MIRROR="${SLIMBUILD_DEBIAN_MIRROR:-}"
ROOTFS_TAR="$STATE/bookworm-python3.tar"
LOG="$STATE/dockerd.log"

log() { printf 'docker-up: %s\n' "$*" >&2; }
die() { printf 'docker-up: ERROR: %s\n' "$*" >&2; exit 1; }

# Always talk to the local unix socket, whatever DOCKER_HOST/contexts say.
dk() { docker -H "unix://$SOCK" "$@"; }
engine_up() { dk version >/dev/null 2>&1; }

mkdir -p "$STATE"

# ---------------------------------------------------------------- 1. packages
need_pkgs=()
command -v dockerd >/dev/null 2>&1 || need_pkgs+=(docker.io)
command -v debootstrap >/dev/null 2>&1 || need_pkgs+=(debootstrap)
# a real registry for the tests that push and pull by digest (F5); the tests start it on 127.0.0.1 only
command -v docker-registry >/dev/null 2>&1 || need_pkgs+=(docker-registry)
# slimbuild verify runs diffoscope on the layers of a rebuild that differs (its docker tier proves it)
command -v diffoscope >/dev/null 2>&1 || need_pkgs+=(diffoscope-minimal)
# podman's Docker-compatible API is tested as an engine (tests/docker/test_podman_engine.py: its own service and storage)
command -v podman >/dev/null 2>&1 || need_pkgs+=(podman)
# ssh:// engines (tests/docker/ssh_server.py starts a private sshd on 127.0.0.1; the system's is never started)
[ -x /usr/sbin/sshd ] || need_pkgs+=(openssh-server)
command -v ssh >/dev/null 2>&1 || need_pkgs+=(openssh-client)
if [ "${#need_pkgs[@]}" -gt 0 ]; then
    [ "$(id -u)" -eq 0 ] || die "need root to apt-get install ${need_pkgs[*]}"
    log "installing ${need_pkgs[*]} (apt-get)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >"$STATE/apt.log" 2>&1 \
        || { tail -n 20 "$STATE/apt.log" >&2; die "apt-get install ${need_pkgs[*]} failed"; }
    # Debian's package enables a registry service on every interface (:5000) where systemd runs: never leave one
    if [[ " ${need_pkgs[*]} " == *" docker-registry "* ]] && command -v systemctl >/dev/null 2>&1; then
        systemctl disable --now docker-registry >/dev/null 2>&1 || true
    fi
    # likewise the ssh service openssh-server enables: the tests run their own sshd, never the system's
    if [[ " ${need_pkgs[*]} " == *" openssh-server "* ]] && command -v systemctl >/dev/null 2>&1; then
        systemctl disable --now ssh.service ssh.socket >/dev/null 2>&1 || true
    fi
fi
command -v docker >/dev/null 2>&1 || die "no docker CLI on PATH (docker.io should provide /usr/bin/docker)"

# ---------------------------------------------------------------- 2. engine
pick_storage_driver() {
    if [ -n "${SLIMBUILD_STORAGE_DRIVER:-}" ]; then
        echo "$SLIMBUILD_STORAGE_DRIVER"; return
    fi
    # Probe a real overlay mount on the filesystem that will hold /var/lib/docker.
    local d
    mkdir -p /var/lib/docker
    d="$(mktemp -d /var/lib/docker/.ovl-probe.XXXXXX)"
    mkdir -p "$d/l" "$d/u" "$d/w" "$d/m"
    if mount -t overlay overlay -o "lowerdir=$d/l,upperdir=$d/u,workdir=$d/w" "$d/m" 2>/dev/null; then
        umount "$d/m"; rm -rf "$d"; echo overlay2
    else
        rm -rf "$d"; echo vfs
    fi
}

# A live dockerd (a killed one can linger as a zombie until its parent reaps it).
live_dockerd() {
    local p
    for p in $(pgrep -x dockerd 2>/dev/null); do
        grep -q '^State:[[:space:]]*Z' "/proc/$p/status" 2>/dev/null || { echo "$p"; return 0; }
    done
    return 1
}

if ! engine_up; then
    [ "$(id -u)" -eq 0 ] || die "engine not answering on $SOCK and not root: cannot start dockerd"
    if pid="$(live_dockerd)"; then
        log "dockerd already running (pid $pid), waiting for $SOCK"
    else
        driver="$(pick_storage_driver)"
        log "starting dockerd (storage driver $driver), log: $LOG"
        # setsid+nohup: the daemon must outlive this script and its session.
        setsid nohup dockerd --iptables=false --ip6tables=false --bridge=none \
            --storage-driver="$driver" --host="unix://$SOCK" \
            >>"$LOG" 2>&1 </dev/null &
    fi
    deadline=$((SECONDS + TIMEOUT))
    until engine_up; do
        if [ "$SECONDS" -ge "$deadline" ]; then
            log "dockerd did not answer on $SOCK within ${TIMEOUT}s; last lines of $LOG:"
            tail -n 25 "$LOG" >&2 2>/dev/null || true
            die "docker engine failed to start"
        fi
        sleep 0.5
    done
fi

# ---------------------------------------------------------------- 3. base image
if ! dk image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
    if [ ! -s "$ROOTFS_TAR" ]; then
        [ "$(id -u)" -eq 0 ] || die "need root to debootstrap the base image"
        log "debootstrap bookworm minbase + python3 (~45 s)"
        tmp="$(mktemp -d "$STATE/rootfs.XXXXXX")"
        trap 'rm -rf "$tmp"' EXIT
        debootstrap --variant=minbase --include=python3 bookworm "$tmp/root" ${MIRROR:+"$MIRROR"} \
            >"$STATE/debootstrap.log" 2>&1 \
            || { tail -n 20 "$STATE/debootstrap.log" >&2; die "debootstrap failed"; }
        # Drop apt lists/caches (~90 MB) and host-specific leftovers.
        rm -rf "$tmp/root/var/lib/apt/lists/"* "$tmp/root/var/cache/apt/"*.bin \
               "$tmp/root/var/cache/apt/archives/"*.deb "$tmp/root/var/cache/debconf/"*-old \
               "$tmp/root/var/log/"*.log "$tmp/root/var/log/apt/"* "$tmp/root/debootstrap"
        mkdir -p "$tmp/root/var/lib/apt/lists/partial"
        : >"$tmp/root/etc/resolv.conf"
        echo localhost >"$tmp/root/etc/hostname"
        tar --numeric-owner -C "$tmp/root" -cf "$ROOTFS_TAR.part" .
        mv "$ROOTFS_TAR.part" "$ROOTFS_TAR"
        rm -rf "$tmp"; trap - EXIT
    else
        log "re-importing cached rootfs $ROOTFS_TAR"
    fi
    # Mirror the config of the official python:*-slim images (PATH, LANG, CMD).
    dk import \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'ENV LANG=C.UTF-8' \
        --change 'CMD ["/usr/bin/python3"]' \
        - "$BASE_IMAGE" <"$ROOTFS_TAR" >/dev/null
fi

# ---------------------------------------------------------------- 4. summary
printf 'docker-up: engine %s api %s storage %s base %s %s\n' \
    "$(dk version --format '{{.Server.Version}}')" \
    "$(dk version --format '{{.Server.APIVersion}}')" \
    "$(dk info --format '{{.Driver}}')" \
    "$BASE_IMAGE" \
    "$(dk image inspect --format '{{.Id}}' "$BASE_IMAGE")"
