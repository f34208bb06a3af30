"""Digit automata for JSON Schema numeric bounds, checked against int / Decimal arithmetic."""

from __future__ import annotations

import decimal
import math
import random
import re
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from tether.automata.dfa import LazyDFA
from tether.grammar.json_schema.numbers import hex4_tree, integer_tree, number_tree
from tether.grammar.regex import Alternation, Chars, Concat, Repeat

INTEGER = re.compile(r"-?(?:0|[1-9][0-9]*)")
POSITIONAL = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?")
FULL = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
WIDE = decimal.Context(prec=2000)  # exact arithmetic on every bound these tests make


def matcher(tree):
    dfa = LazyDFA.from_tree(tree)
    return lambda text: dfa.matches(text.encode())


def count_nodes(tree) -> int:
    seen: set[int] = set()
    stack = [tree]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, Concat):
            stack.extend(node.parts)
        elif isinstance(node, Alternation):
            stack.extend(node.options)
        elif isinstance(node, Repeat):
            stack.append(node.node)
        else:
            assert isinstance(node, Chars)
    return len(seen)


def positional(value: Decimal | Fraction | int) -> str:
    """The canonical positional text of a finite decimal value ("0" for zero, never "-0")."""
    if isinstance(value, Fraction):
        value = WIDE.divide(Decimal(value.numerator), Decimal(value.denominator))
    value = Decimal(value)
    if value == 0:
        return "0"
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


# ---------------------------------------------------------------- oracles

def expected_integer(text: str, lo: int | None, hi: int | None) -> bool:
    if not INTEGER.fullmatch(text) or text == "-0":
        return False
    n = int(text)
    return (lo is None or lo <= n) and (hi is None or n <= hi)


def expected_number(text: str, lo, hi, xlo: bool, xhi: bool, k: int | None) -> bool:
    if lo is None and hi is None and k is None:
        return FULL.fullmatch(text) is not None
    if not POSITIONAL.fullmatch(text):
        return False
    value = Decimal(text)
    if text.startswith("-") and value == 0:
        return False
    if k is not None and "." in text and len(text.split(".")[1]) > k:
        return False
    if lo is not None and (value <= lo if xlo else value < lo):
        return False
    if hi is not None and (value >= hi if xhi else value > hi):
        return False
    return True


def witness(lo, hi, xlo: bool, xhi: bool, k: int | None) -> str | None:
    """A text in range, or None when the range is empty (computed with Fractions)."""
    flo = None if lo is None else Fraction(lo)
    fhi = None if hi is None else Fraction(hi)
    if k is None:
        if flo is None and fhi is None:
            return "0"
        if flo is None:
            return positional(fhi - 1)
        if fhi is None:
            return positional(flo + 1)
        if flo < fhi:
            return positional((flo + fhi) / 2)
        return positional(flo) if flo == fhi and not xlo and not xhi else None
    scale = 10 ** k
    n_lo = n_hi = None
    if flo is not None:
        n_lo = math.ceil(flo * scale)
        if xlo and n_lo == flo * scale:
            n_lo += 1
    if fhi is not None:
        n_hi = math.floor(fhi * scale)
        if xhi and n_hi == fhi * scale:
            n_hi -= 1
    if n_lo is not None and n_hi is not None and n_lo > n_hi:
        return None
    n = n_lo if n_lo is not None else (n_hi if n_hi is not None else 0)
    return positional(Fraction(n, scale))


# ---------------------------------------------------------------- candidate texts

def variants(text: str) -> list[str]:
    """A text and its canonical and non-canonical neighbours."""
    out = [text, "0" + text, "+" + text, "-" + text, text + ".", text + "e0", text + "E+1", text + "e-1",
           " " + text, text + " ", text.replace("-", "")]
    if text.startswith("-"):
        out.append("-0" + text[1:])
    if "." in text:
        whole, frac = text.split(".")
        out += [text + "0", text + "000", text + "1", text + "9", text + "0001", "." + frac, whole,
                whole + "." + frac[:-1], text.rstrip("0") or "0"]
    else:
        out += [text + ".0", text + ".00", text + ".000001", text + ".5", text + "0", text + "1"]
    return out


def near(value: Decimal) -> list[str]:
    """Texts right at, just above and just below a bound, with extra digits."""
    texts = [format(value, "f"), positional(value)]
    for j in range(0, 9):
        step = Decimal(1).scaleb(-j)
        texts += [positional(WIDE.add(value, step)), positional(WIDE.subtract(value, step))]
    texts += [positional(WIDE.minus(value)), positional(WIDE.abs(value))]
    for places in range(0, 9):  # the bound cut to each length, and the texts of that length next to it
        step = Decimal(1).scaleb(-places)
        for rounding in (decimal.ROUND_FLOOR, decimal.ROUND_CEILING):
            cut = value.quantize(step, rounding=rounding, context=WIDE)
            for other in (cut, WIDE.add(cut, step), WIDE.subtract(cut, step)):
                texts.append(format(other, "f"))
    return [v for t in texts for v in variants(t)]


FIXED_TEXTS = ["0", "-0", "0.0", "-0.0", "-0.000", "0.000", "00", "01", "-01", "+1", "1.", ".5", "-.5", "1e3",
               "1E3", "1e+3", "1e-3", "-1e3", "0e0", "1.5e2", "", "-", ".", "e", "1.50", "1.500", "--1", "1-",
               "0x10", "1_000", "١", "½", "1 ", "0.1", "-0.1", "9", "10", "-10", "1.0000000", "123456789"]

canonical_numbers = st.builds(
    lambda sign, whole, frac: sign + whole + (("." + frac) if frac is not None else ""),
    st.sampled_from(["", "-"]),
    st.one_of(st.just("0"), st.integers(1, 10**27).map(str), st.integers(1, 999).map(str)),
    st.one_of(st.none(), st.text("0123456789", min_size=1, max_size=9)),
)
random_texts = st.one_of(canonical_numbers, st.text("0123456789-+.eE", max_size=12))


# ---------------------------------------------------------------- bounds

def _decimal(mantissa: int, places: int) -> Decimal:
    return Decimal(mantissa).scaleb(-places, WIDE)


int_bounds = st.one_of(
    st.none(),
    st.integers(-1000, 1000),
    st.integers(-10**25, 10**25),
    st.builds(lambda p, d, s: s * (10**p + d), st.integers(0, 25), st.integers(-2, 2), st.sampled_from([1, -1])),
)
decimal_bounds = st.one_of(
    st.none(),
    st.builds(_decimal, st.integers(-10**8, 10**8), st.integers(0, 6)),
    st.builds(_decimal, st.integers(-10**31, 10**31), st.integers(0, 6)),
    st.integers(-10**25, 10**25).map(Decimal),
    st.sampled_from([Decimal("0"), Decimal("-0"), Decimal("0.000"), Decimal("1.500"), Decimal("-2.50"),
                     Decimal("1E+3"), Decimal("-1E+2"), Decimal("0.001"), Decimal("-0.000001"),
                     Decimal("2.5"), Decimal("-0.25"), Decimal("9.999999"), Decimal("0.5")]),
)
fraction_limits = st.one_of(st.none(), st.integers(0, 7))


# ---------------------------------------------------------------- integer_tree

@SETTINGS
@given(lo=int_bounds, hi=int_bounds, texts=st.lists(random_texts, max_size=15), data=st.data())
def test_integer_tree_matches_int_comparison(lo, hi, texts, data):
    if lo is not None and hi is not None and data.draw(st.booleans()):
        lo, hi = min(lo, hi), max(lo, hi)
    if lo is not None and hi is not None and lo > hi:
        with pytest.raises(ValueError):
            integer_tree(lo, hi)
        return
    match = matcher(integer_tree(lo, hi))
    candidates = list(texts) + FIXED_TEXTS
    for bound in (lo, hi):
        if bound is not None:
            for delta in (-11, -2, -1, 0, 1, 2, 11):
                candidates += variants(str(bound + delta))
    for text in candidates:
        assert match(text) == expected_integer(text, lo, hi), (lo, hi, text)


def test_integer_tree_examples():
    match = matcher(integer_tree(-5, 120))
    for text, verdict in [("-5", True), ("-6", False), ("0", True), ("-0", False), ("120", True),
                          ("121", False), ("05", False), ("99", True), ("1.0", False), ("1e2", False)]:
        assert match(text) == verdict, text
    assert matcher(integer_tree(7, 7))("7")
    match = matcher(integer_tree(None, None))
    assert match("0") and match("-12") and match("1" * 50) and not match("-0") and not match("01")
    for lo, hi in [(1, 0), (10**30, 10**30 - 1), (-1, -2)]:
        with pytest.raises(ValueError):
            integer_tree(lo, hi)


def test_integer_tree_exhaustive_small_ranges():
    rng = random.Random(7)
    for _ in range(40):
        lo = rng.randint(-1200, 1200)
        hi = lo + rng.randint(0, 1500)
        match = matcher(integer_tree(lo, hi))
        for n in range(-1300, 2800):
            assert match(str(n)) == (lo <= n <= hi), (lo, hi, n)


def test_integer_tree_size_is_linear_in_digits():
    for lo, hi in [(-10**200, 10**200), (10**200 - 1, 10**201 + 12345), (None, -(10**200) - 7),
                   (123456789 * 10**190, 987654321 * 10**191), (-(10**199) * 3 - 1, None)]:
        tree = integer_tree(lo, hi)
        assert count_nodes(tree) < 20 * 205, (lo, hi)
    tree = integer_tree(10**200 - 17, 10**200 + 3)
    match = matcher(tree)
    assert match(str(10**200)) and match(str(10**200 - 17)) and not match(str(10**200 + 4))
    assert not match(str(10**200 - 18)) and not match("0")


# ---------------------------------------------------------------- number_tree

def check_number(lo, hi, xlo, xhi, k, texts=()):
    expect = witness(lo, hi, xlo, xhi, k)
    if expect is None:
        with pytest.raises(ValueError):
            number_tree(lo, hi, exclusive_minimum=xlo, exclusive_maximum=xhi, max_fraction_digits=k)
        return
    tree = number_tree(lo, hi, exclusive_minimum=xlo, exclusive_maximum=xhi, max_fraction_digits=k)
    match = matcher(tree)
    assert match(expect), (lo, hi, xlo, xhi, k, expect)
    candidates = list(texts) + FIXED_TEXTS + variants(expect)
    for bound in (lo, hi):
        if bound is not None:
            candidates += near(bound)
    for text in candidates:
        assert match(text) == expected_number(text, lo, hi, xlo, xhi, k), (lo, hi, xlo, xhi, k, text)


@SETTINGS
@given(lo=decimal_bounds, hi=decimal_bounds, xlo=st.booleans(), xhi=st.booleans(), k=fraction_limits,
       texts=st.lists(random_texts, max_size=15), data=st.data())
def test_number_tree_matches_decimal_comparison(lo, hi, xlo, xhi, k, texts, data):
    if lo is not None and hi is not None:
        how = data.draw(st.sampled_from(["as drawn", "ordered", "equal"]))
        if how == "ordered":
            lo, hi = min(lo, hi), max(lo, hi)
        elif how == "equal":
            hi = lo
    check_number(lo, hi, xlo, xhi, k, texts)


@SETTINGS
@given(lo=decimal_bounds, width=st.sampled_from([Decimal("0.000001"), Decimal("0.01"), Decimal("0.5"),
                                                  Decimal(1), Decimal(3), Decimal("1E+6")]),
       xlo=st.booleans(), xhi=st.booleans(), k=fraction_limits, texts=st.lists(random_texts, max_size=8))
def test_number_tree_narrow_ranges(lo, width, xlo, xhi, k, texts):
    assume(lo is not None)
    check_number(lo, WIDE.add(lo, width), xlo, xhi, k, texts)


def test_number_tree_examples_from_the_brief():
    match = matcher(number_tree(Decimal("2.5"), None, exclusive_minimum=True))
    for text, verdict in [("2.5", False), ("2.50", False), ("2.5000001", True), ("3", True), ("2.4", False),
                          ("3e0", False), ("-3", False)]:
        assert match(text) == verdict, text
    match = matcher(number_tree(None, Decimal("-0.25")))
    for text, verdict in [("-0.25", True), ("-1", True), ("-0.3", True), ("-0.2", False), ("0", False),
                          ("-0.250", True), ("-0.2499", False)]:
        assert match(text) == verdict, text
    match = matcher(number_tree(Decimal(0), Decimal(100), max_fraction_digits=2))
    for text, verdict in [("0", True), ("0.0", True), ("-0", False), ("-0.00", False), ("1.50", True),
                          ("1.505", False), ("100.00", True), ("100.01", False), ("12.3", True)]:
        assert match(text) == verdict, text
    for args, kwargs in [((Decimal(1), Decimal("0.5")), {}),
                         ((Decimal("0.5"), Decimal("0.5")), {"exclusive_minimum": True}),
                         ((Decimal("0.5"), Decimal("0.5")), {"exclusive_maximum": True}),
                         ((Decimal("0.1"), Decimal("0.9")), {"max_fraction_digits": 0}),
                         ((Decimal("0.001"), Decimal("0.009")), {"max_fraction_digits": 2}),
                         ((Decimal(1), Decimal(2)), {"exclusive_minimum": True, "exclusive_maximum": True,
                                                     "max_fraction_digits": 0})]:
        with pytest.raises(ValueError):
            number_tree(*args, **kwargs)


def test_number_tree_unbounded_forms():
    match = matcher(number_tree(None, None))  # the whole JSON number grammar
    for text in ["0", "-0", "-0.0", "1.5e10", "1E-3", "-12.50E+07", "0e0"]:
        assert match(text), text
    for text in ["01", "+1", "1.", ".5", "1e", "1e+", "--1", "0x1", ""]:
        assert not match(text), text
    match = matcher(number_tree(None, None, max_fraction_digits=2))  # positional only
    for text in ["0", "0.00", "-1.25", "123456789012345678901234567890.1"]:
        assert match(text), text
    for text in ["-0", "-0.0", "1.234", "1e3", "-0.00"]:
        assert not match(text), text
    assert matcher(number_tree(None, None, max_fraction_digits=0))("-7")


def test_number_tree_size_is_linear_in_digits():
    huge = Decimal(10) ** 200
    cases = [(WIDE.minus(huge), huge, None), (Decimal("1E+200"), None, None), (None, Decimal("-1E+200"), 3),
             (WIDE.divide(Decimal(1), huge), WIDE.add(huge, Decimal("0.123456")), None),
             (Decimal("0." + "3" * 200), Decimal("0." + "3" * 199 + "4"), None),
             (Decimal("-" + "9" * 150 + "." + "9" * 150), Decimal("5" * 150 + "." + "1" * 150), 200)]
    for lo, hi, k in cases:
        tree = number_tree(lo, hi, max_fraction_digits=k)
        assert count_nodes(tree) < 30 * 310, (lo, hi, k)
    lo, hi = Decimal("0." + "3" * 200), Decimal("0." + "3" * 199 + "4")
    match = matcher(number_tree(lo, hi, exclusive_minimum=True))
    assert match("0." + "3" * 200 + "1") and not match("0." + "3" * 200)
    assert match("0." + "3" * 199 + "4") and not match("0." + "3" * 199 + "41")


def test_number_tree_fraction_limit_is_linear():
    tree = number_tree(Decimal("0.5"), Decimal("0.75"), exclusive_minimum=True, max_fraction_digits=300)
    assert count_nodes(tree) < 30 * 310
    match = matcher(tree)
    assert match("0." + "5" + "0" * 298 + "1") and not match("0." + "5" + "0" * 299 + "1")
    assert not match("0.5" + "0" * 299)


def test_number_tree_rejects_bad_arguments():
    with pytest.raises(ValueError):
        number_tree(Decimal("NaN"), None)
    with pytest.raises(ValueError):
        number_tree(None, Decimal("Infinity"))
    with pytest.raises(ValueError):
        number_tree(None, None, max_fraction_digits=-1)
    with pytest.raises(TypeError):
        number_tree(0.5, None)  # type: ignore[arg-type]
    assert matcher(number_tree(1, 3))("2.5")  # ints are exact bounds too


def test_huge_bounds_overflow_not_empty():
    """Past the digit limit: OverflowError, never the ValueError that means an empty range."""
    for args in [(Decimal("1E+5000"), None), (None, Decimal("1E-5000")), (10**4001, None)]:
        with pytest.raises(OverflowError):
            number_tree(*args)
    with pytest.raises(OverflowError):
        integer_tree(None, -(10**4001))
    # Zeros and trailing zeros are not digits that count.
    match = matcher(number_tree(Decimal("0E+999999999"), Decimal("1." + "0" * 6000), exclusive_maximum=True))
    assert match("0") and match("0.999") and not match("1") and not match("1.000")
    big = 10**3000
    match = matcher(integer_tree(big, big + 5))
    assert match(str(big + 5)) and not match(str(big + 6))


# ---------------------------------------------------------------- hex4_tree

def hex_texts(value: int) -> list[str]:
    lower = format(value, "04x")
    return [lower, lower.upper()]


def check_hex_exhaustive(intervals):
    match = matcher(hex4_tree(intervals))
    inside = bytearray(0x10000)
    for lo, hi in intervals:
        inside[lo:hi + 1] = b"\x01" * (hi - lo + 1)
    rng = random.Random(len(intervals))
    for value in range(0x10000):
        expect = bool(inside[value])
        for text in hex_texts(value):
            assert match(text) == expect, (intervals, text)
        mixed = "".join(c.upper() if rng.random() < 0.5 else c for c in format(value, "04x"))
        assert match(mixed) == expect, (intervals, mixed)


def test_hex4_tree_exhaustive():
    rng = random.Random(1234)
    many = []
    for _ in range(60):
        lo = rng.randrange(0x10000)
        many.append((lo, min(0xFFFF, lo + rng.randrange(0, 700))))
    for intervals in [[(0, 0xFFFF)], [(0x41, 0x5A)], [(0, 0x1F), (0x22, 0x22), (0x5C, 0x5C), (0xD800, 0xDFFF)],
                      [(0xABCD, 0xABCD)], [(0, 4), (6, 9), (0xF, 0x10), (0x12, 0xFE), (0x100, 0xFFFE)], many]:
        check_hex_exhaustive(intervals)


@settings(max_examples=60, deadline=None)
@given(intervals=st.lists(st.tuples(st.integers(0, 0xFFFF), st.integers(0, 0x1000)).map(
    lambda t: (t[0], min(0xFFFF, t[0] + t[1]))), min_size=1, max_size=6),
       samples=st.lists(st.integers(0, 0xFFFF), max_size=60))
def test_hex4_tree_sampled(intervals, samples):
    match = matcher(hex4_tree(intervals))
    points = list(samples)
    for lo, hi in intervals:
        points += [lo - 1, lo, lo + 1, hi - 1, hi, hi + 1]
    for value in points:
        if 0 <= value <= 0xFFFF:
            expect = any(lo <= value <= hi for lo, hi in intervals)
            for text in hex_texts(value):
                assert match(text) == expect, (intervals, text)
    for text in ["", "0", "000", "00000", "g000", "00G0", "-001", "0x41", "+041"]:
        assert not match(text)


def test_hex4_tree_rejects_bad_ranges():
    for intervals in [[], [(5, 4)], [(0, 0x10000)], [(-1, 3)]]:
        with pytest.raises(ValueError):
            hex4_tree(intervals)
