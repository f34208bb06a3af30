"""The GBNF front-end (`tether.grammar.gbnf`): llama.cpp's own grammars, the IR it builds, its language, its errors.

The language is checked differentially for grammars without recursion: the IR is
inlined into one regex tree and run as a byte DFA, against Python's `re.fullmatch`
of a regex this file builds from the GBNF text by itself (its own tokenizer and
parser, below), on strings sampled from that second reading and their mutations.
"""

from __future__ import annotations

import random
import re
import string
import time

import pytest

from tether.automata.dfa import LazyDFA
from tether.errors import GrammarError
from tether.grammar.gbnf import gbnf_to_ir
from tether.grammar.ir import Choice, GrammarIR, Repetition, RuleRef, Sequence, TerminalRef, walk_expr
from tether.grammar.regex import MAX_CODEPOINT, Alternation, Chars, Concat, Repeat, complement, normalize

from conftest import data_path

LLAMA_DIR = ("grammars", "llama.cpp", "grammars")
LLGUIDANCE_DIR = ("grammars", "llguidance", "sample_parser", "data", "from-llama.cpp")
LLAMA_FILES = {"arithmetic", "c", "chess", "english", "japanese", "json", "json_arr", "list"}


def _corpus(parts: tuple[str, ...]) -> dict[str, str]:
    files = sorted(data_path(*parts).glob("*.gbnf"))
    assert files, f"no .gbnf files under {data_path(*parts)}"
    return {f.stem: f.read_text(encoding="utf-8") for f in files}


def _members(intervals) -> set[int]:
    return {cp for lo, hi in intervals for cp in range(lo, hi + 1)}


# ---------------------------------------------------------------- every llama.cpp grammar converts


@pytest.mark.parametrize("parts", [LLAMA_DIR, LLGUIDANCE_DIR], ids=["llama.cpp", "llguidance"])
def test_every_corpus_grammar_converts(parts):
    corpus = _corpus(parts)
    assert LLAMA_FILES <= set(corpus), sorted(corpus)
    for stem, text in corpus.items():
        ir = gbnf_to_ir(text)
        assert isinstance(ir, GrammarIR) and ir.start == "root" and ir.ignore == ()
        # The rules are exactly the names the text defines (each at the start of a line).
        defined = set(re.findall(r"^([A-Za-z0-9_-]+)\s*::=", text, re.M))
        assert set(ir.rules) == defined, stem
        for rule in ir.rules.values():
            assert rule.where.rule == rule.name and rule.where.line >= 1 and rule.where.column == 1
            for node in walk_expr(rule.body):
                assert node.where is not None and node.where.rule == rule.name and node.where.line >= 1, stem
                if isinstance(node, TerminalRef):
                    assert node.name in ir.terminals
        for name, terminal in ir.terminals.items():
            assert terminal.name == name == terminal.text
            # The name is the source spelling, and it stands in the text.
            assert name in text, (stem, name)


def test_corpus_details():
    llama = _corpus(LLAMA_DIR)
    english = gbnf_to_ir(llama["english"])
    # [!"#$%&'()*+,-./:;<=>?@[\\\]^_`{|}~]: ",-." is a range, "\\" and "\]" escapes, "[" and "^" plain.
    punct = english.terminals[english.rules["punctuation"].body.name].regex
    assert _members(punct.intervals) == {ord(c) for c in string.punctuation}

    lst = gbnf_to_ir(llama["list"])
    item = lst.rules["item"].body
    assert isinstance(item, Sequence) and [type(i) for i in item.items] == [TerminalRef, Repetition, TerminalRef]
    line = lst.terminals[item.items[1].item.name].regex
    assert line.intervals == complement(normalize([(0x0A, 0x0D), (0x85, 0x85), (0x2028, 0x2029)]))

    json = gbnf_to_ir(llama["json"])
    ws = json.rules["ws"].body  # ws ::= | " " | "\n" [ \t]{0,20}
    assert isinstance(ws, Choice) and len(ws.options) == 3
    assert isinstance(ws.options[0], Sequence) and ws.options[0].items == ()
    tail = ws.options[2].items[1]
    assert isinstance(tail, Repetition) and (tail.min, tail.max) == (0, 20)
    assert _members(json.terminals[tail.item.name].regex.intervals) == {0x20, 0x09}
    char = json.terminals['[^"\\\\\\x7F\\x00-\\x1F]'].regex
    assert char.intervals == complement(normalize([(0, 0x1F), (0x22, 0x22), (0x5C, 0x5C), (0x7F, 0x7F)]))
    hex4 = [n for n in walk_expr(json.rules["string"].body) if isinstance(n, Repetition) and n.min == 4]
    assert len(hex4) == 1 and hex4[0].max == 4 and hex4[0].item.name == "[0-9a-fA-F]"
    # Rules that span lines inside parentheses, with a comment at a line's end.
    assert [json.rules[r].where.line for r in ("object", "array", "string", "number", "ws")] == [4, 10, 16, 22, 25]

    japanese = gbnf_to_ir(llama["japanese"])
    assert japanese.terminals["[ぁ-ゟ]"].regex == Chars(((0x3041, 0x309F),))

    sql = gbnf_to_ir(_corpus(LLGUIDANCE_DIR)["vllm-sql"])  # rule names with "_" (not in llama.cpp's own syntax)
    assert "select_statement" in sql.rules and sql.rules["root"].body.name == "select_statement"

    c = gbnf_to_ir(llama["c"])  # "factor((" : a name then a group, no space between
    term = c.rules["term"].body
    assert isinstance(term, Sequence) and isinstance(term.items[0], RuleRef) and term.items[0].name == "factor"
    assert isinstance(term.items[1], Repetition)


def test_readme_grammars():
    """The grammar snippets of llama.cpp's guide: all convert, except the one with token references."""
    text = data_path(*LLAMA_DIR, "README.md").read_text(encoding="utf-8")
    blocks = [b for b in re.findall(r"```[a-z]*\n(.*?)```", text, re.S) if "::=" in b]
    assert len(blocks) >= 6
    converted = 0
    for block in blocks:
        first = re.search(r"^([A-Za-z0-9_-]+)\s*::=", block, re.M).group(1)
        start = "root" if re.search(r"^root\s*::=", block, re.M) else first
        if "<think>" in block:
            with pytest.raises(GrammarError, match="token reference") as info:
                gbnf_to_ir(block, start=start)
            assert info.value.location.column == 10 and info.value.location.rule == "root"
        else:
            ir = gbnf_to_ir(block, start=start)
            assert ir.start == start
            converted += 1
    assert converted >= 5


# ---------------------------------------------------------------- IR structure on small grammars


def test_structure_and_shared_terminals():
    ir = gbnf_to_ir('root ::= "ab" [a-z] x "\\x61b"\nx ::= "ab"* | "" | . | (x2)\nx2 ::= [^a]')
    assert list(ir.rules) == ["root", "x", "x2"] and ir.start == "root" and ir.ignore == ()
    root = ir.rules["root"].body
    assert isinstance(root, Sequence) and len(root.items) == 4
    lit, cls, ref, same = root.items
    assert isinstance(lit, TerminalRef) and lit.name == '"ab"'
    assert isinstance(cls, TerminalRef) and cls.name == "[a-z]"
    assert isinstance(ref, RuleRef) and ref.name == "x"
    assert isinstance(same, TerminalRef) and same.name == '"ab"'  # "\x61b" is "ab": one terminal, first spelling
    assert set(ir.terminals) == {'"ab"', "[a-z]", ".", "[^a]"}
    ab = ir.terminals['"ab"'].regex
    assert isinstance(ab, Concat) and ab.parts == (Chars(((97, 97),)), Chars(((98, 98),)))
    assert ir.terminals["[a-z]"].regex == Chars(((97, 122),))
    assert ir.terminals["."].regex == Chars(((0, 0xD7FF), (0xE000, MAX_CODEPOINT)))
    assert ir.terminals["[^a]"].regex == Chars(((0, 96), (98, 0xD7FF), (0xE000, MAX_CODEPOINT)))
    x = ir.rules["x"].body
    assert isinstance(x, Choice) and len(x.options) == 4
    star, empty, dot, group = x.options
    assert isinstance(star, Repetition) and (star.min, star.max) == (0, None) and star.item.name == '"ab"'
    assert isinstance(empty, Sequence) and empty.items == ()
    assert isinstance(dot, TerminalRef) and dot.name == "."
    assert isinstance(group, RuleRef) and group.name == "x2"  # a group of one symbol is that symbol


def test_single_character_literal_is_a_concat():
    ir = gbnf_to_ir('root ::= "a" [a]')
    a, cls = ir.rules["root"].body.items
    assert ir.terminals[a.name].regex.parts == (Chars(((97, 97),)),)
    assert ir.terminals[cls.name].regex == Chars(((97, 97),))
    assert a.name != cls.name


@pytest.mark.parametrize("suffix, bounds", [("*", (0, None)), ("+", (1, None)), ("?", (0, 1)), ("{3}", (3, 3)),
                                            ("{3,}", (3, None)), ("{0,5}", (0, 5)), ("{2,2}", (2, 2)),
                                            ("{ 1 , 4 }", (1, 4)), ("{0}", (0, 0)), ("{2000,3000}", (2000, 3000))])
def test_repetition_counts(suffix, bounds):
    body = gbnf_to_ir(f'root ::= "a"{suffix} "b"').rules["root"].body
    rep = body.items[0]
    assert isinstance(rep, Repetition) and (rep.min, rep.max) == bounds and rep.item.name == '"a"'
    assert body.items[1].name == '"b"'


def test_repetitions_stack_and_apply_to_groups():
    body = gbnf_to_ir('root ::= "a"*+ ("b" "c"){2} ("d" | "e")?').rules["root"].body
    outer, group, choice = body.items
    assert (outer.min, outer.max) == (1, None) and isinstance(outer.item, Repetition)
    assert (outer.item.min, outer.item.max) == (0, None) and outer.item.item.name == '"a"'
    assert (group.min, group.max) == (2, 2) and isinstance(group.item, Sequence)
    assert [t.name for t in group.item.items] == ['"b"', '"c"']
    assert isinstance(choice.item, Choice) and [t.name for t in choice.item.options] == ['"d"', '"e"']


def test_locations():
    text = ('# header\n'
            'root ::= item (\n'
            '    "a" | more\n'
            '  )* "z"\n'
            '\n'
            'item ::= [0-9]+\n'
            'more ::= ""\n')
    ir = gbnf_to_ir(text)
    root = ir.rules["root"]
    assert (root.where.line, root.where.column, root.where.rule) == (2, 1, "root")
    item_ref, star, z = root.body.items
    assert (item_ref.where.line, item_ref.where.column) == (2, 10)
    assert (star.where.line, star.where.column) == (2, 15)  # a repetition is located at what it repeats
    assert isinstance(star.item, Choice) and (star.item.where.line, star.item.where.column) == (2, 15)
    a, more = star.item.options
    assert (a.where.line, a.where.column, a.where.rule) == (3, 5, "root")
    assert (more.where.line, more.where.column) == (3, 11)
    assert (z.where.line, z.where.column) == (4, 6)
    assert ir.terminals['"z"'].where.line == 4
    item = ir.rules["item"]
    assert (item.where.line, item.where.column) == (6, 1)
    assert (item.body.where.line, item.body.where.column, item.body.where.rule) == (6, 10, "item")
    assert (item.body.item.where.line, item.body.item.where.column) == (6, 10)
    empty = ir.rules["more"].body
    assert isinstance(empty, Sequence) and empty.items == () and (empty.where.line, empty.where.column) == (7, 10)


def test_line_endings_crlf_and_cr():
    lf = 'root ::= (\n "a"\n | "b" # c\n)+ x\nx ::= "q"\n'
    for text in (lf, lf.replace("\n", "\r\n"), lf.replace("\n", "\r")):
        ir = gbnf_to_ir(text)
        assert list(ir.rules) == ["root", "x"]
        assert ir.rules["x"].where.line == 5 and ir.rules["root"].body.items[1].where.line == 4
        assert _accepts(ir, "abq") and not _accepts(ir, "q")


def test_start_symbol_parameter():
    ir = gbnf_to_ir('item ::= "x" other\nother ::= "y"', start="item")
    assert ir.start == "item" and _accepts(ir, "xy")
    with pytest.raises(GrammarError, match="no 'root' rule"):
        gbnf_to_ir('item ::= "x" other\nother ::= "y"')


def test_duplicate_rule_last_definition_wins():
    # llama.cpp's parser overwrites a rule defined twice; so does this front-end.
    text = 'root ::= a a\na ::= "x" undefined-here\na ::= "y" | "z"\n'
    ir = gbnf_to_ir(text)
    assert list(ir.rules) == ["root", "a"] and ir.rules["a"].where.line == 3
    assert _accepts(ir, "yz") and _accepts(ir, "zz") and not _accepts(ir, "xy") and not _accepts(ir, "x")


def test_rule_continues_after_define_and_bar_only():
    ir = gbnf_to_ir('root ::=\n  "a" |\n  "b"\nother ::= "c"')
    assert set(ir.rules) == {"root", "other"} and isinstance(ir.rules["root"].body, Choice)
    assert _accepts(ir, "a") and _accepts(ir, "b") and not _accepts(ir, "ab")


# ---------------------------------------------------------------- the language: inlining into one regex tree


def _inline(ir: GrammarIR):
    """The start rule as one regex tree, rules substituted (the grammar must not be recursive)."""
    done: dict[str, object] = {}

    def conv(expr, active: frozenset):
        if isinstance(expr, TerminalRef):
            return ir.terminals[expr.name].regex
        if isinstance(expr, RuleRef):
            assert expr.name not in active, f"{expr.name} is recursive"
            if expr.name not in done:
                done[expr.name] = conv(ir.rules[expr.name].body, active | {expr.name})
            return done[expr.name]
        if isinstance(expr, Sequence):
            return Concat(tuple(conv(i, active) for i in expr.items))
        if isinstance(expr, Choice):
            return Alternation(tuple(conv(o, active) for o in expr.options))
        assert isinstance(expr, Repetition)
        return Repeat(conv(expr.item, active), expr.min, expr.max)

    return conv(ir.rules[ir.start].body, frozenset([ir.start]))


def _dfa(ir: GrammarIR) -> LazyDFA:
    return LazyDFA.from_tree(_inline(ir))


def _accepts(ir: GrammarIR, s: str) -> bool:
    return _dfa(ir).matches(s.encode("utf-8"))


# ---------------------------------------------------------------- an independent reading of GBNF, into Python re

_TOKEN = re.compile(r'''
    (?P<space>[ \t\r\n]+|\#[^\r\n]*)
  | (?P<define>::=)
  | (?P<name>[A-Za-z0-9_-]+)
  | (?P<literal>"(?:[^"\\]|\\.)*")
  | (?P<cls>\[\^?(?:[^\]\\]|\\.)*\])
  | (?P<count>\{[ \t]*[0-9]+[ \t]*(?:,[ \t]*[0-9]*[ \t]*)?\})
  | (?P<op>[()|*+?.])
''', re.X | re.S)
_ESC = {"n": "\n", "r": "\r", "t": "\t"}
_WIDTH = {"x": 2, "u": 4, "U": 8}


def _read_char(body: str, i: int) -> tuple[int, int]:
    if body[i] != "\\":
        return ord(body[i]), i + 1
    e = body[i + 1]
    if e in _WIDTH:
        w = _WIDTH[e]
        return int(body[i + 2:i + 2 + w], 16), i + 2 + w
    return ord(_ESC.get(e, e)), i + 2


def _py_tokens(text: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        assert m, f"test tokenizer stuck at {text[pos:pos + 20]!r}"
        if m.lastgroup != "space":
            out.append((m.lastgroup, m.group()))
        pos = m.end()
    return out


def _py_grammar(text: str) -> dict[str, tuple]:
    """Rules as small tuples: ('lit', str), ('cls', negated, [(lo, hi)]), ('any',), ('ref', name),
    ('seq', [...]), ('alt', [...]), ('rep', node, lo, hi). A later definition replaces an earlier one."""
    toks = _py_tokens(text)
    starts = [i for i in range(len(toks) - 1) if toks[i][0] == "name" and toks[i + 1][0] == "define"]
    rules = {}
    for k, i in enumerate(starts):
        body = toks[i + 2:starts[k + 1] if k + 1 < len(starts) else len(toks)]
        node, j = _py_alt(body, 0)
        assert j == len(body), f"test parser left {body[j:]}"
        rules[toks[i][1]] = node
    return rules


def _py_alt(toks, i):
    options = []
    while True:
        seq = []
        while i < len(toks) and toks[i][1] not in ("|", ")"):
            kind, value = toks[i]
            i += 1
            if kind == "literal":
                cps, j, inner = [], 0, value[1:-1]
                while j < len(inner):
                    cp, j = _read_char(inner, j)
                    cps.append(cp)
                seq.append(("lit", "".join(map(chr, cps))))
            elif kind == "cls":
                neg = value.startswith("[^")
                inner, j, items = value[2 if neg else 1:-1], 0, []
                while j < len(inner):
                    lo, j = _read_char(inner, j)
                    if j + 1 < len(inner) and inner[j] == "-":
                        hi, j = _read_char(inner, j + 1)
                        items.append((lo, hi))
                    else:
                        items.append((lo, lo))
                seq.append(("cls", neg, items))
            elif kind == "name":
                seq.append(("ref", value))
            elif value == ".":
                seq.append(("any",))
            elif value == "(":
                node, i = _py_alt(toks, i)
                assert toks[i][1] == ")"
                i += 1
                seq.append(node)
            else:  # a quantifier on the last item
                if kind == "count":
                    nums = value[1:-1].replace(" ", "").split(",")
                    lo, hi = int(nums[0]), (int(nums[0]) if len(nums) == 1 else int(nums[1]) if nums[1] else None)
                else:
                    lo, hi = {"*": (0, None), "+": (1, None), "?": (0, 1)}[value]
                seq[-1] = ("rep", seq[-1], lo, hi)
        options.append(("seq", seq))
        if i < len(toks) and toks[i][1] == "|":
            i += 1
            continue
        return ("alt", options), i


def _py_regex(rules: dict, node=None) -> str:
    node = rules["root"] if node is None else node
    kind = node[0]
    if kind == "lit":
        return "(?:" + re.escape(node[1]) + ")"
    if kind == "cls":
        body = "".join(f"\\U{lo:08x}" + (f"-\\U{hi:08x}" if hi != lo else "") for lo, hi in node[2])
        return "[" + ("^" if node[1] else "") + body + "]"
    if kind == "any":
        return "(?s:.)"
    if kind == "ref":
        return "(?:" + _py_regex(rules, rules[node[1]]) + ")"
    if kind == "seq":
        return "".join(_py_regex(rules, n) for n in node[1])
    if kind == "alt":
        return "(?:" + "|".join(_py_regex(rules, n) for n in node[1]) + ")"
    _, inner, lo, hi = node
    return "(?:" + _py_regex(rules, inner) + ")" + "{%d,%s}" % (lo, "" if hi is None else hi)


_POOL = "abcxyzAZ019 -_.,:;\"\\'\n\t\r\x00\x7f\x85é日ア、😀\u2028"


def _py_sample(rules: dict, node, rng: random.Random) -> str:
    kind = node[0]
    if kind == "lit":
        return node[1]
    if kind == "cls":
        inside = lambda cp: any(lo <= cp <= hi for lo, hi in node[2])
        if not node[1]:
            lo, hi = rng.choice(node[2])
            cp = rng.randint(lo, hi)
            return chr(cp) if not 0xD800 <= cp <= 0xDFFF else chr(lo)
        for _ in range(50):
            c = rng.choice(_POOL) if rng.random() < 0.8 else chr(rng.randint(0x20, 0x2FFF))
            if not inside(ord(c)) and not 0xD800 <= ord(c) <= 0xDFFF:
                return c
        return "\U0010fffd"
    if kind == "any":
        return rng.choice(_POOL)
    if kind == "ref":
        return _py_sample(rules, rules[node[1]], rng)
    if kind == "seq":
        return "".join(_py_sample(rules, n, rng) for n in node[1])
    if kind == "alt":
        return _py_sample(rules, rng.choice(node[1]), rng)
    _, inner, lo, hi = node
    n = lo + rng.randint(0, 3 if hi is None else min(3, hi - lo))
    return "".join(_py_sample(rules, inner, rng) for _ in range(n))


def _mutate(s: str, rng: random.Random, alphabet: str) -> str:
    op = rng.randrange(4)
    k = rng.randrange(len(s) + 1)
    if op == 0 and s:
        return s[:k] + s[k + 1:]
    if op == 1:
        return s[:k] + rng.choice(alphabet) + s[k:]
    if op == 2 and s:
        return s[:k] + rng.choice(alphabet) + s[k + 1:]
    return s + s[k:]


def _differential(text: str, seed: int = 0, samples: int = 150) -> None:
    ir = gbnf_to_ir(text)
    dfa = _dfa(ir)
    rules = _py_grammar(text)
    assert set(rules) == set(ir.rules)
    pattern = re.compile(_py_regex(rules))
    rng = random.Random(seed)
    members = [_py_sample(rules, rules["root"], rng) for _ in range(samples)]
    alphabet = "".join(sorted(set("".join(members)) | set(_POOL)))
    strings = set(members)
    for s in members:
        strings.update(_mutate(s, rng, alphabet) for _ in range(3))
    for chars in (alphabet, _POOL):
        strings.update("".join(rng.choice(chars) for _ in range(rng.randrange(6))) for _ in range(100))
    wrong, yes = [], 0
    for s in sorted(strings):
        expected = pattern.fullmatch(s) is not None
        yes += expected
        if dfa.matches(s.encode("utf-8")) != expected:
            wrong.append((s, expected))
    assert not wrong, f"{len(wrong)} strings judged differently from re, e.g. {wrong[:5]}"
    assert all(pattern.fullmatch(s) for s in members)
    assert yes >= min(len(set(members)), 5) and len(strings) - yes >= 50  # both sides are exercised


_SMALL = {
    "escapes": 'root ::= "a\\"b\\\\c\\n\\t\\r" [\\[\\]\\-\\\\]? "\\x41\\u00e9\\U0001F600" [\\x00-\\x1F]\n',
    "classes": 'root ::= [a-] [-a] [^a-z0-9\\n] [,-.] [\\u4e00-\\u9fff]+ [^"\\\\\\x7F\\x00-\\x1F]\n',
    "any": 'root ::= . .? "x" .{2}\n',
    "counts": 'root ::= "a"{3} "b"{2,} "c"{0,2} ("d" "e"){1,3} "f"*+ ("g"?)* [0-9]{ 1 , 2 }\n',
    "empty": 'root ::= | "x" | "" "y" | ("z" | )\n',
    "lines": ('root ::=\n  # a comment\n  (\n    "a"   # trailing\n    | "b"\n  ) item |\n  "c"\n'
              'item ::= "-" [0-9]+\n'),
    "duplicate": 'root ::= a a\na ::= "x"\na ::= "y" | "z"\n',
    "crlf": 'root ::= (\r\n "a"\r\n | "b")+ x\r\nx ::= "q"\r\n',
    "names": 'root ::= my_rule "é" "日本" Rule-2\nmy_rule ::= "ß"+\nRule-2 ::= [A-Z]{2}\n',
    "json-string": 'root ::= "\\"" ( [^"\\\\\\x7F\\x00-\\x1F] | "\\\\" (["\\\\bfnrt] | "u" [0-9a-fA-F]{4}) )* "\\""\n',
    "json-number": ('root ::= ("-"? ([0-9] | [1-9] [0-9]{0,15})) ("." [0-9]+)? ([eE] [-+]? [0-9] [1-9]{0,15})?\n'),
    "nested": 'root ::= (((("a" | "b")+ "c")? "d"){0,2} ("e" ("f" ("g")*)*)+)\n',
}


@pytest.mark.parametrize("name", sorted(_SMALL))
def test_language_matches_python_re(name):
    _differential(_SMALL[name], seed=sum(map(ord, name)))


@pytest.mark.parametrize("stem", ["chess", "list", "english", "japanese"])
def test_corpus_language_matches_python_re(stem):
    _differential(_corpus(LLAMA_DIR)[stem], samples=100)


def test_corpus_sql_language_matches_python_re():
    _differential(_corpus(LLGUIDANCE_DIR)["vllm-sql"], samples=60)


# Handwritten members and non-members, independent of both readings above.
_EXPECT = [
    ('root ::= .', ["a", "\n", "\r", "é", "😀", "\x00", "\U0010ffff"], ["", "ab", "\n\n"]),
    ('root ::= [a-]', ["a", "-"], ["b", "", "a-"]),
    ('root ::= [,-.]+', [",", "-", ".", ",.-"], ["/", "+", ""]),
    ('root ::= [\\-\\]]', ["-", "]"], ["\\", "["]),
    ('root ::= "\\x85\\u2028" [^\\x85]', ["\x85\u2028a"], ["\x85\u2028\x85", "\x85\u2028"]),
    ('root ::= ""', [""], ["a", " "]),
    ('root ::= "a" "" "b"', ["ab"], ["a", "b", "a b"]),
    ('root ::= "a"{2,3}', ["aa", "aaa"], ["a", "aaaa", ""]),
    ('root ::= ("ab" | "c"){2}', ["abab", "abc", "cc", "cab"], ["ab", "c", "ababab", "abcc"]),
    ('root ::= x\nx ::= "1"\nx ::= "2"', ["2"], ["1", "12"]),
    ('root ::= "a" # "b"\n', ["a"], ["ab"]),
    ('root ::= "#" [#]', ["##"], ["#"]),
    ('root ::= "a\nb"', ["a\nb"], ["ab"]),  # a raw newline inside a literal stands for itself, as in llama.cpp
    ('root ::= [a^]', ["a", "^"], ["b"]),
    ('root ::= ([0-9] [0-9]?) ":" [0-5] [0-9]', ["1:05", "23:59"], ["123:00", "1:60", ":00"]),
]


@pytest.mark.parametrize("text, members, others", _EXPECT)
def test_language_handwritten(text, members, others):
    dfa = _dfa(gbnf_to_ir(text))
    for s in members:
        assert dfa.matches(s.encode("utf-8")), (text, s)
    for s in others:
        assert not dfa.matches(s.encode("utf-8")), (text, s)


def test_corpus_language_handwritten():
    llama = _corpus(LLAMA_DIR)
    chess = _dfa(gbnf_to_ir(llama["chess"]))
    assert chess.matches(b"1. e4 e5\n2. Nf3 Nc6\n3. O-O exd4+\n")
    assert not chess.matches(b"1. e4 e5\n")  # at least one numbered move after the first
    assert not chess.matches(b"1. e9 e5\n2. Nf3 Nc6\n")
    lst = _dfa(gbnf_to_ir(llama["list"]))
    assert lst.matches("- foo\n- bär\n".encode())
    assert not lst.matches("- a\x85b\n".encode()) and not lst.matches(b"- \n") and not lst.matches(b"")


# ---------------------------------------------------------------- errors


_ERRORS = [
    # (grammar, line, column, rule, message fragment)
    ('root ::= "abc', 1, 10, "root", "unterminated literal"),
    ('root ::= "a"\nx ::= "b\n', 2, 7, "x", "unterminated literal"),
    ('root ::= [a-z', 1, 10, "root", "unterminated character class"),
    ('root ::= "a" [^', 1, 14, "root", "unterminated character class"),
    ('root "a"', 1, 6, "root", "expecting '::='"),
    ('root ::= "a"\nitem = "b"', 2, 6, "item", "expecting '::='"),
    ('root\n::= "a"', 1, 5, "root", "expecting '::='"),
    ('::= "a"', 1, 1, None, "expecting a rule name"),
    ('root ::= "a\\qb"', 1, 12, "root", "unknown escape"),
    ('root ::= [\\d]', 1, 11, "root", "unknown escape"),
    ('root ::= "\\x4"', 1, 11, "root", "exactly 2 hex digits"),
    ('root ::= [\\u12G4]', 1, 11, "root", "exactly 4 hex digits"),
    ('root ::= "a" "\\U0001F60"', 1, 15, "root", "exactly 8 hex digits"),
    ('root ::= "ab\\', 1, 13, "root", "unknown escape"),
    ('root ::= ("a" "b"', 1, 10, "root", "unclosed '('"),
    ('root ::= "x" (\n  "a" | ("b")\n', 1, 14, "root", "unclosed '('"),
    ('root ::= (("a")', 1, 10, "root", "unclosed '('"),
    ('root ::= "a")', 1, 13, "root", "unmatched ')'"),
    ('root ::= ( "a" ]', 1, 16, "root", "expecting ')'"),
    ('root ::= "a"{x}', 1, 14, "root", "expecting a repetition count"),
    ('root ::= "a"{3,1}', 1, 16, "root", "below the minimum"),
    ('root ::= "a"{2', 1, 15, "root", "expecting ',' or '}'"),
    ('root ::= "a"{2,3', 1, 17, "root", "expecting '}'"),
    ('root ::= "a"{2;3}', 1, 15, "root", "expecting ',' or '}'"),
    ('root ::= "a"{' + "9" * 25 + '}', 1, 14, "root", "too large"),
    ('root ::= *"a"', 1, 10, "root", "no preceding"),
    ('root ::= ("a" | +)', 1, 17, "root", "no preceding"),
    ('root ::= a b\na ::= "x"', 1, 12, "root", "Undefined rule identifier 'b'"),
    ('root ::= a\na ::= "x" (b | c)\nc ::= "y"', 2, 12, "a", "Undefined rule identifier 'b'"),
    ('item ::= "x"', 1, 1, "root", "no 'root' rule"),
    ('root ::= [z-a]', 1, 11, "root", "reversed"),
    ('root ::= "x" [\\u00e9-\\u00e0]', 1, 15, "root", "reversed"),
    ('root ::= "\\ud800"', 1, 11, "root", "surrogate"),
    ('root ::= [a\\uDFFF]', 1, 12, "root", "surrogate"),
    ('root ::= "a\ud800"', 1, 12, "root", "surrogate"),
    ('root ::= [\udc00]', 1, 11, "root", "surrogate"),
    ('root ::= "\\U00110000"', 1, 11, "root", "past U+10FFFF"),
    ('root ::= <think> "x"', 1, 10, "root", "token reference ('<think>')"),
    ('root ::= "a" <[1000]>', 1, 14, "root", "token reference ('<[1000]>')"),
    ('root ::= x\nx ::= !<[1001]>*', 2, 7, "x", "negated token reference ('!<[1001]>')"),
    ('root ::= "a"\n | "b"', 2, 2, None, "expecting a rule name"),
    # After ')' outside parentheses, a newline ends the rule.
    ('root ::= (\n "a"\n)\n "b"', 4, 2, None, "expecting a rule name"),
    ('root ::= "a" ! "b"', 1, 14, "root", "unexpected '!'"),
    ('root ::=\nitem ::= "x"', 2, 6, "root", "unexpected '::='"),
    ('root ::= "a" "b" ]', 1, 18, "root", "expecting a newline"),
    ('root ::= []', 1, 10, "root", "empty character class"),
    ('root ::= "a" [^]', 1, 14, "root", "empty character class"),
    ('root ::= [^\\x00-\\U0010FFFF]', 1, 10, "root", "matches no character"),
    ('root ::= root "a"', 1, 1, "root", "derives no string"),
]


@pytest.mark.parametrize("text, line, column, rule, fragment", _ERRORS)
def test_errors_point_at_the_offending_spot(text, line, column, rule, fragment):
    with pytest.raises(GrammarError) as info:
        gbnf_to_ir(text)
    err = info.value
    assert fragment in err.reason, err.reason
    assert (err.location.line, err.location.column, err.location.rule) == (line, column, rule), str(err)


def test_mutated_grammars_raise_only_grammar_error():
    """Random edits of the corpus either convert or raise GrammarError, never another exception."""
    rng = random.Random(7)
    corpus = _corpus(LLAMA_DIR)
    junk = '"[]()|*+?{},.^-\\#:=<>!\n \tax0_\u00e9\ud800'
    outcomes = {"ok": 0, "error": 0}
    for stem in sorted(corpus):
        text = corpus[stem]
        for _ in range(60):
            s = text
            for _ in range(rng.randint(1, 3)):
                k = rng.randrange(len(s) + 1)
                op = rng.randrange(3)
                s = (s[:k] + s[k + 1:]) if op == 0 else (s[:k] + rng.choice(junk) + s[k:]) if op == 1 else \
                    (s[:k] + rng.choice(junk) + s[k + 1:])
            try:
                gbnf_to_ir(s)
                outcomes["ok"] += 1
            except GrammarError as e:
                assert e.location.line is not None and e.location.column is not None, str(e)
                outcomes["error"] += 1
    assert outcomes["ok"] > 20 and outcomes["error"] > 100, outcomes


# ---------------------------------------------------------------- deep nesting and large inputs


def test_deep_nesting_without_recursion():
    depth = 50_000
    ir = gbnf_to_ir("root ::= " + "(" * depth + '"a"' + ")*" * depth + "\n")
    node, levels = ir.rules["root"].body, 0
    while isinstance(node, Repetition):
        node, levels = node.item, levels + 1
    assert levels == depth and isinstance(node, TerminalRef) and node.name == '"a"'
    ir = gbnf_to_ir("root ::= " + '("x" ' * depth + '"y"' + ")" * depth)
    assert sum(isinstance(n, Sequence) for n in walk_expr(ir.rules["root"].body)) == depth
    with pytest.raises(GrammarError, match="unclosed") as info:
        gbnf_to_ir("root ::= " + "(" * depth + '"a"')
    assert info.value.location.column == 9 + depth  # the innermost '(' still open


def test_megabyte_inputs():
    literal = "abcdé\\n" * 150_000  # a 1 MB literal
    started = time.perf_counter()
    ir = gbnf_to_ir('root ::= "' + literal + '"\n')
    regex = ir.terminals[ir.rules["root"].body.name].regex
    assert len(regex.parts) == 6 * 150_000 and regex.parts[4] == Chars(((0xE9, 0xE9),))
    n = 15_000  # about a megabyte of rules
    text = "root ::= r0\n" + "".join(f'r{i} ::= "x{i}" [a-z]{{2,3}} (r{i + 1} | "end") # note\n'
                                     for i in range(n)) + f'r{n} ::= "z"\n'
    assert len(text) > 700_000
    ir = gbnf_to_ir(text)
    assert len(ir.rules) == n + 2 and ir.rules[f"r{n}"].where.line == n + 2
    assert len(ir.terminals) == n + 3  # "x0".."x{n-1}", then [a-z] and "end" shared by all, and "z"
    elapsed = time.perf_counter() - started
    assert elapsed < 60, f"{elapsed:.1f}s for about 2 MB of grammar"  # linear: a few seconds
