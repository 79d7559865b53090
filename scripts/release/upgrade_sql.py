#!/usr/bin/env python3
"""Writes the upgrade script to the version being built, sql/qwen3_embed--FROM--TO.sql.

Every routine, view, grant and comment is written once, in sql/*.sql (the files src/lib.rs
includes, in its order). The upgrade script is made of
  1. sql/upgrade/FROM--TO.sql, by hand: what those files cannot say about an existing
     installation (objects dropped or whose result type changed, columns added to a table that
     FROM already had, the C functions pgrx declares);
  2. every statement of sql/*.sql, with CREATE FUNCTION / PROCEDURE / VIEW turned into
     CREATE OR REPLACE, less the CREATE TABLE / POLICY / INDEX / SEQUENCE / SCHEMA of objects the
     released FROM install script (sql/qwen3_embed--FROM.sql) or the hand-written part already
     creates (or renames a table to).

    python3 scripts/release/upgrade_sql.py          # write it
    python3 scripts/release/upgrade_sql.py --check  # fail when the committed file differs (CI)

FROM is the newest released install script in sql/; TO is the crate's version. An upgrade
script to an older version is frozen once that version is released and is not rewritten.
tests/sql/upgrade.sql checks that the result has exactly a fresh install's objects.
"""
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
SQL = ROOT / "sql"


def crate_version():
    text = (ROOT / "Cargo.toml").read_text()
    m = re.search(r'^\[package\][^\[]*?^version\s*=\s*"([^"]+)"', text, re.S | re.M)
    if not m:
        sys.exit("upgrade_sql.py: no [package] version in Cargo.toml")
    return m.group(1)


def released_version(to):
    """The newest sql/qwen3_embed--X.sql (a full install script) older than `to`."""
    key = lambda v: tuple(int(p) for p in v.split("."))
    found = [
        m.group(1)
        for p in SQL.glob("qwen3_embed--*.sql")
        if (m := re.fullmatch(r"qwen3_embed--(\d+\.\d+\.\d+)\.sql", p.name))
        and key(m.group(1)) < key(to)
    ]
    if not found:
        sys.exit(f"upgrade_sql.py: no released install script older than {to} in sql/")
    return max(found, key=key)


def source_files():
    """sql/*.sql in the order src/lib.rs includes them (that order satisfies their requires)."""
    lib = (ROOT / "src" / "lib.rs").read_text()
    names = re.findall(r'extension_sql_file!\(\s*"\.\./sql/([a-z_]+\.sql)"', lib)
    if not names:
        sys.exit("upgrade_sql.py: no extension_sql_file! in src/lib.rs")
    return names


def statements(text):
    """(leading comment lines, statement) pairs, and the text after the last statement.

    Splits on semicolons outside quotes, quoted identifiers, dollar quotes and comments."""
    out = []
    i, start, n = 0, 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("--", i):
            j = text.find("\n", i)
            i = n if j < 0 else j + 1
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            i = n if j < 0 else j + 2
        elif c in "'\"":
            j = i + 1
            while j < n:
                if text[j] == c:
                    if j + 1 < n and text[j + 1] == c:
                        j += 2
                        continue
                    break
                j += 1
            i = j + 1
        elif c == "$" and (m := re.match(r"\$([A-Za-z_][A-Za-z_0-9]*)?\$", text[i:])):
            tag = m.group(0)
            j = text.find(tag, i + len(tag))
            if j < 0:
                sys.exit(f"upgrade_sql.py: unterminated {tag}")
            i = j + len(tag)
        elif c == ";":
            chunk = text[start : i + 1]
            lead, stmt = split_lead(chunk)
            out.append((lead, stmt))
            i += 1
            if text.startswith("\n", i):
                i += 1
            start = i
        else:
            i += 1
    return out, text[start:]


def split_lead(chunk):
    """The comment and blank lines before a statement, and the statement."""
    lines = chunk.split("\n")
    k = 0
    while k < len(lines) - 1 and (not lines[k].strip() or lines[k].lstrip().startswith("--")):
        k += 1
    return "\n".join(lines[:k]), "\n".join(lines[k:])


CREATES = re.compile(
    r"CREATE\s+(TABLE|POLICY|INDEX|UNIQUE\s+INDEX|SEQUENCE|TYPE|SCHEMA)\s+(?:IF\s+NOT\s+EXISTS\s+)?"
    r"(?:(?:@extschema@|qwen3_embed)\.)?\"?([A-Za-z_0-9]+)\"?",
    re.I,
)
RENAMES = re.compile(r"ALTER\s+(TABLE)\s+\S+\s+RENAME\s+TO\s+\"?([A-Za-z_0-9]+)\"?", re.I)


def bare(stmt):
    """The statement without the comments before it."""
    return re.sub(r"\A(?:\s+|--[^\n]*\n|/\*.*?\*/)*", "", stmt, flags=re.S)


def creates(stmt):
    m = CREATES.match(bare(stmt))
    return m and (m.group(1).split()[-1].upper(), m.group(2))


def created(text):
    """The tables, policies, indexes, sequences, types and schemas a script creates, by name, and
    the tables it renames (under their new names)."""
    found = set()
    for _, stmt in statements(text)[0]:
        if c := creates(stmt):
            found.add(c)
        elif m := RENAMES.match(bare(stmt)):
            found.add((m.group(1).upper(), m.group(2)))
    return found


def replaceable(stmt):
    return re.sub(
        r"^CREATE\s+(FUNCTION|PROCEDURE|VIEW)\b", r"CREATE OR REPLACE \1", stmt, flags=re.I
    )


def generate():
    to = crate_version()
    frm = released_version(to)
    head_path = SQL / "upgrade" / f"{frm}--{to}.sql"
    if not head_path.exists():
        sys.exit(f"upgrade_sql.py: {head_path.relative_to(ROOT)} is missing (write it by hand)")
    existing = created((SQL / f"qwen3_embed--{frm}.sql").read_text()) | created(head_path.read_text())
    parts = [
        f"-- GENERATED by scripts/release/upgrade_sql.py from sql/upgrade/{frm}--{to}.sql and\n"
        f"-- sql/*.sql: edit those, then run it again (CI fails when this file differs).\n",
        head_path.read_text().rstrip("\n") + "\n",
    ]
    for name in source_files():
        stmts, tail = statements((SQL / name).read_text())
        body = []
        for lead, stmt in stmts:
            if creates(stmt) in existing:
                continue
            body.append((lead + "\n" if lead else "") + replaceable(stmt) + "\n")
        tail = tail.strip("\n")
        parts.append(
            f"\n-- ==== sql/{name} " + "=" * max(0, 86 - len(name)) + "\n"
            + "".join(body)
            + (tail + "\n" if tail else "")
        )
    return SQL / f"qwen3_embed--{frm}--{to}.sql", "".join(parts)


def main():
    path, text = generate()
    rel = path.relative_to(ROOT)
    if sys.argv[1:] == ["--check"]:
        if not path.exists() or path.read_text() != text:
            sys.exit(
                f"{rel} is not what scripts/release/upgrade_sql.py makes from sql/: edit sql/*.sql "
                "or sql/upgrade/, then run python3 scripts/release/upgrade_sql.py"
            )
        print(f"{rel} is up to date")
    elif not sys.argv[1:]:
        path.write_text(text)
        print(f"wrote {rel}")
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
