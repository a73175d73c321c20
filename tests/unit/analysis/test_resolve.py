"""The resolution chain: order, recorded reasons, namespace packages, popular names, several providers."""

from __future__ import annotations

import pytest

from slimbuild.analysis.resolve import ModuleIndex, resolve_modules

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
