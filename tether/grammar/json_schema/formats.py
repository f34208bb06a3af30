"""JSON Schema `format` values as exact regular expressions over the decoded string.

`FORMATS[name]` is a Python `re` pattern with full-match semantics (no anchors, no
lookaround, no backreferences), so `tether.grammar.regex.parse_regex` reads it and
`re.fullmatch(FORMATS[name], value)` agrees with the automaton built from it (but for
lone surrogates, which `re` lets `[^/~]` match and UTF-8 cannot carry). The
pattern describes the string value itself; JSON escaping and quotes are the caller's.

The guarantee is soundness: every string a pattern accepts is valid for the format
(under the RFC and under the validators the Python ecosystem uses: `datetime`,
`ipaddress`, `uuid`, `rfc3339_validator`, `rfc3986_validator`, `fqdn`, `isoduration`,
`jsonpointer`). Where an exact pattern would be huge or the condition is not regular,
a pattern accepts a documented subset; every such narrowing is marked NARROWING below.

    >>> import re
    >>> bool(re.fullmatch(FORMATS["date"], "2024-02-29")), bool(re.fullmatch(FORMATS["date"], "2023-02-29"))
    (True, False)
    >>> tree = format_tree("ipv4")   # a RegexNode, parsed once and cached
"""

from __future__ import annotations

import functools
from typing import Callable

from ..regex import RegexNode, parse_regex

__all__ = ["FORMATS", "format_tree"]


# ---------------------------------------------------------------- helpers


def _dotted(item: Callable[[int], str], sep: str, max_item: int, max_total: int) -> str:
    """`item (sep item)*` of at most `max_total` characters, each item of 1..`max_item`.

    A regular expression bounds a total length only by spelling out the ways it splits
    among the items (exponentially many), so this bounds it by item count instead: k items of at most m_k
    characters each, m_k = min(max_item, (max_total + 1) // k - 1), whence
    k * m_k + (k - 1) <= max_total. Counts with the same m_k share one branch.
    NARROWING: a string with k items, one of them longer than m_k, is left out even when
    the whole fits (e.g. for hostnames: 4 labels of at most 62, 5 of at most 49, ...,
    up to 127 one-letter labels; 1 to 3 labels keep the full 63).
    """
    bands: dict[int, list[int]] = {}
    k = 1
    while True:
        m = min(max_item, (max_total + 1) // k - 1)
        if m < 1:
            break
        bands.setdefault(m, [k, k])[1] = k
        k += 1
    branches = []
    for m, (lo, hi) in sorted(bands.items(), reverse=True):
        one = item(m)
        reps = f"{{{lo - 1}}}" if lo == hi else f"{{{lo - 1},{hi - 1}}}"
        branches.append(one if hi == 1 else f"{one}(?:{sep}{one}){reps}")
    return "(?:" + "|".join(branches) + ")"


# ---------------------------------------------------------------- date and time (RFC 3339 section 5.6)

_D = "[0-9]"
# date-fullyear = 4DIGIT, NARROWING: without 0000, which RFC 3339 allows but neither
# `datetime.date` (MINYEAR = 1) nor `rfc3339_validator` accepts.
_YEAR = f"(?:{_D}{{3}}[1-9]|{_D}{{2}}[1-9]0|{_D}[1-9]00|[1-9]000)"
# Leap years (RFC 3339 Appendix C): divisible by 4 and not by 100, or by 400. Divisibility
# by 4 reads on the last two digits: an even tens digit with 0/4/8, an odd one with 2/6.
_LEAP_YEAR = (f"(?:{_D}{{2}}(?:[02468][48]|[13579][26]|[2468]0)"  # not a century: yy % 4 == 0, yy != 00
              f"|(?:[02468][48]|[13579][26]|[2468]0)00)")        # a century whose first two digits % 4 == 0 (not 0000)
_MONTH_DAY = ("(?:(?:0[1-9]|1[0-2])-(?:0[1-9]|1[0-9]|2[0-8])"   # 01-28 in every month
              "|(?:0[13-9]|1[0-2])-(?:29|30)"                    # 29 and 30 except in February
              "|(?:0[13578]|1[02])-31)")                         # 31 in the long months
_FULL_DATE = f"(?:{_YEAR}-{_MONTH_DAY}|{_LEAP_YEAR}-02-29)"

# time-second = 00-58 / 00-59 / 00-60 by the leap-second rules. NARROWING: 60 is left out:
# `rfc3339_validator` (jsonschema's date-time and time checker) and `datetime` reject every
# leap second, while the JSON Schema Test Suite accepts 60 only where the time is 23:59 UTC
# after removing the offset; the stricter of the two is no leap second at all.
_PARTIAL_TIME = "(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\\.[0-9]+)?"  # time-secfrac = "." 1*DIGIT
# time-offset = "Z" / time-numoffset; "T" and "Z" may be lowercase (RFC 3339 section 5.6 NOTE).
_TIME_OFFSET = "(?:[Zz]|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])"
_FULL_TIME = _PARTIAL_TIME + _TIME_OFFSET
_DATE_TIME = f"{_FULL_DATE}[Tt]{_FULL_TIME}"

# ---------------------------------------------------------------- duration (RFC 3339 Appendix A)

_N = "[0-9]+"
_DUR_SECOND = f"{_N}S"
_DUR_MINUTE = f"{_N}M(?:{_DUR_SECOND})?"
_DUR_HOUR = f"{_N}H(?:{_DUR_MINUTE})?"
_DUR_TIME = f"T(?:{_DUR_HOUR}|{_DUR_MINUTE}|{_DUR_SECOND})"
_DUR_DAY = f"{_N}D"
_DUR_MONTH = f"{_N}M(?:{_DUR_DAY})?"
_DUR_YEAR = f"{_N}Y(?:{_DUR_MONTH})?"
_DUR_DATE = f"(?:{_DUR_DAY}|{_DUR_MONTH}|{_DUR_YEAR})(?:{_DUR_TIME})?"
_DUR_WEEK = f"{_N}W"
_DURATION = f"P(?:{_DUR_DATE}|{_DUR_TIME}|{_DUR_WEEK})"

# ---------------------------------------------------------------- IP addresses

# dec-octet (RFC 3986): 0-255 without leading zeros, as `ipaddress` requires.
_DEC_OCTET = "(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])"
_IPV4 = f"{_DEC_OCTET}(?:\\.{_DEC_OCTET}){{3}}"

_H16 = "[0-9A-Fa-f]{1,4}"
_LS32 = f"(?:{_H16}:{_H16}|{_IPV4})"


def _h16s(lo: int, hi: int) -> str:
    """`[ *(hi-1)( h16 ":" ) h16 ]` of RFC 3986, the groups before "::" (lo = 0: optional)."""
    if hi == 0:
        return ""
    inner = _H16 if hi == 1 else f"(?:{_H16}:){{0,{hi - 1}}}{_H16}"
    return f"(?:{inner})?" if lo == 0 else inner


# IPv6address (RFC 3986 section 3.2.2, the text forms of RFC 4291 section 2.2): "::" stands for
# one or more zero groups, an IPv4 tail counts as two groups. No zone id (RFC 6874).
_IPV6 = "(?:" + "|".join([
    f"(?:{_H16}:){{6}}{_LS32}",
    f"::(?:{_H16}:){{5}}{_LS32}",
    f"{_h16s(0, 1)}::(?:{_H16}:){{4}}{_LS32}",
    f"{_h16s(0, 2)}::(?:{_H16}:){{3}}{_LS32}",
    f"{_h16s(0, 3)}::(?:{_H16}:){{2}}{_LS32}",
    f"{_h16s(0, 4)}::{_H16}:{_LS32}",
    f"{_h16s(0, 5)}::{_LS32}",
    f"{_h16s(0, 6)}::{_H16}",
    f"{_h16s(0, 7)}::",
]) + ")"

# ---------------------------------------------------------------- hostname (RFC 1123 section 2.1, RFC 1034)

_LD = "[A-Za-z0-9]"
_LDH = "[A-Za-z0-9-]"


def _label(m: int) -> str:
    """A label of 1..m letters, digits and hyphens, starting and ending with a letter or digit.

    NARROWING: labels with hyphens in both the 3rd and 4th position ("xn--...", the
    R-LDH labels of RFC 5890 section 2.3.1) are left out. Those are reserved: A-labels
    (punycode IDNs) are valid only when they decode to a valid IDNA2008 U-label, which is
    not a regular condition, and all other R-LDH labels are invalid. Plain "a--b" stays.
    """
    if m == 1:
        return _LD
    if m == 2:
        return f"{_LD}{_LD}?"
    if m == 3:
        return f"{_LD}(?:{_LDH}?{_LD})?"
    if m == 4:
        return f"{_LD}(?:{_LDH}?{_LD}|{_LDH}{_LDH}{_LD})?"
    tail = "" if m == 5 else f"{_LDH}{{0,{m - 5}}}"
    # length 5..m: c1 c2, then c3 c4 not both hyphens, then the rest ending in a letter or digit
    return f"{_LD}(?:{_LDH}?{_LD}|{_LDH}{_LDH}{_LD}|{_LDH}(?:{_LD}{_LDH}|-{_LD}){tail}{_LD})?"


# Labels of 1-63 characters, the whole at most 253 characters (RFC 1034 section 3.1, without a
# trailing dot); the length bound is enforced per label count, see `_dotted` (NARROWING there).
_HOSTNAME = _dotted(_label, "\\.", 63, 253)

# ---------------------------------------------------------------- email (RFC 5321 section 4.1.2 Mailbox)

_ATEXT = "[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]"
# local-part = Dot-string / Quoted-string, of at most 64 characters (RFC 5321 section 4.5.3.1.1).
# NARROWING: the Dot-string bounded per atom count like hostnames (`_dotted`); the Quoted-string
# of 1 to 62 qtextSMTP characters (printable ASCII and space, but no '"' or '\\'), without
# quoted-pairs (backslash escapes) and not empty. The domain
# is a hostname of at most 189 characters (bounded per label count, and with the hostname
# label rule against "xn--" labels), so the mailbox stays within the 254 characters a path
# allows (RFC 5321 section 4.5.3.1.3: 256 with "<" and ">"), or an address literal.
_DOT_STRING = _dotted(lambda m: f"{_ATEXT}{{1,{m}}}" if m > 1 else _ATEXT, "\\.", 64, 64)
_QUOTED_STRING = '"[ !#-\\[\\]-~]{1,62}"'
_LOCAL_PART = f"(?:{_DOT_STRING}|{_QUOTED_STRING})"


def _groups(n: int) -> str:
    """Up to n (>= 1) colon-separated IPv6-hex groups, or none."""
    return f"(?:{_H16}(?::{_H16}){{0,{n - 1}}})?"


# address-literal (RFC 5321 section 4.1.3): IPv4, or "IPv6:" and an IPv6-addr, whose "::" stands
# for at least two zero groups (stricter than RFC 4291): at most 6 groups beside it, or 4 with an
# IPv4 tail. NARROWING: no General-address-literal; the IPv4 parts without leading zeros (RFC 5321
# allows them, `ipaddress` does not); the tag only as "IPv6" or "ipv6".
_IPV6_ADDR_5321 = "(?:" + "|".join(
    [f"{_H16}(?::{_H16}){{7}}",  # IPv6-full
     f"{_H16}(?::{_H16}){{5}}:{_IPV4}"]  # IPv6v4-full
    # IPv6-comp: a groups before "::" and at most 6 - a after it
    + [f"{_H16}(?::{_H16}){{{a - 1}}}::{_groups(6 - a)}" for a in range(1, 6)]
    + [f"{_H16}(?::{_H16}){{5}}::", f"::{_groups(6)}"]
    # IPv6v4-comp: a groups before "::" and at most 4 - a after it, then the IPv4 tail
    + [f"{_H16}(?::{_H16}){{{a - 1}}}::(?:{_H16}(?::{_H16}){{0,{3 - a}}}:)?{_IPV4}" for a in range(1, 4)]
    + [f"{_H16}(?::{_H16}){{3}}::{_IPV4}", f"::(?:{_H16}(?::{_H16}){{0,3}}:)?{_IPV4}"]) + ")"
_ADDRESS_LITERAL = f"\\[(?:{_IPV4}|(?:IPv6|ipv6):{_IPV6_ADDR_5321})\\]"
_EMAIL_DOMAIN = f"(?:{_dotted(_label, '[.]', 63, 189)}|{_ADDRESS_LITERAL})"
_EMAIL = f"{_LOCAL_PART}@{_EMAIL_DOMAIN}"

# ---------------------------------------------------------------- URI (RFC 3986)

_PCT = "%[0-9A-Fa-f]{2}"
_UNRESERVED_SUB = "A-Za-z0-9._~!$&'()*+,;="  # unreserved and sub-delims, "-" added last in each class
_PCHAR = f"(?:[{_UNRESERVED_SUB}:@-]|{_PCT})"
_SEGMENT = f"{_PCHAR}*"
_SEGMENT_NZ = f"{_PCHAR}+"
_SEGMENT_NZ_NC = f"(?:[{_UNRESERVED_SUB}@-]|{_PCT})+"
_QUERY = f"(?:[{_UNRESERVED_SUB}:@/?-]|{_PCT})*"  # query and fragment
_SCHEME = "[A-Za-z][A-Za-z0-9+.-]*"
_USERINFO = f"(?:[{_UNRESERVED_SUB}:-]|{_PCT})*"
# IPvFuture = "v" 1*HEXDIG "." 1*( unreserved / sub-delims / ":" ). NARROWING: "v" lowercase
# only: `urllib.parse` (Python 3.11.4+) rejects "[V1.x]".
_IPVFUTURE = f"v[0-9A-Fa-f]+\\.[{_UNRESERVED_SUB}:-]+"
# host = IP-literal / IPv4address / reg-name; every IPv4address is also a reg-name.
_HOST = f"(?:\\[(?:{_IPV6}|{_IPVFUTURE})\\]|(?:[{_UNRESERVED_SUB}-]|{_PCT})*)"
# port = *DIGIT. NARROWING: empty or 0-65535 without leading zeros, so that every accepted URI
# also reads in `urllib.parse` (whose `.port` rejects numbers past 65535).
_PORT = "(?:0|[1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])?"
_AUTHORITY = f"(?:{_USERINFO}@)?{_HOST}(?::{_PORT})?"
_PATH_ABEMPTY = f"(?:/{_SEGMENT})*"
_PATH_ABSOLUTE = f"/(?:{_SEGMENT_NZ}(?:/{_SEGMENT})*)?"
_PATH_ROOTLESS = f"{_SEGMENT_NZ}(?:/{_SEGMENT})*"
_PATH_NOSCHEME = f"{_SEGMENT_NZ_NC}(?:/{_SEGMENT})*"
_TAIL = f"(?:\\?{_QUERY})?(?:#{_QUERY})?"
_URI = f"{_SCHEME}:(?://{_AUTHORITY}{_PATH_ABEMPTY}|{_PATH_ABSOLUTE}|{_PATH_ROOTLESS}|){_TAIL}"
_RELATIVE_REF = f"(?://{_AUTHORITY}{_PATH_ABEMPTY}|{_PATH_ABSOLUTE}|{_PATH_NOSCHEME}|){_TAIL}"
_URI_REFERENCE = f"(?:{_URI}|{_RELATIVE_REF})"

# ---------------------------------------------------------------- JSON Pointer (RFC 6901)

# unescaped = %x00-2E / %x30-7D / %x7F-10FFFF, escaped = "~" ( "0" / "1" )
_JSON_POINTER = "(?:/(?:[^/~]|~[01])*)*"
# Relative JSON Pointer (draft-handrews-relative-json-pointer-01): non-negative-integer then
# "#" or a JSON Pointer. NARROWING: no index manipulation ("0+1/..."), which only the later
# draft-bhutton-relative-json-pointer-00 adds and `jsonschema` does not accept.
_RELATIVE_JSON_POINTER = f"(?:0|[1-9][0-9]*)(?:#|{_JSON_POINTER})"

# ---------------------------------------------------------------- URI Template (RFC 6570)

# ucschar / iprivate: the non-ASCII characters a literal may hold (no noncharacters).
_UCS = ("\\u00a0-\\ud7ff\\ue000-\\ufdcf\\ufdf0-\\uffef"
        + "".join(f"\\U{p:04x}0000-\\U{p:04x}fffd" for p in range(1, 14))
        + "\\U000e1000-\\U000efffd\\U000f0000-\\U000ffffd\\U00100000-\\U0010fffd")
# literals: any character but controls, space and these: " % < > \ ^ ` { | } ("%" only in pct-encoded; the
# apostrophe is a literal, as the JSON Schema Test Suite and `uri_template` read it).
_UT_LITERAL = f"(?:[!#$&-;=?-\\[\\]_a-z~{_UCS}]|{_PCT})"
# NARROWING: no op-reserve operators ("=,!@|", reserved for extensions), no pct-encoded variable
# names, max-length of at most 3 digits: `uri_template` (jsonschema's checker) rejects them.
_UT_VARSPEC = "[A-Za-z0-9_](?:\\.?[A-Za-z0-9_])*(?::[1-9][0-9]{0,2}|\\*)?"
_UT_EXPRESSION = f"\\{{[+#./;?&]?{_UT_VARSPEC}(?:,{_UT_VARSPEC})*\\}}"
_URI_TEMPLATE = f"(?:{_UT_LITERAL}|{_UT_EXPRESSION})*"

# ---------------------------------------------------------------- the table

FORMATS: dict[str, str] = {
    "date": _FULL_DATE,
    "time": _FULL_TIME,
    "date-time": _DATE_TIME,
    "duration": _DURATION,
    "email": _EMAIL,
    "hostname": _HOSTNAME,
    "ipv4": _IPV4,
    "ipv6": _IPV6,
    "uuid": "[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}",
    "uri": _URI,
    "uri-reference": _URI_REFERENCE,
    "uri-template": _URI_TEMPLATE,
    "json-pointer": _JSON_POINTER,
    "relative-json-pointer": _RELATIVE_JSON_POINTER,
}


@functools.cache
def format_tree(name: str) -> RegexNode:
    """`parse_regex(FORMATS[name])`, parsed once; KeyError for a format without a pattern."""
    return parse_regex(FORMATS[name])
