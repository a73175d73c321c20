"""Secret files by name and secrets by content never reach the build context (B18-B21).

The secret tokens below are put together at run time, so this file holds none of them whole.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from slimbuild.config import load_settings
from slimbuild.errors import ConfigError, PolicyViolation
from slimbuild.image import secrets
from slimbuild.image.context import collect_project_files
from tests.constants import POLICY, USAGE

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

REPO = Path(__file__).resolve().parents[3]

# The names issue 13 found in images (and a few more of the published lists), each under an ordinary directory.
ISSUE_NAMES = (
    "id_dsa", "id_ecdsa", "credentials", "credential.json", "password.txt", "prod.secret", "release.jks",
    "client.pfx", "office.ovpn", "app.private_key", ".git-credentials", "secrets.json", ".kube/config", "kubeconfig",
    "kubeconfig.yaml", "deploy_rsa", "vault.kdbx", ".pgpass", "terraform.tfvars",
)  # fmt: skip
# Names of the issue's list that 2d437a4 already left out (B5): in the property test only.
ALREADY_OUT = ("id_ed25519", "client.p12", ".pypirc", ".npmrc", ".docker/config.json", ".env", ".env.local", "server.pem",
               "tls.key", "id_rsa", ".netrc", "pip.conf")  # fmt: skip
# Names near those that are ordinary code or data and must still ship.
ORDINARY_NAMES = (
    "main.py", "settings.py", "config.json", "credentials_helper.py", "passwords.py", "secret_santa.csv",
    "kubeconfig_tools.py", "keys.py", "environment.yml", "id.txt", "model.pkl", "molecules.sdf", "data.sqlite",
    "docker_config.json", "rsa.py", "README.md",
)  # fmt: skip
ORDINARY_DIRS = ("src", "data", "conf", "credentials", "kube", "docker", "nested")


def _write(root: Path, files: dict[str, str | bytes]) -> Path:
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
    return root


def _names(root: Path, wanted: list[str], **kw: object) -> tuple[list[str], tuple[str, ...]]:
    files, excluded = collect_project_files(root, wanted, **kw)  # type: ignore[arg-type]
    return [f.arcname for f in files], excluded


# ---------------------------------------------------------------- B18 names


@pytest.mark.parametrize("name", ISSUE_NAMES)
def test_B18_issue_13_names_are_left_out_of_an_included_directory_and_refused_when_named(
    tmp_path: Path, name: str
) -> None:
    # beside ordinary names near the secret ones, in a directory named like a secret file (it is walked)
    ordinary = [f"src/credentials/{n}" for n in ORDINARY_NAMES]
    root = _write(tmp_path, {**dict.fromkeys(ordinary, "x = 1\n"), f"conf/{name}": "TOKEN-7f3a\n"})
    names, excluded = _names(root, ["conf", "src"])
    assert names == sorted(ordinary, key=str.encode)
    assert excluded == (f"conf/{name}",)
    with pytest.raises(PolicyViolation) as info:
        collect_project_files(root, [f"conf/{name}"])
    assert info.value.exit_code == POLICY and name in info.value.message


def test_B18_every_rule_names_the_published_list_it_came_from() -> None:
    data = tomllib.loads((REPO / "slimbuild" / "image" / "secret_files.toml").read_text(encoding="utf-8"))
    sources = data["sources"]
    assert {"dockle", "gitleaks", "shhgit"} <= set(sources)
    assert "CIS-DI-0010" in sources["dockle"] and "pkcs12-file" in sources["gitleaks"]
    rules = secrets.name_rules()
    assert len(rules) == len(data["rules"]) and all(r.sources and set(r.sources) <= set(sources) for r in rules)
    by_pattern = {r.pattern: r.sources for r in rules}
    # Dockle's own file names and extensions (CIS-DI-0010) are there, credited to it
    for pattern in ("id_dsa*", "id_ecdsa*", "credentials", "credential.json", "password.txt", "*.secret", "*.jks",
                    "*.ovpn", "*.private_key"):  # fmt: skip
        assert "dockle" in by_pattern[pattern], pattern
    assert "gitleaks" in by_pattern["*.pfx"] and "shhgit" in by_pattern[".git-credentials"]


_SECRET_FILES = st.sampled_from((*ISSUE_NAMES, *ALREADY_OUT))


@st.composite
def _case_variant(draw: st.DrawFn, name: str) -> str:
    flips = draw(st.lists(st.booleans(), min_size=len(name), max_size=len(name)))
    return "".join(c.upper() if flip else c for c, flip in zip(name, flips))


@st.composite
def _tree(draw: st.DrawFn) -> dict[str, bool]:
    """{relative path: is it a secret}: ordinary and secret names (in any case) in nested ordinary directories."""
    tree: dict[str, bool] = {}
    for _ in range(draw(st.integers(1, 12))):
        parts = draw(st.lists(st.sampled_from(ORDINARY_DIRS), max_size=3))
        secret = draw(st.booleans())
        base = draw(_SECRET_FILES) if secret else draw(st.sampled_from(ORDINARY_NAMES))
        tree["/".join([*parts, draw(_case_variant(base))])] = secret
    # a path that is also a directory of another path cannot be a file
    dirs = {"/".join(p.split("/")[:i]) for p in tree for i in range(1, p.count("/") + 1)}
    return {p: s for p, s in tree.items() if p not in dirs}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(_tree())
def test_B18_property_exactly_the_secret_names_are_refused(
    tmp_path_factory: pytest.TempPathFactory, tree: dict[str, bool]
) -> None:
    root = _write(tmp_path_factory.mktemp("tree"), {p: "v = 1\n" for p in tree})
    names, excluded = _names(root, ["."])
    assert set(names) == {p for p, secret in tree.items() if not secret}
    # a secret file is named in what was left out, either itself or by the directory it sits in (.docker, .kube)
    for path in (p for p, secret in tree.items() if secret):
        assert any(path == e or path.startswith(e) for e in excluded), (path, excluded)
        with pytest.raises(PolicyViolation):
            collect_project_files(root, [path])


# ---------------------------------------------------------------- B19 contents

_AWS = "AKIA" + "IOSFODNN7" + "EXAMPLE"
_GITHUB = "ghp_" + "a1B2c3D4e5F6g7H8i9J0" + "k1L2m3N4o5P6q7R8"
_SLACK = "xoxb-" + "123456789012-1234567890123-" + "AbCdEfGhIjKlMnOpQrStUvWx"
_KEY = "-----BEGIN " + "RSA PRIVATE KEY-----\nMIIEow...\n-----END RSA PRIVATE KEY-----\n"
_SERVICE_ACCOUNT = json.dumps(
    {"type": "service_account", "project_id": "p", "private_key_id": "0" * 40,
     "private_key": "-----BEGIN " + "PRIVATE KEY-----\\nMIIE\\n-----END PRIVATE KEY-----\\n", "client_email": "a@p.iam"},
    indent=2,
)  # fmt: skip


_KUBECONFIG = (
    "apiVersion: v1\nkind: Config\nclusters:\n- cluster: {server: 'https://10.0.0.1'}\n  name: c\nusers:\n- name: u\n"
    "  user:\n    token: " + "eyJhbGciOi" + "JSUzI1NiJ9x\n"
)
_KUBE_LINE = 9


@pytest.mark.parametrize(
    ("text", "rule"),
    [
        (f'AWS_KEY = "{_AWS}"\n', "AWSKeyDetector"),
        (f'headers = {{"Authorization": "token {_GITHUB}"}}\n', "GitHubTokenDetector"),
        (f"SLACK = '{_SLACK}'\n", "SlackDetector"),
        (_KEY, "PrivateKeyDetector"),
        (_SERVICE_ACCOUNT, "service-account JSON"),
        (_KUBECONFIG, "kubeconfig credentials"),
    ],
    ids=["aws", "github", "slack", "private-key", "service-account", "kubeconfig"],
)
def test_B19_a_secret_in_a_shipped_file_is_exit_10_naming_file_line_and_rule(text: str, rule: str) -> None:
    body = text if text.startswith(("{", "apiVersion")) else "# config\n\n" + text  # a document is the whole file
    entries = [("analysis/ok.py", None, b"x = 1\n"), ("analysis/settings_local.py", None, body.encode())]
    with pytest.raises(PolicyViolation) as info:
        secrets.check_contents(entries)
    err = info.value
    assert err.exit_code == POLICY
    line = {"service-account JSON": 1, "kubeconfig credentials": _KUBE_LINE}.get(rule, 3)
    assert err.message.startswith(f"analysis/settings_local.py:{line}: ") and rule in err.message
    assert "allow-secrets" in err.hint and "ok.py" not in err.message


def test_B19_the_scan_reads_source_files_bounded_and_skips_binaries(tmp_path: Path) -> None:
    limit = secrets._max_bytes()
    root = _write(
        tmp_path,
        {
            "small.txt": f"k={_AWS}\n",
            "blob.bin": b"\x00\x01" + f"k={_AWS}\n".encode(),  # a NUL in the first block: binary, not read
            "big.csv": "a,b\n" * (limit // 4) + f"k,{_AWS}\n",  # over the bound: not read
        },
    )
    found = secrets.scan_contents((p, root / p, None) for p in ("small.txt", "blob.bin", "big.csv"))
    assert [(f.path, f.line) for f in found] == [("small.txt", 1)]


def test_B19_documents_near_the_credential_shapes_are_not_findings() -> None:
    near = {
        "conf/kube.yaml": "apiVersion: v1\nkind: Config\nusers:\n- name: u\n  user:\n    token:\n",  # no value
        "conf/app.yaml": "kind: Deployment\ntoken: abc\n",  # a token key, but no kubeconfig
        "conf/sa.json": json.dumps({"type": "service_account", "client_email": "a@p.iam"}),  # no private key
        "conf/other.json": json.dumps({"type": "user", "private_key": "x"}),
        "train.py": 'API_URL = "https://api.example.com/v1"\npassword = os.environ["DB_PASSWORD"]\n',
    }
    assert secrets.scan_contents((p, None, t.encode()) for p, t in near.items()) == ()


def test_B19_the_examples_and_ordinary_code_have_no_finding() -> None:
    for example in ("kitchen-sink", "notebook", "src-package"):
        root = REPO / "examples" / example
        files, _ = collect_project_files(root, ["."])
        assert secrets.scan_contents((f.arcname, f.source, f.data) for f in files) == (), example


# ---------------------------------------------------------------- B20 allow-list


def test_B20_allow_secrets_lets_a_false_positive_through_by_name_and_by_content(tmp_path: Path) -> None:
    root = _write(
        tmp_path,
        {
            "pyproject.toml": '[tool.slimbuild]\nallow-secrets = ["fixtures/*.pem", "docs/example.py"]\n',
            "fixtures/test.pem": "-----BEGIN " + "PRIVATE KEY-----\n",
            "fixtures/other.key": "k\n",
            "docs/example.py": f'EXAMPLE = "{_AWS}"\n',
            ".git/config": "[core]\n",
        },
    )
    allow = secrets.allow_spec(load_settings(root).allow_secrets)
    names, excluded = _names(root, ["."], allow=allow)
    assert names == ["docs/example.py", "fixtures/test.pem", "pyproject.toml"]
    assert excluded == (".git/", "fixtures/other.key")
    assert secrets.scan_contents(((n, root / n, None) for n in names), allow) == ()
    with pytest.raises(PolicyViolation, match=r"^docs/example\.py:1: AWS Access Key .*; also in fixtures/test\.pem$"):
        secrets.check_contents((n, root / n, None) for n in names)  # without the allow-list
    never = secrets.allow_spec([".git/**", ".git"])
    assert _names(root, ["."], allow=never)[1][0] == ".git/"  # never-ship rules yield to no allow-list


@pytest.mark.parametrize("value", ['"fixtures/*.pem"', '["", "x"]', '["!x"]', "3"])
def test_B20_allow_secrets_takes_a_list_of_globs(tmp_path: Path, value: str) -> None:
    root = _write(tmp_path, {"pyproject.toml": f"[tool.slimbuild]\nallow-secrets = {value}\n"})
    good = _write(tmp_path / "good", {"pyproject.toml": '[tool.slimbuild]\nallow-secrets = ["fixtures/*.pem"]\n'})
    assert load_settings(good).allow_secrets == ("fixtures/*.pem",)
    with pytest.raises(ConfigError) as info:  # a bare string is refused like every list setting's (A55)
        secrets.allow_spec(load_settings(root).allow_secrets)
    assert info.value.exit_code == USAGE and "allow-secrets" in info.value.message


# ---------------------------------------------------------------- B21 links to secrets


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="no symlinks")
def test_B21_a_link_to_a_secret_inside_an_included_directory_is_named_and_never_followed(tmp_path: Path) -> None:
    root = _write(tmp_path, {".env": "TOKEN=s3cr3t\n", ".ssh/id_rsa": "k\n", "conf/app.toml": "x = 1\n"})
    (root / "conf" / "settings.txt").symlink_to("../.env")
    (root / "conf" / "keys").symlink_to("../.ssh", target_is_directory=True)
    skipped: list[tuple[str, str]] = []
    names, excluded = _names(root, ["conf"], on_skip=lambda name, reason: skipped.append((name, reason)))
    assert names == ["conf/app.toml"]
    assert excluded == ("conf/keys/", "conf/settings.txt")
    assert skipped == [
        ("conf/keys", "symlink to the sensitive directory .ssh: left out, not followed"),
        ("conf/settings.txt", "symlink to the sensitive file .env: left out, not followed"),
    ]
