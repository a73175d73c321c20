"""The click layer: parse options, call one pipeline function, render, return an exit code."""

from __future__ import annotations

import os
import signal
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from slimbuild import __version__
from slimbuild.errors import ExitCode, Interrupted, SlimbuildError

if TYPE_CHECKING:  # imported where used: a replayed warm check loads neither the pipeline nor its models
    from slimbuild.config import Settings
    from slimbuild.replay import Output, Recorder

F = TypeVar("F", bound=Callable[..., Any])


class _State:
    debug = False
    json = False


def _path_arg(f: F) -> F:
    return click.argument("path", default=".", type=click.Path(file_okay=False, path_type=Path))(f)  # type: ignore[return-value]


def _analysis_options(f: F) -> F:
    for deco in reversed(
        [
            click.option(
                "--entrypoint",
                "-e",
                default="",
                metavar="E",
                help="Entrypoint name from the config, or a .py file, package, module:function or notebook.",
            ),
            click.option(
                "--target-python", default=None, metavar="X.Y", help="Python version of the image (stdlib is judged for it)."
            ),
            click.option(
                "--python",
                "python",
                default=None,
                metavar="PATH",
                help="Interpreter of the project's environment, for installed-distribution metadata.",
            ),
            click.option(
                "--allow-unparseable",
                is_flag=True,
                default=None,
                help="Scan unparseable files with the tokenizer instead of failing (they are listed as unparsed).",
            ),
            click.option("--json", "as_json", is_flag=True, help="Print one versioned JSON object on stdout."),
        ]
    ):
        f = deco(f)
    return f


def _settings(
    path: Path,
    target_python: str | None,
    python: str | None,
    allow_unparseable: bool | None,
    template: str | None = None,
    pyc: bool | None = None,
) -> Any:
    from slimbuild.config import load_settings

    return load_settings(
        path,
        {
            "target_python": target_python,
            "python": python,
            "allow_unparseable": allow_unparseable or None,
            "template": template,
            "pyc": pyc,
        },
    )


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="slimbuild")
@click.option("--debug", is_flag=True, envvar="SLIMBUILD_DEBUG", help="Show tracebacks for errors.")
def cli(debug: bool) -> None:
    """Trace what an analysis imports, lock it, and build a slim, reproducible image."""
    _State.debug = debug


@cli.command()
@_path_arg
@_analysis_options
def analyze(
    path: Path, entrypoint: str, target_python: str | None, python: str | None, allow_unparseable: bool | None, as_json: bool
) -> int:
    """Show what the entrypoint needs: files, distributions, unused and missing ones."""
    _State.json = as_json
    return _replayable("analyze", _settings(path, target_python, python, allow_unparseable), entrypoint, as_json)


@cli.command()
@_path_arg
@_analysis_options
def check(
    path: Path, entrypoint: str, target_python: str | None, python: str | None, allow_unparseable: bool | None, as_json: bool
) -> int:
    """Gate for pre-commit and CI: exit 1 when an import is undeclared or unresolved."""
    _State.json = as_json
    return _replayable("check", _settings(path, target_python, python, allow_unparseable), entrypoint, as_json)


def _replayable(command: str, settings: Settings, entrypoint: str, as_json: bool) -> int:
    """Print the output of ``analyze``/``check``: replayed when nothing it read has changed, else computed."""
    from slimbuild import replay
    from slimbuild.paths import cache_dir

    cache = cache_dir()
    key = replay.outcome_key(command, as_json, entrypoint, settings, os.environ)
    output = replay.lookup(cache, key, settings.max_source_bytes) if key is not None else None
    if output is None:
        record = replay.Recorder(settings.max_source_bytes)
        output = (_check_output if command == "check" else _analyze_output)(settings, entrypoint, as_json, record)
        if key is not None:
            replay.store(cache, key, record, output)
    click.echo(output.stdout, nl=False)
    click.echo(output.stderr, nl=False, err=True)
    return output.exit_code


def _analyze_output(settings: Settings, entrypoint: str, as_json: bool, record: Recorder) -> Output:
    from slimbuild import pipeline, report
    from slimbuild.replay import Output

    analyses = pipeline.analyze(settings, entrypoint, record=record)
    if as_json:
        return Output(report.analyses_json(analyses), "", int(ExitCode.OK))
    findings = sorted({f for a in analyses for f in a.findings})
    return Output("\n".join(report.analysis_text(a) for a in analyses), report.findings_text(findings), int(ExitCode.OK))


def _check_output(settings: Settings, entrypoint: str, as_json: bool, record: Recorder) -> Output:
    from slimbuild import pipeline, report
    from slimbuild.check import failing
    from slimbuild.replay import Output

    analyses = pipeline.analyze(settings, entrypoint, record=record)
    lock_state = pipeline.lock_findings(settings, analyses, record=record)
    findings = sorted(
        set(lock_state) | {f for a in analyses for f in a.findings},
        key=lambda f: (f.location.path, f.location.cell or 0, f.location.line, f.location.col, f.code, f.message),
    )
    code = int(ExitCode.FINDINGS if failing(findings) else ExitCode.OK)
    if as_json:
        return Output(report.analyses_json(analyses), "", code)
    return Output("", report.findings_text(findings) + report.check_summary(findings), code)


@cli.command("lock")
@_path_arg
@_analysis_options
@click.option("--upgrade", "-U", is_flag=True, help="Re-resolve every pin (existing pins are kept otherwise).")
@click.option("--upgrade-package", "-P", "upgrade_packages", multiple=True, metavar="NAME", help="Re-resolve this pin only.")
@click.option("--machine", type=click.Choice(["x86_64", "aarch64"]), default=None, help="The image's CPU (default x86_64).")
@click.option("--audit", is_flag=True, help="Fail (exit 10) when pip-audit knows a vulnerability in the lock.")
def lock_cmd(
    path: Path,
    entrypoint: str,
    target_python: str | None,
    python: str | None,
    allow_unparseable: bool | None,
    as_json: bool,
    upgrade: bool,
    upgrade_packages: tuple[str, ...],
    machine: str | None,
    audit: bool,
) -> int:
    """Lock exactly what the analysis needs, with hashes, for the image's platform; fetch the wheels."""
    from slimbuild import pipeline, report

    _State.json = as_json
    settings = _settings(path, target_python, python, allow_unparseable)
    if machine:
        from dataclasses import replace

        settings = replace(settings, machine=machine)
    outcomes = pipeline.lock(settings, entrypoint, upgrade=upgrade, upgrade_packages=upgrade_packages, audit=audit)
    for o in outcomes:
        for w in o.warnings:
            click.echo(f"slimbuild: warning: {w}", err=True)
        click.echo(report.findings_text(o.findings), nl=False, err=True)
    click.echo(report.locks_json(outcomes) if as_json else report.locks_text(outcomes), nl=False)
    return int(ExitCode.OK)


def _build_options(f: F) -> F:
    for deco in reversed(
        [
            click.option("--base-image", default="", metavar="REF", help="Base image (default python:<target>-slim)."),
            click.option("--template", default=None, metavar="NAME|DIR", help="slim, distroless, or a directory of your own."),
            click.option("--pyc/--no-pyc", default=None, help="Ship hash-based .pyc (faster start-up, larger image)."),
            click.option("--locked", is_flag=True, help="Refuse to re-lock: fail when the lock is missing or stale (CI)."),
        ]
    ):
        f = deco(f)
    return f


def _connect() -> Any:
    from slimbuild.engine import connect

    return connect()


@cli.command("dockerfile")
@_path_arg
@_analysis_options
@_build_options
def dockerfile_cmd(
    path: Path,
    entrypoint: str,
    target_python: str | None,
    python: str | None,
    allow_unparseable: bool | None,
    as_json: bool,
    base_image: str,
    template: str | None,
    pyc: bool | None,
    locked: bool,
) -> int:
    """Print the Dockerfile that build would use (the context layout is in README.md)."""
    from slimbuild import build as pipeline
    from slimbuild.errors import EngineUnavailable

    _State.json = as_json
    settings = _settings(path, target_python, python, allow_unparseable, template, pyc)
    ref = base_image or settings.base_image
    try:
        engine = None if "@sha256:" in ref else _connect()
    except EngineUnavailable:
        engine = None  # resolve_base says what to do
    prepared = pipeline.prepare_build(settings, entrypoint, engine=engine, locked=locked, base_image=base_image)
    for p in prepared:
        for w in p.warnings:
            click.echo(f"slimbuild: warning: {w}", err=True)
    if as_json:
        import json

        click.echo(
            json.dumps(
                {
                    "version": 1,
                    "kind": "dockerfile",
                    "dockerfiles": [{"entrypoint": p.entry.name, "dockerfile": p.dockerfile} for p in prepared],
                },
                sort_keys=True,
                indent=2,
            )
        )
    else:
        click.echo("".join(p.dockerfile for p in prepared), nl=False)
    return int(ExitCode.OK)


@cli.command("build")
@_path_arg
@_analysis_options
@_build_options
@click.option("--tag", "-t", "tags", multiple=True, metavar="REF", help="Extra tag(s), applied only after the smoke run passes.")
@click.option("--keep-context", is_flag=True, help="Keep the build-context tar as .slimbuild-context.tar.")
def build_cmd(
    path: Path,
    entrypoint: str,
    target_python: str | None,
    python: str | None,
    allow_unparseable: bool | None,
    as_json: bool,
    base_image: str,
    template: str | None,
    pyc: bool | None,
    locked: bool,
    tags: tuple[str, ...],
    keep_context: bool,
) -> int:
    """Lock, render, build, smoke-run and tag a slim image; write the manifest beside the project."""
    from slimbuild import build as pipeline
    from slimbuild import report

    _State.json = as_json
    settings = _settings(path, target_python, python, allow_unparseable, template, pyc)
    if locked:
        from slimbuild import pipeline as analysis_pipeline

        analysis_pipeline.lock(settings, entrypoint, locked=True)  # fail on a stale lock before needing an engine
    engine = _connect()

    def progress(event: Any) -> None:
        if event.kind == "step":
            text = " ".join(event.message.split())
            click.echo(f"slimbuild: {text[:117] + '...' if len(text) > 120 else text}", err=True)
        elif event.kind == "context" and event.total_bytes:
            click.echo(f"slimbuild: sending context {event.total_bytes / 1e6:.1f} MB", err=True)

    results = pipeline.build(
        settings,
        entrypoint,
        engine=engine,
        tags=tags,
        locked=locked,
        base_image=base_image,
        on_progress=progress,
        keep_context=keep_context,
    )
    for r in results:
        for w in r.warnings:
            click.echo(f"slimbuild: warning: {w}", err=True)
    click.echo(report.builds_json(results) if as_json else report.builds_text(results), nl=False)
    return int(ExitCode.OK)


@cli.command("inspect")
@click.argument("target", metavar="IMAGE|MANIFEST_FILE")
@click.option("--json", "as_json", is_flag=True, help="Print one versioned JSON object on stdout.")
def inspect_cmd(target: str, as_json: bool) -> int:
    """Show what is inside an image built by slimbuild (or a manifest file)."""
    from slimbuild import manifest

    _State.json = as_json
    path = Path(target)
    if path.is_file() and path.suffix == ".json":
        doc = manifest.read_manifest_file(path)
    elif path.is_file():
        with path.open("rb") as fh:  # a `docker save` tar
            doc = manifest.read_manifest_from_image_tar(fh, source=target)
    else:
        engine = _connect()
        info = engine.inspect_image(target)
        doc = manifest.manifest_from_image_config(info, source=target)
        if doc.get("image") is None:
            base = doc["base_image"]["digest_or_id"]
            try:
                base_info = engine.inspect_image(base)
            except SlimbuildError:
                base_info = None
            doc = manifest.with_image(doc, manifest.image_info_from_inspect(info, base_info))
    click.echo(manifest.render_inspect_json(doc) if as_json else manifest.render_inspect_text(doc), nl=False)
    return int(ExitCode.OK)


@cli.command("diff")
@click.argument("old", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("new", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--all", "include_volatile", is_flag=True, help="Also compare volatile fields (image id, sizes, tags).")
def diff_cmd(old: Path, new: Path, include_volatile: bool) -> int:
    """Compare two manifests; exit 1 when they differ."""
    from slimbuild import manifest

    changes = manifest.diff_manifests(
        manifest.read_manifest_file(old), manifest.read_manifest_file(new), include_volatile=include_volatile
    )
    for c in changes:
        click.echo(c.render())
    return int(ExitCode.FINDINGS if changes else ExitCode.OK)


def _on_signal(signum: int, _frame: object) -> None:
    raise Interrupted(f"interrupted by signal {signal.Signals(signum).name}", hint="nothing was left half-written")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; return the documented exit code (never raise)."""
    _State.debug = bool(os.environ.get("SLIMBUILD_DEBUG"))
    _State.json = False
    previous = signal.getsignal(signal.SIGTERM)
    try:
        signal.signal(signal.SIGTERM, _on_signal)
    except ValueError:  # not in the main thread (e.g. some test runners)
        previous = None
    try:
        rv = cli.main(args=list(argv) if argv is not None else None, prog_name="slimbuild", standalone_mode=False)
        return int(rv) if isinstance(rv, int) else int(ExitCode.OK)
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        return int(ExitCode.USAGE)
    except (KeyboardInterrupt, click.exceptions.Abort):
        return _report(Interrupted("interrupted", hint="nothing was left half-written"))
    except SlimbuildError as exc:
        return _report(exc)
    except Exception as exc:  # noqa: BLE001 - the one place that turns surprises into exit 70
        if _State.debug:
            traceback.print_exc()
        err = SlimbuildError(
            f"internal error: {type(exc).__name__}: {exc}",
            hint="please report it; rerun with --debug for a traceback",
        )
        return _report(err)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _report(err: SlimbuildError) -> int:
    if _State.debug and sys.exc_info()[0] is not None:
        traceback.print_exc()
    if _State.json:
        from slimbuild.report import error_json

        click.echo(error_json(err), nl=False)
    click.echo(f"slimbuild: error: {err.one_line()}", err=True)
    return int(err.exit_code)


def entry() -> None:
    """Console-script entry point."""
    sys.exit(main())
