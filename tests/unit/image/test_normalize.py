"""The config normaliser (image/normalize.py): identical inputs give identical config bytes (G4 image id)."""

from __future__ import annotations

import io
import json
import tarfile
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from slimbuild.errors import BuildFailed
from slimbuild.image.normalize import config_digest, config_from_save, load_tar, makes_layer, normalized_config, rfc3339

EPOCH = 1_700_000_000
BASE_DIFF = "sha256:" + "1" * 64
VENV_DIFF = "sha256:" + "2" * 64
APP_DIFF = "sha256:" + "3" * 64
BASE_CONFIG: dict[str, Any] = {
    "architecture": "amd64",
    "os": "linux",
    "created": "2024-01-01T00:00:00Z",
    "history": [{"created": "2024-01-01T00:00:00Z", "comment": "Imported from -"}],
    "rootfs": {"type": "layers", "diff_ids": [BASE_DIFF]},
    "container": "abc",
}


def _inspect(created: str = "2026-12-04T17:59:30.1Z", container: str = "e067") -> dict[str, Any]:
    return {
        "Architecture": "amd64",
        "Os": "linux",
        "Created": created,
        "Container": container,
        "ContainerConfig": {"Hostname": container[:12]},
        "DockerVersion": "20.10.24",
        "Config": {
            "Image": f"sha256:{container}",
            "User": "10001:10001",
            "Env": ["PATH=/opt/venv/bin"],
            "Labels": {"a": "b"},
            "Entrypoint": ["python"],
        },
        "RootFS": {"Type": "layers", "Layers": [BASE_DIFF, VENV_DIFF, APP_DIFF]},
    }


def _history(t: int = 1_796_407_170) -> list[dict[str, Any]]:
    """Newest first, as the engine answers: base, COPY venv, ENV, WORKDIR, COPY app, LABEL, USER."""
    oldest_first = [
        {"Id": "sha256:base", "CreatedBy": "", "Comment": "Imported from -", "Created": 1},
        {"Id": "<missing>", "CreatedBy": "/bin/sh -c #(nop) COPY dir:aa in / ", "Created": t},
        {"Id": "<missing>", "CreatedBy": "/bin/sh -c #(nop)  ENV PATH=/opt/venv/bin", "Created": t + 1},
        {"Id": "<missing>", "CreatedBy": "/bin/sh -c #(nop) WORKDIR /app", "Created": t + 2},
        {"Id": "<missing>", "CreatedBy": "/bin/sh -c #(nop) COPY dir:bb in / ", "Created": t + 3},
        {"Id": "<missing>", "CreatedBy": "/bin/sh -c #(nop)  LABEL a=b", "Created": t + 4},
        {"Id": "sha256:top", "CreatedBy": "/bin/sh -c #(nop)  USER 10001:10001", "Created": t + 5},
    ]
    return list(reversed(oldest_first))


def test_G4_two_builds_with_other_times_and_containers_get_the_same_config_bytes() -> None:
    first = normalized_config(_inspect(), _history(), BASE_CONFIG, EPOCH)
    second = normalized_config(_inspect("2027-01-01T00:00:00Z", "ffff0000"), _history(1_900_000_000), BASE_CONFIG, EPOCH)
    assert first == second
    assert config_digest(first) == config_digest(second)


def test_G4_the_normalised_config_keeps_what_the_image_is_and_drops_the_build_run() -> None:
    doc = json.loads(normalized_config(_inspect(), _history(), BASE_CONFIG, EPOCH))
    assert set(doc) == {"architecture", "os", "config", "created", "history", "rootfs"}  # no container, docker_version
    assert doc["created"] == rfc3339(EPOCH) == "2023-11-14T22:13:20Z"
    assert doc["rootfs"] == {"type": "layers", "diff_ids": [BASE_DIFF, VENV_DIFF, APP_DIFF]}
    assert doc["config"]["User"] == "10001:10001" and doc["config"]["Labels"] == {"a": "b"}
    assert doc["config"]["Image"] == ""  # the builder's intermediate image, another one every build
    assert doc["history"][0] == BASE_CONFIG["history"][0]  # the base's own history, as it is
    assert [h["created"] for h in doc["history"][1:]] == [rfc3339(EPOCH)] * 6
    assert [bool(h.get("empty_layer")) for h in doc["history"][1:]] == [False, True, True, False, True, True]


def test_G2_the_epoch_is_in_the_config_and_another_epoch_another_id() -> None:
    assert config_digest(normalized_config(_inspect(), _history(), BASE_CONFIG, EPOCH)) != config_digest(
        normalized_config(_inspect(), _history(), BASE_CONFIG, EPOCH + 1)
    )


def test_G4_a_history_whose_layers_do_not_add_up_is_refused() -> None:
    history = _history()
    history[2] = {**history[2], "CreatedBy": "/bin/sh -c #(nop)  ENV X=1"}  # the app COPY no longer makes a layer
    with pytest.raises(BuildFailed, match="2 history entries made layers, the image has 3"):
        normalized_config(_inspect(), history, {**BASE_CONFIG, "history": [BASE_CONFIG["history"][0]]}, EPOCH)


def test_G4_a_history_shorter_than_the_base_is_refused() -> None:
    with pytest.raises(BuildFailed, match="shorter than its base"):
        normalized_config(_inspect(), _history()[:0], BASE_CONFIG, EPOCH)


@pytest.mark.parametrize(
    ("created_by", "layer"),
    [
        ("/bin/sh -c #(nop) COPY dir:x in / ", True),
        ("/bin/sh -c #(nop) ADD file:x in / ", True),
        ("/bin/sh -eu -c PY=python3; $PY -m venv /opt/venv", True),  # RUN, under a SHELL of the template's
        ("|1 SOURCE_DATE_EPOCH=1 /bin/sh -eu -c true", True),  # RUN with a build arg
        ("/bin/sh -c #(nop)  ENV A=1", False),
        ("/bin/sh -c #(nop) WORKDIR /app", False),
        ("/bin/sh -c #(nop)  USER 1:1", False),
        ("/bin/sh -c #(nop)  ENTRYPOINT [\"python\"]", False),
        ("/bin/sh -c #(nop)  ARG SOURCE_DATE_EPOCH=1", False),
    ],
)
def test_G4_which_history_entries_made_a_layer(created_by: str, layer: bool) -> None:
    assert makes_layer(created_by) is layer


@given(st.lists(st.sampled_from([VENV_DIFF, APP_DIFF, BASE_DIFF]), min_size=1, max_size=5))
def test_G4_the_load_tar_holds_the_config_under_its_digest_and_names_every_layer(diff_ids: list[str]) -> None:
    config = b'{"a":1}'
    data = load_tar(config, diff_ids)
    assert data == load_tar(config, diff_ids)  # the same bytes every time
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        names = tar.getnames()
        manifest = json.loads(tar.extractfile("manifest.json").read())  # type: ignore[union-attr]
        assert all(m.mtime == 0 and m.uid == 0 for m in tar.getmembers())
    hex_id = config_digest(config).split(":")[1]
    assert names == [f"{hex_id}.json", "manifest.json"]  # no layer bytes: the engine has them
    assert manifest[0]["Config"] == f"{hex_id}.json"
    assert manifest[0]["Layers"] == [f"{d.split(':')[1]}/layer.tar" for d in diff_ids]


def _save_tar(members: dict[str, bytes]) -> list[bytes]:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    raw = buf.getvalue()
    return [raw[i : i + 1000] for i in range(0, len(raw), 1000)]  # in chunks, as the engine streams it


def test_G4_the_base_config_is_read_from_a_save_stream_past_its_layers() -> None:
    config = json.dumps(BASE_CONFIG).encode()
    chunks = _save_tar({"aa/layer.tar": b"x" * 5000, "c0ffee.json": config, "manifest.json": b'[{"Config":"c0ffee.json"}]'})
    assert config_from_save(chunks) == BASE_CONFIG


@pytest.mark.parametrize(
    "members",
    [
        {"aa/layer.tar": b"x"},  # no manifest
        {"manifest.json": b"[]"},  # no image in it
        {"manifest.json": b'[{"Config":"c.json"}]'},  # the config is missing
        {"manifest.json": b'[{"Config":"c.json"}]', "c.json": b"[1]"},  # not an object
        {"manifest.json": b"not json"},
    ],
)
def test_E4_a_save_stream_without_a_readable_config_is_a_build_error(members: dict[str, bytes]) -> None:
    with pytest.raises(BuildFailed, match="cannot read the base image's config"):
        config_from_save(_save_tar(members))
