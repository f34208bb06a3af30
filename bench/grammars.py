"""Context-free grammar constraints: compile and token-mask times, tether side by side with peers.

Four grammars, each written as Lark text for tether (``tether.lark``) and llguidance
(``LLMatcher.grammar_from_lark``) and as GBNF / EBNF for xgrammar (``GrammarCompiler.compile_grammar``):

* ``json``: Lark's common-based JSON grammar (outlines' ``json.lark``: ``ESCAPED_STRING``,
  ``SIGNED_NUMBER``, ``%ignore WS``); xgrammar gets its builtin JSON grammar
  (``compile_builtin_json_grammar``), the strict JSON it ships (object or array at the root);
* ``sql``: an SQL SELECT grammar written here (joins, WHERE / GROUP BY / HAVING / ORDER BY /
  LIMIT, set operations, AND / OR / NOT, comparison, arithmetic, calls, IN, LIKE, BETWEEN, IS NULL,
  EXISTS, CASE, subqueries; case-insensitive keywords), the GBNF a transliteration of it;
* ``arith``: outlines' left-recursive ``arithmetic.lark`` (``?sum: sum "+" product | ...``), and the
  same left-recursive rules in GBNF;
* ``c``: llama.cpp's ``c.gbnf``, read as GBNF by all three (``tether.gbnf``,
  ``llguidance.grammar_from("gbnf", ...)``, xgrammar's EBNF reader).

Documents of each language (JSONTestSuite ``y_`` objects / arrays and generated JSON; Spider gold
queries that Lark's Earley parser accepts with the SQL grammar; generated expressions; hand-written
C the grammar accepts) are tokenized with the real Llama-3 tokenizer. Every engine runs in its own
process per grammar, one thread, warmed up on a throwaway grammar; it compiles the grammar
``--repeats`` times (CPU ms: compile, and compile + first mask), then walks every document on the
last compiled object: at every position fill the mask, check that the document's token is allowed,
consume it (the time between masks is consume + fill, CPU µs). Refused tokens are counted and
printed; masks are compared across engines by fingerprint (special ids left out).

    python bench/grammars.py                                  # everything, ~5 min
    python bench/grammars.py --engines llguidance,xgrammar --grammars json,sql --limit 20

Writes ``<out>/grammars.md`` (the tables, printed too), ``grammars.json`` (all results),
``grammars.png``, ``grammars-disagreements.log`` and ``grammars-workers.log`` (workers' stderr).
"""

from __future__ import annotations

# _peers pins every thread pool to one thread before any engine is imported.
from _peers import REPO, TOKENIZER, make_engine, read_tokenizer_json, row_view

import argparse
import gc
import hashlib
import json
import math
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

import numpy as np

DATA = REPO.parent / "shared" / "data"
GRAMMAR_DATA = DATA / "grammars"
JSON_LARK = GRAMMAR_DATA / "outlines" / "src" / "outlines" / "grammars" / "json.lark"
ARITH_LARK = GRAMMAR_DATA / "outlines" / "src" / "outlines" / "grammars" / "arithmetic.lark"
C_GBNF = GRAMMAR_DATA / "llama.cpp" / "grammars" / "c.gbnf"
JSON_SUITE = DATA / "json" / "JSONTestSuite" / "test_parsing"
SPIDER = DATA / "sql" / "spider" / "train_gold.sql"

ENGINES = ("tether", "llguidance", "xgrammar")
GRAMMARS = ("json", "sql", "arith", "c")
THREADS = {"RAYON_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           "NUMBA_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
COLORS = {"tether": "#d62728", "llguidance": "#2ca02c", "xgrammar": "#9467bd"}

cpu = time.process_time_ns
wall = time.perf_counter_ns

# ----------------------------------------------------------------------------------------------
# The grammars
# ----------------------------------------------------------------------------------------------

# Multi-word keywords (UNION ALL, LEFT OUTER) are rule-level, never one terminal with WS inside:
# with `SET_OP: "union"i (WS "all"i)?` llguidance's lexer refuses `UNION SELECT` (it does not back out
# of the longer terminal once it has read the space), where Lark's Earley accepts it.
SQL_LARK = r"""
start: query ";"?

query: select (set_op select)*
set_op: "union"i "all"i? | "intersect"i | "except"i
select: "select"i (DISTINCT | "all"i)? select_list from_clause? where_clause? group_by? having_clause? order_by? limit_clause?
select_list: select_item ("," select_item)*
select_item: "*" | expr ("as"i alias)?
from_clause: "from"i table_ref (join | "," table_ref)*
table_ref: (name | "(" query ")") ("as"i alias)?
join: join_kind? "join"i table_ref ("on"i expr)?
join_kind: "inner"i | "cross"i | "natural"i | ("left"i | "right"i | "full"i) "outer"i?
where_clause: "where"i expr
group_by: "group"i "by"i expr ("," expr)*
having_clause: "having"i expr
order_by: "order"i "by"i order_item ("," order_item)*
order_item: expr ("asc"i | "desc"i)?
limit_clause: "limit"i NUMBER ("offset"i NUMBER)?

?expr: or_expr
?or_expr: and_expr | or_expr "or"i and_expr
?and_expr: not_expr | and_expr "and"i not_expr
?not_expr: predicate | "not"i not_expr
?predicate: sum
    | sum COMP_OP sum
    | sum "not"i? "in"i "(" (query | expr_list) ")"
    | sum "not"i? "like"i sum
    | sum "not"i? "between"i sum "and"i sum
    | sum "is"i "not"i? "null"i
    | "exists"i "(" query ")"
?sum: product | sum ADD_OP product
?product: unary | product MUL_OP unary
?unary: atom | "-" unary
?atom: NUMBER | STRING | "null"i | column | call | "(" expr ")" | "(" query ")"
    | "case"i ("when"i expr "then"i expr)+ ("else"i expr)? "end"i
    | "cast"i "(" expr "as"i name ")"
call: name "(" (DISTINCT? expr_list | "*")? ")"
expr_list: expr ("," expr)*
column: name ("." (name | "*"))?
alias: name
name: IDENT

DISTINCT: "distinct"i
COMP_OP: "=" | "==" | "!=" | "<>" | "<" | "<=" | ">" | ">="
ADD_OP: "+" | "-" | "||"
MUL_OP: "*" | "/" | "%"
IDENT: /[A-Za-z_][A-Za-z0-9_]*/ | /`[^`]*`/
STRING: /'([^']|'')*'/ | /"([^"]|"")*"/
NUMBER: /[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)?/
WS: /[ \t\r\n]+/
%ignore WS
"""

# The same language in GBNF. Lark's %ignore WS becomes an explicit optional `ws` between lexemes;
# keywords are spelled case-insensitively ([sS][eE]...) from the K_* placeholders below. llama.cpp's
# GBNF continues a rule on the next line only after '::=' or '|' or inside parentheses: '|' ends lines.
SQL_GBNF_TEMPLATE = r"""
root ::= ws query ws (";" ws)?
query ::= select (ws set-op ws select)*
set-op ::= K_UNION (ws K_ALL)? | K_INTERSECT | K_EXCEPT
select ::= K_SELECT (ws (K_DISTINCT | K_ALL))? ws select-list (ws from-clause)? (ws where-clause)? (ws group-by)? (ws having-clause)? (ws order-by)? (ws limit-clause)?
select-list ::= select-item (ws "," ws select-item)*
select-item ::= "*" | expr (ws K_AS ws name)?
from-clause ::= K_FROM ws table-ref (ws (join | "," ws table-ref))*
table-ref ::= (name | "(" ws query ws ")") (ws K_AS ws name)?
join ::= (join-kind ws)? K_JOIN ws table-ref (ws K_ON ws expr)?
join-kind ::= K_INNER | K_CROSS | K_NATURAL | (K_LEFT | K_RIGHT | K_FULL) (ws K_OUTER)?
where-clause ::= K_WHERE ws expr
group-by ::= K_GROUP ws K_BY ws expr (ws "," ws expr)*
having-clause ::= K_HAVING ws expr
order-by ::= K_ORDER ws K_BY ws order-item (ws "," ws order-item)*
order-item ::= expr (ws (K_ASC | K_DESC))?
limit-clause ::= K_LIMIT ws number (ws K_OFFSET ws number)?
expr ::= or-expr
or-expr ::= and-expr | or-expr ws K_OR ws and-expr
and-expr ::= not-expr | and-expr ws K_AND ws not-expr
not-expr ::= predicate | K_NOT ws not-expr
predicate ::= sum |
    sum ws comp-op ws sum |
    sum ws (K_NOT ws)? K_IN ws "(" ws (query | expr-list) ws ")" |
    sum ws (K_NOT ws)? K_LIKE ws sum |
    sum ws (K_NOT ws)? K_BETWEEN ws sum ws K_AND ws sum |
    sum ws K_IS ws (K_NOT ws)? K_NULL |
    K_EXISTS ws "(" ws query ws ")"
sum ::= product | sum ws add-op ws product
product ::= unary | product ws mul-op ws unary
unary ::= atom | "-" ws unary
atom ::= number | string | K_NULL | column | call | "(" ws expr ws ")" | "(" ws query ws ")" |
    K_CASE (ws K_WHEN ws expr ws K_THEN ws expr)+ (ws K_ELSE ws expr)? ws K_END |
    K_CAST ws "(" ws expr ws K_AS ws name ws ")"
call ::= name ws "(" ws (((K_DISTINCT ws)? expr-list | "*") ws)? ")"
expr-list ::= expr (ws "," ws expr)*
column ::= name (ws "." ws (name | "*"))?
name ::= [A-Za-z_] [A-Za-z0-9_]* | "`" [^`]* "`"
string ::= "'" ([^'] | "''")* "'" | "\"" ([^"] | "\"\"")* "\""
number ::= [0-9]+ ("." [0-9]+)? ([eE] [+-]? [0-9]+)?
comp-op ::= "=" | "==" | "!=" | "<>" | "<" | "<=" | ">" | ">="
add-op ::= "+" | "-" | "||"
mul-op ::= "*" | "/" | "%"
ws ::= [ \t\r\n]*
"""


def _sql_gbnf() -> str:
    import re

    def ci(word: str) -> str:
        return "".join(f"[{c.lower()}{c.upper()}]" for c in word)

    return re.sub(r"\bK_([A-Z]+)\b", lambda m: ci(m.group(1)), SQL_GBNF_TEMPLATE).strip() + "\n"


# outlines' arithmetic.lark in GBNF: the same left-recursive rules; Lark's common NUMBER
# (FLOAT | INT, FLOAT: INT _EXP | DECIMAL _EXP?, DECIMAL: INT "." INT? | "." INT) and
# %ignore WS_INLINE (spaces and tabs between lexemes).
ARITH_GBNF = r"""
root ::= ws sum ws
sum ::= product | sum ws "+" ws product | sum ws "-" ws product
product ::= atom | product ws "*" ws atom | product ws "/" ws atom
atom ::= number | "-" ws atom | "(" ws sum ws ")"
number ::= int ("." int?)? exp? | "." int exp?
int ::= [0-9]+
exp ::= [eE] [+-]? [0-9]+
ws ::= [ \t]*
""".strip() + "\n"


def _read(path: Path) -> str:
    if not path.exists():
        raise SystemExit(f"missing grammar data: expected {path} (the shared data folder next to the "
                         f"repository: ../shared/data/grammars)")
    return path.read_text(encoding="utf-8")


def grammar_specs(name: str) -> dict[str, dict]:
    """Per engine: {"format": "lark" | "gbnf" | "builtin_json", "text": ..., "source": ...}."""
    if name == "json":
        lark = _read(JSON_LARK)
        src = "outlines json.lark (Lark common ESCAPED_STRING / SIGNED_NUMBER, %ignore WS)"
        return {"tether": {"format": "lark", "text": lark, "source": src},
                "llguidance": {"format": "lark", "text": lark, "source": src},
                "xgrammar": {"format": "builtin_json", "text": "",
                             "source": "xgrammar builtin JSON grammar (compile_builtin_json_grammar)"}}
    if name == "sql":
        src = "bench/grammars.py SQL_LARK"
        return {"tether": {"format": "lark", "text": SQL_LARK, "source": src},
                "llguidance": {"format": "lark", "text": SQL_LARK, "source": src},
                "xgrammar": {"format": "gbnf", "text": _sql_gbnf(),
                             "source": "bench/grammars.py SQL_GBNF_TEMPLATE (transliteration)"}}
    if name == "arith":
        lark = _read(ARITH_LARK)
        src = "outlines arithmetic.lark (left-recursive, %ignore WS_INLINE)"
        return {"tether": {"format": "lark", "text": lark, "source": src},
                "llguidance": {"format": "lark", "text": lark, "source": src},
                "xgrammar": {"format": "gbnf", "text": ARITH_GBNF,
                             "source": "bench/grammars.py ARITH_GBNF (the same left-recursive rules)"}}
    if name == "c":
        text = _read(C_GBNF)
        src = "llama.cpp grammars/c.gbnf"
        return {e: {"format": "gbnf", "text": text, "source": src} for e in ENGINES}
    raise KeyError(name)


# ----------------------------------------------------------------------------------------------
# The documents
# ----------------------------------------------------------------------------------------------

C_SNIPPETS = [
    "int main(){int x = 5;x = x+1;return x;}",
    "int add(int a){return a+1;}int main(){int y = add(41);return y;}",
    "int sum(int n){int s = 0;for(int i = 0; i<n; i = i+1){s = s+i;}return s;}",
    "int countdown(int n){while(n>0){n = n-1;}return n;}",
    "int sign(int x){if(x<0){return -1;}else{return 1;}}",
    "int main(){// compute the answer\nint answer = 6*7;/* multiply, then return */return answer;}",
    "float average(float total){float half = ( total+2 )/2;return half;}",
    "int main(){printf (42);print (x, y+1, f(z));return 0;}",
    "char next(char c){return c+1;}",
    "int gcd(int a){int b = 12;while(b!=0){int t = b;b = a-( a/b )*b;a = t;}return a;}",
    "int fib(int n){if(n<=1){return n;}return fib(n-1)+fib(n-2);}",
    "int main(){/* nested\n   loops */int total = 0;for(int i = 0; i<10; i = i+1){for(int j = 0; j<i; "
    "j = j+1){total = total+i*j;}}return total;}",
    "float area(float r){float pi = 3;return pi*r*r;}float volume(float r){return area(r)*r*4/3;}",
    "int clamp(int v){if(v>100){v = 100;}if(v<0){v = 0;}// clamp to [0, 100]\nreturn v;}",
    "int collatz(int n){int steps = 0;while(n!=1){if(n==2*( n/2 )){n = n/2;}else{n = 3*n+1;}"
    "steps = steps+1;}return steps;}",
    "char grade(int score){if(score>=90){return 65;}if(score>=80){return 66;}return 70;}"
    "int main(){int g = grade(85);putchar (g);return 0;}",
]

_WORDS = ("id name value items count title description price tags user email created_at enabled "
          "score ratio children parent metadata version status type data results error message "
          "url path size width height color label index offset").split()
_TEXT = ["hello world", "Ünïcødé ✓", "line\nbreak", "tab\tand \"quotes\"", "back\\slash", "日本語のテキスト",
         "emoji 😀 ok", "", "a/b/c", "x" * 40, "The quick brown fox jumps over the lazy dog.",
         "2024-01-15T10:30:00Z", "https://example.com/path?q=1&r=2"]


def _gen_json_value(rng: random.Random, depth: int) -> Any:
    r = rng.random()
    if depth > 0 and r < 0.25:
        return {rng.choice(_WORDS) + (str(rng.randrange(10)) if rng.random() < 0.3 else ""):
                _gen_json_value(rng, depth - 1) for _ in range(rng.randrange(1, 6))}
    if depth > 0 and r < 0.4:
        return [_gen_json_value(rng, depth - 1) for _ in range(rng.randrange(0, 6))]
    r = rng.random()
    if r < 0.35:
        return rng.choice(_TEXT)
    if r < 0.55:
        return rng.randrange(-10**rng.randrange(1, 10), 10**rng.randrange(1, 10))
    if r < 0.75:
        return round(rng.uniform(-1e4, 1e4), rng.randrange(0, 8)) * (10 ** rng.choice([0, 0, -9, 12]))
    if r < 0.9:
        return rng.random() < 0.5
    return None


def generated_json(n: int, seed: int) -> list[tuple[str, str]]:
    rng = random.Random(f"json:{seed}")
    out = []
    while len(out) < n:
        v = {k: _gen_json_value(rng, 3) for k in rng.sample(_WORDS, rng.randrange(3, 8))}
        if rng.random() < 0.3:
            v = [v, _gen_json_value(rng, 2)]
        style = len(out) % 3
        text = (json.dumps(v, ensure_ascii=False) if style == 0 else
                json.dumps(v, indent=2, ensure_ascii=False) if style == 1 else
                json.dumps(v, separators=(",", ":")))
        if 150 <= len(text) <= 2500:
            out.append((f"generated-{len(out)}", text))
    return out


def json_documents(seed: int, n_generated: int = 12) -> list[tuple[str, str]]:
    """JSONTestSuite y_ files that are objects or arrays (outer whitespace stripped: xgrammar's
    builtin JSON has none around the root), interleaved with generated documents."""
    if not JSON_SUITE.exists():
        raise SystemExit(f"missing JSONTestSuite: expected {JSON_SUITE}")
    suite = []
    for p in sorted(JSON_SUITE.glob("y_*.json")):
        try:
            text = p.read_bytes().decode("utf-8")
            v = json.loads(text)
        except (UnicodeDecodeError, ValueError):
            continue
        if isinstance(v, (dict, list)):
            suite.append((p.name, text.strip()))
    gen = generated_json(n_generated, seed)
    # interleave, so that --limit N takes some of both
    out, k = [], max(1, len(suite) // max(1, len(gen)))
    while suite or gen:
        if gen:
            out.append(gen.pop(0))
        out.extend(suite[:k])
        del suite[:k]
    return out


def arith_documents(n: int, seed: int) -> list[tuple[str, str]]:
    rng = random.Random(f"arith:{seed}")

    def num() -> str:
        r = rng.random()
        if r < 0.6:
            return str(rng.randrange(0, 10 ** rng.randrange(1, 6)))
        if r < 0.9:
            return f"{rng.uniform(0, 1000):.{rng.randrange(1, 4)}f}"
        return f"{rng.randrange(1, 10)}e{rng.randrange(-5, 10)}"

    def expr(depth: int) -> str:
        if depth <= 0 or rng.random() < 0.2:
            s = num()
        elif rng.random() < 0.25:
            s = "(" + expr(depth - 1) + ")"
        else:
            k = rng.randrange(2, 5)
            sp = rng.choice(["", " "])
            s = expr(depth - 1)
            for _ in range(k - 1):
                s += sp + rng.choice("+-*/") + sp + expr(depth - 1)
        if rng.random() < 0.08:
            s = "-" + (s if s[0] in "0123456789.(" else "(" + s + ")")
        return s

    out = []
    while len(out) < n:
        e = expr(rng.randrange(2, 6))
        if 8 <= len(e) <= 400:
            out.append((f"expr-{len(out)}", e))
    return out


def sql_coverage(out_dir: Path, sample: int, seed: int) -> dict:
    """Which Spider gold queries (unique, in file order) Lark's Earley parser accepts with SQL_LARK;
    over a fixed-seed sample of `sample` of them (0: all), cached in out_dir keyed on the grammar."""
    import lark

    if not SPIDER.exists():
        raise SystemExit(f"missing Spider data: expected {SPIDER}")
    queries = list(dict.fromkeys(line.split("\t")[0].strip()
                                 for line in SPIDER.read_text(encoding="utf-8").splitlines() if line.strip()))
    lines = sum(1 for line in SPIDER.read_text(encoding="utf-8").splitlines() if line.strip())
    key = hashlib.sha256(f"{SQL_LARK}|{lark.__version__}|{sample}|{seed}".encode()).hexdigest()[:16]
    cache = out_dir / "grammars-sql-coverage.json"
    if cache.exists():
        got = json.loads(cache.read_text(encoding="utf-8"))
        if got.get("key") == key:
            return got
    pick = list(range(len(queries)))
    if sample and sample < len(queries):
        pick = sorted(random.Random(f"spider:{seed}").sample(pick, sample))
    parser = lark.Lark(SQL_LARK, parser="earley", start="start")
    ok, failed = [], []
    t0 = time.monotonic()
    try:
        from tqdm import tqdm
        it = tqdm(pick, desc="Spider coverage (Lark Earley)", unit="q", leave=False)
    except ImportError:
        it = pick
    for i in it:
        try:
            parser.parse(queries[i])
            ok.append(i)
        except lark.exceptions.LarkError as exc:
            failed.append({"query": queries[i], "error": str(exc).strip().splitlines()[0][:160]})
    got = {"key": key, "lark": lark.__version__, "lines": lines, "unique": len(queries),
           "checked": len(pick), "parsed": len(ok), "seconds": round(time.monotonic() - t0, 1),
           "parsed_queries": [queries[i] for i in ok], "failed": failed}
    cache.write_text(json.dumps(got), encoding="utf-8")
    return got


def sql_documents(cov: dict, n: int, seed: int) -> list[tuple[str, str]]:
    qs = list(cov["parsed_queries"])
    random.Random(f"sql-docs:{seed}").shuffle(qs)
    return [(f"spider-{i}", q) for i, q in enumerate(qs[:n])]


def build_documents(args, grammars: list[str]) -> tuple[dict[str, list[dict]], dict]:
    import tokenizers

    tok = tokenizers.Tokenizer.from_str(read_tokenizer_json())
    docs: dict[str, list[tuple[str, str]]] = {}
    extra: dict = {}
    for g in grammars:
        if g == "json":
            docs[g] = json_documents(args.seed)
        elif g == "sql":
            cov = sql_coverage(args.out, args.sql_coverage, args.seed)
            extra["sql_coverage"] = {k: v for k, v in cov.items() if k != "parsed_queries"}
            docs[g] = sql_documents(cov, args.sql_docs, args.seed)
        elif g == "arith":
            docs[g] = arith_documents(args.arith_docs, args.seed)
        elif g == "c":
            docs[g] = [(f"c-{i}", s) for i, s in enumerate(C_SNIPPETS)]
        if args.limit:
            docs[g] = docs[g][: args.limit]
    out = {}
    for g, ds in docs.items():
        out[g] = []
        for name, text in ds:
            ids = tok.encode(text, add_special_tokens=False).ids
            if tok.decode(ids, skip_special_tokens=False) != text:
                print(f"note: {g}/{name}: tokenizer round trip differs", file=sys.stderr)
            out[g].append({"name": name, "text": text, "ids": ids})
    return out, extra


# ----------------------------------------------------------------------------------------------
# Worker side: one engine, one grammar, one process
# ----------------------------------------------------------------------------------------------

WARMUP = {"lark": 'start: "warm" WORD ("," WORD)*\nWORD: /[a-z]+/\n%ignore " "\n',
          "gbnf": 'root ::= "warm" [a-z]+ ("," " "? [a-z]+)*\n'}


def compile_spec(eng, spec: dict):
    """The engine's compiled object for one grammar spec (see grammar_specs)."""
    fmt, text = spec["format"], spec["text"]
    if eng.name == "tether":
        import tether

        g = tether.lark(text, start="start") if fmt == "lark" else tether.gbnf(text)
        return g.compile(eng.vocab)
    if eng.name == "llguidance":
        import llguidance

        grm = (llguidance.LLMatcher.grammar_from_lark(text) if fmt == "lark"
               else llguidance.grammar_from("gbnf", text))
        m = llguidance.LLMatcher(eng.tok, grm, log_level=0)
        if m.is_error():
            raise RuntimeError(m.get_error())
        return m
    if eng.name == "xgrammar":
        if fmt == "builtin_json":
            return eng.compiler.compile_builtin_json_grammar()
        return eng.compiler.compile_grammar(text)
    raise ValueError(eng.name)


def short(exc: BaseException, n: int = 300) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:n] if text else ''}".rstrip(": ")


def worker_main(kind: str, job_path: str, result_path: str) -> int:
    job = json.loads(Path(job_path).read_text(encoding="utf-8"))
    res: dict[str, Any] = {"engine": kind, "grammar": job["grammar"], "status": "starting"}

    def dump():
        tmp = result_path + ".tmp"
        Path(tmp).write_text(json.dumps(res), encoding="utf-8")
        os.replace(tmp, result_path)

    import tether  # the vocabulary (size, special ids) every engine is built on

    t0 = wall()
    vocab = tether.Vocabulary.from_file(TOKENIZER)
    try:
        eng = make_engine(kind, vocab, read_tokenizer_json())
    except Exception as exc:
        traceback.print_exc()
        res.update(status="unavailable", error=short(exc))
        dump()
        return 0
    from importlib import metadata
    try:
        res["version"] = metadata.version(kind)
    except metadata.PackageNotFoundError:
        res["version"] = getattr(eng, "version", "")
    res["setup_s"] = (wall() - t0) / 1e9
    words = (vocab.size + 31) // 32
    row = np.zeros(words, dtype=np.int32)
    view = row_view(eng, row)
    eos = vocab.eos_ids[0]
    keep = np.zeros(words * 32, dtype=bool)  # regular ids: the cross-engine fingerprint covers these
    keep[: vocab.size] = True
    keep[list(vocab.special_ids)] = False
    keep_words = np.packbits(keep, bitorder="little").view(np.int32)

    def allowed(t: int) -> bool:
        return bool((int(view[t >> 5]) >> (t & 31)) & 1)

    saved: dict[str, np.ndarray] = {}  # the first distinct masks, to show what differs

    def fingerprint() -> list:
        masked = np.bitwise_and(view, keep_words)
        pop = int(np.unpackbits(masked.view(np.uint8)).sum())
        h = hashlib.blake2b(masked.tobytes(), digest_size=6).hexdigest()
        if h not in saved and len(saved) < 400:
            saved[h] = masked.copy()
        return [pop, h, int(allowed(eos))]

    spec = job["spec"]
    # warm-up on a throwaway grammar of the same format (tether's numba kernels, peers' first use)
    t0 = wall()
    try:
        wfmt = "gbnf" if spec["format"] in ("gbnf", "builtin_json") else "lark"
        cur = eng.start(compile_spec(eng, {"format": wfmt, "text": WARMUP[wfmt]}))
        eng.fill(cur, row)
        for t in vocab.encode_greedy("warm"):
            cur = eng.consume(cur, t)
        eng.fill(cur, row)
    except Exception as exc:
        traceback.print_exc()
        res["warmup_error"] = short(exc)
    res["warmup_ms"] = (wall() - t0) / 1e6

    # compile, --repeats fresh times; the last compiled object walks the documents
    res.update(compile_ms=[], ttfm_ms=[], ttfm_wall_ms=[])
    cur = None
    for _ in range(job["repeats"]):
        cur = None
        gc.collect()
        try:
            w0, c0 = wall(), cpu()
            compiled = compile_spec(eng, spec)
            c1 = cpu()
            cur = eng.start(compiled)
            eng.fill(cur, row)
            c2, w2 = cpu(), wall()
        except Exception as exc:
            traceback.print_exc()
            res.update(status="error", error=short(exc))
            dump()
            return 0
        res["compile_ms"].append((c1 - c0) / 1e6)
        res["ttfm_ms"].append((c2 - c0) / 1e6)
        res["ttfm_wall_ms"].append((w2 - w0) / 1e6)
    res["status"] = "compiled"
    dump()

    docs = job["docs"]
    steps, fills, consumes = [], [], []
    per_doc: list[dict] = []
    deadline = wall() + int(job["budget_s"] * 1e9)
    cut = False
    try:
        from tqdm import tqdm
        it = tqdm(docs, desc=f"{kind:>10} {job['grammar']:<5}", unit="doc", leave=False,
                  mininterval=0.5, file=sys.stderr)
    except ImportError:
        it = docs
    gc.disable()
    try:
        for k, doc in enumerate(it):
            if wall() > deadline:
                cut = True
                break
            ids = doc["ids"]
            d: dict[str, Any] = {"steps": 0, "refused": [], "fp": []}
            per_doc.append(d)
            if k:
                cur = eng.restart(cur)
                eng.fill(cur, row)  # the initial mask of this document (the first one is in TTFM)
            d["fp"].append(fingerprint())
            for s, t in enumerate(ids):
                if not allowed(t):
                    d["refused"].append({"step": s, "token": t, "kind": "mask"})
                try:
                    c0 = cpu()
                    cur = eng.consume(cur, t)
                    c1 = cpu()
                    eng.fill(cur, row)
                    c2 = cpu()
                except Exception as exc:  # the engine rejects the token: this document stops here
                    d["refused"].append({"step": s, "token": t, "kind": "consume", "error": short(exc, 160)})
                    d["stopped"] = s
                    # a fresh object: llguidance's reset() leaves a matcher in its error state
                    cur = eng.start(compile_spec(eng, spec))
                    break
                consumes.append((c1 - c0) / 1e3)
                fills.append((c2 - c1) / 1e3)
                steps.append((c2 - c0) / 1e3)
                d["steps"] += 1
                d["fp"].append(fingerprint())
            else:
                d["accepting"] = allowed(eos)
            if wall() > deadline:
                cut = True
                break
    finally:
        gc.enable()
    if saved:
        np.savez_compressed(result_path + ".masks.npz", hashes=np.array(list(saved)),
                            masks=np.stack(list(saved.values())))
        res["masks_file"] = result_path + ".masks.npz"
    res.update(status="ok", cut=cut, docs_walked=len(per_doc), step_us=[round(x, 3) for x in steps],
               fill_us=[round(x, 3) for x in fills], consume_us=[round(x, 3) for x in consumes],
               per_doc=per_doc)
    dump()
    return 0


# ----------------------------------------------------------------------------------------------
# Parent side
# ----------------------------------------------------------------------------------------------


def run_pair(engine: str, grammar: str, spec: dict, docs: list[dict], args, tmp: Path, log) -> dict:
    job = tmp / f"{grammar}-{engine}.job.json"
    out = tmp / f"{grammar}-{engine}.result.json"
    job.write_text(json.dumps({"grammar": grammar, "spec": spec, "repeats": args.repeats,
                               "budget_s": args.budget, "docs": [{"ids": d["ids"]} for d in docs]}),
                   encoding="utf-8")
    log.write(f"==== {engine} / {grammar}\n")
    log.flush()
    t0 = time.monotonic()
    proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--worker", engine,
                             str(job), str(out)], stdout=log, stderr=subprocess.PIPE, cwd=REPO,
                            env={**os.environ, **THREADS})
    # the worker's stderr goes to the terminal (its progress bar) and to the log
    import threading

    def pump():
        for chunk in iter(lambda: proc.stderr.read1(4096), b""):
            text = chunk.decode("utf-8", "replace")
            sys.stderr.write(text)
            sys.stderr.flush()
            if "\r" not in text:  # progress-bar redraws stay out of the log
                log.write(text)
        proc.stderr.close()

    th = threading.Thread(target=pump, daemon=True)
    th.start()
    try:
        proc.wait(timeout=args.timeout)
        status = None
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        status = f"timeout (killed after {args.timeout:g} s)"
    th.join(5)
    res = json.loads(out.read_text(encoding="utf-8")) if out.exists() else {"status": "crashed"}
    if status:
        res["error"] = status + (f"; had reached: {res['status']}" if res.get("status") else "")
        res["status"] = "timeout"
    elif proc.returncode and res.get("status") != "ok":
        res.setdefault("error", f"worker exited {proc.returncode}")
        if res.get("status") in ("starting", "compiled"):
            res["status"] = "crashed"
    res["wall_s"] = time.monotonic() - t0
    return res


def pct(xs, q) -> float:
    return float(np.percentile(np.asarray(xs, dtype=float), q)) if len(xs) else float("nan")


def med(xs) -> float:
    return float(np.median(xs)) if xs else float("nan")


def fmt(x: float) -> str:
    if x is None or not math.isfinite(x):
        return "—"
    if x >= 100:
        return f"{x:,.0f}"
    return f"{x:.3g}"


def _load_masks(r: dict) -> dict[str, np.ndarray]:
    f = r.get("masks_file")
    if not f or not Path(f).exists():
        return {}
    with np.load(f) as z:
        return dict(zip(z["hashes"].tolist(), z["masks"]))


def _bits(words: np.ndarray) -> np.ndarray:
    return np.unpackbits(np.ascontiguousarray(words).view(np.uint8), bitorder="little").astype(bool)


def analyse(grammars: list[str], engines: list[str], docs: dict, results: dict, vocab_decode, log) -> dict:
    """Per grammar and engine: summary numbers, refused tokens, and agreement of mask fingerprints."""
    summary: dict = {}
    refusals: list[str] = []  # a document's token refused: the disagreements that matter
    mask_lines: list[str] = []  # masks differing between engines: language and lexer differences
    for g in grammars:
        summary[g] = {}
        for e in engines:
            r = results[g][e]
            s: dict[str, Any] = {"status": r.get("status"), "error": r.get("error", "")}
            if r.get("compile_ms"):
                s.update(compile_ms=med(r["compile_ms"]), ttfm_ms=med(r["ttfm_ms"]),
                         first_compile_ms=r["compile_ms"][0], first_ttfm_ms=r["ttfm_ms"][0])
            if r.get("status") == "ok":
                st = r["step_us"]
                s.update(steps=len(st), p50=pct(st, 50), p99=pct(st, 99), max=max(st) if st else math.nan,
                         fill_p50=pct(r["fill_us"], 50), fill_p99=pct(r["fill_us"], 99),
                         consume_p50=pct(r["consume_us"], 50), cut=r["cut"], docs_walked=r["docs_walked"])
                pd = r["per_doc"]
                s["refused_mask"] = sum(1 for d in pd for x in d["refused"] if x["kind"] == "mask")
                s["docs_stopped"] = sum(1 for d in pd if "stopped" in d)
                s["docs_not_accepting"] = sum(1 for d in pd if d.get("accepting") is False)
                s["docs_clean"] = sum(1 for d in pd if not d["refused"] and d.get("accepting"))
                for i, d in enumerate(pd):
                    doc = docs[g][i]
                    by_step: dict[int, list[dict]] = {}
                    for x in d["refused"]:
                        by_step.setdefault(x["step"], []).append(x)
                    for step, xs in list(by_step.items())[:3]:
                        pre = vocab_decode(doc["ids"][:step])[-40:]
                        what = "; ".join("not in the mask" if x["kind"] == "mask" else f"consume refused: {x['error']}"
                                         for x in xs)
                        refusals.append(f"[{g}] {e} {doc['name']} step {step}: token {xs[0]['token']} "
                                        f"{vocab_decode([xs[0]['token']])!r} after {pre!r}: {what}")
                    if d.get("accepting") is False:
                        refusals.append(f"[{g}] {e} {doc['name']}: EOS not allowed at the end of the document")
            summary[g][e] = s
        # masks compared with the first engine that walked (tether if it did): fingerprints of the
        # regular ids (special ids left out), on the steps both engines reached
        walked = [e for e in engines if results[g][e].get("status") == "ok"]
        if len(walked) >= 2:
            ref = walked[0]
            for e in walked[1:]:
                same = total = eos_diff = 0
                fewer = more = 0
                examples = []
                for i, (a, b) in enumerate(zip(results[g][ref]["per_doc"], results[g][e]["per_doc"])):
                    for s, (fa, fb) in enumerate(zip(a["fp"], b["fp"])):
                        total += 1
                        same += fa[1] == fb[1]
                        eos_diff += fa[2] != fb[2]
                        if fa[1] != fb[1]:
                            fewer += fb[0] < fa[0]
                            more += fb[0] > fa[0]
                            if len(examples) < 4 and all(x[1] != fa[1] or x[2] != fb[1] for x in examples):
                                examples.append((i, s, fa[1], fb[1], fa[0], fb[0]))
                summary[g][e]["vs"] = ref
                summary[g][e]["masks_compared"] = total
                summary[g][e]["masks_same"] = same
                summary[g][e]["masks_fewer"] = fewer
                summary[g][e]["masks_more"] = more
                summary[g][e]["eos_diff"] = eos_diff
                ma, mb = _load_masks(results[g][ref]), _load_masks(results[g][e])
                for i, s, ha, hb, pa, pb in examples:
                    line = (f"[{g}] mask differs: {docs[g][i]['name']} step {s}, after "
                            f"{vocab_decode(docs[g][i]['ids'][:s])[-30:]!r}: {ref} allows {pa:,} tokens, {e} {pb:,}")
                    if ha in ma and hb in mb:
                        a, b = _bits(ma[ha]), _bits(mb[hb])
                        show = lambda ts: ", ".join(repr(vocab_decode([int(t)])) for t in ts[:10]) + (
                            ", ..." if len(ts) > 10 else "")
                        only_a, only_b = np.flatnonzero(a & ~b), np.flatnonzero(b & ~a)
                        line += (f"\n    only {ref} ({only_a.size:,}): {show(only_a)}"
                                 f"\n    only {e} ({only_b.size:,}): {show(only_b)}")
                    mask_lines.append(line)
    log.write("# Document tokens refused (path token not in the mask, consume refused, EOS refused at the end)\n")
    log.write("\n".join(refusals) + "\n" if refusals else "none\n")
    log.write("\n# Masks that differ from the reference engine's (examples, up to 4 per grammar and engine)\n")
    log.write("\n".join(mask_lines) + "\n" if mask_lines else "none\n")
    log.flush()
    summary["_refusals"] = refusals
    return summary


def tables(summary: dict, grammars: list[str], engines: list[str]) -> list[str]:
    out = []

    def table(title: str, cell) -> None:
        out.extend([f"### {title}", "", "| grammar | " + " | ".join(engines) + " |",
                    "|---|" + "---|" * len(engines)])
        for g in grammars:
            out.append(f"| {g} | " + " | ".join(cell(summary[g][e]) for e in engines) + " |")
        out.append("")

    def guard(f):
        def cell(s):
            if s.get("status") not in ("ok", "compiled") and "compile_ms" not in s:
                return s.get("status") or "—"
            return f(s)
        return cell

    table("compile (CPU ms): median of the repeats (the first one)",
          guard(lambda s: f"{fmt(s.get('compile_ms', math.nan))} ({fmt(s.get('first_compile_ms', math.nan))})"))
    table("compile + first mask (CPU ms): median of the repeats (the first one)",
          guard(lambda s: f"{fmt(s.get('ttfm_ms', math.nan))} ({fmt(s.get('first_ttfm_ms', math.nan))})"))
    table("time between masks, consume + fill: p50 (CPU µs)", guard(lambda s: fmt(s.get("p50", math.nan))))
    table("time between masks, consume + fill: p99 (CPU µs)", guard(lambda s: fmt(s.get("p99", math.nan))))
    table("time between masks, consume + fill: max (CPU µs)", guard(lambda s: fmt(s.get("max", math.nan))))
    table("mask fill alone: p50 / p99 (CPU µs)",
          guard(lambda s: f"{fmt(s.get('fill_p50', math.nan))} / {fmt(s.get('fill_p99', math.nan))}"))
    table("steps timed; documents walked clean (every token allowed, EOS allowed at the end)",
          guard(lambda s: f"{s.get('steps', 0):,}; {s.get('docs_clean', 0)} of {s.get('docs_walked', 0)}"
                + (" (cut)" if s.get("cut") else "")))
    table("disagreements with the documents: path tokens not in the mask / documents refused part-way / "
          "not accepting at the end",
          guard(lambda s: f"{s.get('refused_mask', 0)} / {s.get('docs_stopped', 0)} / {s.get('docs_not_accepting', 0)}"))
    if any("vs" in summary[g][e] for g in grammars for e in engines):
        table("masks identical to the reference engine's (regular ids), of compared; "
              "differing masks with fewer / more tokens; EOS bit differs",
              lambda s: (f"vs {s['vs']}: {s['masks_same']:,} of {s['masks_compared']:,}; "
                         f"{s['masks_fewer']:,} / {s['masks_more']:,}; {s['eos_diff']}")
              if "vs" in s else ("reference" if s.get("status") == "ok" else "—"))
    return out


def plot(summary: dict, grammars: list[str], engines: list[str], path: Path) -> bool:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    panels = [("compile (CPU ms)", "compile_ms"), ("compile + first mask (CPU ms)", "ttfm_ms"),
              ("time between masks p50 (CPU µs)", "p50"), ("time between masks p99 (CPU µs)", "p99")]
    fig, axes = plt.subplots(2, 2, figsize=(12, 9))
    axes = axes.ravel()
    x = np.arange(len(grammars))
    width = 0.8 / len(engines)
    for ax, (title, key) in zip(axes, panels):
        for k, e in enumerate(engines):
            vals = [summary[g][e].get(key, math.nan) for g in grammars]
            bars = ax.bar(x + (k - (len(engines) - 1) / 2) * width, vals, width, label=e, color=COLORS.get(e))
            for b, v in zip(bars, vals):
                if math.isfinite(v):
                    ax.annotate(fmt(v), (b.get_x() + b.get_width() / 2, v), ha="center", va="bottom",
                                fontsize=7, rotation=90, xytext=(0, 2), textcoords="offset points")
        ax.set_xticks(x)
        ax.set_xticklabels(grammars)
        ax.set_yscale("log")
        ax.set_title(title, fontsize=10)
        ax.grid(axis="y", which="both", alpha=0.3)
        ax.margins(y=0.25)
    axes[0].legend(fontsize=8)
    fig.suptitle("CFG constraints on the Llama-3 vocabulary, one thread, real token paths — lower is better")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--engines", default=",".join(ENGINES), help="comma-separated, of " + ",".join(ENGINES))
    ap.add_argument("--grammars", default=",".join(GRAMMARS), help="comma-separated, of " + ",".join(GRAMMARS))
    ap.add_argument("--limit", type=int, default=0, help="at most N documents per grammar (default: all)")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "out" / "grammars")
    ap.add_argument("--repeats", type=int, default=3, help="fresh compiles per grammar and engine (default 3)")
    ap.add_argument("--sql-docs", type=int, default=200, help="Spider queries walked (default 200)")
    ap.add_argument("--sql-coverage", type=int, default=1000,
                    help="Spider queries (unique) checked with Lark's Earley parser, a fixed-seed "
                         "sample; 0 = all 4,713 (~4 min; cached in --out either way). Default 1000")
    ap.add_argument("--arith-docs", type=int, default=40, help="generated expressions (default 40)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--budget", type=float, default=60.0,
                    help="wall seconds of document walking per grammar and engine; past it the walk "
                         "stops and keeps what it timed (default 60)")
    ap.add_argument("--timeout", type=float, default=240.0,
                    help="wall seconds per grammar and engine worker, everything included (default 240)")
    ap.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        return worker_main(*args.worker)
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    grammars = [g.strip() for g in args.grammars.split(",") if g.strip()]
    for e in engines:
        if e not in ENGINES:
            ap.error(f"unknown engine {e!r} (of {', '.join(ENGINES)})")
    for g in grammars:
        if g not in GRAMMARS:
            ap.error(f"unknown grammar {g!r} (of {', '.join(GRAMMARS)})")
    read_tokenizer_json()  # exits with a message when the tokenizer is missing
    args.out.mkdir(parents=True, exist_ok=True)
    t_start = time.monotonic()

    docs, extra = build_documents(args, grammars)
    for g in grammars:
        n_tok = [len(d["ids"]) for d in docs[g]]
        print(f"{g}: {len(n_tok)} documents, {sum(n_tok):,} tokens (p50 {med(n_tok):.0f}, max {max(n_tok)})",
              file=sys.stderr)
    if "sql_coverage" in extra:
        c = extra["sql_coverage"]
        print(f"sql: Lark {c['lark']} Earley parses {c['parsed']:,} of {c['checked']:,} Spider gold queries "
              f"checked ({100 * c['parsed'] / max(1, c['checked']):.1f}%; {c['unique']:,} unique of "
              f"{c['lines']:,} lines)", file=sys.stderr)

    specs = {g: grammar_specs(g) for g in grammars}
    wlog = open(args.out / "grammars-workers.log", "w", encoding="utf-8")
    results: dict[str, dict[str, dict]] = {g: {} for g in grammars}
    with tempfile.TemporaryDirectory(prefix="grammars-bench-") as tmpd:
        tmp = Path(tmpd)
        for g in grammars:
            for e in engines:
                r = run_pair(e, g, specs[g][e], docs[g], args, tmp, wlog)
                results[g][e] = r
                line = f"[{g} / {e}] {r.get('status')}"
                if r.get("compile_ms"):
                    line += f": compile {med(r['compile_ms']):,.2f} ms, +first mask {med(r['ttfm_ms']):,.2f} ms"
                if r.get("status") == "ok" and r["step_us"]:
                    line += (f", mask p50 {pct(r['step_us'], 50):.1f} / p99 {pct(r['step_us'], 99):.1f} µs "
                             f"over {len(r['step_us']):,} steps")
                    bad = sum(len(d["refused"]) for d in r["per_doc"])
                    if bad:
                        line += f", {bad} refused tokens"
                if r.get("error"):
                    line += f" ({r['error'][:200]})"
                print(line + f"  [{time.monotonic() - t_start:,.0f} s]", file=sys.stderr, flush=True)
        wlog.close()

        import tokenizers
        tok = tokenizers.Tokenizer.from_str(read_tokenizer_json())
        decode = lambda ids: tok.decode(ids, skip_special_tokens=False)
        alog = open(args.out / "grammars-disagreements.log", "w", encoding="utf-8")
        summary = analyse(grammars, engines, docs, results, decode, alog)
        alog.close()
    refusals = summary.pop("_refusals")
    elapsed = time.monotonic() - t_start

    versions = {e: next((results[g][e].get("version") for g in grammars if results[g][e].get("version")), "")
                for e in engines}
    lines = ["## Context-free grammars: compile and mask times", ""]
    lines.append(f"- vocabulary: Llama-3 BPE (128,256 ids); engines: "
                 + ", ".join(f"{e} {versions[e]}".strip() for e in engines)
                 + f"; Python {platform.python_version()}, {platform.machine()}; one thread each, its own "
                 "process per grammar, CPU time (`time.process_time`).")
    for g in grammars:
        n_tok = [len(d["ids"]) for d in docs[g]]
        by: dict[str, list[str]] = {}
        for e in engines:
            by.setdefault(f"{specs[g][e]['format']}, {specs[g][e]['source']}", []).append(e)
        srcs = "; ".join(f"{', '.join(es)}: {src}" for src, es in by.items())
        lines.append(f"- **{g}**: {len(docs[g])} documents, {sum(n_tok):,} tokens (real Llama-3 tokenizer). "
                     f"Grammar — {srcs}.")
    if "sql_coverage" in extra:
        c = extra["sql_coverage"]
        lines.append(f"- SQL grammar coverage: Lark {c['lark']} Earley parses {c['parsed']:,} of {c['checked']:,} "
                     f"Spider gold queries checked ({100 * c['parsed'] / max(1, c['checked']):.1f}%; "
                     f"{c['unique']:,} unique queries in {c['lines']:,} lines"
                     + ("" if c["checked"] == c["unique"] else "; a fixed-seed sample, `--sql-coverage 0` for all")
                     + ")." + (" Failures: " + "; ".join(f"`{f['query'][:80]}`" for f in c["failed"][:3])
                              if c["failed"] else ""))
    lines.append(f"- compile: median of {args.repeats} fresh compiles after a warm-up on a throwaway grammar; "
                 "time between masks: consume the document's token + fill the next mask, every step of every "
                 "document on one compiled object (documents one after the other, the state reset between).")
    lines.append(f"- wall time of this run: {elapsed / 60:.1f} min.")
    lines.append("")
    lines += tables(summary, grammars, engines)
    fails = [(g, e, summary[g][e]["error"]) for g in grammars for e in engines if summary[g][e].get("error")]
    if fails:
        lines += ["Failures:", ""] + [f"- {g} / {e}: {err}" for g, e, err in fails] + [""]
    lines.append(f"Document tokens refused by an engine: {len(refusals)}" + (":" if refusals else "."))
    lines += [f"- {x}" for x in refusals[:60]]
    if len(refusals) > 60:
        lines.append(f"- ... ({len(refusals) - 60} more in `grammars-disagreements.log`)")
    lines.append("")
    lines.append("Examples of masks differing between engines (token lists): `grammars-disagreements.log`.")
    text = "\n".join(lines) + "\n"
    print(text)
    (args.out / "grammars.md").write_text(text, encoding="utf-8")

    blob = {"args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k != "worker"},
            "versions": versions, "extra": extra, "elapsed_s": elapsed,
            "grammars": {g: {"documents": [{"name": d["name"], "tokens": len(d["ids"])} for d in docs[g]],
                             "specs": {e: {k: v for k, v in specs[g][e].items()} for e in engines},
                             "summary": summary[g],
                             "raw": {e: {k: v for k, v in results[g][e].items() if k not in ("per_doc", "masks_file")}
                                     for e in engines}}
                          for g in grammars}}
    (args.out / "grammars.json").write_text(json.dumps(blob), encoding="utf-8")
    plotted = plot(summary, grammars, engines, args.out / "grammars.png")
    print(f"written: {args.out / 'grammars.md'}, grammars.json" + (", grammars.png" if plotted else "")
          + ", grammars-disagreements.log, grammars-workers.log", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
