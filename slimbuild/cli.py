"""The click layer: parse options, call one pipeline function, render, return an exit code.

Everything it prints goes through ``_echo``, which redacts URL credentials (slimbuild/redact.py, B16): results,
warnings, progress lines, errors (slimbuild's, click's usage errors and internal errors alike).
"""

from __future__ import annotations

import io
import os
import signal
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from slimbuild import __version__, options
from slimbuild.errors import ExitCode, Interrupted, SlimbuildError
from slimbuild.redact import redact

if TYPE_CHECKING:  # imported where used: a replayed warm check loads neither the pipeline nor its models
    from slimbuild.cache.replay import Output, Recorder
    from slimbuild.config import Settings


class _State:
    debug = False
    json = False


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="slimbuild")
@click.option("--debug", is_flag=True, envvar="SLIMBUILD_DEBUG", help="Show tracebacks for errors.")
def cli(debug: bool) -> None:
    """Trace what an analysis imports, lock it, and build a slim, reproducible image."""
    _State.debug = debug


@cli.command()
@options.path_arg
@options.analysis
def analyze(path: Path, entrypoint: str, as_json: bool, **opts: Any) -> int:
    """Show what the entrypoint needs: files, distributions, unused and missing ones."""
    _State.json = as_json
    return _replayable("analyze", options.settings_from(path, opts), entrypoint, as_json)


@cli.command()
@options.path_arg
@options.analysis
def check(path: Path, entrypoint: str, as_json: bool, **opts: Any) -> int:
    """Gate for pre-commit and CI: exit 1 when an import is undeclared or unresolved."""
    _State.json = as_json
    return _replayable("check", options.settings_from(path, opts), entrypoint, as_json)


def _replayable(command: str, settings: Settings, entrypoint: str, as_json: bool) -> int:
    """Print the output of ``analyze``/``check``: replayed when nothing it read has changed, else computed."""
    from slimbuild.cache import replay
    from slimbuild.paths import cache_dir

    cache = cache_dir()
    key = replay.outcome_key(command, as_json, entrypoint, settings, os.environ)
    output = replay.lookup(cache, key, settings.max_source_bytes) if key is not None else None
    if output is None:
        record = replay.Recorder(settings.max_source_bytes)
        output = _output(command, settings, entrypoint, as_json, record)
        if key is not None:
            replay.store(cache, key, record, output)
    _echo(output.stdout, nl=False)
    _echo(output.stderr, nl=False, err=True)
    return output.exit_code


def _output(command: str, settings: Settings, entrypoint: str, as_json: bool, record: Recorder) -> Output:
    from slimbuild import pipeline, report
    from slimbuild.cache.replay import Output

    if command == "analyze":
        analyses = pipeline.analyze(settings, entrypoint, record=record)
        if as_json:
            return Output(report.analyses_json(analyses), "", int(ExitCode.OK))
        found = sorted({f for a in analyses for f in a.findings})
        return Output("\n".join(report.analysis_text(a) for a in analyses), report.findings_text(found), int(ExitCode.OK))
    analyses, findings, fails = pipeline.check(settings, entrypoint, record=record)
    code = int(ExitCode.FINDINGS if fails else ExitCode.OK)
    if as_json:
        return Output(report.analyses_json(analyses), "", code)
    return Output("", report.findings_text(findings) + report.check_summary(findings), code)


def _echo(text: str, *, err: bool = False, nl: bool = True) -> None:
    """The one way out of the CLI: TEXT with every URL credential masked, to stdout (or stderr)."""
    click.echo(redact(text), err=err, nl=nl)


def _warn(warnings: Sequence[str]) -> None:
    for w in warnings:
        _echo(f"slimbuild: warning: {w}", err=True)


@cli.command("lock")
@options.path_arg
@options.analysis
@options.lock
def lock_cmd(
    path: Path, entrypoint: str, as_json: bool, upgrade: bool, upgrade_packages: tuple[str, ...], audit: bool, **opts: Any
) -> int:
    """Lock exactly what the analysis needs, with hashes, for the image's platform; fetch the wheels."""
    from slimbuild import pipeline, report

    _State.json = as_json
    settings = options.settings_from(path, opts)
    outcomes = pipeline.lock(settings, entrypoint, upgrade=upgrade, upgrade_packages=upgrade_packages, audit=audit)
    for o in outcomes:
        _warn(o.warnings)
        _echo(report.findings_text(o.findings), nl=False, err=True)
    _echo(report.locks_json(outcomes) if as_json else report.locks_text(outcomes), nl=False)
    return int(ExitCode.OK)


def _connect() -> Any:
    from slimbuild.image.engine import connect

    return connect()


@cli.command("dockerfile")
@options.path_arg
@options.analysis
@options.build
def dockerfile_cmd(
    path: Path, entrypoint: str, as_json: bool, base_image: str, locked: bool, upgrade: bool, **opts: Any
) -> int:
    """Print the Dockerfile that build would use (the context layout is in README.md)."""
    from slimbuild import pipeline, report
    from slimbuild.errors import EngineUnavailable

    _State.json = as_json
    settings = options.settings_from(path, opts)
    ref = base_image or settings.base_image
    try:
        engine = None if "@sha256:" in ref else _connect()
    except EngineUnavailable:
        engine = None  # resolve_base says what to do
    prepared = pipeline.prepare_build(
        settings, entrypoint, engine=engine, locked=locked, base_image=base_image, upgrade=upgrade
    )
    for p in prepared:
        _warn(p.warnings)
    _echo(report.dockerfiles_json(prepared) if as_json else report.dockerfiles_text(prepared), nl=False)
    return int(ExitCode.OK)


def _progress(event: Any) -> None:
    if event.kind == "step":
        text = redact(" ".join(event.message.split()))  # before the cut: a cut URL could not be masked
        _echo(f"slimbuild: {text[:117] + '...' if len(text) > 120 else text}", err=True)
    elif event.kind == "context" and event.total_bytes:
        _echo(f"slimbuild: sending context {event.total_bytes / 1e6:.1f} MB", err=True)
    elif event.kind == "push":
        _echo(f"slimbuild: {event.message}", err=True)
    elif event.kind == "retry":  # every retry of a push, slimbuild's or the engine's own, is shown
        _echo(f"slimbuild: warning: {event.message}", err=True)


@cli.command("build")
@options.path_arg
@options.analysis
@options.build
@options.tags
@options.sbom
def build_cmd(
    path: Path, entrypoint: str, as_json: bool, base_image: str, locked: bool, upgrade: bool, with_sbom: bool, **opts: Any
) -> int:
    """Lock, render, build, smoke-run and tag a slim image (and push it); write the manifest beside the project."""
    from slimbuild import pipeline, report

    _State.json = as_json
    tags, keep_context = opts.pop("tags"), opts.pop("keep_context")
    no_cache, push, trace_in_image = opts.pop("no_cache"), opts.pop("push"), opts.pop("trace_in_image")
    settings = options.settings_from(path, opts)
    results = pipeline.build(
        settings,
        entrypoint,
        connect=_connect,
        tags=tags,
        locked=locked,
        upgrade=upgrade,
        base_image=base_image,
        on_progress=_progress,
        keep_context=keep_context,
        nocache=no_cache,
        sbom=with_sbom,
        push=push,
        trace_in_image=trace_in_image,
    )
    for r in results:
        _warn(r.warnings)
    _echo(report.builds_json(results) if as_json else report.builds_text(results), nl=False)
    return int(ExitCode.OK)


def _platform(value: str | None) -> str | None:
    """A ``--platform`` checked (os/arch[/variant]) before anything is read; exit 2 otherwise."""
    if value is None:
        return None
    from slimbuild.image.oci import check_platform

    return check_platform(value)


@cli.command("inspect")
@click.argument("target", metavar="IMAGE|docker://REF|MANIFEST_FILE|SAVED.tar")
@options.platform
@options.as_json
def inspect_cmd(target: str, platform: str | None, as_json: bool) -> int:
    """Show what is inside an image built by slimbuild (the engine's or a registry's), a saved tar or a manifest file."""
    from slimbuild import pipeline, report

    _State.json = as_json
    doc = pipeline.inspect(target, _connect, platform=_platform(platform))
    _echo(report.inspect_json(doc) if as_json else report.inspect_text(doc), nl=False)
    return int(ExitCode.OK)


@cli.command("diff")
@click.argument("old", metavar="A")
@click.argument("new", metavar="B")
@click.option("--all", "include_volatile", is_flag=True, help="Also compare volatile fields (image id, sizes, tags).")
@options.platform
@options.as_json
def diff_cmd(old: str, new: str, include_volatile: bool, platform: str | None, as_json: bool) -> int:
    """Compare two images (the engine's or a registry's), saved tars or manifests (in any mix); exit 1 when they differ."""
    from slimbuild import pipeline, report

    _State.json = as_json
    comparison = pipeline.diff(old, new, _connect, include_volatile=include_volatile, platform=_platform(platform))
    _echo(report.diff_json(comparison) if as_json else report.diff_text(comparison), nl=False)
    return int(ExitCode.FINDINGS if comparison.differs else ExitCode.OK)


@cli.command("sbom")
@click.argument("target", metavar="IMAGE|MANIFEST|SAVED.tar")
@click.option("--format", "fmt", type=click.Choice(options.SBOM_FORMATS), default="cyclonedx", show_default=True)
@click.option(
    "--output", "-o", type=click.Path(path_type=Path), default=None, metavar="FILE", help="Write it here (default: stdout)."
)
def sbom_cmd(target: str, fmt: str, output: Path | None) -> int:
    """Print a CycloneDX 1.6 or SPDX 2.3 SBOM: the Python distributions and the base's Debian packages."""
    from slimbuild import pipeline
    from slimbuild.pipeline.sbomming import check_output, write_output

    check_output(output)  # exit 2 before the image is saved
    document, notes = pipeline.sbom(target, _connect, fmt=fmt)
    _warn(notes)
    if output is None:
        _echo(document.decode("utf-8"), nl=False)
    else:
        write_output(output, document)
    return int(ExitCode.OK)


@cli.command("verify")
@click.argument("target", metavar="IMAGE|MANIFEST|SAVED.tar")
@click.option(
    "--project",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="The project's checkout (default: a manifest file's directory, else the current one).",
)
@click.option("--allow-dirty", is_flag=True, help="Rebuild even when the tree is not at the recorded commit or has changes.")
@click.option(
    "--data",
    "data_dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Also check the recorded data files' sha256 against this directory.",
)
@options.as_json
def verify_cmd(target: str, project: Path | None, allow_dirty: bool, data_dir: Path | None, as_json: bool) -> int:
    """Rebuild an image from its record; exit 0 when the rebuild is identical, 9 when it is not."""
    from slimbuild import pipeline, report

    _State.json = as_json
    outcome = pipeline.verify(
        target, connect=_connect, project=project, allow_dirty=allow_dirty, data_dir=data_dir, on_progress=_progress
    )
    click.echo(report.verify_json(outcome) if as_json else report.verify_text(outcome), nl=False)
    return int(ExitCode.OK if outcome.same else ExitCode.NOT_REPRODUCIBLE)


@cli.command("spec")
@options.path_arg
@options.spec
def spec_cmd(path: Path, fmt: str, out_dir: Path | None, repository: str) -> int:
    """Write run specs (Pachyderm, Kubernetes, Argo) for the pushed stage images, pinned by registry digest."""
    from slimbuild import pipeline
    from slimbuild.config import load_settings

    outcome = pipeline.spec(load_settings(path), fmt, out_dir=out_dir, repository=repository, connect=_connect)
    if outcome.written:
        _echo("".join(f"{p}\n" for p in outcome.written), nl=False)
    else:
        from slimbuild.record.runspec import joined

        _echo(joined(fmt, outcome.files), nl=False)
    return int(ExitCode.OK)


class _CommandAfterDashes(click.Command):
    """A command whose arguments after ``--`` are a command line of its own (``slimbuild trace [PATH] -- CMD ...``)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if "--" in args:
            at = args.index("--")
            ctx.meta["command"] = tuple(args[at + 1:])
            args = args[:at]
        return super().parse_args(ctx, args)


@cli.command("trace", cls=_CommandAfterDashes)
@options.path_arg
@options.python
@click.option("--replace", is_flag=True, help="Start the trace file afresh instead of merging this run into it.")
def trace_cmd(path: Path, python: str | None, replace: bool) -> int:
    """Run the analysis as you do (after --), recording what it imports, opens and loads, into slimbuild.trace.json."""
    from slimbuild import pipeline
    from slimbuild.config import load_settings
    from slimbuild.errors import UsageError

    command = click.get_current_context().meta.get("command", ())
    if not command:
        raise UsageError("no command to trace", hint="give it after '--', e.g. slimbuild trace -- python analysis.py")
    outcome = pipeline.trace(load_settings(path, {"python": python}), command, replace=replace)
    if outcome.exit_code != 0:
        _echo(f"slimbuild: error: '{' '.join(command)}' exited with {outcome.exit_code}; no trace written", err=True)
        return outcome.exit_code
    _warn(outcome.warnings)
    t, c = outcome.trace, outcome.command
    assert t is not None and c is not None
    _echo(
        f"traced '{' '.join(c.argv)}' ({outcome.processes} Python process{'es' if outcome.processes != 1 else ''}): "
        f"{len(t.modules)} modules, {len(t.opened)} files opened, {len(t.installed)} installed files, "
        f"{len(t.needed)} extension modules' libraries "
        f"-> {outcome.path.name} ({len(t.commands)} command{'s' if len(t.commands) != 1 else ''})"
    )
    return int(ExitCode.OK)


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
    except click.exceptions.NoArgsIsHelpError as exc:
        shown = io.StringIO()  # `slimbuild` alone: the help, not an error line
        exc.show(file=shown)
        _echo(shown.getvalue(), err=True, nl=False)
        return int(ExitCode.USAGE)
    except click.ClickException as exc:
        args = list(argv) if argv is not None else sys.argv[1:]
        _State.json = "--json" in args[: args.index("--")] if "--" in args else "--json" in args
        return _report(_usage_error(exc, args))
    except (KeyboardInterrupt, click.exceptions.Abort):
        return _report(Interrupted("interrupted", hint="nothing was left half-written"))
    except SlimbuildError as exc:
        return _report(exc)
    except Exception as exc:  # noqa: BLE001 - the one place that turns surprises into exit 70
        if _State.debug:
            _echo(traceback.format_exc(), err=True, nl=False)
        err = SlimbuildError(
            f"internal error: {type(exc).__name__}: {exc}",
            hint="please report it; rerun with --debug for a traceback",
        )
        return _report(err)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _usage_error(exc: click.ClickException, args: Sequence[str]) -> SlimbuildError:
    """A click usage error (unknown option, missing argument, bad choice ...) as one ``slimbuild: error:`` line."""
    from slimbuild.errors import UsageError

    ctx = getattr(exc, "ctx", None)
    if ctx is not None and ctx.command is not cli:
        command = ctx.command_path
    else:  # raised while the group parsed a command's arguments (an option missing its value): name the command
        name = next((a for a in args if a in cli.commands), None)  # type: ignore[attr-defined]
        command = f"slimbuild {name}" if name else "slimbuild"
    message = " ".join(exc.format_message().split()).rstrip(".")
    if message[1:2].islower():
        message = message[:1].lower() + message[1:]  # "No such option" -> "no such option", as our other errors
    return UsageError(message, hint=f"see '{command} --help'")


def _report(err: SlimbuildError) -> int:
    if _State.debug and sys.exc_info()[0] is not None:
        _echo(traceback.format_exc(), err=True, nl=False)
    if _State.json:
        from slimbuild.report import error_json

        _echo(error_json(err), nl=False)
    _echo(f"slimbuild: error: {err.one_line()}", err=True)
    return int(err.exit_code)


def entry() -> None:
    """Console-script entry point."""
    sys.exit(main())
