#!/usr/bin/env python3
"""The include rules of core/, checked: `make layers` (part of `make test`).

core/ is split into subsystem folders that depend on each other one way, bottom to top:

    util < proto < config < store < net < auth, relay < policy < smtp < daemon < cmd < dev

A file may include headers of its own folder and of folders below it; folders on one
level (auth, relay) do not include each other. Each folder's README.md says what it
owns and what it may call; LAYERS below is the machine-readable half of that.

Two checks, both over `#include "folder/file.h"` lines:
1. no upward (or sideways) edge between folders;
2. no cycle between files, where x.c and x.h count as one unit "x" (a cycle of headers
   hides behind a .c file otherwise; x_internal.h belongs to x as well).
Exit status 1 names every offending edge and one file path per cycle.

tests/layers/known.txt, while it exists, lists problems being worked off (one per line,
as printed, without the :line): those pass; any other problem fails, and so does a line
of known.txt that no longer matches (the list only shrinks).
"""
import os
import re
import sys

LAYERS = [
    ['util'], ['proto'], ['config'], ['store'], ['net'], ['auth', 'relay'],
    ['policy'], ['smtp'], ['daemon'], ['cmd'], ['dev'],
]
RANK = {folder: i for i, level in enumerate(LAYERS) for folder in level}
INCLUDE = re.compile(r'^\s*#\s*include\s+"([a-z_]+)/([a-z_0-9]+)\.h"', re.M)


def units(core):
    """{unit: (folder, [(target folder, target unit, path, line)])} for core/*/*.[ch]."""
    out = {}
    for folder in sorted(os.listdir(core)):
        path = os.path.join(core, folder)
        if not os.path.isdir(path):
            continue
        if folder not in RANK:
            sys.exit('check_layers: core/%s/ is in no layer: add it to LAYERS' % folder)
        for name in sorted(os.listdir(path)):
            if not name.endswith(('.c', '.h')):
                continue
            unit = name[:-2]
            if unit.endswith('_internal'):  # x_internal.h: x's folder-private half
                unit = unit[:-len('_internal')]
            _, edges = out.setdefault(unit, (folder, []))
            text = open(os.path.join(path, name)).read()
            for m in INCLUDE.finditer(text):
                line = text.count('\n', 0, m.start()) + 1
                edges.append((m.group(1), m.group(2), 'core/%s/%s' % (folder, name), line))
    return out


def upward_edges(graph):
    bad = []
    for unit, (folder, edges) in graph.items():
        for tfolder, tunit, path, line in edges:
            if tfolder not in RANK:
                bad.append('%s:%d: includes %s/%s.h: no such folder' % (path, line, tfolder, tunit))
            elif tfolder != folder and RANK[tfolder] >= RANK[folder]:
                bad.append('%s:%d: %s/ includes %s/%s.h, which is not below it'
                           % (path, line, folder, tfolder, tunit))
    return bad


def cycles(graph):
    """Tarjan's strongly connected components of size > 1 (or a unit including itself)."""
    index, low, stack, on, found = {}, {}, [], set(), []
    succ = {u: sorted({t for _, t, _, _ in e if t in graph and t != u}) for u, (_, e) in graph.items()}

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in succ[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def main():
    core = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(os.path.abspath(__file__)), '..', '..', 'core')
    graph = units(core)
    bad = upward_edges(graph)
    for comp in cycles(graph):
        bad.append('cycle of %d units: %s' % (len(comp), ' '.join(comp)))
    known = set()
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'known.txt')
    if os.path.exists(path):
        known = {l.strip() for l in open(path) if l.strip() and not l.startswith('#')}
    keys = {re.sub(r':\d+:', ':', b) for b in bad}
    fail = [b for b in bad if re.sub(r':\d+:', ':', b) not in known]
    fail += ['known.txt lists a problem that is gone, remove it: ' + k for k in sorted(known - keys)]
    for line in fail:
        print(line)
    n = sum(len(e) for _, e in graph.values())
    print('check_layers: %d units, %d includes, %d problems%s'
          % (len(graph), n, len(fail),
             ' (%d known, being worked off)' % len(known) if known else ''))
    return 1 if fail else 0


if __name__ == '__main__':
    sys.exit(main())
