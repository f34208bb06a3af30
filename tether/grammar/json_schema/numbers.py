"""Exact digit automata for JSON Schema numeric bounds, as regex trees.

Bounds become digit-by-digit prefix constructions (the classic range-to-regex),
never enumerations: a bound of n digits costs O(n) nodes, digit runs are
`Repeat`s, and the runs of one construction are shared sub-trees. Comparisons
are exact (`int` and `Decimal` digits, never floats or context arithmetic).

    >>> integer_tree(-5, 120)        # 0, -1..-5, 1..9, 10..99, 100..120, canonically written
    >>> number_tree(Decimal("2.5"), None, exclusive_minimum=True)   # "2.51", "3"; not "2.50"

Empty ranges raise `ValueError`; the JSON Schema layer turns that into its own error.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Iterable, Sequence

from ..regex import EMPTY, Alternation, Chars, Concat, RegexNode, Repeat

__all__ = ["integer_tree", "number_tree", "hex4_tree", "MAX_BOUND_DIGITS"]

_Node = RegexNode | None  # None: the empty language, pruned while building

# Bounds past this many positional digits raise OverflowError (not ValueError, which means an
# empty range): Python refuses int <-> str conversions past 4,300 digits, and 1E+999999999 would
# be a gigabyte of digits.
MAX_BOUND_DIGITS = 4000
_INT_LIMIT = 10 ** MAX_BOUND_DIGITS


def _cat(*parts: _Node) -> _Node:
    """The concatenation, or None (empty language) if any part is."""
    if any(part is None for part in parts):
        return None
    parts = tuple(part for part in parts if part is not EMPTY)
    if not parts:
        return EMPTY
    return parts[0] if len(parts) == 1 else Concat(parts)


def _alt(*options: _Node) -> _Node:
    """The union of the options that are not None, or None if there are none."""
    kept = tuple(option for option in options if option is not None)
    if not kept:
        return None
    return kept[0] if len(kept) == 1 else Alternation(kept)


# ---------------------------------------------------------------- digits of a base

class _Digits:
    """The digit characters of a base (10, or 16 with letters in either case) and shared runs of them."""

    def __init__(self, base: int):
        self.base = base
        self.top = base - 1
        self._ranges: dict[tuple[int, int], Chars] = {}
        self._runs: dict[tuple[int, int | None], Repeat] = {}

    def range(self, lo: int, hi: int) -> _Node:
        """One digit with value in [lo, hi]; None when lo > hi."""
        if lo > hi:
            return None
        node = self._ranges.get((lo, hi))
        if node is None:
            intervals = []
            if lo <= 9:
                intervals.append((ord("0") + lo, ord("0") + min(hi, 9)))
            if hi >= 10:
                first, last = max(lo, 10) - 10, hi - 10
                intervals.append((ord("A") + first, ord("A") + last))
                intervals.append((ord("a") + first, ord("a") + last))
            node = self._ranges[(lo, hi)] = Chars(tuple(intervals))
        return node

    def digit(self, d: int) -> Chars:
        return self.range(d, d)  # type: ignore[return-value]

    def any(self) -> Chars:
        return self.range(0, self.top)  # type: ignore[return-value]

    def run(self, lo: int, hi: int | None) -> RegexNode:
        """Between lo and hi (None: unbounded) digits of any value."""
        if hi == 0:
            return EMPTY
        if lo == hi == 1:
            return self.any()
        node = self._runs.get((lo, hi))
        if node is None:
            node = self._runs[(lo, hi)] = Repeat(self.any(), lo, hi)
        return node

    def literal(self, digits: Sequence[int]) -> RegexNode:
        return _cat(*(self.digit(d) for d in digits)) or EMPTY

    def ge(self, digits: Sequence[int]) -> RegexNode:
        """Digit strings of len(digits) digits whose value is >= digits (never empty: digits itself)."""
        node: RegexNode = EMPTY
        zeros = True  # digits[i:] is all zeros: everything of that length qualifies
        for i in range(len(digits) - 1, -1, -1):
            d = digits[i]
            zeros = zeros and d == 0
            if zeros:
                node = self.run(len(digits) - i, len(digits) - i)
            else:
                node = _alt(_cat(self.digit(d), node), _cat(self.range(d + 1, self.top),
                                                              self.run(len(digits) - i - 1, len(digits) - i - 1)))
        return node

    def le(self, digits: Sequence[int]) -> RegexNode:
        """Digit strings of len(digits) digits whose value is <= digits (never empty: digits itself)."""
        node: RegexNode = EMPTY
        tops = True  # digits[i:] is all top digits: everything of that length qualifies
        for i in range(len(digits) - 1, -1, -1):
            d = digits[i]
            tops = tops and d == self.top
            if tops:
                node = self.run(len(digits) - i, len(digits) - i)
            else:
                node = _alt(_cat(self.range(0, d - 1), self.run(len(digits) - i - 1, len(digits) - i - 1)),
                            _cat(self.digit(d), node))
        return node

    def between(self, x: Sequence[int], y: Sequence[int]) -> RegexNode:
        """Digit strings of the common length of x <= y whose value lies in [x, y]."""
        n = len(x)
        i = 0
        while i < n and x[i] == y[i]:
            i += 1
        if i == n:
            return self.literal(x)
        rest = n - i - 1
        tail = _alt(_cat(self.digit(x[i]), self.ge(x[i + 1:])),
                    _cat(self.range(x[i] + 1, y[i] - 1), self.run(rest, rest)),
                    _cat(self.digit(y[i]), self.le(y[i + 1:])))
        return _cat(self.literal(x[:i]), tail)  # type: ignore[return-value]


_DEC = _Digits(10)
_MINUS = Chars(((ord("-"), ord("-")),))
_DOT = Chars(((ord("."), ord(".")),))


def _decimal_digits(n: int) -> list[int]:
    return [ord(c) - 48 for c in str(n)]


def _naturals(lo: int, hi: int | None) -> _Node:
    """Canonical decimal texts (no leading zeros) of the naturals n with lo <= n <= hi (None: unbounded)."""
    lo = max(lo, 0)
    if hi is not None and lo > hi:
        return None
    zero = None
    if lo == 0:
        zero, lo = _DEC.digit(0), 1
        if hi is not None and hi < 1:
            return zero
    x = _decimal_digits(lo)
    nines = [9] * len(x)
    if hi is None:
        return _alt(zero, _DEC.between(x, nines), _cat(_DEC.range(1, 9), _DEC.run(len(x), None)))
    y = _decimal_digits(hi)
    if len(x) == len(y):
        return _alt(zero, _DEC.between(x, y))
    middle = None
    if len(y) - len(x) >= 2:  # every length strictly between
        middle = _cat(_DEC.range(1, 9), _DEC.run(len(x), len(y) - 2))
    return _alt(zero, _DEC.between(x, nines), middle, _DEC.between([1] + [0] * (len(y) - 1), y))


def _check_int(name: str, value: int | None) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int or None, not {type(value).__name__}")
    if abs(value) >= _INT_LIMIT:
        raise OverflowError(f"{name} has more than {MAX_BOUND_DIGITS} digits")


def integer_tree(minimum: int | None, maximum: int | None) -> RegexNode:
    """JSON texts of the integers n with minimum <= n <= maximum (None: unbounded), canonically written.

        >>> integer_tree(-3, 15)     # matches "-3", "0", "15"; not "16", "-0", "03", "1.0"
        >>> integer_tree(0, None)    # "0" | "[1-9][0-9]*"
    Raises ValueError when no integer is in range, OverflowError past MAX_BOUND_DIGITS digits.
    """
    _check_int("minimum", minimum)
    _check_int("maximum", maximum)
    if minimum is not None and maximum is not None and minimum > maximum:
        raise ValueError(f"no integer n with {minimum} <= n <= {maximum}")
    nonnegative = None
    if maximum is None or maximum >= 0:
        nonnegative = _naturals(0 if minimum is None else minimum, maximum)
    negative = None
    if minimum is None or minimum < 0:  # -n for n in [max(1, -maximum), -minimum]
        low = 1 if maximum is None or maximum >= 0 else -maximum
        negative = _cat(_MINUS, _naturals(low, None if minimum is None else -minimum))
    tree = _alt(nonnegative, negative)
    assert tree is not None
    return tree


# ---------------------------------------------------------------- numbers

def _split(value: Decimal) -> tuple[int, list[int]]:
    """(integer part, fraction digits without trailing zeros) of a finite value >= 0, exactly."""
    _, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int)
    text = "".join(map(str, digits))
    if exponent >= 0:
        return int(text + "0" * exponent), []
    text = text.rjust(-exponent + 1, "0")
    whole, fraction = text[:exponent], text[exponent:].rstrip("0")
    return int(whole), [ord(c) - 48 for c in fraction]


class _Fraction:
    """Fraction texts ("" or "." and 1 to k digits) whose value 0.F lies between two bounds' fraction digits.

    Digit strings compare as if padded with zeros on the right (0.5 == 0.50). Each
    method gives the digit strings (any length 0..k - i, so possibly empty) that may
    follow the first i digits while those still equal the lower bound's (`lower`),
    the upper bound's (`upper`), or both (`both`).
    """

    def __init__(self, k: int | None):
        self.k = k

    def free(self, i: int) -> RegexNode:
        return _DEC.run(0, None if self.k is None else self.k - i)

    def zeros(self, i: int) -> RegexNode:
        return EMPTY if self.k == i else Repeat(_DEC.digit(0), 0, None if self.k is None else self.k - i)

    def nonzero(self, i: int) -> _Node:
        """Strings of length 0..k - i with a digit other than 0."""
        if self.k is None:
            return Concat((Repeat(_DEC.digit(0), 0, None), _DEC.range(1, 9), _DEC.run(0, None)))
        node: _Node = None
        for j in range(self.k - 1, i - 1, -1):
            node = _alt(_cat(_DEC.range(1, 9), self.free(j + 1)), _cat(_DEC.digit(0), node))
        return node

    def lower(self, lo: list[int], strict: bool, i: int) -> _Node:
        """Strings S with lo[:i] + S >= lo (> if strict)."""
        n = len(lo)
        if i >= n:
            return self.nonzero(i) if strict else self.free(i)
        if self.k is not None and self.k < n:  # lo has digits past the last one allowed: none reach it
            end, node = self.k, None
        else:
            end = n
            node = self.nonzero(n) if strict else self.free(n)
        for j in range(end - 1, i - 1, -1):
            node = _alt(_cat(_DEC.range(lo[j] + 1, 9), self.free(j + 1)), _cat(_DEC.digit(lo[j]), node))
        return node

    def upper(self, hi: list[int], strict: bool, i: int) -> _Node:
        """Strings S with hi[:i] + S <= hi (< if strict)."""
        n = len(hi)
        if i >= n:
            return None if strict else self.zeros(i)
        if self.k is not None and self.k < n:
            end, node = self.k, EMPTY  # hi[k:] is not zero: what stops here is below hi
        else:
            end = n
            node = None if strict else self.zeros(n)
        for j in range(end - 1, i - 1, -1):
            node = _alt(EMPTY, _cat(_DEC.range(0, hi[j] - 1), self.free(j + 1)), _cat(_DEC.digit(hi[j]), node))
        return node

    def both(self, lo: list[int], lo_strict: bool, hi: list[int], hi_strict: bool, i: int) -> _Node:
        """Strings S with lo <= lo[:i] + S <= hi (strict where told), lo[:i] == hi[:i]."""
        if lo == hi:
            if lo_strict or hi_strict or (self.k is not None and len(lo) > self.k):
                return None
            return _cat(_DEC.literal(lo[i:]), self.zeros(max(i, len(lo))))
        width = max(len(lo), len(hi))
        pad_lo, pad_hi = lo + [0] * (width - len(lo)), hi + [0] * (width - len(hi))
        split = next(j for j in range(width) if pad_lo[j] != pad_hi[j])  # pad_lo < pad_hi there
        if self.k is None or split < self.k:  # a digit can be read where the bounds part
            end = split
            d, e = pad_lo[split], pad_hi[split]
            node = _alt(_cat(_DEC.digit(d), self.lower(lo, lo_strict, split + 1)),
                        _cat(_DEC.range(d + 1, e - 1), self.free(split + 1)),
                        _cat(_DEC.digit(e), self.upper(hi, hi_strict, split + 1)))
        else:  # k digits read, all equal to both bounds'
            end, node = self.k, None
        node = _alt(self._stop_both(lo, lo_strict, hi, hi_strict, end), node)
        for j in range(end - 1, i - 1, -1):
            node = _alt(self._stop_both(lo, lo_strict, hi, hi_strict, j), _cat(_DEC.digit(pad_lo[j]), node))
        return node

    @staticmethod
    def _stop_both(lo: list[int], lo_strict: bool, hi: list[int], hi_strict: bool, i: int) -> _Node:
        """EMPTY if lo[:i] (== hi[:i]) itself is within the bounds, else None."""
        at_lo = i >= len(lo)  # the value is lo exactly (else below it)
        at_hi = i >= len(hi)  # the value is hi exactly (else below it)
        return EMPTY if at_lo and not lo_strict and not (at_hi and hi_strict) else None

    def part(self, lo: list[int], lo_strict: bool, hi: list[int] | None, hi_strict: bool) -> _Node:
        """The fraction part of a text: "" (value 0) or "." and 1 to k digits, value within the bounds."""
        zero_ok = not lo and not lo_strict and (hi is None or bool(hi) or not hi_strict)
        no_fraction = EMPTY if zero_ok else None
        if self.k == 0:
            return no_fraction
        # One digit read by hand: the digits after "." are not empty.
        if hi is None:
            d = lo[0] if lo else 0
            first = _alt(_cat(_DEC.range(d + 1, 9), self.free(1)), _cat(_DEC.digit(d), self.lower(lo, lo_strict, 1)))
        else:
            d, e = (lo[0] if lo else 0), (hi[0] if hi else 0)
            if d == e:
                first = _cat(_DEC.digit(d), self.both(lo, lo_strict, hi, hi_strict, 1))
            else:
                first = _alt(_cat(_DEC.digit(d), self.lower(lo, lo_strict, 1)),
                             _cat(_DEC.range(d + 1, e - 1), self.free(1)),
                             _cat(_DEC.digit(e), self.upper(hi, hi_strict, 1)))
        return _alt(no_fraction, _cat(_DOT, first))


def _magnitude(lo: Decimal, lo_strict: bool, hi: Decimal | None, hi_strict: bool, k: int | None) -> _Node:
    """Unsigned positional texts (canonical integer part, up to k fraction digits) of value m, lo <(=) m <(=) hi; lo >= 0."""
    lo_int, lo_frac = _split(lo)
    fraction = _Fraction(k)
    if hi is None:
        return _alt(_cat(_DEC.literal(_decimal_digits(lo_int)), fraction.part(lo_frac, lo_strict, None, False)),
                    _cat(_naturals(lo_int + 1, None), fraction.part([], False, None, False)))
    if hi < lo:
        return None
    hi_int, hi_frac = _split(hi)
    if lo_int == hi_int:
        return _cat(_DEC.literal(_decimal_digits(lo_int)), fraction.part(lo_frac, lo_strict, hi_frac, hi_strict))
    return _alt(_cat(_DEC.literal(_decimal_digits(lo_int)), fraction.part(lo_frac, lo_strict, None, False)),
                _cat(_naturals(lo_int + 1, hi_int - 1), fraction.part([], False, None, False)),
                _cat(_DEC.literal(_decimal_digits(hi_int)), fraction.part([], False, hi_frac, hi_strict)))


def _json_number() -> RegexNode:
    """-?(0|[1-9][0-9]*)(\\.[0-9]+)?([eE][+-]?[0-9]+)?"""
    digits = _DEC.run(1, None)
    integer = Alternation((_DEC.digit(0), Concat((_DEC.range(1, 9), _DEC.run(0, None)))))
    fraction = Repeat(Concat((_DOT, digits)), 0, 1)
    exponent = Repeat(Concat((Chars(((ord("E"), ord("E")), (ord("e"), ord("e")))),
                              Repeat(Chars(((ord("+"), ord("+")), (ord("-"), ord("-")))), 0, 1), digits)), 0, 1)
    return Concat((Repeat(_MINUS, 0, 1), integer, fraction, exponent))


def _bound(name: str, value: Decimal | int | None) -> Decimal | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (Decimal, int)):
        raise TypeError(f"{name} must be a Decimal, an int or None, not {type(value).__name__}")
    if isinstance(value, int) and abs(value) >= _INT_LIMIT:
        raise OverflowError(f"{name} has more than {MAX_BOUND_DIGITS} digits")
    value = Decimal(value)
    if not value.is_finite():
        raise ValueError(f"{name} must be finite, not {value}")
    sign, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int)
    if not any(digits):
        return Decimal(0)  # also 0E+999999999 and -0
    while exponent < 0 and digits[-1] == 0:  # 1.5000 -> 1.5, exactly (normalize() rounds to the context)
        digits, exponent = digits[:-1], exponent + 1
    if len(digits) + max(exponent, 0) > MAX_BOUND_DIGITS or -exponent > MAX_BOUND_DIGITS:
        raise OverflowError(f"{name} has more than {MAX_BOUND_DIGITS} positional digits")
    return Decimal((sign, digits, exponent))


def number_tree(minimum: Decimal | None, maximum: Decimal | None, *, exclusive_minimum: bool = False,
                exclusive_maximum: bool = False, max_fraction_digits: int | None = None) -> RegexNode:
    """JSON number texts whose value v lies within the bounds (None: unbounded), compared exactly.

        >>> number_tree(Decimal("2.5"), None, exclusive_minimum=True)  # "2.5000001", "3"; not "2.50"
        >>> number_tree(None, Decimal("-0.25"), max_fraction_digits=2)  # "-0.25", "-1"; not "-0.251"
    Without bounds or a fraction limit: the full JSON number grammar. Otherwise positional
    notation only, -?(0|[1-9][0-9]*)(\\.[0-9]+)? with at most max_fraction_digits fraction
    digits (trailing zeros allowed) and no negative zero ("-0", "-0.0"). Raises ValueError
    when no such text exists, OverflowError past MAX_BOUND_DIGITS positional digits.
    """
    low, high = _bound("minimum", minimum), _bound("maximum", maximum)
    if max_fraction_digits is not None:
        if isinstance(max_fraction_digits, bool) or not isinstance(max_fraction_digits, int):
            raise TypeError("max_fraction_digits must be an int or None")
        if max_fraction_digits < 0:
            raise ValueError(f"max_fraction_digits must be >= 0, not {max_fraction_digits}")
    if low is None and high is None and max_fraction_digits is None:
        return _json_number()
    zero = Decimal(0)
    # v >= 0, written without "-": magnitude in [max(low, 0), high].
    nonnegative = None
    if high is None or high >= zero:
        if low is None or low < zero:
            nonnegative = _magnitude(zero, False, high, exclusive_maximum, max_fraction_digits)
        else:
            nonnegative = _magnitude(low, exclusive_minimum, high, exclusive_maximum, max_fraction_digits)
    # v < 0, written "-" and a magnitude > 0 (no negative zero) in [-high, -low].
    negative = None
    if low is None or low < zero:
        top = None if low is None else low.copy_negate()
        if high is None or high >= zero:
            magnitude = _magnitude(zero, True, top, exclusive_minimum, max_fraction_digits)
        else:
            magnitude = _magnitude(high.copy_negate(), exclusive_maximum, top, exclusive_minimum,
                                   max_fraction_digits)
        negative = _cat(_MINUS, magnitude)
    tree = _alt(nonnegative, negative)
    if tree is None:
        limit = "" if max_fraction_digits is None else f" with at most {max_fraction_digits} fraction digits"
        raise ValueError(f"no number{limit} v with {low} {'<' if exclusive_minimum else '<='} v "
                         f"{'<' if exclusive_maximum else '<='} {high}")
    return tree


# ---------------------------------------------------------------- \uXXXX

_HEX = _Digits(16)


def hex4_tree(intervals: Iterable[tuple[int, int]]) -> RegexNode:
    """Exactly four hex digits ([0-9a-fA-F], either case per digit) whose value lies in one of the inclusive ranges.

        >>> hex4_tree([(0x41, 0x5A)])       # "0041" .. "005A", also "005a"
        >>> hex4_tree([(0, 0x1F), (0x7F, 0x7F)])
    Ranges lie within 0..0xFFFF and may overlap; ValueError when there are none.
    """
    ranges = sorted((int(lo), int(hi)) for lo, hi in intervals)
    merged: list[list[int]] = []
    for lo, hi in ranges:
        if not 0 <= lo <= hi <= 0xFFFF:
            raise ValueError(f"hex4 range ({lo:#x}, {hi:#x}) is not within 0..0xFFFF")
        if merged and lo <= merged[-1][1] + 1:
            merged[-1][1] = max(merged[-1][1], hi)
        else:
            merged.append([lo, hi])
    if not merged:
        raise ValueError("hex4_tree needs at least one range")

    def digits(n: int) -> list[int]:
        return [(n >> shift) & 0xF for shift in (12, 8, 4, 0)]

    tree = _alt(*(_HEX.between(digits(lo), digits(hi)) for lo, hi in merged))
    assert tree is not None
    return tree
