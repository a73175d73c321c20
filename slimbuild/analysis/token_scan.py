"""The tokenize fallback: static imports of a file ``ast`` cannot parse (newer syntax, Python 2); pure."""

from __future__ import annotations

import io
import token
import tokenize
from collections.abc import Iterator

from slimbuild.models import Finding, Location, ParsedSource, RawImport, Severity


def scan_tokens(text: str, path: str, *, cell: int | None = None, reason: str = "") -> ParsedSource:
    """Find static imports with the tokenizer, for files ``ast`` cannot parse (newer syntax)."""
    imports: list[RawImport] = []
    try:
        for line, col, module, names, level in _token_imports(text):
            imports.append(RawImport(line, col, module, names, level, False, False, False, cell))
    except (tokenize.TokenError, SyntaxError, IndentationError):
        pass  # keep what was found before the tokenizer gave up
    note = Finding(
        Location(path, 0, 0, cell),
        "SB005",
        f"could not parse ({reason or 'syntax error'}); imports found by a token scan only",
        Severity.WARNING,
    )
    return ParsedSource(path=path, imports=tuple(imports), findings=(note,), fallback=True)


def _token_imports(text: str) -> Iterator[tuple[int, int, str | None, tuple[str, ...], int]]:
    tokens = tokenize.generate_tokens(io.StringIO(text).readline)
    logical: list[tokenize.TokenInfo] = []
    for tok in tokens:
        if tok.type in (token.NEWLINE, token.ENDMARKER) or (tok.type == token.OP and tok.string == ";"):
            yield from _import_from_logical(logical)
            logical = []
        elif tok.type in (token.COMMENT, token.NL, token.INDENT, token.DEDENT):
            continue
        else:
            logical.append(tok)
    yield from _import_from_logical(logical)


def _import_from_logical(toks: list[tokenize.TokenInfo]) -> Iterator[tuple[int, int, str | None, tuple[str, ...], int]]:
    if not toks or toks[0].type != token.NAME or toks[0].string not in {"import", "from"}:
        return
    words = [t.string for t in toks]
    line, col = toks[0].start[0], toks[0].start[1] + 1
    if words[0] == "import":
        for part in " ".join(words[1:]).replace(" . ", ".").split(","):
            name = part.strip().split(" as ")[0].replace(" ", "")
            if name and all(p.isidentifier() for p in name.split(".")):
                yield line, col, name, (), 0
        return
    try:
        idx = words.index("import")
    except ValueError:
        return
    head = "".join(words[1:idx])
    level = len(head) - len(head.lstrip("."))
    module = head[level:] or None
    tail = [w for w in words[idx + 1 :] if w not in {"(", ")"}]
    names: list[str] = []
    skip = False
    for w in tail:
        if w == ",":
            skip = False
            continue
        if w == "as":
            skip = True
            continue
        if not skip and w.isidentifier() and w != "*":
            names.append(w)
            skip = True
    if module is None or all(p.isidentifier() for p in module.split(".")):
        yield line, col, module, tuple(names), level
