"""Stages share layers (issue 17): the images of examples/pipeline hold one venv layer per distribution, and two
stages holding the same wheel hold the same layer (diff id), whatever else each stage holds below or above it."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from slimbuild.image.engine import DockerEngine
from tests.docker.conftest import BASE_IMAGE
from tests.docker.test_build_examples import SHARED_CACHE

REPO = Path(__file__).resolve().parents[2]
EPOCH = "1700000000"
OUTPUT = {"ingest": '{"day": "2024-03-07", "value": 36}', "features": "Fri=0 Sat=2.5", "train": "slope: 2.5"}


@pytest.fixture(scope="module")
def pipeline_images(engine: DockerEngine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The three stages built once (one ``build``), with each stage's plan: {stage: (result, plan)}."""
    from slimbuild.config import load_settings
    from slimbuild.pipeline import building

    root = tmp_path_factory.mktemp("pipeline") / "pipeline"
    shutil.copytree(REPO / "examples" / "pipeline", root)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SLIMBUILD_CACHE", str(SHARED_CACHE))
        mp.setenv("SOURCE_DATE_EPOCH", EPOCH)
        results = building.build(load_settings(root), engine=engine, base_image=BASE_IMAGE)
        inputs = building.prepare_build(load_settings(root), engine=engine, locked=True, base_image=BASE_IMAGE)
    try:
        yield {i.outcome.analysis.entrypoint_name: (r, i.plan) for r, i in zip(results, inputs, strict=True)}
    finally:
        for result in results:
            for tag in result.tags:
                try:
                    engine.client.remove_image(tag, force=True)
                except Exception:  # noqa: BLE001 - cleanup only
                    pass


def _layers_by_distribution(engine: DockerEngine, image_id: str, plan: Any) -> tuple[dict[str, str], list[str]]:
    """{distribution: its layer's diff id} of an image, from the plan's layers (they sit right above the base)."""
    base = [str(x) for x in engine.inspect_image(BASE_IMAGE)["RootFS"]["Layers"]]
    layers = [str(x) for x in engine.inspect_image(image_id)["RootFS"]["Layers"]]
    assert layers[: len(base)] == base
    assert len(layers) == len(base) + len(plan.layers) + 2, layers  # the distributions, the skeleton, the app
    units = layers[len(base) : len(base) + len(plan.layers)]
    return {name: diff for unit, diff in zip(plan.layers, units, strict=True) for name in unit.names}, layers


def test_M3_stages_share_the_layer_of_every_distribution_they_have_in_common(
    engine: DockerEngine, pipeline_images: dict[str, Any]
) -> None:
    assert sorted(pipeline_images) == ["features", "ingest", "train"]
    by_stage = {s: _layers_by_distribution(engine, r.image_id, p) for s, (r, p) in pipeline_images.items()}
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
    for stage, (result, plan) in pipeline_images.items():
        run = engine.run(result.image_id, list(plan.entrypoint), user="10001:10001", timeout=120)
        assert run.exit_code == 0, (stage, run.output)
        assert OUTPUT[stage] in run.output, (stage, run.output)
