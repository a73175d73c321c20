"""Finish a venv where it lies (``slimbuild-stage.py --in-place``): what ``stage_venv.stage`` and the clamp do for
/stage, done in the container's own / instead. Runs *inside* the image (standard library only, Python 3.8+),
shipped beside slimbuild-stage.py, like stage_prune.py.

The container is committed as the venv image (image/engine_commit.py), so everything this leaves is its layer:
the venv, the app user's passwd and group lines, /app, and the directories holding them (/opt, /etc),
every mtime at ``epoch``; the work dir the venv was made from is removed first.
"""

from __future__ import annotations

import os
import shutil


def _clamp(path: str, epoch: int) -> None:
    os.utime(path, (epoch, epoch), follow_symlinks=False)


def clamp_tree(root: str, epoch: int) -> None:
    """Every entry under root (root included, links not followed) at epoch."""
    _clamp(root, epoch)
    for dirpath, dirnames, filenames in os.walk(root):
        for name in (*dirnames, *filenames):
            _clamp(os.path.join(dirpath, name), epoch)


def finish_in_place(venv: str, uid: int, epoch: int, work: str, *, etc: str = "/etc", app: str = "/app") -> None:
    """Append the runtime uid's passwd and group lines in ``etc`` (as ``stage(passwd="copy")`` does), create
    ``app``, remove ``work`` and clamp the venv, ``app``, the two files and the directories that changed."""
    for name, line in (("passwd", f"app:x:{uid}:{uid}:app:/app:/usr/sbin/nologin\n"), ("group", f"app:x:{uid}:\n")):
        with open(os.path.join(etc, name), "a", encoding="utf-8") as fh:
            fh.write(line)
        _clamp(os.path.join(etc, name), epoch)
    os.makedirs(app, exist_ok=True)
    clamp_tree(venv, epoch)
    clamp_tree(app, epoch)
    shutil.rmtree(work)
    for directory in sorted({os.path.dirname(venv.rstrip("/")), etc, os.path.dirname(work.rstrip("/"))}):
        _clamp(directory, epoch)
