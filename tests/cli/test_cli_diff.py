"""``slimbuild diff`` of manifest files and saved tars, tampered records, and data inputs at build (G12, G13, H6, H7)."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from slimbuild import cli
from slimbuild.record.data import tree_hash
from slimbuild.record.manifest import (
    LABEL_MANIFEST_SHA,
    make_manifest,
    manifest_bytes,
    manifest_labels,
    manifest_sha256,
    with_image,
    write_manifest,
)
from tests.conftest import Run
from tests.constants import FINDINGS, INTEGRITY, OK, USAGE

DIGEST = "sha256:" + "a" * 64


def _manifest(**overrides: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "target": {"python": "3.11", "platform": "linux/amd64"},
        "base_image": {"reference": f"python:3.11-slim@{DIGEST}", "digest_or_id": DIGEST},
        "distributions": [{"name": "six", "version": "1.16.0", "hashes": ["sha256:" + "1" * 64], "required_by": ["six"]}],
        "files": [{"path": "main.py", "sha256": "2" * 64, "size": 10, "kind": "source"}],
        "template": {"name": "slim", "dockerfile_sha256": "e" * 64},
        "source_date_epoch": 1_700_000_000,
        "lock_sha256": "f" * 64,
    }
    fields.update(overrides)
    return with_image(make_manifest(**fields), {"id": DIGEST, "layer_diff_ids": [DIGEST], "size_bytes": 1000})


def _write(path: Path, doc: dict[str, Any]) -> str:
    write_manifest(path, doc)
    return str(path)


def test_G13_diff_of_two_manifest_files_text_json_and_exit_codes(tmp_path: Path, run_cli: Callable[..., Run]) -> None:
    old = _write(tmp_path / "old.json", _manifest())
    same = _write(tmp_path / "same.json", _manifest())
    dists = [{"name": "requests", "version": "2.32.3", "hashes": ["sha256:" + "3" * 64], "required_by": ["requests"]}]
    files = [{"path": "main.py", "sha256": "4" * 64, "size": 11, "kind": "source"}]
    new = _write(tmp_path / "new.json", _manifest(distributions=dists, files=files))
    run = run_cli("diff", old, same)
    assert run.code == OK and ": same" in run.out.splitlines()[0], run.err
    run = run_cli("diff", old, new)
    assert run.code == FINDINGS, run.err
    assert "+ requests 2.32.3" in run.out and "- six 1.16.0" in run.out and "~ main.py (source)" in run.out
    doc = json.loads(run_cli("diff", old, new, "--json").out)
    assert doc["kind"] == "diff" and doc["version"] == 1 and doc["same"] is False
    assert doc["old"] == {"source": old, "form": "manifest"}
    assert doc["distributions"]["added"] == [{"name": "requests", "version": "2.32.3"}]
    assert [f["path"] for f in doc["files"]["changed"]] == ["main.py"]
    assert doc["sizes"]["source"] == "manifests" and doc["sizes"]["total"]["difference"] == 0
    assert json.loads(run_cli("diff", old, same, "--json").out)["same"] is True


def test_G13_volatile_fields_only_with_all(tmp_path: Path, run_cli: Callable[..., Run]) -> None:
    doc = _manifest()
    bigger = with_image(doc, {"id": "sha256:" + "9" * 64, "layer_diff_ids": [DIGEST], "size_bytes": 2000})
    a, b = _write(tmp_path / "a.json", doc), _write(tmp_path / "b.json", bigger)
    assert run_cli("diff", a, b).code == OK
    run = run_cli("diff", a, b, "--all")
    assert run.code == FINDINGS and "image.id" in run.out and "+1.0 kB" in run.out


@pytest.mark.parametrize("missing", ["nope.json", "image.tar", "saved.tar.gz"])
def test_G13_a_missing_file_is_a_usage_error_not_an_image(
    tmp_path: Path, run_cli: Callable[..., Run], monkeypatch: pytest.MonkeyPatch, missing: str
) -> None:
    monkeypatch.setattr(cli, "_connect", lambda: pytest.fail("no engine is needed"))
    run = run_cli("diff", _write(tmp_path / "a.json", _manifest()), str(tmp_path / missing))
    assert run.code == USAGE and "no such file" in run.err and "Traceback" not in run.err


def test_H6_a_manifest_file_edited_after_it_was_written_exits_5(tmp_path: Path, run_cli: Callable[..., Run]) -> None:
    good = _write(tmp_path / "good.json", _manifest())
    edited = tmp_path / "edited.json"
    text = Path(good).read_text(encoding="utf-8").replace('"version": "1.16.0"', '"version": "1.17.0"')
    edited.write_text(text, encoding="utf-8")  # still valid JSON and schema: only its own sha256 tells
    for args in (("diff", good, str(edited)), ("diff", str(edited), good), ("inspect", str(edited))):
        run = run_cli(*args)
        assert run.code == INTEGRITY, (args, run.err)
        assert "does not match the sha256 it carries" in run.err and "Traceback" not in run.err
    plain = tmp_path / "plain.json"  # a manifest without a sha256 of its own (written before there was one)
    plain.write_bytes(manifest_bytes(_manifest()))
    assert run_cli("diff", good, str(plain)).code == OK


def _layer(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _save_tar(path: Path, labels: dict[str, str], layers: list[bytes]) -> str:
    """A docker save tar (legacy layout) of one image with these labels and layers."""
    sha = [hashlib.sha256(layer).hexdigest() for layer in layers]
    config = json.dumps({"config": {"Labels": labels}, "rootfs": {"type": "layers", "diff_ids": [f"sha256:{h}" for h in sha]}})
    config_name = hashlib.sha256(config.encode()).hexdigest() + ".json"
    index = json.dumps([{"Config": config_name, "RepoTags": ["demo:1"], "Layers": [f"{h}/layer.tar" for h in sha]}])
    path.write_bytes(_layer({**{f"{h}/layer.tar": layer for h, layer in zip(sha, layers)}, config_name: config.encode(),
                             "manifest.json": index.encode()}))  # fmt: skip
    return str(path)


def test_H6_a_tar_whose_label_does_not_match_its_manifest_exits_5(tmp_path: Path, run_cli: Callable[..., Run]) -> None:
    keys = {"target", "base_image", "distributions", "files", "template", "source_date_epoch", "lock_sha256"}
    pre = make_manifest(**{k: v for k, v in _manifest().items() if k in keys})  # as embedded: no image yet
    layer = _layer({"app/main.py": b"print(1)\n", "app/.slimbuild/manifest.json": manifest_bytes(pre)})
    saved = _save_tar(tmp_path / "ok.tar", manifest_labels(pre), [_layer({"bin/sh": b"x"}), layer])
    recorded = _write(tmp_path / "m.json", with_image(pre, {"id": DIGEST, "layer_diff_ids": [DIGEST], "size_bytes": 1}))
    run = run_cli("diff", saved, recorded)  # tar vs manifest: differ only in volatile fields and diff ids
    assert run.code == FINDINGS and "image.layer_diff_ids" in run.out and "sizes (from the manifests" in run.out, run.err
    forged = {**manifest_labels(pre), LABEL_MANIFEST_SHA: manifest_sha256({**pre, "lock_sha256": "0" * 64})}
    bad = _save_tar(tmp_path / "bad.tar", forged, [layer])
    run = run_cli("diff", bad, recorded)
    assert run.code == INTEGRITY and "does not match label" in run.err, run.err


def test_G12_build_fails_with_exit_5_when_a_configured_data_sha256_does_not_match(
    project: Callable[[dict[str, str | bytes]], Path], run_cli: Callable[..., Run], monkeypatch: pytest.MonkeyPatch
) -> None:
    wrong = "0" * 64
    root = project({
        "pyproject.toml": f'[tool.slimbuild]\nentrypoint = "main.py"\ninputs = [{{path = "data/raw", sha256 = "{wrong}"}}]\n',
        "main.py": "print(open('data/raw/a.csv').read())\n",
        "data/raw/a.csv": "a,b\n",
    })  # fmt: skip
    monkeypatch.setattr(cli, "_connect", lambda: pytest.fail("the data is checked before any engine"))
    run = run_cli("build", str(root))
    assert run.code == INTEGRITY, run.err
    assert "data/raw" in run.err and wrong in run.err and tree_hash(root / "data" / "raw") in run.err
    assert not (root / "slimbuild.lock").exists()  # failed before the lock
