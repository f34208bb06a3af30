"""The `tether` command line: every command exits 0 with valid output, `--json` parses, and bad
input exits 2 with one line naming what and where, before (and without) loading a model."""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
import sys
import textwrap

import pytest

from tether.integrations.cli import main

from conftest import data_path

GPT2 = str(data_path("tokenizers", "gpt-2", "tokenizer.json.gz"))


def run_cli(*argv: str, cwd=None) -> tuple[int, str, str, bool]:
    """(exit status, stdout, stderr, whether torch was imported), in a fresh interpreter."""
    code = ("import sys; from tether.integrations.cli import main; rc = main(sys.argv[1:]); "
            "print('\\n@torch', 'torch' in sys.modules); sys.exit(rc)")
    done = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, cwd=cwd, timeout=300)
    out, marker, flag = done.stdout.rpartition("\n@torch ")
    if not marker:  # argparse exited first (--version, --help)
        return done.returncode, done.stdout, done.stderr, False
    return done.returncode, out, done.stderr, flag.strip() == "True"


@pytest.fixture()
def files(tmp_path):
    (tmp_path / "json.lark").write_text(textwrap.dedent('''
        start: value
        ?value: object | array | NUMBER | ESCAPED_STRING | "true" | "false" | "null"
        object: "{" [pair ("," pair)*] "}"
        pair: ESCAPED_STRING ":" value
        array: "[" [value ("," value)*] "]"
        %import common.NUMBER
        %import common.ESCAPED_STRING
    '''))
    (tmp_path / "list.gbnf").write_text('root ::= "[" item ("," item)* "]"\nitem ::= [0-9]{1,3}\n')
    (tmp_path / "user.json").write_text(json.dumps({
        "type": "object", "properties": {"name": {"type": "string", "maxLength": 8}, "age": {"type": "integer"}},
        "required": ["name", "age"]}))
    (tmp_path / "shapes.py").write_text(textwrap.dedent('''
        import dataclasses
        @dataclasses.dataclass
        class Point:
            x: int
            y: int
    '''))
    db = sqlite3.connect(tmp_path / "shop.sqlite")
    db.executescript("create table customer(id integer primary key, name text, city text);"
                     "insert into customer values (1, 'Ann', 'Paris');")
    db.commit()
    db.close()
    (tmp_path / "shop.sql").write_text("create table product(id integer primary key, price real);\n")
    return tmp_path


CONSTRAINTS = {
    "regex": ["--regex", r"(19|20)[0-9]{2}"],
    "schema": ["--schema", "user.json"],
    "type": ["--type", "shapes:Point"],
    "lark": ["--grammar", "json.lark"],
    "gbnf": ["--gbnf", "list.gbnf"],
    "sql": ["--sql", "shop.sqlite"],
    "ddl": ["--sql", "shop.sql"],
}


@pytest.mark.parametrize("kind", list(CONSTRAINTS))
def test_check_compiles_for_a_vocabulary_without_a_model(files, kind):
    rc, out, err, torch_loaded = run_cli("check", *CONSTRAINTS[kind], "--vocab", GPT2, "--json", cwd=files)
    assert rc == 0, err
    report = json.loads(out)
    assert report["vocabulary"] == 50257 and report["compile_seconds"] >= 0 and report["cache_bytes"] > 0
    assert report["states"] is None or report["states"] >= 1
    assert not torch_loaded  # no model (and not even torch) for a check


def test_check_prints_a_readable_report(files):
    rc, out, err, _ = run_cli("check", "--regex", "[a-z]+", "--vocab", GPT2, cwd=files)
    assert rc == 0 and out.startswith("ok: regex [a-z]+") and "cache memory" in out


@pytest.mark.parametrize("argv, what", [
    (["--regex", "(ab"], r"invalid regex at position 0: missing \)"),
    (["--regex", r"(a)\1"], r"backreference"),
    (["--schema", "bad.json"], r"invalid JSON Schema at /properties/age: .*'int'"),
    (["--schema", "missing.json"], r"cannot read the schema file missing.json"),
    (["--grammar", "bad.lark"], r"invalid grammar in rule 'start' line 1.*'b' is used but not defined"),
    (["--gbnf", "bad.gbnf"], r"gbnf|GBNF|rule"),
    (["--type", "shapes:Nope"], r"--type shapes:Nope: .*has no attribute 'Nope'"),
    (["--type", "nomodule:X"], r"cannot import 'nomodule'"),
    (["--sql", "nowhere.sqlite"], r"no database file at 'nowhere.sqlite'"),
    (["--sql", "bad.sql"], r"line 2"),
])
@pytest.mark.parametrize("command", ["generate", "check", "sample"])
def test_bad_constraints_exit_2_with_one_line_before_any_model(files, argv, what, command):
    (files / "bad.json").write_text(json.dumps({"type": "object", "properties": {"age": {"type": "int"}}}))
    (files / "bad.lark").write_text('start: "a" b\n')
    (files / "bad.gbnf").write_text('root ::= "a" missing\n')
    (files / "bad.sql").write_text("create table a(x int);\ncreate tabel b(y int);\n")
    prompt = ["a prompt"] if command == "generate" else []
    rc, out, err, torch_loaded = run_cli(command, *prompt, *argv, cwd=files)
    assert rc == 2 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tether: "), err
    assert re.search(what, lines[0]), lines[0]
    assert not torch_loaded


def test_options_are_checked_before_the_model_loads(files):
    rc, _, err, torch_loaded = run_cli("generate", "x", "--regex", "a", "--model", "no/such/folder", cwd=files)
    assert rc == 2 and "--model no/such/folder: no such file or folder" in err and not torch_loaded
    rc, _, err, _ = run_cli("generate", "x", "--regex", "a", "--n", "0", cwd=files)
    assert rc == 2 and "--n must be at least 1" in err


def test_every_option_has_help_and_version_prints():
    from tether.integrations.cli import parser

    top = parser()
    commands = top._subparsers._group_actions[0].choices  # noqa: SLF001 - argparse keeps them here
    assert set(commands) == {"demo", "generate", "check", "sample", "bench"}
    for name, sub in commands.items():
        for action in sub._actions:  # noqa: SLF001
            assert action.help, f"tether {name}: {action.option_strings or action.dest} has no help text"
    rc, out, _, _ = run_cli("--version")
    assert rc == 0 and re.fullmatch(r"tether \d+\.\d+\.\d+\s*", out)


def test_bench_reports_mask_times(files, capsys):
    assert main(["bench", "--regex", "[a-z]{1,8}@[a-z]{1,8}", "--vocab", GPT2, "--walks", "3", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["masks"] >= 3 and report["first_p50_us"] > 0 and report["steady_p50_us"] > 0


# ---------------------------------------------------------------- with the embedded model


@pytest.mark.model
@pytest.mark.parametrize("kind", ["regex", "schema", "type", "gbnf", "sql"])
def test_generate_json_output_is_in_the_language(files, kind, capsys, monkeypatch):
    import tether

    monkeypatch.chdir(files)
    prompts = {"regex": "What year did the Berlin Wall fall?", "schema": "Invent a user as JSON.",
               "type": "A point on the plane as JSON.", "gbnf": "List three small numbers.",
               "sql": "Write SQL: the names of customers in Paris."}
    rc = main(["generate", prompts[kind], *CONSTRAINTS[kind], "--json", "--max-tokens", "48"])
    record = json.loads(capsys.readouterr().out)
    assert rc == (0 if record["status"] == "complete" else 1)
    assert record["status"] == "complete", record
    spec = {"regex": tether.regex(CONSTRAINTS["regex"][1]), "schema": tether.json_schema((files / "user.json").read_text()),
            "gbnf": tether.gbnf((files / "list.gbnf").read_text()), "sql": tether.sql(db=files / "shop.sqlite")}.get(kind)
    if spec is not None:
        assert spec.matches(record["text"]), record
    if kind == "type":
        assert set(record["value"]) == {"x", "y"} and all(isinstance(v, int) for v in record["value"].values())


@pytest.mark.model
def test_generate_n_samples_are_a_json_list(files, capsys):
    rc = main(["generate", "Pick a year", "--regex", "(19|20)[0-9]{2}", "--sampler", "sample", "--seed", "3",
               "--n", "3", "--json"])
    records = json.loads(capsys.readouterr().out)
    assert rc == 0 and len(records) == 3
    assert all(re.fullmatch(r"(19|20)[0-9]{2}", r["text"]) and r["status"] == "complete" for r in records)


@pytest.mark.parametrize("kind", ["regex", "schema", "lark", "gbnf", "ddl"])
def test_sample_draws_members_without_a_model(files, kind):
    import tether

    rc, out, err, torch_loaded = run_cli("sample", *CONSTRAINTS[kind], "-n", "5", "--seed", "1", "--json", cwd=files)
    assert rc == 0, err
    texts = json.loads(out)
    assert len(texts) == 5 and not torch_loaded
    spec = {"regex": lambda: tether.regex(CONSTRAINTS["regex"][1]),
            "schema": lambda: tether.json_schema((files / "user.json").read_text()),
            "lark": lambda: tether.lark((files / "json.lark").read_text()),
            "gbnf": lambda: tether.gbnf((files / "list.gbnf").read_text()),
            "ddl": lambda: tether.sql(ddl=(files / "shop.sql").read_text())}[kind]()
    assert all(spec.matches(t) for t in texts), texts
    again = run_cli("sample", *CONSTRAINTS[kind], "-n", "5", "--seed", "1", "--json", cwd=files)[1]
    assert json.loads(again) == texts  # a seed replays
