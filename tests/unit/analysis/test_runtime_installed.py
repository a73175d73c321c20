"""The trace's installed files (schema version 2), an older schema migrated, paths leaving site-packages (L16-L18)."""

from __future__ import annotations

import json

from slimbuild.analysis import runtime
from slimbuild.analysis.runtime import Process
from slimbuild.image.traced import WheelFiles, keep_spec

ROOT = "/work/proj"
SITE = "/work/venv/lib/python3.11/site-packages"
HEADER = {"argv": ["python", "main.py"], "cwd": ROOT, "site": [SITE], "stdlib": ["/usr/lib/python3.11"], "prefix": ["/usr"]}


def test_L16_installed_files_opened_or_mapped_are_recorded_relative_to_site_packages() -> None:
    proc = Process(HEADER, (
        ("i", "certifi", f"{SITE}/certifi/__init__.py", f"{ROOT}/main.py", 1),
        ("o", f"{SITE}/certifi/cacert.pem"),
        ("o", f"{SITE}/certifi/__init__.py"),  # the module's own file: in modules, not installed
        ("o", f"{SITE}/certifi/__pycache__/core.cpython-311.pyc"),
        ("o", "data/in.csv"),
        ("m", f"{SITE}/numpy.libs/libopenblas-r0.so"),  # mapped by the loader
        ("m", "/usr/lib/x86_64-linux-gnu/libc.so.6"),  # the system's: never an installed file
        ("m", f"{ROOT}/local.so"),  # a project file mapped is no opened data file
    ))
    trace = runtime.from_processes([proc], ROOT, ["python", "main.py"], "demo")
    assert trace.installed == ("certifi/cacert.pem", "numpy.libs/libopenblas-r0.so")
    assert trace.opened == ("data/in.csv",)
    doc = json.loads(runtime.dumps(trace))
    assert doc["version"] == 2 and doc["installed"] == ["certifi/cacert.pem", "numpy.libs/libopenblas-r0.so"]
    assert runtime.loads(runtime.dumps(trace)) == trace
    merged = runtime.merge(trace, runtime.from_processes(
        [Process(HEADER, (("o", f"{SITE}/pkg/data.json"),))], ROOT, ["python", "other.py"], "demo"))
    assert merged.installed == ("certifi/cacert.pem", "numpy.libs/libopenblas-r0.so", "pkg/data.json")


def test_L17_a_version_1_trace_is_migrated_its_installed_files_out_of_opened() -> None:
    v1 = {"schema": "slimbuild-trace", "version": 1, "project": "demo",
          "commands": [{"argv": ["python", "main.py"], "untraced": []}],
          "opened": ["data/in.csv", "site-packages/certifi/cacert.pem"], "outside": [], "stdlib": [],
          "modules": {}, "libraries": {"dlopen": [], "needed": {}}}
    trace = runtime.loads(json.dumps(v1))
    assert trace.opened == ("data/in.csv",) and trace.installed == ("certifi/cacert.pem",)
    again = json.loads(runtime.dumps(trace))
    assert again["version"] == runtime.SCHEMA_VERSION == 2 and again["installed"] == ["certifi/cacert.pem"]


def test_L18_a_trace_naming_files_outside_site_packages_or_the_project_keeps_and_prunes_none_of_them() -> None:
    doc = {"schema": "slimbuild-trace", "version": 2, "commands": [{"argv": ["python", "main.py"]}],
           "installed": ["../../../../etc/passwd", "/etc/shadow", "pkg/ok.txt"],
           "opened": ["../secret.txt", "main.py"], "modules": {"pkg": {"file": "site-packages/pkg/__init__.py"}},
           "libraries": {"dlopen": ["site-packages/../../../lib/evil.so"], "needed": {}}}
    trace = runtime.loads(json.dumps(doc))
    assert trace.installed == ("pkg/ok.txt",) and trace.opened == ("main.py",)
    assert {"site-packages/../../../../etc/passwd", "/etc/shadow", "../secret.txt"} <= set(trace.outside)
    wheel = WheelFiles("pkg", ("pkg/__init__.py", "pkg/ok.txt", "pkg/other.txt"))
    spec = keep_spec(trace, [wheel])
    assert spec.files == ("pkg/ok.txt",)  # nothing outside is kept, nor named to the builder
    assert "site-packages/../../../lib/evil.so" in spec.outside
    assert not any(".." in p or p.startswith("/") for p in (*spec.files, *spec.packages))
