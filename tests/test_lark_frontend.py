"""The Lark front-end (`tether.grammar.lark.lark_to_ir`): Lark's own corpus, IR structure, and errors.

Every grammar file of the shared corpus is built by Lark itself (Earley, dynamic_complete) and by
`lark_to_ir`; both must agree on what is a grammar, except for the documented cases where tether
refuses one Lark accepts (a `%declare`d terminal it must generate, a regex outside the regular subset).
"""

from __future__ import annotations

import re
from pathlib import Path

import lark
import pytest
from lark.exceptions import LarkError

from conftest import data_path
from tether.automata.dfa import LazyDFA
from tether.errors import GrammarError, UnsupportedPattern
from tether.grammar.ir import Choice, GrammarIR, RuleRef, Sequence, TerminalRef
from tether.grammar.lark import lark_to_ir
from tether.grammar.regex import render


def matches(ir: GrammarIR, terminal: str, data: bytes) -> bool:
    """Whether the whole of `data` is in the terminal's language (its regex tree, as an automaton)."""
    return LazyDFA.from_tree(ir.terminals[terminal].regex).matches(data)


def alternatives(ir: GrammarIR, rule: str) -> list[list[str]]:
    """A rule's body as Lark's BNF: one list of symbol names per alternative."""
    body = ir.rules[rule].body
    assert isinstance(body, Choice)
    out = []
    for option in body.options:
        assert isinstance(option, Sequence)
        assert all(isinstance(item, (RuleRef, TerminalRef)) for item in option.items)
        out.append([item.name for item in option.items])
    return out


def shape(ir: GrammarIR) -> tuple:
    """Everything that defines the language: rules, terminal regexes, ignore, start."""
    return ({name: alternatives(ir, name) for name in ir.rules},
            {name: render(t.regex) for name, t in ir.terminals.items()}, ir.ignore, ir.start)


# ---------------------------------------------------------------- the corpus

# Files Lark builds but lark_to_ir refuses, and why (a substring of the reason). Everything else Lark
# builds must compile. The python grammars use the `%declare`d _INDENT/_DEDENT (a post-lexer makes
# them in Lark); the others use a lookahead, outside the regular subset tether compiles: lark.lark's
# and template_lark.lark's OP (`[?](?![a-z])`), verilog's MULTILINE_COMMENT (`\*(?!\/)`).
REFUSED = {
    "lark/examples/advanced/python2.lark": ("'_INDENT' is declared with %declare", None),
    "lark/lark/grammars/python.lark": ("'_INDENT' is declared with %declare", None),
    "lark/examples/advanced/template_lark.lark": ("terminal 'OP'", UnsupportedPattern),
    "lark/lark/grammars/lark.lark": ("terminal 'OP'", UnsupportedPattern),
    "lark/examples/grammars/verilog.lark": ("terminal 'MULTILINE_COMMENT'", UnsupportedPattern),
}

# Files Lark itself refuses. All but one are fragments meant only to be imported: they define
# terminals or a template and no rule, so there is no start rule to build from.
LARK_REFUSES = {
    "lark/lark/grammars/common.lark": "no rule",
    "lark/lark/grammars/unicode.lark": "no rule",
    "lark/tests/grammars/templates.lark": "only a template",
    "lark/tests/grammars/test.lark": "no rule",
    "lark/tests/grammars/test_unicode.lark": "no rule",
    "lark/tests/grammars/test_relative_import_of_nested_grammar__nested_grammar.lark": "no rule",
    "outlines/src/outlines/grammars/common.lark": "no rule",
    "llguidance/sample_parser/data/rfc.lark": 'Empty terminals are not allowed ("")',
}

_FIRST_RULE = re.compile(r"^[ \t]*[?!]*(_?[a-z][_a-z0-9]*)[ \t]*(?:\.[ \t]*[+-]?\d+)?[ \t]*:", re.M)


def corpus() -> list[Path]:
    root = data_path("grammars")
    files = sorted(root.rglob("*.lark"))
    assert len(files) >= 40, f"expected the Lark corpus under {root}, found {len(files)} .lark files"
    return files


def start_of(text: str) -> str:
    """The start rule: `start` where the file defines it; else its first (non-template) rule, the file's
    own entry point (ab.lark's `startab`, python.lark's `single_input`); `start` again where it defines
    no rule (a fragment of terminals or templates, which Lark cannot build on its own either)."""
    names = _FIRST_RULE.findall(text)
    return "start" if "start" in names or not names else names[0]


def test_corpus_tables_name_real_files():
    names = {path.relative_to(data_path("grammars")).as_posix() for path in corpus()}
    assert set(REFUSED) <= names and set(LARK_REFUSES) <= names


@pytest.mark.parametrize("path", corpus(), ids=lambda p: p.relative_to(data_path("grammars")).as_posix())
def test_corpus_agrees_with_lark(path: Path):
    name = path.relative_to(data_path("grammars")).as_posix()
    text = path.read_text(encoding="utf-8")
    start = start_of(text)
    folder = [str(path.parent)]
    try:
        parser = lark.Lark(text, parser="earley", lexer="dynamic_complete", start=start,
                           import_paths=folder, source_path=str(path))
    except Exception as e:  # noqa: BLE001 - Lark also raises re.error, OSError, ...
        assert name in LARK_REFUSES, f"Lark refuses {name} ({type(e).__name__}: {e}) but the table says it builds"
        with pytest.raises(GrammarError) as caught:
            lark_to_ir(text, start, import_paths=folder, source_path=str(path))
        if LARK_REFUSES[name] not in ("no rule", "only a template"):
            assert LARK_REFUSES[name] in caught.value.reason
        else:
            assert f"the start rule {start!r} is not defined" in caught.value.reason
        return
    assert name not in LARK_REFUSES, f"Lark builds {name}, which the table says it refuses"

    if name in REFUSED:
        reason, cause = REFUSED[name]
        with pytest.raises(GrammarError) as caught:
            lark_to_ir(text, start, import_paths=folder, source_path=str(path))
        assert reason in caught.value.reason, caught.value.reason
        if cause is not None:
            assert isinstance(caught.value.__cause__, cause)
        return

    ir = lark_to_ir(text, start, import_paths=folder, source_path=str(path))
    assert ir.start == start
    # The same rules and terminals Lark's parser holds, restricted to what the start rule reaches.
    by_origin: dict[str, list] = {}
    for rule in parser.rules:
        by_origin.setdefault(str(rule.origin.name), []).append([str(s.name) for s in rule.expansion])
    reached, todo = {start}, [start]
    while todo:
        for expansion in by_origin[todo.pop()]:
            for sym in expansion:
                if sym in by_origin and sym not in reached:
                    reached.add(sym)
                    todo.append(sym)
    assert set(ir.rules) == reached
    for origin in reached:
        assert sorted(alternatives(ir, origin)) == sorted(by_origin[origin])
    used = {s for origin in reached for exp in by_origin[origin] for s in exp if s not in by_origin}
    assert set(ir.terminals) == used | set(parser.ignore_tokens)
    assert set(ir.ignore) == set(parser.ignore_tokens)
    # Literal terminals match their own text; every located definition points at its name.
    lines = text.split("\n")
    for t in parser.terminals:
        if t.name in ir.terminals and isinstance(t.pattern, lark.lexer.PatternStr):
            assert matches(ir, t.name, t.pattern.value.encode("utf-8")), t.name
    for item in [*ir.rules.values(), *ir.terminals.values()]:
        where = item.where
        assert where is not None and where.rule == item.name
        if where.line is not None and not item.name.startswith("__"):
            # A definition is placed at its name, an anonymous terminal ("#" in a rule) where it is written.
            at = lines[where.line - 1][where.column - 1:]
            assert at.startswith(item.name.split("{")[0]) or at.startswith(getattr(item, "text", "\0")), \
                (item.name, where)


# ---------------------------------------------------------------- IR structure

def test_alternatives_merge_into_one_rule_and_empty_alternative():
    ir = lark_to_ir('start: "a" | "b" b\nb: "c"\n  |\n')
    assert alternatives(ir, "start") == [["A"], ["B", "b"]]
    assert alternatives(ir, "b") == [["C"], []]
    assert ir.rules["b"].body.options[1].items == ()
    assert ir.rules["start"].where.line == 1 and ir.rules["b"].where.line == 2


def test_empty_rule():
    ir = lark_to_ir("start: x \"a\"\nx:\n")
    assert alternatives(ir, "x") == [[]]


def test_templates_are_expanded_under_lark_names():
    ir = lark_to_ir('start: sep{A, ","}\nsep{x, s}: x (s x)*\nA: "a"\n')
    assert "sep" not in ir.rules
    assert alternatives(ir, "start") == [["sep{A,COMMA}"]]
    assert sorted(alternatives(ir, "sep{A,COMMA}")) == [["A"], ["A", "__sep{A,COMMA}_star_0"]]
    assert ir.rules["sep{A,COMMA}"].where.line == 2  # placed at the template it came from
    assert ir.rules["__sep{A,COMMA}_star_0"].where.line == 2


def test_ebnf_helpers_keep_lark_names():
    ir = lark_to_ir('start: "a"* ["b"] "c"~2\n')
    assert sorted(alternatives(ir, "start")) == [["B", "C", "C"], ["C", "C"],
                                                ["__start_star_0", "B", "C", "C"], ["__start_star_0", "C", "C"]]
    assert sorted(alternatives(ir, "__start_star_0")) == [["A"], ["__start_star_0", "A"]]


def test_string_flag_i_is_case_insensitive():
    ir = lark_to_ir('start: "if"i\n')
    (name,) = ir.terminals
    assert ir.terminals[name].text == '"if"i'
    for data in (b"if", b"IF", b"iF"):
        assert matches(ir, name, data)
    assert not matches(ir, name, b"i")
    plain = lark_to_ir('start: "if"\n')
    assert not matches(plain, "IF", b"IF")


def test_regex_flags():
    ir = lark_to_ir("start: A B C D\nA: /a.b/s\nB: /x.y/\nC: /p q/x\nD: /^z/m\n")
    assert matches(ir, "A", b"a\nb") and matches(ir, "A", b"axb")
    assert not matches(ir, "B", b"x\ny") and matches(ir, "B", b"xzy")
    assert matches(ir, "C", b"pq") and not matches(ir, "C", b"p q")
    assert matches(ir, "D", b"z")
    assert ir.terminals["A"].text == "/a.b/s"
    # A terminal joined from pieces keeps each piece's flag (Lark writes them as (?i:...) groups).
    joined = lark_to_ir('start: J\nJ: "a"i "b"\n')
    assert matches(joined, "J", b"Ab") and not matches(joined, "J", b"AB")
    assert joined.terminals["J"].text == '"a"i "b"'


def test_lazy_terminals_end_at_their_first_match():
    ir = lark_to_ir('start: S S\nS: /".*?"/\n')
    assert ir.terminals["S"].shortest  # Lark's re.match never takes `"a"b"` as one S
    assert matches(ir, "S", b'"a"b"')  # the tree is the full-match language; `shortest` narrows it
    assert not lark_to_ir("start: /a+/\n").terminals["__ANON_0"].shortest
    # common.lark's ESCAPED_STRING: ".*?(?<!\\)(\\\\)*?" (one-character lookbehind), lazy.
    json_string = lark_to_ir("start: ESCAPED_STRING\n%import common.ESCAPED_STRING\n").terminals["ESCAPED_STRING"]
    assert json_string.shortest and json_string.text == '"\\"" _STRING_ESC_INNER "\\""'
    dfa = LazyDFA.from_tree(json_string.regex)
    assert dfa.matches(b'"a\\"b"') and dfa.matches(b'"a\\\\"') and not dfa.matches(b'"a\\"')


def test_ranges_and_bounded_repeats_in_terminals():
    ir = lark_to_ir('start: L N\nL: "a".."c"\nN: "x"~2..3\n')
    assert matches(ir, "L", b"b") and not matches(ir, "L", b"d")
    assert matches(ir, "N", b"xx") and matches(ir, "N", b"xxx") and not matches(ir, "N", b"x")


def test_ignore_is_kept():
    ir = lark_to_ir('start: "a" "b"\n%import common.WS\n%ignore WS\n')
    assert ir.ignore == ("WS",)
    assert matches(ir, "WS", b" \t\n") and not matches(ir, "WS", b"")
    anonymous = lark_to_ir('start: "a"\n%ignore " "\n%ignore /#[^\\n]*/\n')
    assert anonymous.ignore == ("__IGNORE_0", "__IGNORE_1")
    assert anonymous.terminals["__IGNORE_1"].where.line == 3


def test_priorities_aliases_and_tree_shaping_do_not_change_the_ir():
    shaped = lark_to_ir('start: a -> x\n  | b d\n?a.2: B "c"\nb.-1: B\n!d: B "e"\nB.3: "b"\n')
    plain = lark_to_ir('start: a\n  | b d\na: B "c"\nb: B\nd: B "e"\nB: "b"\n')
    assert shape(shaped) == shape(plain)


def test_import_common_number():
    ir = lark_to_ir("start: NUMBER\n%import common.NUMBER\n")
    assert set(ir.terminals) == {"NUMBER"}
    assert ir.terminals["NUMBER"].text == "FLOAT | INT"
    assert ir.terminals["NUMBER"].where.line is None  # imported: only its name
    for good in (b"12", b"3.14", b"1e5", b".5"):
        assert matches(ir, "NUMBER", good)
    for bad in (b"a", b"", b"1.2.3"):
        assert not matches(ir, "NUMBER", bad)


def test_override_and_extend():
    ir = lark_to_ir('start: NUMBER a\na: "x"\n%extend a: "y"\n%import common.NUMBER\n%override NUMBER: /[0-9]/\n')
    assert sorted(alternatives(ir, "a")) == [["X"], ["Y"]]
    assert matches(ir, "NUMBER", b"7") and not matches(ir, "NUMBER", b"77")
    assert ir.terminals["NUMBER"].where.line == 5


def test_relative_imports(tmp_path: Path):
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "words.lark").write_text("word: WORD\n%import common.WORD\n", encoding="utf-8")
    main = tmp_path / "main.lark"
    text = "start: word (\",\" word)*\n%import .lib.words.word\n"
    main.write_text(text, encoding="utf-8")
    ir = lark_to_ir(text, source_path=str(main))
    assert "word" in ir.rules and matches(ir, "lib__words__WORD", b"hello")  # mangled: Lark namespaces imports
    via_paths = lark_to_ir("start: word\n%import lib.words.word\n", import_paths=[str(tmp_path)])
    assert "word" in via_paths.rules
    with pytest.raises(GrammarError) as caught:
        lark_to_ir("start: word\n%import lib.words.word\n")
    assert "cannot find the grammar 'lib.words'" in caught.value.reason
    assert caught.value.location.line == 2 and isinstance(caught.value.__cause__, OSError)
    # A syntax error in an imported file names that file; the line is not one of this grammar's.
    (tmp_path / "lib" / "broken.lark").write_text('word: "w"\nbad "x"\n', encoding="utf-8")
    with pytest.raises(GrammarError) as caught:
        lark_to_ir("start: word\n%import lib.broken.word\n", import_paths=[str(tmp_path)])
    assert "broken.lark" in caught.value.reason and "at line 2, column 5" in caught.value.reason
    assert caught.value.location.line is None


def test_unreached_declared_terminal_is_fine():
    ir = lark_to_ir('start: A\nA: "a"\n%declare B\nunused: B\n')
    assert set(ir.rules) == {"start"} and set(ir.terminals) == {"A"}


# ---------------------------------------------------------------- errors

def test_undefined_rule_has_line_column_and_rule():
    with pytest.raises(GrammarError) as caught:
        lark_to_ir('start: a\n\na: "x" b\n')
    e = caught.value
    assert "rule 'b' is used but not defined" in e.reason
    assert (e.location.line, e.location.column, e.location.rule) == (3, 8, "a")
    assert isinstance(e.__cause__, LarkError)


def test_undefined_terminal():
    with pytest.raises(GrammarError) as caught:
        lark_to_ir('start: a\na: "x"\n   | B\n')
    assert "terminal 'B' is used but not defined" in caught.value.reason
    assert (caught.value.location.line, caught.value.location.column) == (3, 6)


def test_syntax_error_has_line_column():
    with pytest.raises(GrammarError) as caught:
        lark_to_ir('start: a\na: ( "x"\n')
    e = caught.value
    assert e.reason.startswith("syntax error") and '")"' in e.reason
    assert (e.location.line, e.location.column, e.location.rule) == (2, 9, "a")
    assert isinstance(e.__cause__, LarkError)
    with pytest.raises(GrammarError) as caught:
        lark_to_ir('start: "a"{2,3}\n')  # {m,n} is regex syntax only; a rule repeats with ~
    assert caught.value.location.line == 1


def test_declared_terminal_in_use():
    with pytest.raises(GrammarError) as caught:
        lark_to_ir('start: A B\n%declare B\nA: "a"\n')
    e = caught.value
    assert "'B' is declared with %declare: it has no pattern, so it cannot be generated" in e.reason
    assert (e.location.line, e.location.column, e.location.rule) == (2, 10, "B")


def test_lark_python_grammar_uses_declared_indent():
    with pytest.raises(GrammarError) as caught:
        lark_to_ir("%import python (file_input, single_input, eval_input)\nstart: file_input\n")
    assert "'_python__INDENT' is declared with %declare in grammars/python.lark line" in caught.value.reason


def test_unknown_start():
    with pytest.raises(GrammarError) as caught:
        lark_to_ir('start: "a"\n', start="nope")
    assert caught.value.location.rule == "nope" and "not defined" in caught.value.reason
    with pytest.raises(GrammarError, match="template"):
        lark_to_ir("start{x}: x\n")


def test_lookahead_terminal_names_the_terminal():
    with pytest.raises(GrammarError) as caught:
        lark_to_ir('start: A "b"\nA: /a(?=b)/\n')
    e = caught.value
    assert "terminal 'A' (/a(?=b)/)" in e.reason and "lookahead" in e.reason
    assert (e.location.line, e.location.rule) == (2, "A")
    assert isinstance(e.__cause__, UnsupportedPattern)


def test_rule_deriving_nothing():
    lark.Lark('start: a\na: a "x"\n', parser="earley", lexer="dynamic_complete")  # Lark accepts it
    with pytest.raises(GrammarError, match="derives no string"):
        lark_to_ir('start: a\na: a "x"\n')


# Grammars Lark itself refuses (at load or when it builds its Earley matcher): each must be a
# GrammarError, never a Lark exception, an OSError or an AssertionError from inside Lark.
LARK_REJECTS = {
    "zero-width terminal": ('start: A "b"\nA: /a*/\n', "empty string"),
    "zero-width ignore": ('start: "b"\nA: "a"?\n%ignore A\n', "empty string"),
    "empty string": ('start: ""\n', "Empty terminals"),
    "newline in string": ('start: "a\nb"\n', "syntax error"),
    "defined twice": ('start: "a"\nstart: "b"\n', "defined more than once"),
    "override missing": ('start: "a"\n%override foo: "b"\n', "nonexisting"),
    "extend missing": ('start: "a"\n%extend foo: "b"\n', "extend"),
    "alias in terminal": ('start: A\nA: /a/ -> b\n', "Aliasing"),
    "template arity": ('start: "a" sep{"x"}\nsep{a, b}: a b\n', "Wrong number of template arguments"),
    "bad repeat range": ('start: A\nA: "a"~3..1\n', "Bad Range"),
    "backwards char range": ('start: A\nA: "b".."a"\n', "cannot compile"),
    "long range": ('start: A\nA: "ab".."c"\n', "range"),
    "global flag inside": ('start: A\nA: /(?i)a/s\n', "global flags"),
    "flag l": ("start: /a/l\n", "flag 'l'"),
    "unicode category": ("start: /\\p{L}/\n", "bad escape"),
    "missing import": ('start: "a"\n%import nope.X\n', "cannot find the grammar"),
    "nothing imported": ('start: "a"\n%import common\n', "Nothing was imported"),
    "rule in ignore": ('start: "a"\n%ignore foo\nfoo: "b"\n', "Rules aren't allowed inside terminals"),
    "declared rule": ("start: foo\n%declare foo\n", "%declare"),
    "optional collision": ('start: [x] x~1..2\nx: "a"\n', "defined twice"),
    "missing colon": ('start: a\na "x"\n', "syntax error"),
    "reserved name": ('start: "a"\n__x: "b"\n', "syntax error"),
}


@pytest.mark.parametrize("case", sorted(LARK_REJECTS))
def test_what_lark_refuses_is_a_grammar_error(case: str):
    text, reason = LARK_REJECTS[case]
    with pytest.raises(Exception):  # noqa: B017 - Lark raises GrammarError, re.error, OSError, ...
        lark.Lark(text, parser="earley", lexer="dynamic_complete")
    with pytest.raises(GrammarError) as caught:
        lark_to_ir(text)
    assert reason in caught.value.reason, caught.value.reason
    # Raised from Lark's exception, except for the checks Lark makes only when it builds its parser.
    assert caught.value.__cause__ is not None or reason in ("empty string", "flag 'l'")
    assert caught.value.location.rule is not None or caught.value.location.line is not None


# ---------------------------------------------------------------- Lark's own matching, pinned

def test_lark_dynamic_complete_is_not_every_split():
    """What an engine must match to accept exactly Lark's language: Lark tries each terminal with
    `re.match` at a position and then only prefixes of that first match, and each ignore terminal
    with `re.match` alone; ignored text may lead and trail; no terminal may match the empty string."""
    def accepts(grammar: str, text: str) -> bool:
        try:
            lark.Lark(grammar, parser="earley", lexer="dynamic_complete").parse(text)
            return True
        except LarkError:
            return False

    assert not accepts('start: A\nA: /a|ab/\n', "ab")  # re.match takes "a": "ab" is never a token
    assert accepts('start: A\nA: /ab|a/\n', "ab")
    assert not accepts('start: A A\nA: /a+?/\n', "aaa")  # lazy: one "a" only
    assert not accepts('start: S\nS: /".*?"/\n', '"a"b"')  # so Terminal.shortest
    assert not accepts('start: "a" B\nB: / b/\n%ignore /\\s+/\n', "a  b")  # the ignore is greedy
    assert accepts('start: "a" "b"\n%ignore " "\n', "  a  b  ")
    assert accepts('start: "a"*\n%ignore " "\n', " ")
