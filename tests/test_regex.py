"""The regex front-end and byte DFA, differentially against Python's `re.fullmatch`."""

from __future__ import annotations

import itertools
import re
import tomllib
import warnings

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import tether
from tether.automata.dfa import LazyDFA
from tether.errors import ConstraintTooLarge, InvalidPattern, UnsupportedPattern

from conftest import data_path

# ---------------------------------------------------------------- the rust regex test data


def _rust_cases():
    cases = []
    root = data_path("regex", "rust-regex-testdata")
    for path in sorted(root.rglob("*.toml")):
        for test in tomllib.loads(path.read_text(encoding="utf-8")).get("test", []):
            if isinstance(test.get("regex"), str) and isinstance(test.get("haystack"), str):
                cases.append((f"{path.stem}/{test['name']}", test))
    return cases


def _candidates(pattern: str, haystack: str, spans) -> set[str]:
    """Strings to test: the haystack, the spans the rust suite marks, and what Python's re finds."""
    out = {haystack, ""}
    raw = haystack.encode("utf-8", "surrogatepass")
    for span in spans or []:
        if isinstance(span, dict):
            span = span.get("span")
        if isinstance(span, list) and len(span) == 2 and isinstance(span[0], int):
            try:
                out.add(raw[span[0]: span[1]].decode("utf-8"))
            except UnicodeDecodeError:
                pass
    try:
        out.update(m.group(0) for m in re.finditer(pattern, haystack))
    except re.error:
        pass
    return {s for s in out if not any(0xD800 <= ord(ch) <= 0xDFFF for ch in s)}


NON_REGULAR = ("backreference", "lookahead", "lookbehind", "anchor", "word boundary", "possessive",
               "atomic group", "conditional group")


def test_rust_regex_suite_agrees_with_python_re():
    cases = _rust_cases()
    assert len(cases) > 800, "expected the rust regex test data (about 1,200 cases)"
    compiled = unsupported = invalid = too_large = compared = 0
    for name, test in cases:
        pattern = test["regex"]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                reference = re.compile(pattern)
            except (re.error, OverflowError, RecursionError):
                reference = None
            try:
                dfa = LazyDFA.from_regex(pattern)
            except InvalidPattern:
                assert reference is None, f"{name}: tether rejects {pattern!r} that re accepts"
                invalid += 1
                continue
            except UnsupportedPattern as e:
                assert reference is not None, f"{name}: {pattern!r} is invalid for re, yet called unsupported"
                assert e.construct.startswith(NON_REGULAR), f"{name}: {e}"
                assert 0 <= e.position < len(pattern)
                unsupported += 1
                continue
            except ConstraintTooLarge:
                too_large += 1
                continue
        assert reference is not None, f"{name}: tether compiled {pattern!r}, which re rejects"
        compiled += 1
        for text in _candidates(pattern, test["haystack"], test.get("matches")):
            expected = reference.fullmatch(text) is not None
            assert dfa.matches(text.encode()) == expected, f"{name}: {pattern!r} on {text!r}: re says {expected}"
            compared += 1
    # The suite is mostly regular; most of it must compile, and the comparisons must be many.
    assert compiled > 500 and compared > 1500, (compiled, unsupported, invalid, too_large, compared)


# ---------------------------------------------------------------- generated regexes

_ATOMS = st.sampled_from(["a", "b", "c", "é", "😀", "0", "7", ".", r"\d", r"\w", r"\s", r"\D", r"\W", "[ab]",
                          "[^a]", "[a-c]", "[0-9é]", r"[\d\s]", "[^\\w]", r"\.", r"\n", " ", "[b-é]", r"\u00e9",
                          r"\x41", "A", "(?:)"])


def _regexes():
    def extend(inner):
        return st.one_of(
            st.tuples(inner, inner).map("".join),
            st.tuples(inner, inner).map(lambda t: f"(?:{t[0]}|{t[1]})"),
            st.tuples(inner, st.sampled_from(["*", "+", "?", "{2}", "{0,3}", "{1,}", "{,2}", "*?", "{2,3}?"]))
            .map(lambda t: f"(?:{t[0]}){t[1]}"),
            inner.map(lambda s: f"({s})"),
            inner.map(lambda s: f"(?i:{s})"),
        )

    return st.recursive(_ATOMS, extend, max_leaves=8)


_ALPHABET = st.sampled_from(list("abcABé😀07 .\n_-") + ["Ǆ", "ǅ", "٣", "\u00a0", "K"])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pattern=_regexes(), texts=st.lists(st.text(_ALPHABET, max_size=8), max_size=6), data=st.data())
def test_generated_regexes_agree_with_python_re(pattern, texts, data):
    dfa = LazyDFA.from_regex(pattern)
    reference = re.compile(pattern)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        matching = [data.draw(st.from_regex(reference, fullmatch=True), label="member") for _ in range(3)]
    for text in texts + matching:
        assume(not any(0xD800 <= ord(ch) <= 0xDFFF for ch in text))
        assert dfa.matches(text.encode()) == (reference.fullmatch(text) is not None), (pattern, text)


@pytest.mark.parametrize("flags", [0, re.IGNORECASE, re.ASCII, re.DOTALL, re.IGNORECASE | re.ASCII])
@pytest.mark.parametrize("pattern", [r"\w+", r"[a-zé]+", r"straße", r"\d\s\D", r"[^k]", r"(?-i:a)b", "."])
def test_flags_agree_with_python_re(pattern, flags):
    dfa = LazyDFA.from_regex(pattern, flags)
    reference = re.compile(pattern, flags)
    for text in ["a", "A", "é", "É", "ß", "ẞ", "straße", "STRASSE", "Straße", "1 x", "١ x", "k", "K", "K", "\n",
                 "ab", "aB", "Ab", "_", "ǅ", "ſ"]:
        assert dfa.matches(text.encode()) == (reference.fullmatch(text) is not None), (pattern, flags, text)


def test_verbose_mode_and_comments():
    pattern = r"""(?x) [0-9]{4}   # year
                  - [0-9]{2}  # month
                  \ (?#a literal space above)"""
    dfa = LazyDFA.from_regex(pattern)
    for text in ["2024-01 ", "2024-01", "2024 - 01"]:
        assert dfa.matches(text.encode()) == (re.fullmatch(pattern, text) is not None)


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("pattern", "construct", "position"),
    [
        (r"(a)\1", "backreference", 3),
        (r"(?P<x>a)(?P=x)", "named backreference", 8),
        (r"(?:(?!ab).)*", "lookahead", 3),  # inside a repetition: what follows it changes each round
        (r"(?:a(?=b)|c)d", "lookahead", 4),
        (r"a(?!^b)", "a start anchor inside a lookahead", 1),
        (r"(?<=ab)c", "lookbehind", 0),  # one character class only
        (r"x(?:(?<!a)b)", "lookbehind", 4),  # may look outside its group
        (r"a\bc", "word boundary", 1),
        (r"a*+", "possessive", 2),
        (r"(?>ab)", "atomic group", 0),
        (r"(a)?(?(1)b|c)", "conditional group", 4),
    ],
)
def test_non_regular_constructs_raise_typed_error(pattern, construct, position):
    with pytest.raises(UnsupportedPattern) as info:
        tether.regex(pattern)
    assert info.value.construct.startswith(construct)
    assert info.value.position == position
    assert construct.split()[0] in str(info.value) and repr(pattern) in str(info.value)


@pytest.mark.parametrize("pattern", [r"(?!ab)[a-c]*", r"(?=a)[a-c]{2}", r"a(?!b)[a-c]*", r"(?:a(?=b))[a-c]*",
                                     r"(?=.*c)(?!.*aa)[a-c]*", r"^(?!^a|b).*", r"(?=a$)[a-c]*", r"x(?=a\Z|b)[a-c]*",
                                     r"(?=a)*b", r"(?=a)+a", r"(?!a){2}[ab]", r"a|(?!b)[bc]", r"(?=[ab]\n?$).+",
                                     r"(?m)(?=a$|b)[a-c\n]*", r"(?=(?:ab)+$)(?!.*b.*b.*b)[ab]*", r"a(?=b)"])
def test_lookaheads_in_the_top_level_sequence_agree_with_re(pattern):
    """`A (?=X) B` under full match: B must start with X (and anything after it), so B ∩ X·.*."""
    try:
        r = tether.regex(pattern)
    except tether.EmptyLanguage:
        r = None
    _assert_fullmatch_agrees(pattern, r, "abc\n")


@pytest.mark.parametrize("pattern", [r'"(.*?(?<!\\)(\\\\)*?)"', r'".*?(?<!\\)(\\\\)*?"', r"(?<!a)b", r"(?<=a)b",
                                     r"x(?<![ab])y", r"[abc]*(?<=b)c", r"(a|bc)(?<!c)a*", r"a*(?<!a)b",
                                     r"(ab)*(?<=b)", r"(ab){0,2}(?<!b)x", r"(?:a|b(?<=b))c"])
def test_one_character_lookbehind_agrees_with_re(pattern):
    """A lookbehind of one character class narrows what precedes it (Lark's ESCAPED_STRING uses one)."""
    try:
        r = tether.regex(pattern)
    except tether.EmptyLanguage:
        r = None
    except UnsupportedPattern as e:
        assert "outside its group" in str(e), e  # only the context-dependent kind is refused
        return
    _assert_fullmatch_agrees(pattern, r, 'abcxy"\\')


def _assert_fullmatch_agrees(pattern: str, r, alphabet: str) -> None:
    """`r` (None: the empty language) accepts exactly what `re.fullmatch` does, on every text of
    up to five characters of `alphabet`."""
    for n in range(6):
        for chars in itertools.product(alphabet, repeat=n):
            text = "".join(chars)
            assert (r is not None and r.matches(text)) == (re.fullmatch(pattern, text) is not None), (pattern, text)


@pytest.mark.parametrize("pattern", ["[a-", "a**", "(", ")", "a{2,1}", r"\q", "(?P<1>a)", "*a"])
def test_invalid_patterns_raise_with_position(pattern):
    with pytest.raises(InvalidPattern) as info:
        tether.regex(pattern)
    with pytest.raises(re.error) as reference:
        re.compile(pattern)
    assert info.value.position == reference.value.pos


def test_anchors_anywhere_agree_with_python_re():
    """Leading and trailing anchors are no-ops under full match; inner ones are assertions."""
    for pattern in [r"^abc$", r"\Aabc\Z", r"^a|b$", "(?i)^abc$", r"(a$)\n?", r"a\n^b", r"(?m)a$\n^b", r"(?:^|x)a"]:
        dfa = LazyDFA.from_regex(pattern)
        for text in ["abc", "ABC", "a", "b", "abc\n", "a\n", "a\nb", "xa"]:
            assert dfa.matches(text.encode()) == (re.fullmatch(pattern, text) is not None), (pattern, text)
