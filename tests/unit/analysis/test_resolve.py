"""The resolution chain: order, recorded reasons, namespace packages, popular names, several providers."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from packaging.utils import canonicalize_name

from slimbuild.analysis import mapping
from slimbuild.analysis.resolve import POPULAR, ModuleIndex, resolve_modules

ENV = ModuleIndex.from_dists(
    "venv",
    {
        "google-cloud-storage": ["google", "google.cloud", "google.cloud.storage"],
        "google-cloud-bigquery": ["google", "google.cloud", "google.cloud.bigquery"],
        "protobuf": ["google", "google.protobuf"],
        "Pillow": ["PIL"],
        "acme-tools": ["acme"],
    },
)


@pytest.mark.parametrize(
    ("module", "dist", "via"),
    [
        ("acme.io", "acme-tools", "environment (venv)"),
        ("google.cloud.storage", "google-cloud-storage", "environment (venv)"),
        ("google.protobuf.json_format", "protobuf", "environment (venv)"),
        ("PIL.Image", "pillow", "environment (venv)"),
        ("sklearn.linear_model", "scikit-learn", "bundled table"),
        ("cv2", None, "several distributions"),
        ("mpl_toolkits.mplot3d", "matplotlib", "bundled table"),
        ("internal_lib", None, "unresolved"),
    ],
)
def test_chain_records_how_each_import_resolved(module: str, dist: str | None, via: str) -> None:
    res = resolve_modules([module], user_mapping={}, environment=ENV, wheels=None, declared=[])[module]
    assert (res.distribution, res.via) == (dist, via)


def test_user_mapping_comes_first() -> None:
    res = resolve_modules(["PIL"], user_mapping={"PIL": "pillow-simd"}, environment=ENV, wheels=None, declared=[])["PIL"]
    assert (res.distribution, res.via) == ("pillow-simd", "mapping")


def test_ambiguous_namespace_root_is_not_guessed() -> None:
    res = resolve_modules(["google"], user_mapping={}, environment=ENV, wheels=None, declared=["google"])["google"]
    assert res.distribution is None


def test_declared_name_match_only_for_declared_distributions() -> None:
    declared = resolve_modules(["fancylib"], user_mapping={}, environment=None, wheels=None, declared=["FancyLib"])
    assert (declared["fancylib"].distribution, declared["fancylib"].via) == ("fancylib", "declared name")
    undeclared = resolve_modules(["fancylib"], user_mapping={}, environment=None, wheels=None, declared=[])
    assert undeclared["fancylib"].distribution is None  # not a popular PyPI project: never the same name


def test_output_is_sorted_and_deterministic() -> None:
    mods = ["yaml", "cv2", "PIL", "numpy"]
    a = resolve_modules(mods, user_mapping={}, environment=None, wheels=None, declared=[])
    b = resolve_modules(list(reversed(mods)), user_mapping={}, environment=None, wheels=None, declared=[])
    assert list(a) == sorted(mods) and a == b


# ---------------------------------------------------------------- popular distributions of the same name


def _resolve(module: str, **kw: object) -> tuple[str | None, str, tuple[str, ...]]:
    args: dict[str, object] = {"user_mapping": {}, "environment": None, "wheels": None, "declared": []}
    args.update(kw)
    res = resolve_modules([module], **args)[module]  # type: ignore[arg-type]
    return res.distribution, res.via, res.candidates


@pytest.mark.parametrize(
    ("module", "dist"),
    [
        ("pytorch_lightning", "pytorch-lightning"),
        ("pytorch_lightning.callbacks", "pytorch-lightning"),
        ("comet_ml", "comet-ml"),
        ("timm", "timm"),
        ("onnx", "onnx"),
        ("albumentations", "albumentations"),
        ("clearml", "clearml"),
    ],
)
def test_popular_same_name_resolves(module: str, dist: str) -> None:
    assert mapping.popularity_rank(dist) is not None  # the fact the resolution rests on
    assert _resolve(module) == (dist, POPULAR, ())


@pytest.mark.parametrize("module", ["google", "google.nonexistent_service", "azure", "azure.whatever", "zope", "mysql"])
def test_namespace_roots_never_resolve_by_popularity(module: str) -> None:
    top = module.split(".")[0]
    assert mapping.popularity_rank(top) is not None  # each of these names is a popular PyPI project...
    assert _resolve(module)[0] is None  # ...which is not what importing the shared root means


def test_unknown_name_stays_unresolved() -> None:
    assert mapping.popularity_rank("internal-lib-of-acme") is None
    assert _resolve("internal_lib_of_acme") == (None, "unresolved", ())


def test_every_earlier_step_wins_over_popularity() -> None:
    env = ModuleIndex.from_dists("venv", {"lightning-fork": ["pytorch_lightning"]})
    assert _resolve("pytorch_lightning", user_mapping={"pytorch_lightning": "my-fork"})[:2] == ("my-fork", "mapping")
    assert _resolve("pytorch_lightning", environment=env)[:2] == ("lightning-fork", "environment (venv)")
    assert _resolve("pytorch_lightning", wheels=ModuleIndex.from_dists("wheels", {"lightning-fork": ["pytorch_lightning"]}))[
        :2
    ] == ("lightning-fork", "wheel metadata")
    # the table: bs4 and sklearn are popular PyPI names too, but not the projects these imports mean
    assert mapping.popularity_rank("sklearn") is not None and mapping.popularity_rank("bs4") is not None
    assert _resolve("sklearn")[:2] == ("scikit-learn", "bundled table")
    assert _resolve("bs4")[:2] == ("beautifulsoup4", "bundled table")


# ---------------------------------------------------------------- several providers


def test_several_providers_resolve_to_the_declared_one() -> None:
    assert _resolve("cv2", declared=["opencv-python-headless"])[:2] == ("opencv-python-headless", "bundled table")
    assert _resolve("PIL.Image", declared=["Pillow-SIMD"])[:2] == ("pillow-simd", "bundled table")
    assert _resolve("thop", declared=["thop"])[:2] == ("thop", "bundled table")


def test_several_providers_none_declared_is_never_picked() -> None:
    dist, via, candidates = _resolve("cv2")
    assert dist is None and via == "several distributions"
    assert set(candidates) == {canonicalize_name(d) for d in mapping.table()["cv2"]}
    ranks = [mapping.popularity_rank(c) for c in candidates]
    assert all(r is not None for r in ranks) and ranks == sorted(ranks)  # type: ignore[type-var]


def test_declared_provider_beats_a_single_undeclared_one_in_the_environment() -> None:
    env = ModuleIndex.from_dists("venv", {"opencv-python": ["cv2"]})
    assert _resolve("cv2", environment=env)[:2] == ("opencv-python", "environment (venv)")
    assert _resolve("cv2", environment=env, declared=["opencv-contrib-python"])[:2] == (
        "opencv-contrib-python",
        "bundled table",
    )


def test_environment_with_several_providers_picks_the_declared_one() -> None:
    env = ModuleIndex.from_dists("venv", {"acme-a": ["acme"], "acme-b": ["acme"]})
    assert env.lookup("acme") is None and env.lookup_all("acme") == ("acme-a", "acme-b")
    assert _resolve("acme", environment=env, declared=["acme-b"])[:2] == ("acme-b", "environment (venv)")
    dist, via, candidates = _resolve("acme", environment=env)
    assert (dist, via) == (None, "several distributions") and set(candidates) == {"acme-a", "acme-b"}


def test_two_declared_providers_pick_the_most_downloaded_and_list_both() -> None:
    dist, _, candidates = _resolve("cv2", declared=["opencv-python-headless", "opencv-python"])
    ranks = {d: mapping.popularity_rank(d) for d in ("opencv-python", "opencv-python-headless")}
    assert dist == min(ranks, key=lambda d: ranks[d] or 0)
    assert {"opencv-python", "opencv-python-headless"} <= set(candidates)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(max_size=30), max_size=5), st.lists(st.text(max_size=20), max_size=3))
def test_A38_any_module_name_resolves_without_error(modules: list[str], declared: list[str]) -> None:
    out = resolve_modules(modules, user_mapping={}, environment=None, wheels=None, declared=declared)
    assert sorted(out) == sorted(set(modules))
    for res in out.values():
        assert res.distribution is None or res.distribution == canonicalize_name(res.distribution)
        assert (res.via == "several distributions") == (res.distribution is None and bool(res.candidates))
