"""Every command-line option, declared once; commands stack the groups they take."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])


def _stack(*decorators: Callable[[F], F]) -> Callable[[F], F]:
    def apply(f: F) -> F:
        for deco in reversed(decorators):
            f = deco(f)
        return f

    return apply


python = click.option(
    "--python",
    "python",
    default=None,
    metavar="PATH",
    help="Interpreter of the project's environment, for installed-distribution metadata.",
)

path_arg = click.argument("path", default=".", type=click.Path(file_okay=False, path_type=Path))
as_json = click.option("--json", "as_json", is_flag=True, help="Print one versioned JSON object on stdout.")
platform = click.option(
    "--platform",
    default=None,
    metavar="OS/ARCH[/VARIANT]",
    help="For a registry image with several platforms: which one to read (default: this host's).",
)

analysis = _stack(
    click.option(
        "--entrypoint",
        "-e",
        default="",
        metavar="E",
        help="Entrypoint name from the config, or a .py file, package, module:function or notebook.",
    ),
    click.option("--target-python", default=None, metavar="X.Y", help="Python version of the image (stdlib is judged for it)."),
    python,
    click.option(
        "--allow-unparseable",
        is_flag=True,
        default=None,
        help="Scan unparseable files with the tokenizer instead of failing (they are listed as unparsed).",
    ),
    as_json,
)

lock_out = click.option(
    "--lock-out",
    default=None,
    metavar="PATH",
    help="Read and write the lock here (a file, or a directory ending in '/') instead of the project.",
)

upgrade = click.option(
    "--upgrade",
    "-U",
    is_flag=True,
    help="Re-resolve every pin: ignore the existing lock and the versions of the environment and other tools' locks.",
)

lock = _stack(
    upgrade,
    lock_out,
    click.option("--upgrade-package", "-P", "upgrade_packages", multiple=True, metavar="NAME", help="Re-resolve this pin only."),
    click.option("--machine", type=click.Choice(["x86_64", "aarch64"]), default=None, help="The image's CPU (default x86_64)."),
    click.option("--audit", is_flag=True, help="Fail (exit 10) when pip-audit knows a vulnerability in the lock."),
)

build = _stack(
    click.option("--base-image", default="", metavar="REF", help="Base image (default python:<target>-slim)."),
    click.option("--template", default=None, metavar="NAME|DIR", help="slim, distroless, or a directory of your own."),
    click.option("--pyc/--no-pyc", default=None, help="Ship hash-based .pyc (faster start-up, larger image)."),
    click.option("--locked", is_flag=True, help="Refuse to re-lock: fail when the lock is missing or stale (CI)."),
    upgrade,
    lock_out,
)

tags = _stack(
    click.option(
        "--tag", "-t", "tags", multiple=True, metavar="REF", help="Extra tag(s), applied only after the smoke run passes."
    ),
    click.option(
        "--push",
        is_flag=True,
        help="Push every tag of the run to the registries the --tags name (after the smoke run); record the digests.",
    ),
    click.option("--keep-context", is_flag=True, help="Keep the build-context tar as .slimbuild-context.tar."),
    click.option(
        "--trace-in-image",
        is_flag=True,
        help="Run the smoke command in the image under the trace's audit hook; record which installed files it opened.",
    ),
    click.option(
        "--no-cache", "no_cache", is_flag=True, help="Make every layer again: no engine cache, no recorded deps image."
    ),
    click.option(
        "--manifest-out",
        default=None,
        metavar="PATH",
        help="Write the manifest here (a file, or a directory ending in '/') instead of beside the project.",
    ),
)

SPEC_FORMATS = ("argo", "kubernetes", "pachyderm")  # record/runspec.py's FORMATS (not imported: the cli stays light)

spec = _stack(
    click.option(
        "--format",
        "fmt",
        type=click.Choice(SPEC_FORMATS),
        required=True,
        help="pachyderm: a pipeline spec per stage (JSON); kubernetes: a Job per stage; argo: one Workflow (YAML).",
    ),
    click.option(
        "--output",
        "-o",
        "out_dir",
        type=click.Path(path_type=Path),
        default=None,
        metavar="DIR",
        help="Write one file per stage (or the workflow) into DIR instead of printing them.",
    ),
    click.option(
        "--repository",
        default="",
        metavar="HOST/REPO",
        help="Pin the images pushed to this repository (default: the first the manifest records).",
    ),
)

# `slimbuild sbom --format` (record/sbom.py's FORMATS: spelled out here so that the CLI imports nothing for it)
SBOM_FORMATS = ("cyclonedx", "spdx")
sbom = click.option(
    "--sbom",
    "with_sbom",
    is_flag=True,
    help="Also write a CycloneDX SBOM into the image, beside the manifest (/app/.slimbuild/sbom.cdx.json).",
)

# the option names that become settings overrides (the rest are the command's own arguments)
SETTINGS_OPTIONS = ("target_python", "python", "allow_unparseable", "template", "pyc", "machine", "lock_out", "manifest_out")


def settings_from(path: Path, options: dict[str, Any]) -> Any:
    """Settings for PATH with the command line's overrides (unset options leave the config's value)."""
    from slimbuild.config import load_settings

    overrides = {k: options.pop(k, None) for k in SETTINGS_OPTIONS}
    overrides["allow_unparseable"] = overrides["allow_unparseable"] or None
    return load_settings(path, overrides)
