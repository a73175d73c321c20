"""Unit tests for slimbuild.analysis.mapping and the bundled import_map.toml table."""

from __future__ import annotations

import importlib.metadata
import keyword
import re
import sys
from collections.abc import Mapping
from importlib.resources import files

import pytest
from packaging.utils import canonicalize_name, parse_wheel_filename

from slimbuild.analysis import mapping

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised only on Python 3.10
    import tomli as tomllib

DIST_NAME_RE = re.compile(r"^([A-Z0-9]|[A-Z0-9][A-Z0-9._-]*[A-Z0-9])$", re.IGNORECASE)

REQUIRED: list[tuple[str, str]] = [
    ("sklearn", "scikit-learn"),
    ("cv2", "opencv-python"),
    ("PIL", "Pillow"),
    ("yaml", "PyYAML"),
    ("bs4", "beautifulsoup4"),
    ("dateutil", "python-dateutil"),
    ("attr", "attrs"),
    ("dotenv", "python-dotenv"),
    ("skimage", "scikit-image"),
    ("thop", "thop"),
    ("jwt", "PyJWT"),
    ("OpenSSL", "pyOpenSSL"),
    ("Crypto", "pycryptodome"),
    ("google.protobuf", "protobuf"),
    ("mpl_toolkits", "matplotlib"),
    ("mpl_toolkits.mplot3d", "matplotlib"),
    ("google.cloud.storage", "google-cloud-storage"),
    ("google.cloud.bigquery", "google-cloud-bigquery"),
    ("google.cloud.pubsub", "google-cloud-pubsub"),
    ("azure.storage.blob", "azure-storage-blob"),
    ("azure.identity", "azure-identity"),
    ("magic", "python-magic"),
    ("docx", "python-docx"),
    ("pptx", "python-pptx"),
    ("serial", "pyserial"),
    ("usb", "pyusb"),
    ("gi", "PyGObject"),
    ("wx", "wxPython"),
    ("MySQLdb", "mysqlclient"),
    ("psycopg2", "psycopg2"),
    ("zmq", "pyzmq"),
    ("Levenshtein", "Levenshtein"),
    ("git", "GitPython"),
    ("github", "PyGithub"),
    ("telegram", "python-telegram-bot"),
    ("discord", "discord.py"),
    ("slugify", "python-slugify"),
    ("jose", "python-jose"),
    ("multipart", "python-multipart"),
    ("socks", "PySocks"),
    ("websocket", "websocket-client"),
    ("lxml", "lxml"),
    ("sentencepiece", "sentencepiece"),
    ("tensorflow_hub", "tensorflow-hub"),
    ("torchvision", "torchvision"),
    ("pkg_resources", "setuptools"),
    ("setuptools", "setuptools"),
    ("_cffi_backend", "cffi"),
    ("win32api", "pywin32"),
    ("pythoncom", "pywin32"),
    ("ruamel.yaml", "ruamel.yaml"),
    ("jinja2", "Jinja2"),
    ("markdown", "Markdown"),
    ("fitz", "PyMuPDF"),
    ("Bio", "biopython"),
    ("nacl", "PyNaCl"),
    ("pymysql", "PyMySQL"),
    ("kafka", "kafka-python"),
    ("faiss", "faiss-cpu"),
    ("umap", "umap-learn"),
    ("hdbscan", "hdbscan"),
    ("lightgbm", "lightgbm"),
    ("xgboost", "xgboost"),
    ("catboost", "catboost"),
    ("statsmodels", "statsmodels"),
    ("pyarrow", "pyarrow"),
    ("tables", "tables"),
    ("sqlalchemy", "SQLAlchemy"),
    ("flask", "Flask"),
    ("markupsafe", "MarkupSafe"),
    ("werkzeug", "Werkzeug"),
    ("itsdangerous", "itsdangerous"),
    ("tomli", "tomli"),
    ("IPython", "ipython"),
    ("ipykernel", "ipykernel"),
    ("ipywidgets", "ipywidgets"),
    ("nbformat", "nbformat"),
    ("grpc", "grpcio"),
    ("google.auth", "google-auth"),
    ("googleapiclient", "google-api-python-client"),
    ("oauth2client", "oauth2client"),
    ("apiclient", "google-api-python-client"),
    ("boto3", "boto3"),
    ("botocore", "botocore"),
    ("s3fs", "s3fs"),
    ("gcsfs", "gcsfs"),
    ("hydra", "hydra-core"),
    ("omegaconf", "omegaconf"),
    ("pydantic", "pydantic"),
    ("transformers", "transformers"),
    ("datasets", "datasets"),
    ("huggingface_hub", "huggingface-hub"),
    ("tokenizers", "tokenizers"),
    ("cupy", "cupy"),
    ("jax", "jax"),
    ("jaxlib", "jaxlib"),
    ("flax", "flax"),
    ("optax", "optax"),
    ("keras", "keras"),
    ("tf_keras", "tf-keras"),
    ("sentence_transformers", "sentence-transformers"),
    ("spacy", "spacy"),
    ("nltk", "nltk"),
    ("gensim", "gensim"),
    ("textblob", "textblob"),
    ("pymc", "pymc"),
    ("arviz", "arviz"),
    ("shap", "shap"),
    ("lime", "lime"),
    ("optuna", "optuna"),
    ("mlflow", "mlflow"),
    ("wandb", "wandb"),
    ("dask", "dask"),
    ("distributed", "distributed"),
    ("ray", "ray"),
    ("polars", "polars"),
    ("duckdb", "duckdb"),
    ("pyspark", "pyspark"),
    ("findspark", "findspark"),
    ("plotly", "plotly"),
    ("dash", "dash"),
    ("bokeh", "bokeh"),
    ("altair", "altair"),
    ("seaborn", "seaborn"),
    ("folium", "folium"),
    ("geopandas", "geopandas"),
    ("shapely", "shapely"),
    ("fiona", "fiona"),
    ("rasterio", "rasterio"),
    ("pyproj", "pyproj"),
    ("osgeo", "GDAL"),
    ("netCDF4", "netCDF4"),
    ("xarray", "xarray"),
    ("h5py", "h5py"),
    ("zarr", "zarr"),
    ("numba", "numba"),
    ("llvmlite", "llvmlite"),
    ("Cython", "Cython"),
    ("cython", "Cython"),
    ("dill", "dill"),
    ("cloudpickle", "cloudpickle"),
    ("joblib", "joblib"),
    ("tqdm", "tqdm"),
    ("rich", "rich"),
    ("click", "click"),
    ("typer", "typer"),
    ("fire", "fire"),
    ("docopt", "docopt"),
    ("requests", "requests"),
    ("httpx", "httpx"),
    ("aiohttp", "aiohttp"),
    ("urllib3", "urllib3"),
    ("certifi", "certifi"),
    ("charset_normalizer", "charset-normalizer"),
    ("idna", "idna"),
    ("chardet", "chardet"),
    ("six", "six"),
    ("wrapt", "wrapt"),
    ("toolz", "toolz"),
    ("cytoolz", "cytoolz"),
    ("more_itertools", "more-itertools"),
    ("sortedcontainers", "sortedcontainers"),
    ("tabulate", "tabulate"),
    ("openpyxl", "openpyxl"),
    ("xlrd", "xlrd"),
    ("xlsxwriter", "XlsxWriter"),
    ("pyxlsb", "pyxlsb"),
    ("odf", "odfpy"),
    ("pandas_gbq", "pandas-gbq"),
    ("sqlalchemy_utils", "SQLAlchemy-Utils"),
    ("psutil", "psutil"),
    ("pexpect", "pexpect"),
    ("ptyprocess", "ptyprocess"),
    ("pytz", "pytz"),
    ("tzdata", "tzdata"),
    ("babel", "Babel"),
    ("dateparser", "dateparser"),
    ("pendulum", "pendulum"),
    ("arrow", "arrow"),
    ("sympy", "sympy"),
    ("mpmath", "mpmath"),
    ("networkx", "networkx"),
    ("igraph", "igraph"),
    ("community", "python-louvain"),
    ("cairo", "pycairo"),
    ("gmpy2", "gmpy2"),
    ("pygments", "Pygments"),
    ("docutils", "docutils"),
    ("sphinx", "Sphinx"),
    ("pytest", "pytest"),
    ("hypothesis", "hypothesis"),
    ("mock", "mock"),
    ("nose", "nose"),
]

LONGEST_PREFIX: list[tuple[str, str]] = [
    ("google.cloud.storage.blob", "google-cloud-storage"),
    ("google.cloud.bigquery.job.query", "google-cloud-bigquery"),
    ("google.cloud.bigquery_storage_v1", "google-cloud-bigquery-storage"),
    ("google.cloud.bigquery_storage.types", "google-cloud-bigquery-storage"),
    ("google.cloud.pubsub_v1.subscriber", "google-cloud-pubsub"),
    ("google.protobuf.json_format", "protobuf"),
    ("google.auth.transport.requests", "google-auth"),
    ("google.oauth2.service_account", "google-auth"),
    ("google.api_core.exceptions", "google-api-core"),
    ("mpl_toolkits.mplot3d", "matplotlib"),
    ("mpl_toolkits.mplot3d.art3d", "matplotlib"),
    ("mpl_toolkits.axes_grid1.inset_locator", "matplotlib"),
    ("mpl_toolkits.basemap", "basemap"),
    ("mpl_toolkits.somethingelse", "matplotlib"),
    ("azure.storage.blob", "azure-storage-blob"),
    ("azure.storage.blob.aio", "azure-storage-blob"),
    ("azure.identity.aio", "azure-identity"),
    ("ruamel.yaml", "ruamel.yaml"),
    ("ruamel.yaml.comments", "ruamel.yaml"),
    ("sklearn.model_selection", "scikit-learn"),
    ("PIL.Image", "Pillow"),
    ("yaml.constructor", "PyYAML"),
    ("Crypto.Cipher.AES", "pycryptodome"),
    ("OpenSSL.crypto", "pyOpenSSL"),
    ("skimage.io", "scikit-image"),
    ("win32com.client", "pywin32"),
    ("paho.mqtt.client", "paho-mqtt"),
    ("mysql.connector.pooling", "mysql-connector-python"),
    ("snowflake.connector.pandas_tools", "snowflake-connector-python"),
]

NAMESPACE_ROOTS: list[str] = [
    "google",
    "google.cloud",
    "azure",
    "azure.storage",
    "zope",
    "jaraco",
    "backports",
    "sphinxcontrib",
]

UNRESOLVED: list[str] = [
    "google",
    "google.cloud",
    "google.cloud.not_a_real_service",
    "google.cloud.not_a_real_service.sub",
    "azure",
    "azure.storage",
    "azure.storage.not_a_real_service",
    "zope",
    "jaraco",
    "backports",
    "sphinxcontrib",
    "ruamel",
    "definitely_not_a_known_module_xyz",
    "definitely_not_a_known_module_xyz.sub",
    "",
    ".relative",
    "..relative.sub",
    # Prefixes match whole components: "sklearnx" is not under "sklearn".
    "google.cloud.storagex",
    "sklearnx",
    "SKLEARN",
]


def _file_data() -> dict[str, object]:
    """Parse the bundled TOML straight from the package data."""
    resource = files("slimbuild.analysis") / "data" / "import_map.toml"
    data: dict[str, object] = tomllib.loads(resource.read_text(encoding="utf-8"))
    return data


def _file_module_keys() -> list[str]:
    """Keys of [modules] in file order (TOML parsing preserves insertion order)."""
    modules = _file_data()["modules"]
    assert isinstance(modules, dict)
    return list(modules)


def _is_mismatch(module: str, dist: str) -> bool:
    """True when import and distribution names differ after PEP 503 normalisation."""
    return canonicalize_name(module) != canonicalize_name(dist)


@pytest.mark.parametrize(("module", "dist"), REQUIRED)
def test_required_entries(module: str, dist: str) -> None:
    assert dist in mapping.table()[module]
    assert dist in mapping.providers(module)
    single = len(mapping.table()[module]) == 1
    assert mapping.known_distribution(module) == (dist if single else None)


@pytest.mark.parametrize(("module", "dist"), LONGEST_PREFIX)
def test_longest_prefix(module: str, dist: str) -> None:
    assert dist in mapping.providers(module)


@pytest.mark.parametrize("module", NAMESPACE_ROOTS)
def test_namespace_roots_flagged(module: str) -> None:
    assert mapping.is_namespace_root(module)
    assert module not in mapping.table()


@pytest.mark.parametrize("module", UNRESOLVED)
def test_unresolved(module: str) -> None:
    assert mapping.known_distribution(module) is None


@pytest.mark.parametrize(
    "module",
    [
        "sklearn",
        "google.cloud.storage",
        "mpl_toolkits",
        "googleapiclient",
        "",
        "google.x",
    ],
)
def test_not_namespace_root(module: str) -> None:
    assert not mapping.is_namespace_root(module)


def test_every_namespace_root_is_unresolved() -> None:
    for root in mapping.namespace_roots():
        assert mapping.known_distribution(root) is None, root


def test_table_is_read_only_and_cached() -> None:
    view = mapping.table()
    assert isinstance(view, Mapping)
    assert mapping.table() is view
    with pytest.raises(TypeError):
        view["sklearn"] = "something-else"  # type: ignore[index]


def test_table_matches_file() -> None:
    modules = _file_data()["modules"]
    assert isinstance(modules, dict)
    assert dict(mapping.table()) == {k: (v,) if isinstance(v, str) else tuple(v) for k, v in modules.items()}


def test_table_size() -> None:
    entries = mapping.table()
    mismatches = [k for k, v in entries.items() if any(_is_mismatch(k, d) for d in v)]
    assert len(entries) >= 150
    assert len(mismatches) >= 100


def test_keys_are_dotted_identifiers() -> None:
    bad = [
        key
        for key in mapping.table()
        if not all(
            part.isidentifier() and not keyword.iskeyword(part)
            for part in key.split(".")
        )
    ]
    assert bad == []


def test_values_are_valid_distribution_names() -> None:
    bad = [
        dist
        for dists in mapping.table().values()
        for dist in dists
        if not DIST_NAME_RE.match(dist)
        or canonicalize_name(canonicalize_name(dist)) != canonicalize_name(dist)
    ]
    assert bad == []


def test_namespace_roots_are_dotted_identifiers() -> None:
    for root in mapping.namespace_roots():
        assert all(part.isidentifier() for part in root.split(".")), root


def test_keys_sorted_in_file() -> None:
    keys = _file_module_keys()
    assert keys == sorted(keys, key=str.lower)


def test_namespace_roots_sorted_and_unique_in_file() -> None:
    namespaces = _file_data()["namespaces"]
    assert isinstance(namespaces, dict)
    roots = namespaces["roots"]
    assert isinstance(roots, list)
    assert roots == sorted(set(roots), key=str.lower)


def _installed_cases() -> list[tuple[str, tuple[str, ...]]]:
    """Table entries whose top-level import name an installed distribution provides."""
    provided = importlib.metadata.packages_distributions()
    return sorted(
        (key, dist)
        for key, dist in mapping.table().items()
        if key.split(".")[0] in provided
    )


def _installed_dists() -> set[str]:
    """Canonical names of every distribution installed in this interpreter."""
    return {
        canonicalize_name(d.metadata["Name"])
        for d in importlib.metadata.distributions()
        if d.metadata["Name"]
    }


@pytest.mark.parametrize(("module", "dists"), _installed_cases())
def test_agrees_with_installed_metadata(module: str, dists: tuple[str, ...]) -> None:
    providers = importlib.metadata.packages_distributions()[module.split(".")[0]]
    canonical = {canonicalize_name(p) for p in providers}
    listed = {canonicalize_name(d) for d in dists}
    table = mapping.table()
    shared = "." in module or any(other.startswith(module + ".") for other in table)
    if shared and not listed & _installed_dists():
        # A namespace shared by several distributions (google, azure, mpl_toolkits):
        # other members being installed says nothing about this entry.
        pytest.skip(f"{sorted(listed)} not installed; {module.split('.')[0]} is shared")
    assert listed & canonical, (module, sorted(listed), sorted(canonical))


# ---------------------------------------------------------------- providers, sources, popular names


def _popular_file() -> list[str]:
    return (files("slimbuild.analysis") / "data" / "popular.txt").read_text(encoding="utf-8").splitlines()


def test_popular_names_are_canonical_unique_and_ranked_in_file_order() -> None:
    names = [line for line in _popular_file() if not line.startswith("#")]
    assert len(names) > 10_000
    assert all(n == canonicalize_name(n) and DIST_NAME_RE.match(n) for n in names)
    assert len(set(names)) == len(names)
    assert [mapping.popularity_rank(n) for n in names[:3]] == [1, 2, 3]
    assert mapping.popularity_rank(names[-1]) == len(names)
    assert mapping.popularity_rank(names[0].upper().replace("-", "_")) == 1  # looked up by canonical name


def test_popular_file_says_where_and_when_it_was_taken() -> None:
    header = " ".join(line for line in _popular_file() if line.startswith("#"))
    assert "Source:" in header and re.search(r"\b20\d\d\b", header)


def test_several_providers_are_distinct_valid_names() -> None:
    several = {k: v for k, v in mapping.table().items() if len(v) > 1}
    assert {"cv2", "PIL", "thop", "jwt", "magic"} <= set(several)
    for key, dists in several.items():
        assert len({canonicalize_name(d) for d in dists}) == len(dists), key


def test_sources_name_wheels_of_listed_providers() -> None:
    table = mapping.table()
    assert mapping.sources(), "some entries are checked against wheels"
    for key, source in mapping.sources().items():
        assert key in table, key
        listed = {canonicalize_name(d) for d in table[key]}
        for part in source.split(";"):
            kind, _, filename = part.strip().partition(" ")
            assert kind == "wheel" and filename.endswith(".whl"), (key, source)
            assert canonicalize_name(parse_wheel_filename(filename)[0]) in listed, (key, filename)


def test_sources_sorted_in_file() -> None:
    sources = _file_data()["sources"]
    assert isinstance(sources, dict)
    assert list(sources) == sorted(sources, key=str.lower)


@pytest.mark.parametrize(("module", "dist"), [("paddle", "paddlepaddle"), ("skimage", "scikit-image"),
                                              ("tflite_runtime", "tflite-runtime")])
def test_issue_entries(module: str, dist: str) -> None:
    assert mapping.known_distribution(module) == dist


def test_by_rank_orders_by_downloads_then_name() -> None:
    popular = sorted(["thop", "ultralytics-thop", "pyyaml"], key=lambda n: mapping.popularity_rank(n) or 0)
    assert mapping.by_rank(["thop", "Ultralytics_Thop", "PyYAML", "zz-not-popular", "aa-not-popular"]) == (
        *popular, "aa-not-popular", "zz-not-popular"
    )
