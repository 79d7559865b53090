#!/usr/bin/env python3
"""Fails when the engine's modules import each other in a loop.

Reads every engine/src/**/*.rs, takes the `crate::...` and `super::...` paths each module names
(test modules at the end of a file left out) as edges to the module they resolve to, and prints
each strongly connected set of more than one module. A module's own children and parents are
not edges (Rust nests them). Run by scripts/lint.sh.
"""
import collections
import pathlib
import re
import sys

SRC = pathlib.Path(__file__).resolve().parent.parent / "engine" / "src"


def module_of(path: pathlib.Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] in ("mod", "lib"):
        parts = parts[:-1]
    return "::".join(parts)


def main() -> int:
    files = {module_of(p): p for p in SRC.rglob("*.rs")}
    names = sorted((n for n in files if n), key=len, reverse=True)

    def resolve(module: str, path: str):
        parts = path.split("::")
        if parts[0] == "crate":
            base, parts = [], parts[1:]
        else:
            base = module.split("::")[:-1] if module else []
            parts = parts[1:]
            while parts and parts[0] == "super":
                base, parts = base[:-1], parts[1:]
        full = "::".join(base + parts)
        return next((n for n in names if full == n or full.startswith(n + "::")), None)

    graph = collections.defaultdict(set)
    for module, path in files.items():
        text = re.sub(r"#\[cfg\(test\)\]\s*(pub\(crate\)\s*)?mod tests\s*\{.*", "", path.read_text(), flags=re.S)
        refs = re.findall(r"\b((?:crate|super)(?:::\w+)+)", text)
        for base, group in re.findall(r"\b((?:crate|super)(?:::\w+)*)::\{([^;]*?)\}", text, flags=re.S):
            for item in group.split(","):
                item = item.strip().split("::{")[0].split(" as ")[0].strip("{} \n")
                refs.append(base if item == "self" else f"{base}::{item}" if item else base)
        for ref in refs:
            target = resolve(module, ref)
            related = module.startswith(target + "::") or target.startswith(module + "::") if target else True
            if module and target and target != module and not related:
                graph[module].add(target)

    index, low, stack, on, loops, counter = {}, {}, [], set(), [], [0]
    sys.setrecursionlimit(10_000)

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                loops.append(sorted(component))

    for v in list(files):
        if v not in index:
            visit(v)
    for loop in loops:
        print(f"engine import loop ({len(loop)} modules): {', '.join(loop)}")
    return 1 if loops else 0


if __name__ == "__main__":
    sys.exit(main())
