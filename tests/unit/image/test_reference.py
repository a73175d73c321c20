"""Image references against the distribution grammar (E20): generated valid ones parse into their parts,
generated ones with one defect are exit 2 naming the reference and the defect."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from slimbuild.errors import UsageError
from slimbuild.image.reference import check_image, check_tag, parse_reference
from tests.constants import USAGE

_LOWER = "abcdefghijklmnopqrstuvwxyz0123456789"
_alnum = st.text(_LOWER, min_size=1, max_size=6)
_separator = st.sampled_from([".", "_", "__", "-", "--", "---"])


@st.composite
def _path_component(draw: st.DrawFn) -> str:
    parts = draw(st.lists(_alnum, min_size=1, max_size=3))
    return "".join(p if i == 0 else draw(_separator) + p for i, p in enumerate(parts))


@st.composite
def _domain(draw: st.DrawFn) -> str:
    letters = st.text("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", min_size=1, max_size=5)
    comps = [
        a if not b else f"{a}-{b}" for a, b in draw(st.lists(st.tuples(letters, st.just("") | letters), min_size=1, max_size=3))
    ]
    host = ".".join(comps)
    port = draw(st.none() | st.integers(1, 65535))
    if "." not in host and port is None:
        host = draw(st.sampled_from([f"{host}.example", "localhost"]))
    return host if port is None else f"{host}:{port}"


_tag = st.tuples(st.sampled_from("abcXYZ019_"), st.text("abcXYZ019_.-", max_size=20)).map("".join)
_digest = st.sampled_from([("sha256", 64), ("sha384", 96), ("sha512", 128)]).flatmap(
    lambda a: st.text("0123456789abcdef", min_size=a[1], max_size=a[1]).map(lambda h: f"{a[0]}:{h}")
)


@st.composite
def _reference(draw: st.DrawFn) -> tuple[str, str, str, str, str]:
    """(reference, domain, path, tag, digest) built from the grammar's parts."""
    domain = draw(st.just("") | _domain())
    components = draw(st.lists(_path_component(), min_size=1, max_size=3))
    if not domain:  # a first component with a '.' (or localhost) is a registry: the grammar's one ambiguity
        components[0] = components[0].replace(".", "_")
        components[0] = {"localhost": "localhostx", "sha256": "sha256x"}.get(components[0], components[0])
    path = "/".join(components)
    tag = draw(st.just("") | _tag)
    digest = draw(st.just("") | _digest)
    ref = (f"{domain}/" if domain else "") + path + (f":{tag}" if tag else "") + (f"@{digest}" if digest else "")
    return ref, domain, path, tag, digest


@settings(max_examples=300)
@given(_reference())
def test_E20_a_reference_built_from_the_grammar_parses_into_its_parts(parts: tuple[str, str, str, str, str]) -> None:
    ref, domain, path, tag, digest = parts
    parsed = parse_reference(ref, "--tag")
    assert (parsed.domain, parsed.path, parsed.tag, parsed.digest) == (domain, path, tag, digest)
    assert check_image(ref, "--base-image") == ref
    if not digest:
        assert check_tag(ref) == ref


def _compose(domain: str, path: str, tag: str, digest: str) -> str:
    return (f"{domain}/" if domain else "") + path + (f":{tag}" if tag else "") + (f"@{digest}" if digest else "")


# each defect changes one part of a valid reference: (domain, path, tag, digest) -> the bad parts
_DEFECTS = {
    "uppercase path": lambda d, p, t, g: (d, "X" + p, t, g),
    "tag starts with '-'": lambda d, p, t, g: (d, p, "-" + t, g),
    "tag starts with '.'": lambda d, p, t, g: (d, p, "." + t, g),
    "tag too long": lambda d, p, t, g: (d, p, "t" * 129, g),
    "doubled slash": lambda d, p, t, g: (d, p + "//x", t, g),
    "trailing slash": lambda d, p, t, g: (d, p + "/", t, g),
    "space": lambda d, p, t, g: (d, p + " x", t, g),
    "short digest": lambda d, p, t, g: (d, p, t, "sha256:" + "a" * 63),
    "unknown digest algorithm": lambda d, p, t, g: (d, p, t, "md5:" + "a" * 32),
    "leading separator": lambda d, p, t, g: (d, "_" + p, t, g),
    "bad port": lambda d, p, t, g: ("registry.example:", p, t, g),
}


@settings(max_examples=300)
@given(_reference(), st.sampled_from(sorted(_DEFECTS)))
def test_E20_a_reference_with_one_defect_is_exit_2_naming_it(parts: tuple[str, str, str, str, str], defect: str) -> None:
    _ref, *good = parts
    bad = _compose(*_DEFECTS[defect](*good))
    with pytest.raises(UsageError) as info:
        parse_reference(bad, "--tag")
    assert info.value.exit_code == USAGE
    assert repr(bad) in info.value.message and "not a valid image reference: " in info.value.message


@pytest.mark.parametrize(
    "ref",
    ["team/app@sha256:" + "a" * 64, "team/app:1@sha256:" + "a" * 64],
)
def test_E20_a_tag_with_a_digest_is_refused(ref: str) -> None:
    with pytest.raises(UsageError, match="cannot be tagged"):
        check_tag(ref)


def test_E20_an_image_id_is_an_image_but_not_a_name() -> None:
    image_id = "sha256:" + "c" * 64
    assert check_image(image_id, "image") == image_id and check_image("c" * 64, "image") == "c" * 64
    with pytest.raises(UsageError, match="reads as an image id"):
        check_tag("c" * 64)
    with pytest.raises(UsageError, match="longer than 255"):
        parse_reference("a/" + "b" * 260, "--tag")
