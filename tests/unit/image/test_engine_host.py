"""M10: which engine connect() talks to, resolved from fake environments and a fake Docker config dir as the CLI does."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from slimbuild.errors import EngineUnavailable
from slimbuild.image.engine import _client_kwargs
from slimbuild.image.engine_host import DEFAULT_HOST, EngineHost, TLSFiles, resolve_host, ssh_command
from tests.constants import ENGINE


def _context(config: Path, name: str, host: str, *, skip: bool = False, tls: tuple[str, ...] = ()) -> Path:
    """A context as ``docker context create`` stores it (meta by sha256 of the name; TLS files beside)."""
    ident = hashlib.sha256(name.encode()).hexdigest()
    meta = config / "contexts" / "meta" / ident / "meta.json"
    meta.parent.mkdir(parents=True)
    doc = {"Name": name, "Metadata": {}, "Endpoints": {"docker": {"Host": host, "SkipTLSVerify": skip}}}
    meta.write_text(json.dumps(doc), encoding="utf-8")
    tls_dir = config / "contexts" / "tls" / ident / "docker"
    for file in tls:
        tls_dir.mkdir(parents=True, exist_ok=True)
        (tls_dir / file).write_text("PEM\n", encoding="utf-8")
    return tls_dir


def _use(config: Path, name: str) -> None:
    config.mkdir(parents=True, exist_ok=True)
    (config / "config.json").write_text(json.dumps({"currentContext": name}), encoding="utf-8")


def _certs(path: Path, *files: str) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    for file in files:
        (path / file).write_text("PEM\n", encoding="utf-8")
    return path


def test_M10_no_settings_is_the_default_socket(tmp_path: Path) -> None:
    assert resolve_host({"HOME": str(tmp_path)}) == EngineHost(DEFAULT_HOST, "default")


def test_M10_docker_host_wins_over_docker_context_and_current_context(tmp_path: Path) -> None:
    config = tmp_path / "cfg"
    _context(config, "remote", "tcp://10.0.0.1:2376")
    _use(config, "remote")
    env = {"DOCKER_CONFIG": str(config), "DOCKER_HOST": "tcp://127.0.0.1:2375", "DOCKER_CONTEXT": "remote"}
    assert resolve_host(env) == EngineHost("tcp://127.0.0.1:2375", "DOCKER_HOST")


def test_M10_docker_context_wins_over_current_context(tmp_path: Path) -> None:
    config = tmp_path / "cfg"
    _context(config, "one", "tcp://10.0.0.1:2375")
    _context(config, "two", "ssh://builder@build-host")
    _use(config, "one")
    assert resolve_host({"DOCKER_CONFIG": str(config)}) == EngineHost("tcp://10.0.0.1:2375", "context one")
    chosen = resolve_host({"DOCKER_CONFIG": str(config), "DOCKER_CONTEXT": "two"})
    assert chosen == EngineHost("ssh://builder@build-host", "context two") and chosen.ssh


def test_M10_current_context_in_home_docker_and_default_by_name(tmp_path: Path) -> None:
    config = tmp_path / ".docker"
    _context(config, "remote", "tcp://10.0.0.1:2375")
    _use(config, "remote")
    assert resolve_host({"HOME": str(tmp_path)}).url == "tcp://10.0.0.1:2375"
    assert resolve_host({"HOME": str(tmp_path), "DOCKER_CONTEXT": "default"}) == EngineHost(DEFAULT_HOST, "DOCKER_CONTEXT")


@pytest.mark.parametrize("via", ["DOCKER_CONTEXT", "config.json"])
def test_M10_a_missing_context_is_exit_6_never_the_default_socket(tmp_path: Path, via: str) -> None:
    config = tmp_path / "cfg"
    env = {"DOCKER_CONFIG": str(config)}
    if via == "DOCKER_CONTEXT":
        env["DOCKER_CONTEXT"] = "gone"
    else:
        _use(config, "gone")
    with pytest.raises(EngineUnavailable) as info:
        resolve_host(env)
    assert info.value.exit_code == ENGINE
    assert "Docker context 'gone'" in info.value.message and "not found" in info.value.message
    assert "docker context ls" in info.value.hint


def test_M10_an_unreadable_config_file_is_the_default_context(tmp_path: Path) -> None:
    config = _certs(tmp_path / "cfg")
    (config / "config.json").write_text("{not json", encoding="utf-8")
    assert resolve_host({"DOCKER_CONFIG": str(config)}).url == DEFAULT_HOST


def test_M10_tls_verify_uses_the_cert_path_files(tmp_path: Path) -> None:
    certs = _certs(tmp_path / "certs", "ca.pem", "cert.pem", "key.pem")
    env = {"DOCKER_HOST": "tcp://h:2376", "DOCKER_TLS_VERIFY": "1", "DOCKER_CERT_PATH": str(certs)}
    host = resolve_host(env)
    assert host.tls == TLSFiles(True, str(certs / "ca.pem"), str(certs / "cert.pem"), str(certs / "key.pem"))
    tls = _client_kwargs(host)["tls"]
    assert (
        tls.verify is True
        and tls.ca_cert == str(certs / "ca.pem")
        and tls.cert == (str(certs / "cert.pem"), str(certs / "key.pem"))
    )


def test_M10_any_non_empty_tls_verify_counts_and_empty_does_not(tmp_path: Path) -> None:
    certs = _certs(tmp_path / "certs", "ca.pem")
    base = {"DOCKER_HOST": "tcp://h:2376", "DOCKER_CERT_PATH": str(certs)}
    assert resolve_host({**base, "DOCKER_TLS_VERIFY": "0"}).tls == TLSFiles(True, str(certs / "ca.pem"))
    assert resolve_host({**base, "DOCKER_TLS_VERIFY": ""}).tls is None


def test_M10_cert_path_alone_does_not_turn_tls_on_and_docker_tls_skips_verification(tmp_path: Path) -> None:
    certs = _certs(tmp_path / "certs", "ca.pem", "cert.pem", "key.pem")
    base = {"DOCKER_HOST": "tcp://h:2376", "DOCKER_CERT_PATH": str(certs)}
    assert resolve_host(base).tls is None  # docker-py's kwargs_from_env would turn TLS on here; the CLI does not
    host = resolve_host({**base, "DOCKER_TLS": "1"})
    assert host.tls == TLSFiles(False, None, str(certs / "cert.pem"), str(certs / "key.pem"))
    assert _client_kwargs(host)["tls"].verify is False


def test_M10_default_cert_path_is_the_config_dir_and_client_cert_is_optional(tmp_path: Path) -> None:
    config = _certs(tmp_path / "cfg", "ca.pem")
    host = resolve_host({"DOCKER_HOST": "tcp://h:2376", "DOCKER_TLS_VERIFY": "1", "DOCKER_CONFIG": str(config)})
    assert host.tls == TLSFiles(True, str(config / "ca.pem"))
    assert _client_kwargs(host)["tls"].cert is None


def test_M10_tls_verify_without_a_ca_or_with_half_a_client_pair_is_exit_6(tmp_path: Path) -> None:
    empty = _certs(tmp_path / "empty")
    with pytest.raises(EngineUnavailable) as info:
        resolve_host({"DOCKER_HOST": "tcp://h:2376", "DOCKER_TLS_VERIFY": "1", "DOCKER_CERT_PATH": str(empty)})
    assert info.value.exit_code == ENGINE and "tcp://h:2376" in info.value.message and "ca.pem" in info.value.message
    half = _certs(tmp_path / "half", "ca.pem", "cert.pem")
    with pytest.raises(EngineUnavailable, match=r"has no partner .*key\.pem"):
        resolve_host({"DOCKER_HOST": "tcp://h:2376", "DOCKER_TLS_VERIFY": "1", "DOCKER_CERT_PATH": str(half)})


def test_M10_context_tls_files_and_skip_verify(tmp_path: Path) -> None:
    config = tmp_path / "cfg"
    tls_dir = _context(config, "secure", "tcp://h:2376", tls=("ca.pem", "cert.pem", "key.pem"))
    _context(config, "insecure", "tcp://h:2376", skip=True)
    _context(config, "plain", "tcp://h:2375")
    secure = resolve_host({"DOCKER_CONFIG": str(config), "DOCKER_CONTEXT": "secure"})
    assert secure.tls == TLSFiles(True, str(tls_dir / "ca.pem"), str(tls_dir / "cert.pem"), str(tls_dir / "key.pem"))
    assert resolve_host({"DOCKER_CONFIG": str(config), "DOCKER_CONTEXT": "insecure"}).tls == TLSFiles(False)
    assert resolve_host({"DOCKER_CONFIG": str(config), "DOCKER_CONTEXT": "plain"}).tls is None


def test_M10_ssh_hosts_go_through_the_ssh_binary_like_the_cli() -> None:
    """The docker CLI's connhelper (28.x): ssh -l USER -p PORT -o ConnectTimeout=30 -T -- HOST 'docker system dial-stdio'."""
    host = resolve_host({"DOCKER_HOST": "ssh://builder@build-host:2222"})
    assert host.ssh and ssh_command(host.url) == (
        "ssh", "-l", "builder", "-p", "2222", "-o ConnectTimeout=30", "-T", "--", "build-host", "docker system dial-stdio"
    )  # fmt: skip
    plain = ("ssh", "-o ConnectTimeout=30", "-T", "--", "build-host", "docker system dial-stdio")
    assert ssh_command("ssh://build-host") == plain
    socket_path = "/run/user/1000/docker.sock"
    assert ssh_command(f"ssh://h{socket_path}")[-1] == f"docker --host=unix://{socket_path} system dial-stdio"
    bad_urls = [("ssh://u:pw@h", "password"), ("ssh://", "hostname is empty"), ("ssh://h?x=1", "query"), ("ssh://h:port", "port")]
    for bad, why in bad_urls:
        with pytest.raises(EngineUnavailable, match=why) as info:
            ssh_command(bad)
        assert "pw" not in info.value.message
    assert "use_ssh_client" not in _client_kwargs(host)


def test_M10_context_without_a_docker_endpoint_is_exit_6(tmp_path: Path) -> None:
    config = tmp_path / "cfg"
    _context(config, "odd", "")
    with pytest.raises(EngineUnavailable, match="no docker endpoint host"):
        resolve_host({"DOCKER_CONFIG": str(config), "DOCKER_CONTEXT": "odd"})
