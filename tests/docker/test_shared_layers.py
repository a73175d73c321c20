"""Stages share layers (issue 17): the images of examples/pipeline hold one venv layer per distribution, and two
stages holding the same wheel hold the same layer (diff id), whatever else each stage holds below or above it;
with the slim template (M3) and the distroless one (M20). On a base of many layers the venv is grouped into the
room the engine's layer limit leaves (M19)."""

from __future__ import annotations

import contextlib
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from slimbuild.image.engine import DockerEngine
from slimbuild.image.layers import ENGINE_LAYER_LIMIT
from tests.docker.conftest import BASE_IMAGE, TEST_LABELS, make_context
from tests.docker.test_build_examples import SHARED_CACHE

REPO = Path(__file__).resolve().parents[2]
EPOCH = "1700000000"
OUTPUT = {"ingest": '{"day": "2024-03-07", "value": 36}', "features": "Fri=0 Sat=2.5", "train": "slope: 2.5"}


@contextlib.contextmanager
def _built(engine: DockerEngine, root: Path, base: str = BASE_IMAGE) -> Iterator[dict[str, Any]]:
    """Every stage of the project at ROOT built (one ``build``), with its plan: {stage: (result, plan)}; untagged after."""
    from slimbuild.config import load_settings
    from slimbuild.pipeline import building

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SLIMBUILD_CACHE", str(SHARED_CACHE))
        mp.setenv("SOURCE_DATE_EPOCH", EPOCH)
        results = building.build(load_settings(root), engine=engine, base_image=base)
        inputs = building.prepare_build(load_settings(root), engine=engine, locked=True, base_image=base)
    try:
        yield {i.outcome.analysis.entrypoint_name: (r, i.plan) for r, i in zip(results, inputs, strict=True)}
    finally:
        for result in results:
            for tag in result.tags:
                try:
                    engine.client.remove_image(tag, force=True)
                except Exception:  # noqa: BLE001 - cleanup only
                    pass


def _pipeline(tmp_path_factory: pytest.TempPathFactory, name: str, settings: str = "") -> Path:
    root = tmp_path_factory.mktemp(name) / "pipeline"
    shutil.copytree(REPO / "examples" / "pipeline", root)
    if settings:
        with (root / "pyproject.toml").open("a", encoding="utf-8") as fh:
            fh.write(f"\n[tool.slimbuild]\n{settings}")
    return root


@pytest.fixture(scope="module")
def pipeline_images(engine: DockerEngine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The three stages built once (one ``build``), with each stage's plan: {stage: (result, plan)}."""
    with _built(engine, _pipeline(tmp_path_factory, "pipeline")) as images:
        yield images


def _layers_by_distribution(
    engine: DockerEngine, image_id: str, plan: Any, base_image: str = BASE_IMAGE
) -> tuple[dict[str, str], list[str]]:
    """{distribution: its layer's diff id} of an image, from the plan's layers (they sit right above the base)."""
    base = [str(x) for x in engine.inspect_image(base_image)["RootFS"]["Layers"]]
    layers = [str(x) for x in engine.inspect_image(image_id)["RootFS"]["Layers"]]
    assert layers[: len(base)] == base
    assert len(layers) == len(base) + len(plan.layers) + 2, layers  # the distributions, the skeleton, the app
    units = layers[len(base) : len(base) + len(plan.layers)]
    return {name: diff for unit, diff in zip(plan.layers, units, strict=True) for name in unit.names}, layers


def test_M3_stages_share_the_layer_of_every_distribution_they_have_in_common(
    engine: DockerEngine, pipeline_images: dict[str, Any]
) -> None:
    _check_shared(engine, pipeline_images)


def _check_shared(engine: DockerEngine, images: dict[str, Any]) -> None:
    assert sorted(images) == ["features", "ingest", "train"]
    by_stage = {s: _layers_by_distribution(engine, r.image_id, p) for s, (r, p) in images.items()}
    common_seen = 0
    for a in by_stage:
        for b in by_stage:
            if a >= b:
                continue
            (dists_a, layers_a), (dists_b, layers_b) = by_stage[a], by_stage[b]
            common = set(dists_a) & set(dists_b)
            assert common, (a, b)  # the example is laid out so that every two stages share a distribution
            common_seen += len(common)
            for name in common:
                assert dists_a[name] == dists_b[name], f"{name}: {a} and {b} hold different layers"
            for name in set(dists_a) ^ set(dists_b):
                assert (dists_a.get(name) or dists_b.get(name)) not in set(layers_a) & set(layers_b)
            assert layers_a[-2] == layers_b[-2]  # the venv's skeleton: same base, uid and epoch
            assert layers_a[-1] != layers_b[-1]  # each stage's own code
    assert common_seen >= 3
    # six sits on top of python-dateutil and tzdata in one stage and right on PyYAML in another: the same layer
    assert by_stage["features"][0]["six"] == by_stage["train"][0]["six"]
    assert "python-dateutil" not in by_stage["train"][0]


def test_M3_each_stage_image_runs_its_entrypoint(engine: DockerEngine, pipeline_images: dict[str, Any]) -> None:
    _check_runs(engine, pipeline_images)


def _check_runs(engine: DockerEngine, images: dict[str, Any]) -> None:
    for stage, (result, plan) in images.items():
        run = engine.run(result.image_id, list(plan.entrypoint), user="10001:10001", timeout=120)
        assert run.exit_code == 0, (stage, run.output)
        assert OUTPUT[stage] in run.output, (stage, run.output)


def test_M20_the_distroless_template_lays_the_venv_per_distribution_and_stages_share_those_layers(
    engine: DockerEngine, tmp_path_factory: pytest.TempPathFactory
) -> None:
    root = _pipeline(tmp_path_factory, "distroless", 'template = "distroless"\nvenv-layers = "distribution"\n')
    with _built(engine, root) as images:
        for result, plan in images.values():
            assert plan.template == "distroless" and plan.layers
            assert all(run["ok"] for run in result.manifest["smoke"]), result.manifest["smoke"]
        _check_shared(engine, images)  # base + one layer per distribution + skeleton + app; shared diff ids
        _check_runs(engine, images)


DEEP = 119  # base layers: with the template's 3 others, room for 2 venv layers under the engine's 124


@pytest.fixture(scope="module")
def deep_base(engine: DockerEngine) -> str:
    """The test base with DEEP - 1 tiny COPY layers on top (labelled: pruned with the session)."""
    body = "".join(f"COPY f{i} /deep/\n" for i in range(DEEP - 1))
    files = {f"f{i}": f"{i}\n".encode() for i in range(DEEP - 1)}
    outcome = engine.build(make_context(f"FROM {BASE_IMAGE}\n{body}", files), labels=TEST_LABELS)
    reference = f"slimbuild-test/deep-base:{uuid.uuid4().hex[:12]}"
    repository, tag = reference.split(":")
    engine.client.tag(outcome.image_id, repository, tag)
    assert len(engine.inspect_image(reference)["RootFS"]["Layers"]) == DEEP
    return reference


def test_M19_on_a_base_of_many_layers_the_venv_is_grouped_within_the_engines_limit(
    engine: DockerEngine, deep_base: str, tmp_path: Path
) -> None:
    root = tmp_path / "deep"
    root.mkdir()
    (root / "pyproject.toml").write_text(
        '[project]\nname = "deep"\nversion = "0.1.0"\ndependencies = ["PyYAML", "python-dateutil", "six", "tzdata"]\n\n'
        '[tool.slimbuild]\nentrypoint = "main.py"\nvenv-layers = "distribution"\n',
        encoding="utf-8",
    )
    (root / "main.py").write_text(
        "import six\nimport tzdata\nimport yaml\nfrom dateutil import tz\n\n"
        "print('deep', yaml.safe_dump({'a': 1}).strip(), tz.gettz('UTC') is not None, tzdata.IANA_VERSION != '', six.PY3)\n",
        encoding="utf-8",
    )
    with _built(engine, root, deep_base) as images:
        ((result, plan),) = images.values()
        names = sorted(n for unit in plan.layers for n in unit.names)
        assert names == ["python-dateutil", "pyyaml", "six", "tzdata"]
        assert len(plan.layers) == 2 and sorted(len(u.names) for u in plan.layers) == [1, 3]  # grouped into the room
        _, layers = _layers_by_distribution(engine, result.image_id, plan, deep_base)
        assert len(layers) == DEEP + 2 + 2 <= ENGINE_LAYER_LIMIT  # the venv's 2, the skeleton, the app
        assert all(run["ok"] for run in result.manifest["smoke"]), result.manifest["smoke"]
        ran = engine.run(result.image_id, list(plan.entrypoint), user="10001:10001", timeout=120)
        assert ran.exit_code == 0 and "deep a: 1 True True True" in ran.output, ran.output
