"""JSON grammars on JSONTestSuite (../shared/data/json/JSONTestSuite/test_parsing).

- `JSON_LARK`, a Lark grammar that is exactly RFC 8259 JSON: every `y_*` file is accepted, every
  `n_*` file rejected, and an `i_*` file (implementation-defined) is accepted iff it is valid UTF-8
  without a byte order mark (the RFC grammar allows lone-surrogate escapes and any number).
  Files are given as bytes. A file that is not valid UTF-8 is no member: the language is a set of
  Unicode strings and `matches(bytes)` accepts exactly their UTF-8 encodings, so overlong forms,
  encoded surrogates, truncated sequences, Latin-1 and UTF-16 files are rejected (Lark, the
  reference, works on str: such files are decoded strictly first, and a failure is "no member").
- llama.cpp's grammars/json.gbnf, which is intentionally not RFC JSON. It disagrees with the
  suite on exactly `GBNF_DISAGREES`: the root must be an object, so top-level arrays, strings,
  numbers and literals are rejected (every other reason is hidden behind that one); whitespace
  is one space, or a newline and at most 20 spaces/tabs, at a time; `\\/` is no escape; DEL
  (U+007F) may not stand unescaped in a string. Wrapped in an object (`{"k":...}`), the y files
  it rejects are exactly `GBNF_WRAPPED_REJECTS`. Both lists were derived with Lark on a
  hand translation of json.gbnf (`GBNF_AS_LARK`), which the tests check again.
"""

from __future__ import annotations

import functools
from pathlib import Path

import pytest

import tether
from fuzz.grammar import lark_accepts

from conftest import data_path

BOM = b"\xef\xbb\xbf"
LARK_SIZE_LIMIT = 5000  # Lark (pure Python) is not run on the two files of 100,000+ bytes

# RFC 8259: JSON-text = ws value ws; ws between any two tokens; numbers and strings are single
# terminals (no whitespace inside), with exactly the RFC's rules (no leading zeros, no "+", no
# ".5", no "1.", escapes " \ / b f n r t uXXXX, no raw control characters, DEL allowed).
JSON_LARK = r"""
?start: value
?value: object | array | STRING | NUMBER | "true" | "false" | "null"
object: "{" [member ("," member)*] "}"
member: STRING ":" value
array: "[" [value ("," value)*] "]"

STRING: "\"" (_CHAR | "\\" (/["\\\/bfnrt]/ | "u" HEXDIGIT~4))* "\""
_CHAR: /[^"\\\x00-\x1f]/
NUMBER: "-"? ("0" | /[1-9]/ DIGIT*) ("." DIGIT+)? (("e" | "E") ("+" | "-")? DIGIT+)?
WS: /[ \t\n\r]+/

%import common.DIGIT
%import common.HEXDIGIT
%ignore WS
"""

# llama.cpp's json.gbnf, rule for rule, in Lark (the reference for the GBNF front-end: regex
# repeats `{0,n}` become optional `{1,n}` terminals, as Lark refuses zero-width terminals).
GBNF_AS_LARK = r"""
root: object
value: object | array | string | number | ("true" | "false" | "null") ws
object: "{" ws ( string ":" ws value ("," ws string ":" ws value)* )? "}" ws
array: "[" ws ( value ("," ws value)* )? "]" ws
string: "\"" ( CHAR | "\\" ( ESC | "u" HEX4 ) )* "\"" ws
CHAR: /[^"\\\x7F\x00-\x1F]/
ESC: /["\\bfnrt]/
HEX4: /[0-9a-fA-F]{4}/
number: ("-"? (DIGIT | NONZERO DIGITS)) ("." MANY)? (E SIGN? DIGIT NONZEROS?)? ws
DIGIT: /[0-9]/
NONZERO: /[1-9]/
DIGITS: /[0-9]{1,15}/
MANY: /[0-9]+/
E: /[eE]/
SIGN: /[-+]/
NONZEROS: /[1-9]{1,15}/
ws: | " " | "\n" INDENT?
INDENT: /[ \t]{1,20}/
"""

TOP = "the root must be an object"
GBNF_DISAGREES = {
    "y_array_arraysWithSpaces.json": TOP + "; and 3 spaces in a row",
    "y_string_allowed_escapes.json": TOP + r"; and \/ is no escape",
    "y_string_unescaped_char_delete.json": TOP + "; and unescaped DEL",
    "y_string_with_del_character.json": TOP + "; and unescaped DEL",
    **{name: TOP for name in [
        "y_array_empty-string.json", "y_array_empty.json", "y_array_ending_with_newline.json", "y_array_false.json",
        "y_array_heterogeneous.json", "y_array_null.json", "y_array_with_1_and_newline.json",
        "y_array_with_leading_space.json", "y_array_with_several_null.json", "y_array_with_trailing_space.json",
        "y_number.json", "y_number_0e+1.json", "y_number_0e1.json", "y_number_after_space.json",
        "y_number_double_close_to_zero.json", "y_number_int_with_exp.json", "y_number_minus_zero.json",
        "y_number_negative_int.json", "y_number_negative_one.json", "y_number_negative_zero.json",
        "y_number_real_capital_e.json", "y_number_real_capital_e_neg_exp.json",
        "y_number_real_capital_e_pos_exp.json", "y_number_real_exponent.json",
        "y_number_real_fraction_exponent.json", "y_number_real_neg_exp.json", "y_number_real_pos_exponent.json",
        "y_number_simple_int.json", "y_number_simple_real.json", "y_string_1_2_3_bytes_UTF-8_sequences.json",
        "y_string_accepted_surrogate_pair.json", "y_string_accepted_surrogate_pairs.json",
        "y_string_backslash_and_u_escaped_zero.json", "y_string_backslash_doublequotes.json",
        "y_string_comments.json", "y_string_double_escape_a.json", "y_string_double_escape_n.json",
        "y_string_escaped_control_character.json", "y_string_escaped_noncharacter.json", "y_string_in_array.json",
        "y_string_in_array_with_leading_space.json", "y_string_last_surrogates_1_and_2.json",
        "y_string_nbsp_uescaped.json", "y_string_nonCharacterInUTF-8_U+10FFFF.json",
        "y_string_nonCharacterInUTF-8_U+FFFF.json", "y_string_null_escape.json", "y_string_one-byte-utf-8.json",
        "y_string_pi.json", "y_string_reservedCharacterInUTF-8_U+1BFFF.json", "y_string_simple_ascii.json",
        "y_string_space.json", "y_string_surrogates_U+1D11E_MUSICAL_SYMBOL_G_CLEF.json",
        "y_string_three-byte-utf-8.json", "y_string_two-byte-utf-8.json", "y_string_u+2028_line_sep.json",
        "y_string_u+2029_par_sep.json", "y_string_uEscape.json", "y_string_uescaped_newline.json",
        "y_string_unicode.json", "y_string_unicodeEscapedBackslash.json", "y_string_unicode_2.json",
        "y_string_unicode_U+10FFFE_nonchar.json", "y_string_unicode_U+1FFFE_nonchar.json",
        "y_string_unicode_U+200B_ZERO_WIDTH_SPACE.json", "y_string_unicode_U+2064_invisible_plus.json",
        "y_string_unicode_U+FDD0_nonchar.json", "y_string_unicode_U+FFFE_nonchar.json",
        "y_string_unicode_escaped_double_quote.json", "y_string_utf8.json", "y_structure_lonely_false.json",
        "y_structure_lonely_int.json", "y_structure_lonely_negative_real.json", "y_structure_lonely_null.json",
        "y_structure_lonely_string.json", "y_structure_lonely_true.json", "y_structure_string_empty.json",
        "y_structure_trailing_newline.json", "y_structure_true_in_array.json", "y_structure_whitespace_array.json",
    ]},
}
GBNF_WRAPPED_REJECTS = {
    "y_array_arraysWithSpaces.json": "3 spaces in a row",
    "y_string_allowed_escapes.json": r"\/ is no escape",
    "y_string_unescaped_char_delete.json": "unescaped DEL",
    "y_string_with_del_character.json": "unescaped DEL",
}

# What the suite does not show about json.gbnf: (text, member of json.gbnf?, member of RFC JSON?)
GBNF_QUIRKS = [
    ('{"a":1}', True, True),
    ('{"a": 1}', True, True),
    ('{"a":  1}', False, True),              # two spaces
    ('{"a":\n\t\t1}', True, True),
    ('{"a":\r\n1}', False, True),             # \r is no GBNF whitespace
    ('{"a":\n' + " " * 21 + "1}", False, True),  # indentation over 20
    (' {"a":1}', False, True),                # no whitespace before the root
    ('{"a":1} ', True, True),
    ('{"a":1e10}', False, True),              # after its first digit an exponent has no 0
    ('{"a":1e19}', True, True),
    ('{"a":1234567890123456}', True, True),   # 16 digits
    ('{"a":12345678901234567}', False, True),  # 17
    ('{"a":-0.5E-3}', True, True),
    ('{"a":01}', False, False),
    ('{"a":"\\/"}', False, True),
    ('{"a":"\x7f"}', False, True),
    ('{"a":"\\u00e9"}', True, True),
    ('{"a":"é😀"}', True, True),
    ('{"a":[1,2,{"b":null}]}', True, True),
    ('{"a":[1,2,]}', False, False),
    ("{}", True, True),
    ("[]", False, True),
]


def _suite() -> Path:
    return data_path("json", "JSONTestSuite", "test_parsing")


@functools.cache
def _files() -> dict[str, bytes]:
    files = {p.name: p.read_bytes() for p in sorted(_suite().glob("*.json"))}
    assert sum(n.startswith("y_") for n in files) == 95 and sum(n.startswith("n_") for n in files) == 188
    return files


def _utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


def _rfc_expected(name: str, data: bytes) -> bool:
    if name.startswith("y_"):
        return True
    if name.startswith("n_"):
        return False
    return _utf8(data) and not data.startswith(BOM)


@functools.cache
def _rfc() -> tether.Grammar:
    return tether.lark(JSON_LARK)


@functools.cache
def _gbnf() -> tether.Grammar:
    return tether.gbnf(data_path("grammars", "llama.cpp", "grammars", "json.gbnf").read_text())


# ---------------------------------------------------------------- the references (Lark only)

def test_lark_rfc_grammar_is_exact_on_the_suite():
    wrong = [name for name, data in _files().items()
             if len(data) <= LARK_SIZE_LIMIT and lark_accepts(JSON_LARK, "start", data) != _rfc_expected(name, data)]
    assert not wrong


def test_gbnf_translation_disagrees_exactly_where_listed():
    files = _files()
    disagree = {name for name, data in files.items() if name[0] in "yn" and len(data) <= LARK_SIZE_LIMIT
                and lark_accepts(GBNF_AS_LARK, "root", data) != name.startswith("y_")}
    assert disagree == set(GBNF_DISAGREES)
    wrapped = {name for name, data in files.items() if name.startswith("y_")
               and not lark_accepts(GBNF_AS_LARK, "root", b'{"k":' + data + b"}")}
    assert wrapped == set(GBNF_WRAPPED_REJECTS)
    for text, gbnf, rfc in GBNF_QUIRKS:
        assert lark_accepts(GBNF_AS_LARK, "root", text) == gbnf, text
        assert lark_accepts(JSON_LARK, "start", text) == rfc, text


def test_not_utf8_files_are_the_expected_ones():
    bad = sorted(name for name, data in _files().items() if not _utf8(data))
    assert len(bad) == 25 and all(name[0] in "in" for name in bad)  # no y file: a y file is always UTF-8


# ---------------------------------------------------------------- tether

def test_rfc_grammar_accepts_every_y_and_rejects_every_n_file():
    g = _rfc()
    wrong = [(name, _rfc_expected(name, data)) for name, data in _files().items()
             if bool(g.matches(data)) != _rfc_expected(name, data)]
    assert not wrong, f"(file, expected) where tether's RFC JSON grammar is wrong: {wrong}"


def test_rfc_grammar_rejects_every_file_that_is_not_utf8():
    g = _rfc()
    accepted = [name for name, data in _files().items() if not _utf8(data) and g.matches(data)]
    assert not accepted


def test_rfc_grammar_str_and_bytes_agree():
    g = _rfc()
    wrong = [name for name, data in _files().items() if _utf8(data) and len(data) <= LARK_SIZE_LIMIT
             and bool(g.matches(data.decode("utf-8"))) != bool(g.matches(data))]
    assert not wrong


def test_rfc_grammar_runs_on_the_cfg_engine():
    assert _rfc().engine == "cfg"


def test_gbnf_json_disagrees_with_the_suite_exactly_where_listed():
    g = _gbnf()
    disagree = {name for name, data in _files().items() if name[0] in "yn" and bool(g.matches(data)) != name.startswith("y_")}
    assert disagree == set(GBNF_DISAGREES), (
        f"accepted though listed: {sorted(set(GBNF_DISAGREES) - disagree)}; "
        f"disagreeing though not listed: {sorted(disagree - set(GBNF_DISAGREES))}")


def test_gbnf_json_in_an_object_rejects_exactly_the_listed_y_files():
    g = _gbnf()
    rejected = {name for name, data in _files().items()
                if name.startswith("y_") and not g.matches(b'{"k":' + data + b"}")}
    assert rejected == set(GBNF_WRAPPED_REJECTS)


def test_gbnf_json_rejects_files_that_are_not_utf8():
    g = _gbnf()
    for name, data in _files().items():
        if not _utf8(data):
            assert not g.matches(data), name
            assert not g.matches(b'{"k":' + data + b"}"), name


@pytest.mark.parametrize("text,gbnf,rfc", GBNF_QUIRKS)
def test_gbnf_json_quirks(text, gbnf, rfc):
    assert bool(_gbnf().matches(text)) == gbnf
    assert bool(_rfc().matches(text)) == rfc
