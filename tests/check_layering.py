#!/usr/bin/env python3
"""check_layering.py - no circle of files in a source folder.

    check_layering.py DIR [DIR...]
    check_layering.py --self-test    (the check finds a circle it is shown)

A module is a pair NAME.c / NAME.h. Module A depends on module B when
A.c or A.h includes "B.h" (quotes: the project's own headers). The check
fails, naming the circle, when some module depends on itself through
others (a.c includes b.h and b.c includes a.h is the smallest one).
Exit status 0 when there is none, 1 otherwise.
"""
import os
import re
import sys

INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def graph(folder):
    deps = {}
    for f in sorted(os.listdir(folder)):
        stem, ext = os.path.splitext(f)
        if ext not in (".c", ".h"):
            continue
        with open(os.path.join(folder, f), encoding="utf-8") as fh:
            text = fh.read()
        for inc in INCLUDE.findall(text):
            target = os.path.splitext(os.path.basename(inc))[0]
            if "/" in inc or target == stem:
                continue  # another folder's header (aec/...), or its own
            if os.path.exists(os.path.join(folder, target + ".h")):
                deps.setdefault(stem, set()).add(target)
        deps.setdefault(stem, set())
    return deps


def find_cycle(deps):
    state, stack = {}, []

    def visit(n):
        state[n] = 1
        stack.append(n)
        for m in sorted(deps.get(n, ())):
            if state.get(m) == 1:
                return stack[stack.index(m):] + [m]
            if state.get(m) is None:
                c = visit(m)
                if c:
                    return c
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(deps):
        if state.get(n) is None:
            c = visit(n)
            if c:
                return c
    return None


def self_test():
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        files = {"a.h": "", "a.c": '#include "a.h"\n#include "b.h"\n', "b.h": "",
                 "b.c": '#include "c.h"\n', "c.h": '#include "a.h"\n', "c.c": ""}
        for name, text in files.items():
            with open(os.path.join(d, name), "w", encoding="utf-8") as fh:
                fh.write(text)
        cycle = find_cycle(graph(d))
        if cycle != ["a", "b", "c", "a"]:
            print(f"self-test: expected the circle a -> b -> c -> a, got {cycle}", file=sys.stderr)
            return 1
        os.remove(os.path.join(d, "c.h"))
        open(os.path.join(d, "c.h"), "w").close()
        if find_cycle(graph(d)):
            print("self-test: a circle reported where there is none", file=sys.stderr)
            return 1
    print("self-test: ok")
    return 0


def main(argv):
    if argv[1:] == ["--self-test"]:
        return self_test()
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    status = 0
    for folder in argv[1:]:
        cycle = find_cycle(graph(folder))
        if cycle:
            print(f"{folder}: circle of files: {' -> '.join(cycle)}", file=sys.stderr)
            status = 1
        else:
            print(f"{folder}: no circle of files")
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv))
