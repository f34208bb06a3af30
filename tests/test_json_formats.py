"""JSON Schema `format` patterns (tether.grammar.json_schema.formats): exact, and sound.

1. The JSON Schema Test Suite (../shared/data/jsonschema/test-suite, draft2020-12 and draft7
   optional/format): every invalid string is rejected, by `re.fullmatch` and by tether's DFA
   alike; every valid one is accepted except the narrowings listed in KNOWN_NARROWINGS.
2. Soundness: strings drawn from each pattern (hypothesis `from_regex`, and random walks on
   tether's own DFA) pass the real validators: `datetime`, `ipaddress`, `uuid`, `idna`,
   `email.headerregistry`, jsonschema's FormatChecker, and where installed
   `rfc3339_validator`, `rfc3986_validator`, `rfc3987`, `fqdn`, `isoduration`, `jsonpointer`,
   besides structural checks written here (label and total lengths, unit order, ...).
   A missing optional validator shows as a skip of `test_optional_validator_installed`.
3. Calendar facts (leap years, month lengths) exhaustively, and independently made valid
   values (random addresses, UUIDs, datetimes) are accepted.
"""

from __future__ import annotations

import calendar
import datetime
import functools
import importlib
import ipaddress
import json
import random
import re
import uuid
import warnings
from email.headerregistry import Address
from urllib.parse import urlsplit

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import data_path
from tether.automata.dfa import LazyDFA
from tether.grammar.json_schema.formats import FORMATS, format_tree


def _optional(module: str):
    try:
        return importlib.import_module(module)
    except ImportError:
        return None


rfc3339_validator = _optional("rfc3339_validator")
rfc3986_validator = _optional("rfc3986_validator")
rfc3987 = _optional("rfc3987")
fqdn = _optional("fqdn")
isoduration = _optional("isoduration")
jsonpointer = _optional("jsonpointer")
idna = _optional("idna")

FORMAT_CHECKER = jsonschema.Draft202012Validator.FORMAT_CHECKER

# Valid test-suite strings a pattern leaves out on purpose (see the NARROWING comments in formats.py).
_LEAP_SECOND = "leap second 60: rfc3339_validator and datetime reject every leap second"
_A_LABEL = "an xn-- (A-label) hostname: IDNA validity of punycode is not regular, all R-LDH labels are left out"
_URI_TEMPLATE_CHECKER = "uri_template, jsonschema's checker, rejects it"
KNOWN_NARROWINGS: dict[str, dict[str, str]] = {
    "uri-template": {
        "a variable name may start with a percent-encoded triplet": _URI_TEMPLATE_CHECKER,
        "a four-digit prefix max-length is valid": _URI_TEMPLATE_CHECKER,
    },
    "date-time": {
        "a valid date-time with a leap second, UTC": _LEAP_SECOND,
        "a valid date-time with a leap second, with minus offset": _LEAP_SECOND,
    },
    "time": {
        "a valid time string with leap second, Zulu": _LEAP_SECOND,
        "valid leap second, zero time-offset": _LEAP_SECOND,
        "valid leap second, positive time-offset": _LEAP_SECOND,
        "valid leap second, large positive time-offset": _LEAP_SECOND,
        "valid leap second, negative time-offset": _LEAP_SECOND,
        "valid leap second, large negative time-offset": _LEAP_SECOND,
    },
    "hostname": {desc: _A_LABEL for desc in (
        "a valid host name (example.test in Hangul)",
        "Exceptions that are PVALID, left-to-right chars",
        "Exceptions that are PVALID, right-to-left chars",
        "MIDDLE DOT with surrounding 'l's",
        "Greek KERAIA followed by Greek",
        "Hebrew GERESH preceded by Hebrew",
        "Hebrew GERSHAYIM preceded by Hebrew",
        "KATAKANA MIDDLE DOT with Hiragana",
        "KATAKANA MIDDLE DOT with Katakana",
        "KATAKANA MIDDLE DOT with Han",
        "Arabic-Indic digits not mixed with Extended Arabic-Indic digits",
        "Extended Arabic-Indic digits not mixed with Arabic-Indic digits",
        "ZERO WIDTH JOINER preceded by Virama",
        "ZERO WIDTH NON-JOINER preceded by Virama",
        "ZERO WIDTH NON-JOINER not preceded by Virama but matches regexp",
    )},
}

# draft7 has no duration and uuid formats (both came with 2019-09).
SUITE_FILES = [("draft2020-12", name) for name in sorted(FORMATS)] + [
    ("draft7", name) for name in sorted(FORMATS) if name not in ("duration", "uuid")]


@functools.cache
def _dfa(name: str) -> LazyDFA:
    return LazyDFA.from_tree(format_tree(name))


def _both(name: str, text: str) -> bool:
    """Whether `text` matches, asserting that `re` and tether's DFA agree."""
    by_re = re.fullmatch(FORMATS[name], text) is not None
    if any(0xD800 <= ord(ch) <= 0xDFFF for ch in text):  # UTF-8 cannot carry them; tether excludes them
        return by_re
    by_dfa = _dfa(name).matches(text.encode())
    assert by_re == by_dfa, (name, text, by_re, by_dfa)
    return by_re


# ---------------------------------------------------------------- 1. the JSON Schema Test Suite


@functools.cache
def _suite(draft: str, name: str) -> tuple[list[str], int, int, int]:
    """(descriptions of valid strings not matched, valid matched, valid, invalid) for one file."""
    path = data_path("jsonschema", "test-suite", draft, "optional", "format", f"{name}.json")
    unmatched, matched, n_valid, n_invalid = [], 0, 0, 0
    for group in json.loads(path.read_text(encoding="utf-8")):
        if group["schema"].get("format") != name:
            continue
        for case in group["tests"]:
            data = case["data"]
            if not isinstance(data, str):  # formats apply to strings only
                continue
            ok = _both(name, data)
            if case["valid"]:
                n_valid += 1
                matched += ok
                if not ok:
                    unmatched.append(case["description"])
            else:
                n_invalid += 1
                assert not ok, f"{draft} {name}: invalid {data!r} ({case['description']}) is accepted"
    return unmatched, matched, n_valid, n_invalid


@pytest.mark.parametrize("draft,name", SUITE_FILES)
def test_json_schema_test_suite(draft, name, record_property):
    unmatched, matched, n_valid, n_invalid = _suite(draft, name)
    record_property("valid_matched", f"{matched}/{n_valid}")
    print(f"{draft} {name}: {matched}/{n_valid} valid strings matched, {n_invalid} invalid rejected")
    assert n_valid and n_invalid
    unexpected = set(unmatched) - set(KNOWN_NARROWINGS.get(name, {}))
    assert not unexpected, f"{draft} {name}: valid strings not matched: {sorted(unexpected)}"


@pytest.mark.parametrize("name", sorted(KNOWN_NARROWINGS))
def test_known_narrowings_are_current(name):
    """Every listed narrowing still holds somewhere in the suite (a lifted one leaves the list)."""
    seen = {desc for draft, n in SUITE_FILES if n == name for desc in _suite(draft, n)[0]}
    assert seen == set(KNOWN_NARROWINGS[name])


# ---------------------------------------------------------------- 2. soundness: the validators

_ATEXT = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'*+-/=?^_`{|}~")
_LDH = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-")
_HEX = frozenset("0123456789abcdefABCDEF")
_URI_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~:/?#[]@!$&'()*+,;=%")


def _conforms(text: str, fmt: str) -> None:
    """jsonschema's checker, where it has one for `fmt` (it returns True for formats it lacks)."""
    assert FORMAT_CHECKER.conforms(text, fmt), (fmt, text)


def check_date(s: str) -> None:
    assert len(s) == 10 and s.isascii() and s[4] == s[7] == "-", s
    assert datetime.date.fromisoformat(s).isoformat() == s
    _conforms(s, "date")


def check_time(s: str) -> None:
    assert s.isascii() and s[2] == s[5] == ":", s
    hh, mm, ss = int(s[0:2]), int(s[3:5]), int(s[6:8])
    assert hh <= 23 and mm <= 59 and ss <= 59, s
    end = 8
    if s[8] == ".":
        end = 9
        while s[end].isdigit():
            end += 1
        assert end > 9, s
    rest = s[end:]
    if rest not in ("Z", "z"):
        assert len(rest) == 6 and rest[0] in "+-" and rest[3] == ":", s
        assert int(rest[1:3]) <= 23 and int(rest[4:6]) <= 59, s
    datetime.datetime.fromisoformat("2000-01-01T" + s.upper())
    if rfc3339_validator is not None:
        assert rfc3339_validator.validate_rfc3339("1970-01-01T" + s.upper()), s
    _conforms(s, "time")


def check_date_time(s: str) -> None:
    assert s[10] in "Tt", s
    check_date(s[:10])
    check_time(s[11:])
    datetime.datetime.fromisoformat(s.upper())
    if rfc3339_validator is not None:  # case-sensitive, so upper-cased as jsonschema does: RFC 3339 allows t and z
        assert rfc3339_validator.validate_rfc3339(s.upper()), s
    _conforms(s, "date-time")


_DATE_UNITS = {"", "D", "M", "MD", "Y", "YM", "YMD"}  # dur-day / dur-month [dur-day] / dur-year [dur-month]
_TIME_UNITS = {"H", "HM", "HMS", "M", "MS", "S"}


def check_duration(s: str) -> None:
    assert s[0] == "P", s
    date_part, sep, time_part = s[1:].partition("T")

    def units(part: str) -> str:
        pieces = re.findall(r"([0-9]+)([A-Z])", part, re.ASCII)
        assert "".join(n + u for n, u in pieces) == part, s
        return "".join(u for _, u in pieces)

    du = units(date_part)
    if du == "W":
        assert not sep, s
    else:
        assert du in _DATE_UNITS, s
        if sep:
            assert units(time_part) in _TIME_UNITS, s
        else:
            assert du, s
    if isoduration is not None:
        isoduration.parse_duration(s)
    _conforms(s, "duration")


def check_hostname(s: str, max_total: int = 253) -> None:
    assert s.isascii() and 1 <= len(s) <= max_total, s
    for label in s.split("."):
        assert 1 <= len(label) <= 63 and set(label) <= _LDH, s
        assert label[0] != "-" and label[-1] != "-", s
        assert label[2:4] != "--", s  # R-LDH labels (xn--...) are left out on purpose
    if fqdn is not None:
        assert fqdn.FQDN(s, min_labels=1).is_valid, s
    if idna is not None:
        idna.encode(s)
    _conforms(s, "hostname")
    _conforms(s, "idn-hostname")


def _check_5321_ipv6(addr: str) -> None:
    """RFC 5321 IPv6-addr: a valid RFC 4291 address whose "::" stands for at least two groups."""
    ipaddress.IPv6Address(addr)
    groups = [g for g in addr.replace("::", ":").split(":") if g]
    n = len(groups) + (1 if "." in addr else 0)  # an IPv4 tail is two groups, one of them already counted
    assert n <= 6 if "::" in addr else n == 8, addr


def check_email(s: str) -> None:
    assert s.isascii() and len(s) <= 254, s
    local, _, domain = s.rpartition("@")
    assert 1 <= len(local) <= 64, s
    if local[0] == '"':
        assert len(local) >= 3 and local[-1] == '"', s
        assert all(32 <= ord(c) <= 126 and c not in '"\\' for c in local[1:-1]), s
    else:
        assert all(atom and set(atom) <= _ATEXT for atom in local.split(".")), s
    if domain[0] == "[":
        assert domain[-1] == "]", s
        inner = domain[1:-1]
        if inner[:5].lower() == "ipv6:":
            _check_5321_ipv6(inner[5:])
        else:
            assert str(ipaddress.IPv4Address(inner)) == inner, s
    else:
        check_hostname(domain, max_total=189)
    parsed = Address(addr_spec=s)  # the stdlib RFC 5322 parser: raises on what is not an addr-spec
    assert parsed.domain == domain, s
    _conforms(s, "email")


def check_ipv4(s: str) -> None:
    assert str(ipaddress.IPv4Address(s)) == s
    _conforms(s, "ipv4")


def check_ipv6(s: str) -> None:
    assert "%" not in s and s.isascii(), s
    ipaddress.IPv6Address(s)
    _conforms(s, "ipv6")


def check_uuid(s: str) -> None:
    assert len(s) == 36 and all(s[i] == "-" for i in (8, 13, 18, 23)), s
    assert str(uuid.UUID(s)) == s.lower()
    _conforms(s, "uuid")


def _check_uri_chars(s: str) -> None:
    assert set(s) <= _URI_CHARS, s  # ASCII, no spaces, no "<>\"{}|\\^`"
    for i in [i for i, c in enumerate(s) if c == "%"]:
        assert set(s[i + 1:i + 3]) <= _HEX and len(s[i + 1:i + 3]) == 2, s
    parts = urlsplit(s)  # raises on malformed brackets and bad IP literals
    parts.port  # raises on a port that is not a number in 0-65535
    assert "[" not in parts.path + parts.query + parts.fragment, s


def check_uri(s: str) -> None:
    _check_uri_chars(s)
    scheme, colon, _ = s.partition(":")
    assert colon and scheme[:1].isalpha() and set(scheme) <= _LDH | set("+."), s
    if rfc3986_validator is not None:
        assert rfc3986_validator.validate_rfc3986(s, rule="URI"), s
    if rfc3987 is not None:
        rfc3987.parse(s, rule="URI")
    _conforms(s, "uri")


def check_uri_reference(s: str) -> None:
    _check_uri_chars(s)
    if rfc3986_validator is not None:
        assert rfc3986_validator.validate_rfc3986(s, rule="URI_reference"), s
    if rfc3987 is not None:
        rfc3987.parse(s, rule="URI_reference")
    _conforms(s, "uri-reference")


def check_json_pointer(s: str) -> None:
    assert s == "" or s[0] == "/", s
    assert "~" not in s.replace("~0", "").replace("~1", ""), s
    if jsonpointer is not None:
        jsonpointer.JsonPointer(s)
    _conforms(s, "json-pointer")


def check_relative_json_pointer(s: str) -> None:
    digits = re.match(r"[0-9]*", s, re.ASCII).group()
    assert digits and (digits == "0" or digits[0] != "0"), s
    rest = s[len(digits):]
    if rest != "#":
        check_json_pointer(rest)
    # jsonschema's checker wrongly rejects a prefix with a 0 after its first digit ("100", which
    # the test suite counts valid): it is asked only about the others.
    if "0" not in digits[1:]:
        _conforms(s, "relative-json-pointer")


_VARCHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")


def check_uri_template(s: str) -> None:
    """RFC 6570 section 2, read by hand: literals, and expressions of comma-separated varspecs."""
    i = 0
    while i < len(s):
        c = s[i]
        if c == "{":
            end = s.index("}", i)
            body = s[i + 1:end]
            if body[:1] in set("+#./;?&"):
                body = body[1:]
            for spec in body.split(","):
                name, _, prefix = spec.partition(":")
                if not prefix and name.endswith("*"):
                    name = name[:-1]
                assert name and not name.startswith(".") and not name.endswith(".") and ".." not in name, s
                assert set(name) <= _VARCHARS | {"."}, s
                if prefix:
                    assert prefix.isdigit() and prefix[0] != "0" and int(prefix) < 10000, s
            i = end + 1
        elif c == "%":
            assert set(s[i + 1:i + 3]) <= _HEX and len(s[i + 1:i + 3]) == 2, s
            i += 3
        else:
            cp = ord(c)
            assert cp > 0x20 and c not in "\"%<>\\^`{|}" and cp != 0x7F and not 0x80 <= cp < 0xA0, s
            i += 1
    _conforms(s, "uri-template")


CHECKS = {
    "date": check_date,
    "time": check_time,
    "date-time": check_date_time,
    "duration": check_duration,
    "email": check_email,
    "hostname": check_hostname,
    "ipv4": check_ipv4,
    "ipv6": check_ipv6,
    "uuid": check_uuid,
    "uri": check_uri,
    "uri-reference": check_uri_reference,
    "uri-template": check_uri_template,
    "json-pointer": check_json_pointer,
    "relative-json-pointer": check_relative_json_pointer,
}


def test_every_format_has_a_check():
    assert set(CHECKS) == set(FORMATS)


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_strings_drawn_by_hypothesis_are_valid(name):
    check = CHECKS[name]

    @settings(max_examples=100, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(st.from_regex(re.compile(FORMATS[name]), fullmatch=True))
    def drawn(text):
        assert _both(name, text)
        check(text)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        drawn()


def _random_walk(dfa: LazyDFA, rng: random.Random, stop: float, limit: int = 300) -> str:
    """A member of the DFA's language, ASCII bytes chosen uniformly among those that stay live."""
    classes: dict[int, list[int]] = {}
    for b in range(128):
        classes.setdefault(int(dfa.byte_class[b]), []).append(b)
    out = bytearray()
    state = dfa.initial
    while True:
        row = dfa.row(state).tolist()
        nexts = [b for c, bs in classes.items() if row[c] >= 0 for b in bs]
        if dfa.accepting(state) and (not nexts or rng.random() < stop or len(out) >= limit):
            return out.decode()
        assert nexts, "a live state with no way on"
        assert len(out) < 4 * limit, "no accepting state reached"
        b = rng.choice(nexts)
        out.append(b)
        state = int(row[dfa.byte_class[b]])


def _mutations(text: str, rng: random.Random, alphabet: str) -> list[str]:
    out = []
    for _ in range(4):
        i = rng.randrange(len(text) + 1)
        c = rng.choice(alphabet)
        out += [text[:i] + c + text[i:], text[:i] + c + text[i + 1:], text[:i] + text[i + 1:]]
    return out


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_random_walks_on_the_dfa_are_valid(name):
    """Strings tether itself generates (walks on its automaton) are valid; `re` agrees on them and
    on their one-character mutations."""
    rng = random.Random(f"walk {name}")
    dfa = _dfa(name)
    alphabet = "".join(sorted(set(FORMATS[name]) | set(".:-/@%[]#?Tt")))
    for i in range(200):  # short walks, long ones, and some that go on as long as they can
        text = _random_walk(dfa, rng, stop=0.0 if i % 10 == 0 else 0.02 if i % 2 else 0.2)
        assert re.fullmatch(FORMATS[name], text), (name, text)
        CHECKS[name](text)
        for other in _mutations(text, rng, alphabet):
            if _both(name, other):
                CHECKS[name](other)


@pytest.mark.parametrize("module,formats", [
    ("rfc3339_validator", "date-time, time"),
    ("rfc3986_validator", "uri, uri-reference"),
    ("fqdn", "hostname"),
    ("isoduration", "duration"),
    ("jsonpointer", "json-pointer, relative-json-pointer"),
    ("idna", "hostname (idn-hostname rules)"),
])
def test_optional_validator_installed(module, formats):
    """Reports (as a skip) a validator the soundness tests could not use; they ran without it."""
    if _optional(module) is None:
        pytest.skip(f"{module} is not installed: the {formats} soundness checks ran with tether's own "
                    f"structural checks and jsonschema's checker lacks that format")


# ---------------------------------------------------------------- 3. trees, calendar facts, independent values


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_tree_parses_and_dfa_is_not_empty(name):
    assert format_tree(name) is format_tree(name)  # cached
    assert not _dfa(name).is_empty


def test_unknown_format_is_a_key_error():
    with pytest.raises(KeyError):
        format_tree("idn-email")


def test_named_dates():
    for text in ("2000-02-29", "2024-02-29", "0400-02-29", "2021-02-28", "0001-01-01", "9999-12-31"):
        assert _both("date", text), text
    for text in ("1900-02-29", "2023-02-29", "2100-02-29", "2021-02-30", "2024-04-31", "2024-13-01",
                 "2024-00-10", "2024-01-00", "0000-01-01", "2024-1-01"):
        assert not _both("date", text), text
    assert _both("date-time", "1963-06-19T08:30:06.283185Z")
    assert _both("date-time", "1963-06-19t08:30:06.283185z")
    assert _both("date-time", "2024-02-29T23:59:59+14:00")
    assert not _both("date-time", "2023-02-29T00:00:00Z")
    assert not _both("date-time", "1998-12-31T23:59:60Z")  # leap seconds are left out
    assert not _both("date-time", "1963-06-19 08:30:06Z")


def test_february_29_in_every_year():
    for year in range(0, 10000):
        assert _both("date", f"{year:04d}-02-29") == (year > 0 and calendar.isleap(year)), year


def test_every_month_length():
    for year in (1900, 2000, 2023, 2024, 1):
        for month in range(0, 14):
            for day in range(0, 40):
                text = f"{year:04d}-{month:02d}-{day:02d}"
                valid = 1 <= month <= 12 and 1 <= day <= calendar.monthrange(year, month)[1]
                assert _both("date", text) == valid, text


def test_independent_valid_values_are_accepted():
    rng = random.Random(7)
    for _ in range(300):
        v4 = ipaddress.IPv4Address(rng.getrandbits(32))
        assert _both("ipv4", str(v4))
        groups = [rng.choice([0, 0, 1, rng.getrandbits(16)]) for _ in range(8)]
        v6 = ipaddress.IPv6Address(int("".join(f"{g:04x}" for g in groups), 16))
        for text in (v6.compressed, v6.exploded, v6.exploded.upper(),
                     ":".join(v6.exploded.split(":")[:6]) + ":" + str(v4),
                     str(ipaddress.IPv6Address(f"::ffff:{v4}"))):
            assert _both("ipv6", text), text
        u = uuid.UUID(int=rng.getrandbits(128))
        assert _both("uuid", str(u)) and _both("uuid", str(u).upper())
        moment = datetime.datetime(1, 1, 1) + datetime.timedelta(seconds=rng.randrange(315537897599))
        offset = datetime.timezone(datetime.timedelta(minutes=rng.randrange(-1439, 1440)))
        stamp = moment.replace(tzinfo=offset, microsecond=rng.choice([0, rng.randrange(10**6)])).isoformat()
        assert _both("date-time", stamp), stamp
        assert _both("date", stamp[:10]) and _both("time", stamp[11:]), stamp
    for text in ("::", "::1", "1::", "1:2:3:4:5:6:7::", "::2:3:4:5:6:7:8", "1:2:3:4:5:6:1.2.3.4", "::1.2.3.4"):
        assert _both("ipv6", text), text
    for text in ("1:2:3:4:5:6:7:8::", "1:2:3:4:5:6:7:8:9", "::1.2.3.04", "1::2::3", "fe80::1%eth0"):
        assert not _both("ipv6", text), text


def test_hostname_lengths():
    assert _both("hostname", ".".join(["a" * 63] * 3))  # 191: three labels keep the full 63
    assert _both("hostname", ".".join(["b" * 62] * 4))  # 251
    assert _both("hostname", ".".join("c" * 127))  # 253 characters of one-letter labels
    assert not _both("hostname", ".".join("c" * 128))  # 255
    assert not _both("hostname", "a" * 64)
    assert not _both("hostname", ".".join(["b" * 63] * 4))  # 255
    assert _both("hostname", "a--b.example.com") and not _both("hostname", "xn--nxasmq6b.com")


def test_emails():
    for text in ("joe.bloggs@example.com", "a!#$%&'*+-/=?^_`{|}~@x.io", '"joe bloggs"@example.com',
                 "x@[127.0.0.1]", "x@[IPv6:2001:db8::1]", "x@[IPv6:1:2:3:4:5:6:1.2.3.4]", "x@localhost",
                 "a" * 64 + "@example.com"):
        assert _both("email", text), text
        check_email(text)
    domain = ".".join(["d" * 37] * 5)  # 189 characters, the most a domain gets here
    for text in ("a" * 64 + "@" + domain, '"' + "q" * 62 + '"@x.io', "a." * 31 + "b@x.io"):
        assert _both("email", text), text
        check_email(text)
    assert len("a" * 64 + "@" + domain) == 254
    for text in ("a@" + ".".join(["d" * 38] * 5), '"' + "q" * 63 + '"@x.io', "a." * 32 + "b@x.io", '""@x.io'):
        assert not _both("email", text), text
    for text in ("a..b@example.com", ".a@example.com", "a@example..com", "a" * 65 + "@example.com",
                 "x@[IPv6:1:2:3:4:5:6:7::]", "x@[127.0.0.01]", "a b@example.com", "a@b@example.com"):
        assert not _both("email", text), text


def test_uris():
    for text in ("http://[v1.fe]/", "urn:isbn:0451450523", "file:///etc/hosts", "http://h:65535/",
                 "http://h:/", "mailto:a@b.c?subject=x%20y"):
        assert _both("uri", text) and _both("uri-reference", text), text
    for text in ("http://h:65536/", "http://[V1.fe]/", "http://h:080/"):
        assert not _both("uri", text), text
    for text in ("", "//h", "../a:b", "?q", "#f", "a/b:c"):
        assert _both("uri-reference", text) and not _both("uri", text), text
    assert not _both("uri-reference", "a:b c")
