"""Results as human text or as a versioned JSON object; pure (returns strings).

Every rendering leaves here redacted (slimbuild/redact.py: URL credentials masked as ``***``, B16): the JSON
envelope redacts each value before it is dumped, and each public text rendering is ``@_redacted``.
"""

from __future__ import annotations

import datetime
import functools
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ParamSpec

if TYPE_CHECKING:
    from slimbuild.pipeline.building import BuildInputs, BuildResult
    from slimbuild.pipeline.locking import LockOutcome
    from slimbuild.pipeline.verifying import Verification
    from slimbuild.record.compare import Comparison, Side

from slimbuild.errors import SlimbuildError
from slimbuild.models import Analysis, Finding, ImportSite, Requirement, Severity
from slimbuild.redact import redact

SCHEMA_VERSION = 1
_P = ParamSpec("_P")


def _redacted(render: Callable[_P, str]) -> Callable[_P, str]:
    """A text rendering whose result has every URL credential masked."""

    @functools.wraps(render)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> str:
        return redact(render(*args, **kwargs))

    return wrapper


def envelope(kind: str, body: Mapping[str, Any], *, ascii_only: bool = True) -> str:
    """The versioned JSON object every ``--json`` output is: ``{"version", "kind", ...body}``, keys sorted."""
    doc = redact({"version": SCHEMA_VERSION, "kind": kind, **body})
    return json.dumps(doc, sort_keys=True, indent=2, ensure_ascii=ascii_only) + "\n"


def _site(s: ImportSite) -> dict[str, Any]:
    d: dict[str, Any] = {"module": s.module, "path": s.location.path, "line": s.location.line}
    if s.location.cell is not None:
        d["cell"] = s.location.cell
    return d


def _req(r: Requirement) -> dict[str, Any]:
    return {
        "name": r.name,
        "imports": [_site(s) for s in r.imports],
        "via": list(r.via),
        "declared": r.declared,
        "specifier": r.specifier,
        "optional": r.optional_only,
        "through": list(r.through),
    }


def _finding(f: Finding) -> dict[str, Any]:
    d: dict[str, Any] = {
        "code": f.code,
        "severity": f.severity.value,
        "message": f.message,
        "path": f.location.path,
        "line": f.location.line,
    }
    if f.location.cell is not None:
        d["cell"] = f.location.cell
    return d


def analysis_dict(a: Analysis) -> dict[str, Any]:
    """One entrypoint's analysis as plain data with stable keys."""
    return {
        "name": a.entrypoint_name,
        "entrypoint": a.entrypoint,
        "target_python": a.target_python,
        "files": list(a.files),
        "required": [_req(r) for r in a.required],
        "missing": [_req(r) for r in a.missing],
        "unused": [{"name": d.name, "path": d.source.path, "line": d.source.line} for d in a.unused],
        "optional": [_req(r) for r in a.optional],
        "unresolved": [_site(s) for s in a.unresolved],
        "unresolved_dynamic": [
            {"path": loc.path, "line": loc.line, **({"cell": loc.cell} if loc.cell is not None else {})}
            for loc in a.dynamic_unresolved
        ],
        "type_checking": [_site(s) for s in a.type_checking],
        "never_run": [_site(s) for s in a.never_run],
        "pip_hints": [{"package": p, "path": loc.path, "cell": loc.cell, "line": loc.line} for loc, p in a.pip_hints],
        "unparsed": list(a.unparsed),
        "stdlib": list(a.stdlib),
        "findings": [_finding(f) for f in a.findings],
    }


def _union(items: Iterable[list[dict[str, Any]]], key: str) -> list[dict[str, Any]]:
    seen: dict[str, dict[str, Any]] = {}
    for lst in items:
        for item in lst:
            seen.setdefault(str(item.get(key)) + json.dumps(item, sort_keys=True), item)
    return [seen[k] for k in sorted(seen)]


def analyses_json(analyses: Sequence[Analysis]) -> str:
    """The versioned JSON document for ``analyze --json``."""
    per = [analysis_dict(a) for a in analyses]
    required_names = {r["name"] for p in per for r in p["required"]}
    doc: dict[str, Any] = {
        "entrypoints": per,
        "files": sorted({f for p in per for f in p["files"]}),
        "required": _merge_reqs(p["required"] for p in per),
        "missing": _merge_reqs(p["missing"] for p in per),
        "optional": _merge_reqs(p["optional"] for p in per),
        "unresolved": _union((p["unresolved"] for p in per), "module"),
        "unused": sorted(
            {u["name"]: u for p in per for u in p["unused"] if u["name"] not in required_names}.values(),
            key=lambda u: u["name"],
        ),
    }
    return envelope("analysis", doc)


def _merge_reqs(groups: Iterable[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    merged: dict[str, dict[str, Any]] = {}
    for group in groups:
        for r in group:
            cur = merged.setdefault(r["name"], {**r, "imports": []})
            for s in r["imports"]:
                if s not in cur["imports"]:
                    cur["imports"].append(s)
            cur["via"] = sorted(set(cur["via"]) | set(r["via"]))
    for r in merged.values():
        r["imports"].sort(key=lambda s: (s["path"], s.get("cell") or 0, s["line"], s["module"]))
    return [merged[k] for k in sorted(merged)]


def _sites_text(sites: Sequence[ImportSite], limit: int = 3) -> str:
    locs = [str(s.location) for s in sites[:limit]]
    more = f" (+{len(sites) - limit} more)" if len(sites) > limit else ""
    return ", ".join(locs) + more


@_redacted
def analysis_text(a: Analysis) -> str:
    """Human-readable report of one entrypoint."""
    out = [f"entrypoint {a.entrypoint_name}: {a.entrypoint} (target Python {a.target_python})"]
    out.append(f"  first-party files ({len(a.files)}): {', '.join(a.files)}")
    out.append(f"  required distributions ({len(a.required)}):")
    width = max((len(r.name) for r in (*a.required, *a.optional)), default=10)
    where: dict[str, object] = {}
    for d in a.declared:
        where.setdefault(d.name, d.source)
    for r in a.required:
        state = "declared" if r.declared else f"through {r.through[0]}" if r.through else "NOT DECLARED"
        sites = _sites_text(r.imports) if r.imports else "(keep list)" if "keep" in r.via else "(third-party import)"
        at = f" (declared in {where[r.name]})" if r.declared and r.name in where else ""
        out.append(f"    {r.name:<{width}}  {state:<12}  via {', '.join(r.via)}: {sites}{at}")
    if a.missing:
        out.append(f"  missing ({len(a.missing)}): {', '.join(r.name for r in a.missing)}")
    if a.unused:
        out.append(f"  unused, left out of the image ({len(a.unused)}): " + ", ".join(f"{d.name} ({d.source})" for d in a.unused))
    if a.optional:
        out.append(
            f"  optional, undeclared ({len(a.optional)}): "
            + ", ".join(f"{r.name} ({_sites_text(r.imports, 1)})" for r in a.optional)
        )
    if a.unresolved:
        out.append(
            f"  unresolved imports ({len(a.unresolved)}): " + ", ".join(f"{s.module} ({s.location})" for s in a.unresolved)
        )
    if a.dynamic_unresolved:
        out.append(f"  dynamic imports not traced ({len(a.dynamic_unresolved)}): " + ", ".join(map(str, a.dynamic_unresolved)))
    if a.type_checking:
        out.append(
            f"  TYPE_CHECKING only, not in the image ({len(a.type_checking)}): "
            + ", ".join(sorted({s.module for s in a.type_checking}))
        )
    if a.never_run:
        out.append(
            f"  imports the image never runs (Python {a.target_python} on Linux), left out ({len(a.never_run)}): "
            + ", ".join(sorted({s.module for s in a.never_run}))
        )
    if a.pip_hints:
        out.append("  notebook installs (hints only, never added): " + ", ".join(sorted({p for _, p in a.pip_hints})))
    if a.unparsed:
        out.append(f"  unparsed, token scan only ({len(a.unparsed)}): {', '.join(a.unparsed)}")
    return "\n".join(out) + "\n"


@_redacted
def findings_text(findings: Iterable[Finding]) -> str:
    """Lint-style lines, one per finding."""
    return "".join(f"{f.render()}\n" for f in findings)


@_redacted
def check_summary(findings: Sequence[Finding]) -> str:
    """The closing line of ``check``."""
    errors = sum(1 for f in findings if f.severity is Severity.ERROR)
    warnings = sum(1 for f in findings if f.severity is Severity.WARNING)
    return f"slimbuild check: {errors} error(s), {warnings} warning(s)\n"


def error_json(err: SlimbuildError) -> str:
    """An error as the versioned JSON object (for ``--json``)."""
    return envelope(
        "error", {"error": {"kind": err.kind, "message": err.message, "hint": err.hint, "exit_code": int(err.exit_code)}}
    )


def _lock_dict(o: LockOutcome) -> dict[str, Any]:
    return {
        "entrypoint": o.analysis.entrypoint_name,
        "lock": o.path.name,
        "target": o.lock.target.describe() if o.lock.target else "",
        "inputs_sha256": o.lock.inputs_sha256,
        "resolved": o.resolved,
        "distributions": [{"name": d.name, "version": d.version, "hashes": list(d.hashes)} for d in o.lock.dists],
        "pins": [{"name": p.name, "version": p.version, "source": p.source} for p in o.lock.pins],
        "wheels": sorted(p.name for p in o.wheels),
        "wheel_bytes": sum(p.stat().st_size for p in o.wheels),
        "warnings": list(o.warnings),
        "findings": [_finding(f) for f in o.findings],
        "audit": None if o.audit is None else [
            {"name": v.name, "version": v.version, "id": v.id, "fix_versions": list(v.fix_versions)} for v in o.audit
        ],
    }


def locks_json(outcomes: Sequence[LockOutcome]) -> str:
    """The versioned JSON document for ``lock --json``."""
    return envelope("lock", {"locks": [_lock_dict(o) for o in outcomes]})


@_redacted
def locks_text(outcomes: Sequence[LockOutcome]) -> str:
    """One line per lock."""
    lines = []
    for o in outcomes:
        d = _lock_dict(o)
        state = "resolved" if o.resolved else "up to date, no resolution"
        lines.append(
            f"{d['lock']}: {len(d['distributions'])} distributions for {d['target']} ({state}); "
            f"wheelhouse {len(d['wheels'])} files, {d['wheel_bytes'] / 1e6:.1f} MB"
        )
    return "\n".join(lines) + "\n"


def _build_dict(r: BuildResult) -> dict[str, Any]:
    return {
        "image_id": r.image_id,
        "tags": list(r.tags),
        "size_bytes": r.size_bytes,
        "added_bytes": r.added_bytes,
        "manifest": str(r.manifest_path),
        "pushed": [dict(p) for p in r.pushed],
        "warnings": list(r.warnings),
    }


def builds_json(results: Sequence[BuildResult]) -> str:
    """The versioned JSON document for ``build --json``."""
    return envelope("build", {"images": [_build_dict(r) for r in results]})


@_redacted
def builds_text(results: Sequence[BuildResult]) -> str:
    """One block per image."""
    out = []
    for r in results:
        out.append(f"image {r.image_id}")
        out.append(f"  size {r.size_bytes / 1e6:.1f} MB ({r.added_bytes / 1e6:.1f} MB over the base)")
        out.extend(f"  tag {t}" for t in r.tags)
        out.extend(f"  pushed {p['reference']}@{p['digest']}" for p in r.pushed)
        out.append(f"  manifest {r.manifest_path}")
    return "\n".join(out) + "\n"


@_redacted
def dockerfiles_text(prepared: Sequence[BuildInputs]) -> str:
    """What ``dockerfile`` prints: each entrypoint's Dockerfile."""
    return "".join(p.dockerfile for p in prepared)


def _verify_dict(v: Verification) -> dict[str, Any]:
    return {
        "target": v.target,
        "same": v.same,
        "recorded_id": v.recorded_id,
        "rebuilt_id": v.rebuilt_id,
        "layers": [
            {
                "index": d.index,
                "recorded": d.recorded,
                "rebuilt": d.rebuilt,
                "files": [{"path": f.path, "change": f.change, "recorded": f.recorded, "rebuilt": f.rebuilt} for f in d.files],
                "more_files": d.more,
            }
            for d in v.layers
        ],
        "diffoscope": v.diffoscope or None,
        "data_files_checked": v.data_checked,
        "inputs_warning": v.refusal_overridden or None,
        "base_note": v.base_note or None,
    }


def verify_json(v: Verification) -> str:
    """The versioned JSON document for ``verify --json``."""
    return envelope("verify", _verify_dict(v))


@_redacted
def verify_text(v: Verification) -> str:
    """What ``verify`` prints: the verdict, then the first differences layer by layer."""
    out = []
    if v.refusal_overridden:
        out.append(f"warning: {v.refusal_overridden} (--allow-dirty)")
    if v.base_note:
        out.append(f"note: {v.base_note}")
    if v.data_checked:
        out.append(f"data: {v.data_checked} recorded file(s) match")
    if v.same:
        out.append(f"reproduced: {v.rebuilt_id} (the rebuild is the recorded image)")
        return "\n".join(out) + "\n"
    out.append(f"not reproduced: recorded {v.recorded_id}, rebuilt {v.rebuilt_id}")
    if not v.layers:
        out.append("  the layers are the same: the image config differs")
    for d in v.layers:
        out.append(f"  layer {d.index}: recorded {d.recorded[:19] or '(none)'}, rebuilt {d.rebuilt[:19] or '(none)'}")
        out.extend(f"    {f.render()}" for f in d.files)
        if d.more:
            out.append(f"    ... {d.more} more")
    if v.diffoscope:
        out.append(f"diffoscope: {v.diffoscope}")
    return "\n".join(out) + "\n"


def dockerfiles_json(prepared: Sequence[BuildInputs]) -> str:
    """The versioned JSON document for ``dockerfile --json``."""
    return envelope("dockerfile", {"dockerfiles": [{"entrypoint": p.entry.name, "dockerfile": p.dockerfile} for p in prepared]})


# --------------------------------------------------------------------------- diff


def _side_dict(side: Side) -> dict[str, Any]:
    return {"source": side.source, "form": side.form}


def _input_state(record: Mapping[str, Any] | None) -> dict[str, Any] | None:
    return None if record is None else {k: record.get(k) for k in ("digest", "outs", "sha256", "type")}


def _traced_state(record: Mapping[str, Any] | None) -> dict[str, Any] | None:
    return None if record is None else {k: record.get(k) for k in ("included", "missing", "sha256", "size")}


def _split(items: Sequence[Any], old: Callable[[Any], Any], new: Callable[[Any], Any]) -> dict[str, list[Any]]:
    """Changes as ``added`` (no old value), ``removed`` (no new value) and ``changed``."""
    return {
        "added": [i for i in items if old(i) is None],
        "removed": [i for i in items if new(i) is None],
        "changed": [i for i in items if old(i) is not None and new(i) is not None],
    }


def diff_dict(c: Comparison) -> dict[str, Any]:
    """A comparison as plain data with stable keys (the body of ``diff --json``)."""
    dists = _split(c.distributions, lambda d: d.old, lambda d: d.new)
    files = _split(c.files, lambda f: f.old_sha256, lambda f: f.new_sha256)
    inputs = _split(c.inputs, lambda i: i.old, lambda i: i.new)
    traced = _split(c.traced_data, lambda t: t.old, lambda t: t.new)
    base = c.base
    return {
        "old": _side_dict(c.old),
        "new": _side_dict(c.new),
        "same": not c.differs,
        "distributions": {
            "added": [{"name": d.name, "version": d.new} for d in dists["added"]],
            "removed": [{"name": d.name, "version": d.old} for d in dists["removed"]],
            "changed": [{"name": d.name, "old": d.old, "new": d.new, "hashes_only": d.hashes_changed} for d in dists["changed"]],
        },
        "base_image": None if base is None else {
            "old": {"reference": base.old_reference, "digest_or_id": base.old_digest},
            "new": {"reference": base.new_reference, "digest_or_id": base.new_digest},
            "same_tag": base.same_tag,
        },
        "files": {
            key: [{"path": f.path, "kind": f.kind, "old_sha256": f.old_sha256, "new_sha256": f.new_sha256} for f in group]
            for key, group in files.items()
        },
        "inputs": {
            key: [{"kind": i.kind, "ref": i.ref, "old": _input_state(i.old), "new": _input_state(i.new)} for i in group]
            for key, group in inputs.items()
        },
        "traced_data": {
            key: [{"path": t.path, "old": _traced_state(t.old), "new": _traced_state(t.new)} for t in group]
            for key, group in traced.items()
        },
        "sizes": {
            "source": c.sizes.source,
            "measure": c.sizes.measure,
            "layers": [{"index": s.index, "old": s.old, "new": s.new, "difference": s.difference} for s in c.sizes.layers],
            "total": {"old": c.sizes.old_total, "new": c.sizes.new_total, "difference": c.sizes.difference},
        },
        "other": [{"path": ch.path, "old": ch.old, "new": ch.new} for ch in c.other],
    }  # fmt: skip


def diff_json(c: Comparison) -> str:
    """The versioned JSON document for ``diff --json``."""
    return envelope("diff", diff_dict(c), ascii_only=False)


def _signed(n: int | None) -> str:
    if n is None:
        return "?"
    return ("+" if n > 0 else "-" if n < 0 else "±") + format_size(abs(n))


def _short(sha: str | None) -> str:
    return "-" if sha is None else sha[:12]


def _traced_sha(record: Mapping[str, Any] | None) -> str:
    return "missing" if record is not None and record.get("missing") else _short(None if record is None else record["sha256"])


# long: one section per kind of difference, each a few lines
def diff_text(c: Comparison) -> str:
    """What ``diff`` prints: one section per kind of difference, then the sizes."""
    verdict = "differ" if c.differs else "same"
    lines = [f"{c.old.source} ({c.old.form}) -> {c.new.source} ({c.new.form}): {verdict}"]
    if c.distributions:
        lines.append(f"distributions ({len(c.distributions)}):")
        for d in c.distributions:
            if d.old is None or d.new is None:
                lines.append(f"  {'+' if d.old is None else '-'} {d.name} {d.new or d.old}")
            else:
                lines.append(f"  ~ {d.name} {d.old} -> {d.new}" + (" (same version, other hashes)" if d.hashes_changed else ""))
    if c.base is not None:
        b = c.base
        if b.same_tag:
            lines.append(f"base image changed: {b.new_reference.split('@', 1)[0]} (same tag, new digest)")
        else:
            lines.append(f"base image changed: {b.old_reference} -> {b.new_reference}")
        lines.append(f"  {b.old_digest} -> {b.new_digest}")
    if c.files:
        lines.append(f"first-party and data files ({len(c.files)}):")
        for f in c.files:
            mark = "+" if f.old_sha256 is None else "-" if f.new_sha256 is None else "~"
            lines.append(f"  {mark} {f.path} ({f.kind}) sha256 {_short(f.old_sha256)} -> {_short(f.new_sha256)}")
    if c.inputs:
        lines.append(f"data inputs ({len(c.inputs)}):")
        for i in c.inputs:
            mark = "+" if i.old is None else "-" if i.new is None else "~"
            old, new = (None if r is None else (r.get("digest") or r.get("sha256")) for r in (i.old, i.new))
            lines.append(f"  {mark} {i.kind} {i.ref} {_short(old)} -> {_short(new)}")
    if c.traced_data:
        lines.append(f"data files the traced runs opened ({len(c.traced_data)}):")
        for t in c.traced_data:
            mark = "+" if t.old is None else "-" if t.new is None else "~"
            lines.append(f"  {mark} {t.path} sha256 {_traced_sha(t.old)} -> {_traced_sha(t.new)}")
    if c.other:
        lines.append(f"other changes ({len(c.other)}):")
        lines.extend(f"  {ch.render()}" for ch in c.other)
    s = c.sizes
    lines.append(f"sizes (from the {s.source}, {s.measure or 'unknown measure'}):")
    rows = [[f"layer {x.index}", format_size(x.old), format_size(x.new), _signed(x.difference)] for x in s.layers]
    rows.append(["total", format_size(s.old_total), format_size(s.new_total), _signed(s.difference)])
    lines.extend(_table(rows))
    return "\n".join(lines) + "\n"


def inspect_json(manifest: Mapping[str, Any]) -> str:
    """The versioned JSON document for ``inspect --json`` (the manifest's own non-ASCII text kept as is)."""
    return envelope("inspect", {"manifest": manifest}, ascii_only=False)


@_redacted
def inspect_text(manifest: Mapping[str, Any], *, declared_left_out: bool = True) -> str:
    """What ``inspect`` prints."""
    return _render_inspect_text(manifest, declared_left_out=declared_left_out)


# --------------------------------------------------------------------------- inspect text


def format_size(size: int | None) -> str:
    """A byte count in decimal units (``12.3 MB``), or ``?`` when unknown."""
    if size is None:
        return "?"
    value = float(size)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{size} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} TB"  # pragma: no cover - the loop always returns


def _table(rows: list[list[str]], indent: str = "  ") -> list[str]:
    if not rows:
        return []
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [indent + "  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]


def _epoch_text(epoch: int) -> str:
    stamp = datetime.datetime.fromtimestamp(epoch, tz=datetime.timezone.utc)
    return f"{epoch} ({stamp.strftime('%Y-%m-%dT%H:%M:%SZ')})"


def _inputs_lines(inputs: Sequence[Mapping[str, Any]]) -> list[str]:
    if not inputs:
        return []
    rows = [[i["kind"], i["ref"], i["type"] or "", (i["digest"] or i["sha256"] or "not pinned")[:12]] for i in inputs]
    return [f"data inputs ({len(inputs)}):", *_table(rows)]


def _traced_lines(traced: Sequence[Mapping[str, Any]] | None, shown: int = 10) -> list[str]:
    """The data files the traced runs opened (at most ``shown`` of them); nothing without a trace."""
    if not traced:
        return []
    size, held = format_size(sum(r["size"] or 0 for r in traced)), sum(1 for r in traced if r["included"])
    head = f"data files the traced runs opened ({len(traced)}, {size}, {held} in the image):"
    rows = [[r["path"], "-" if r["missing"] else format_size(r["size"]), _traced_sha(r),
             "in the image" if r["included"] else "not in the image"] for r in traced[:shown]]  # fmt: skip
    more = [f"  ... and {len(traced) - shown} more (inspect --json lists them all)"] if len(traced) > shown else []
    return [head, *_table(rows), *more]


def _render_inspect_text(manifest: Mapping[str, Any], *, declared_left_out: bool = True) -> str:
    """The manifest as human text: base, target, distributions by size, files, how it was built."""
    m = manifest
    base, target, template = m["base_image"], m["target"], m["template"]
    lines = [f"slimbuild manifest (schema {m['schema_version']}, written by slimbuild {m['slimbuild_version']})"]
    local = "  (local only, not pullable)" if base["local_only"] else ""
    lines.append(f"base image: {base['reference']}  {base['digest_or_id']}{local}")
    lines.append(f"target: Python {target['python']} on {target['platform']}")
    entry = m["entrypoint"]
    if entry is not None:
        lines.append(f"entrypoint: {entry['name']}: {entry['path']}  ({' '.join(entry['argv'])})")
    image = m["image"]
    if image is None:
        lines.append("image: not recorded (manifest written before the build)")
    else:
        added = "" if image["added_bytes"] is None else f" ({format_size(image['added_bytes'])} over the base)"
        lines.append(
            f"image: {image['id']}  {format_size(image['size_bytes'])}{added}, {len(image['layer_diff_ids'])} layers"
        )
        if image["tags"]:
            lines.append(f"  tags: {', '.join(image['tags'])}")
        lines.extend(f"  pushed: {p['reference']}@{p['digest']}" for p in m.get("pushed") or [])  # build --push
        lines.extend(f"  layer {i}: {diff_id}" for i, diff_id in enumerate(image["layer_diff_ids"]))
    dists = sorted(m["distributions"], key=lambda d: (-(d["size_bytes"] or -1), d["name"]))
    total = sum(d["size_bytes"] or 0 for d in dists)
    lines.append(f"distributions ({len(dists)}, {format_size(total)} installed):")
    lines.extend(
        _table([[d["name"], d["version"], format_size(d["size_bytes"]), ", ".join(d["required_by"])] for d in dists])
    )
    files = m["files"]
    lines.append(f"first-party files ({len(files)}, {format_size(sum(f['size'] for f in files))}):")
    lines.extend(_table([[f["path"], f["kind"], format_size(f["size"]), f["sha256"][:12]] for f in files]))
    lines.extend(_inputs_lines(m.get("inputs") or []))  # none in a version 1 manifest
    lines.extend(_traced_lines(m.get("traced_data")))  # only with a trace
    lines.append("built with:")
    git = m["git"]
    git_text = "not a git checkout" if git is None else git["commit"] + (" (uncommitted changes)" if git["dirty"] else "")
    built = [
        ["template", template["name"]],
        ["Dockerfile sha256", template["dockerfile_sha256"]],
        ["SOURCE_DATE_EPOCH", _epoch_text(m["source_date_epoch"])],
        ["git", git_text],
        ["lock sha256", m["lock_sha256"]],
        ["index", ", ".join(m["index_sources"]) or "(none recorded)"],
    ]
    for run in m["smoke"]:
        verdict = "ok" if run["ok"] else "FAILED"
        built.append(["smoke run", f"{' '.join(run['command'])} -> exit {run['exit_code']} ({verdict})"])
    lines.extend(_table(built))
    if m["excluded_sensitive"]:
        lines.append(f"sensitive files kept out ({len(m['excluded_sensitive'])}): {', '.join(m['excluded_sensitive'])}")
    if declared_left_out and m["declared_left_out"]:
        left = m["declared_left_out"]
        lines.append(f"declared but left out of the image ({len(left)}): {', '.join(left)}")
    if m["unparsed"]:
        lines.append(f"unparsed files ({len(m['unparsed'])}): {', '.join(m['unparsed'])}")
    if m["unresolved_dynamic"]:
        where = m["unresolved_dynamic"]
        lines.append(f"dynamic imports not traced ({len(where)}): {', '.join(where)}")
    return "\n".join(lines) + "\n"

