"""Grammar constraints: a grammar IR compiled once, on the engine its IR calls for, then bound
to any vocabulary.

    >>> g = tether.lark('start: "(" start ")" | "x"')
    >>> g.engine, g.matches("((x))")
    ('cfg', True)

The engine is chosen from the IR alone (see `tether.automata.rules`): a grammar whose start
rule takes part in no recursion is one regex and runs on the byte DFA path; any other runs on
the context-free engine (`tether.automata.earley`, `tether.automata.cfg`).
"""

from __future__ import annotations

from typing import Any, Callable

from ..errors import EmptyLanguage
from ..grammar.ir import GrammarIR
from ..limits import DEFAULT_LIMITS, Limits
from ..vocab import Vocabulary
from .cfg import CFGConstraint
from .constraint import Constraint
from .dfa import LazyDFA
from .earley import CFGAutomaton
from .index import DFAConstraint
from .rules import lower
from .stepping import PerVocabulary

__all__ = ["Grammar", "lark", "gbnf"]



class Grammar:
    """A grammar constraint, independent of any tokenizer.

    Its language is the strings that some derivation from the start rule spells, every way of
    splitting the text into terminals counting, with ignored terminals allowed between any two
    terminals and at both ends (what Lark's Earley parser with ``lexer="dynamic_complete"``
    accepts). `engine` is "dfa" or "cfg".
    """

    def __init__(self, ir: GrammarIR, *, limits: Limits | None = None,
                 parse: Callable[[str], Any] | None = None):
        self.ir = ir
        self.limits = limits or DEFAULT_LIMITS
        self.parse = parse
        tables = lower(ir, self.limits)
        if tables.regular_tree is not None:
            self.engine = "dfa"
            self._dfa = LazyDFA.from_tree(tables.regular_tree, self.limits)
            if self._dfa.is_empty:
                raise EmptyLanguage("the grammar derives no string, so nothing could be generated",
                                    source=ir.source or None)
            self._automaton = None
        else:
            self.engine = "cfg"
            self._dfa = None
            self._automaton = CFGAutomaton(tables, self.limits)
        self._compiled = PerVocabulary()

    def __repr__(self) -> str:
        return f"tether.Grammar({self.ir.name}, start={self.ir.start!r}, engine={self.engine!r})"

    def matches(self, text: str | bytes) -> bool:
        """Whether `text` is in the language (the reference the constraint is tested against).

        A context-free grammar parses `text` with an automaton of its own (sharing only the
        terminal DFAs), so a long text does not stay in the memory of the compiled constraints."""
        data = text.encode() if isinstance(text, str) else text
        if self._dfa is not None:
            return self._dfa.matches(data)
        return CFGAutomaton(self._automaton.tables, self.limits).matches(data)

    def compile(self, vocab: Vocabulary) -> Constraint:
        """Bind to a vocabulary; cached per vocabulary, so compiling again is free."""
        return self._compiled.get(vocab, lambda: self._bind(vocab))

    def _bind(self, vocab: Vocabulary) -> Constraint:
        source = self.ir.source[:200]
        if self._dfa is not None:
            return DFAConstraint(self._dfa, vocab, self.limits, source=source, parse=self.parse)
        return CFGConstraint(self._automaton, vocab, self.limits, source=source, parse=self.parse)


def lark(text: str, start: str = "start", *, import_paths: list[str] | None = None, source_path: str | None = None,
         limits: Limits | None = None, parse: Callable[[str], Any] | None = None) -> Grammar:
    """A constraint from a grammar in Lark's language (rules, terminals, %import, %ignore, templates).

        >>> g = tether.lark('start: NUMBER ("+" NUMBER)*\\n%import common.NUMBER')
        >>> g.matches("1+2.5")
        True

    Raises `GrammarError` (with the rule and line/column) for a grammar Lark rejects, an
    undefined rule or terminal, a rule that derives no string, or a `%declare`d terminal in use.
    """
    from ..grammar.lark import lark_to_ir

    ir = lark_to_ir(text, start, import_paths=import_paths, source_path=source_path)
    return Grammar(ir, limits=limits, parse=parse)


def gbnf(text: str, start: str = "root", *, limits: Limits | None = None,
         parse: Callable[[str], Any] | None = None) -> Grammar:
    """A constraint from a grammar in llama.cpp's GBNF.

        >>> g = tether.gbnf('root ::= [0-9]+ ("," [0-9]+)*')
        >>> g.engine
        'dfa'
    """
    from ..grammar.gbnf import gbnf_to_ir

    return Grammar(gbnf_to_ir(text, start), limits=limits, parse=parse)
