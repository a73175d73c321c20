"""Credentials in requirement URLs never printed or recorded: one redaction at every output edge (B16)."""

from __future__ import annotations

import io
import json
import tempfile
from collections.abc import Callable
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from types import SimpleNamespace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from slimbuild import cli
from slimbuild.cli import main
from slimbuild.errors import PolicyViolation
from slimbuild.image.dockerfile import validate_dockerfile
from slimbuild.locking.lockfile import render_lock_text
from slimbuild.locking.target import Target
from slimbuild.record import manifest
from slimbuild.redact import redact
from tests.conftest import Run
from tests.constants import INTERNAL, RESOLUTION, USAGE

CLI = Callable[..., Run]
# A digest reference: `dockerfile` then needs no engine to resolve the base.
BASE = "slimbuild-test/debian-python:bookworm@sha256:" + "0" * 64

# A credential as pip takes it: unreserved characters and percent-escapes; a password may hold ':' and '@'.
_UNRESERVED = st.text("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~!$'()*+,;=", min_size=1, max_size=12)
_PART = st.lists(st.one_of(_UNRESERVED, st.sampled_from(["%40", "%2F", "%3A", "%25"])), min_size=1, max_size=3).map("".join)
_HOST = st.sampled_from(["pypi.example.com", "127.0.0.1:8443", "git.corp.internal", "[::1]:9000", "h"])
_SECRET_KEY = st.sampled_from(["token", "access_token", "private_token", "X-Amz-Signature", "api_key", "password", "sig"])

# Every URL form a requirement line takes (pip's own and PEP 508's); the credential goes where {secret} is.
_FORMS = (
    "six @ https://{user}:{secret}@{host}/pkgs/six-1.16.0-py2.py3-none-any.whl",
    "six @ https://{secret}@{host}/pkgs/six-1.16.0-py2.py3-none-any.whl",
    "https://{user}:{secret}@{host}/pkgs/six-1.16.0-py2.py3-none-any.whl",
    "https://{host}/pkgs/six-1.16.0-py2.py3-none-any.whl?{key}={secret}",
    "https://{host}/pkgs/six.whl?page=2&{key}={secret}#sha256=abc",
    "git+https://{user}:{secret}@{host}/o/r.git#egg=six",
    "git+https://{secret}@{host}/o/r.git@v1.0#egg=six",
    "git+ssh://{user}:{secret}@{host}/o/r.git",
    "hg+https://{user}:{secret}@{host}/r",
    "svn+https://{secret}@{host}/r/trunk",
    "-e git+https://{user}:{secret}@{host}/o/r.git#egg=six",
    "--editable git+https://{secret}@{host}/o/r.git#egg=six",
    "-e git+https://{host}/o/r.git?{key}={secret}#egg=six",
    "six @ git+https://{user}:{secret}@{host}/o/r.git@main",
)


@st.composite
def _lines(draw: st.DrawFn) -> tuple[str, str]:
    """A requirement line with a credential in one URL form, and the credential."""
    secret = "SNTL" + draw(_PART)  # a fixed prefix: a cut credential would still show it
    form = draw(st.sampled_from(_FORMS))
    line = form.format(user=draw(_PART), host=draw(_HOST), key=draw(_SECRET_KEY), secret=secret)
    return line, secret


def _run(*args: str) -> Run:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(list(args))
    return Run(code, out.getvalue(), err.getvalue())


@settings(max_examples=300, deadline=None)
@given(_lines(), st.sampled_from(["{}", "see {} (x)", "'{}'", '["{}"]', "Looking in indexes: {}, https://x.org/s"]))
def test_B16_redact_masks_every_url_form_in_text_and_json_values(case: tuple[str, str], frame: str) -> None:
    line, _ = case
    text = frame.format(line)
    assert "SNTL" not in redact(text)
    assert redact(redact(text)) == redact(text)  # idempotent: edges may stack
    value = {"message": text, "items": [text, (text, 1)], text: None, "n": 3}
    assert "SNTL" not in json.dumps(redact(value))
    assert redact(value)["n"] == 3


@pytest.mark.parametrize(
    "text",
    ["https://pypi.org/simple", "six==1.16.0 --hash=sha256:ab", "user@example.com", "a.py:3:1: SB001 'six'", "x?page=2"],
)
def test_B16_redact_leaves_text_without_credentials_alone(text: str) -> None:
    assert redact(text) == text


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_lines())
def test_B16_lock_dockerfile_and_build_never_print_a_requirement_url_credential(case: tuple[str, str]) -> None:
    line, _ = case
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "main.py").write_text("import six\n")
        (root / "requirements.txt").write_text(f"six\n{line}\n")
        for command in (["lock"], ["dockerfile", "--base-image", BASE], ["build", "--base-image", BASE]):
            for as_json in ([], ["--json"]):
                run = _run(*command, str(root), *as_json)
                assert run.code == RESOLUTION, (command, run.err)  # C8: a URL requirement cannot be hash-locked
                assert "cannot hash-lock" in run.err
                assert "SNTL" not in run.out + run.err, (command, as_json, run.out, run.err)
                if as_json:
                    assert "SNTL" not in json.loads(run.out)["error"]["message"]
        assert not (root / "slimbuild.lock").exists()


def test_B16_internal_errors_and_debug_tracebacks_are_masked(monkeypatch: pytest.MonkeyPatch, project: Callable) -> None:  # type: ignore[type-arg]
    from slimbuild import pipeline

    def boom(*_a: object, **_k: object) -> None:
        raise RuntimeError("fetch https://user:SNTL-int@pypi.example.com/simple/six/ failed")

    monkeypatch.setattr(pipeline, "lock", boom)
    root = project({"main.py": "import six\n", "requirements.txt": "six\n"})
    for args in (["lock", str(root)], ["lock", str(root), "--json"], ["--debug", "lock", str(root)]):
        run = _run(*args)
        assert run.code == INTERNAL
        assert "SNTL" not in run.out + run.err and "https://***@pypi.example.com" in run.out + run.err
    assert "Traceback" in run.err  # --debug still shows where, masked


def test_B16_click_usage_errors_are_masked() -> None:
    run = _run("analyze", "https://user:SNTL-usage@host.example/x")  # PATH must exist: its error names the value
    assert run.code == USAGE
    assert "SNTL" not in run.err and "***@host.example/x" in run.err  # pathlib made it https:/...
    run = _run("lock", ".", "--upgrade-package", "https://SNTL-opt@host.example/x", "--bogus")
    assert run.code == USAGE and "SNTL" not in run.err


def test_B16_a_progress_line_is_masked_before_it_is_cut(capsys: pytest.CaptureFixture[str]) -> None:
    # The step message crosses the 120-character cut inside the credential: masking after the cut would leave a prefix.
    step = "Step 3/9 : RUN echo " + "x" * 76 + " https://user:SNTL" + "s" * 40 + "@host.example/simple"
    cli._progress(SimpleNamespace(kind="step", message=step))
    err = capsys.readouterr().err
    assert "SNTL" not in err and err.startswith("slimbuild: Step 3/9")


def test_B16_warnings_are_masked(capsys: pytest.CaptureFixture[str]) -> None:
    cli._warn(["extra index configured (https://SNTL-tok@extra.example/simple): dependency confusion"])
    assert "SNTL" not in capsys.readouterr().err


def _manifest(argv: list[str]) -> dict:  # type: ignore[type-arg]
    return manifest.make_manifest(
        target=Target(python_version="3.11", machine="x86_64"),
        base_image={"reference": "b", "digest_or_id": "sha256:" + "1" * 64},
        distributions=[],
        files=[],
        template={"name": "slim", "dockerfile_sha256": "2" * 64},
        source_date_epoch=1700000000,
        lock_sha256="3" * 64,
        entrypoint={"name": "main", "path": "main.py", "argv": argv},
        index_sources=["https://user:SNTL-idx@pypi.example.com/simple"],
    )


def test_B16_the_manifest_file_and_label_never_hold_a_credential() -> None:
    doc = _manifest(["/opt/venv/bin/python", "/app/main.py", "--src", "https://SNTL-arg@data.example/x?token=SNTL-q"])
    written = manifest.manifest_bytes(doc).decode()
    labels = manifest.manifest_labels(doc)
    assert "SNTL" not in written and all("SNTL" not in v for v in labels.values())
    assert labels[manifest.LABEL_MANIFEST_SHA] == manifest.manifest_sha256(json.loads(written))  # verify still agrees


def test_B16_the_lock_file_never_holds_a_credential() -> None:
    body = "six==1.16.0 \\\n    --hash=sha256:" + "a" * 64 + "\n    # via -r https://user:SNTL-lock@host.example/req.txt\n"
    text = render_lock_text(body, Target(python_version="3.11", machine="x86_64"), "b" * 64)
    assert "SNTL" not in text and "six==1.16.0" in text


def test_B16_a_dockerfile_carrying_a_credential_is_refused() -> None:
    dockerfile = f'FROM {BASE}\nUSER 10001:10001\nCMD ["python", "/app/main.py", "--src", "https://user:SNTL-cmd@data.example/x"]\n'
    with pytest.raises(PolicyViolation) as err:
        validate_dockerfile(dockerfile)
    assert "SNTL" not in err.value.one_line() and "credential" in err.value.one_line()
