#!/bin/sh
# layering — the include graph of the sources follows doc/architecture.md:
# every #include "..." of a file in one folder names a header of the same
# folder or of a folder below it, so the dependencies point one way and no
# two folders include each other; and no header includes itself through
# others (no include cycle). Headers are included by their bare names, so a
# name maps to one folder; two headers of the same name are refused too.
#
# The check is shown to fail: a copy of the tree with one include turned the
# wrong way (the model including the trainer) must be refused.
. "$TESTS_SRCDIR/lib.sh"

top=$(cd "$TESTS_SRCDIR/.." && pwd)

check_tree() { # DIR — prints each violation; exit status 1 if any
  python3 - "$1" <<'EOF'
import os, re, sys
top = sys.argv[1]
# folder -> the folders its files may include from (besides its own)
parallel = ["parallel/comm", "parallel/zero", "parallel/pipeline", "parallel/sequence"]
below = {
    "kernels": [],
    "io": ["kernels"],
    "parallel/comm": ["kernels"],
    "parallel/zero": ["parallel/comm", "kernels"],
    "parallel/pipeline": ["parallel/comm", "kernels"],
    "parallel/sequence": ["parallel/comm", "kernels"],
    "src/model": parallel + ["io", "kernels"],
    "src/optim": ["src/model"] + parallel + ["io", "kernels"],
    "src/checkpoint": ["src/optim", "src/model"] + parallel + ["io", "kernels"],
    "src/convert": ["src/checkpoint", "src/optim", "src/model"] + parallel + ["io", "kernels"],
    "src/config": ["src/model", "kernels"],
    "src/train": ["src/convert", "src/checkpoint", "src/config", "src/optim", "src/model"] + parallel + ["io", "kernels"],
    # the planner sizes runs with train's own rules and the layers' own allocation code
    "src/plan": ["src/train", "src/convert", "src/checkpoint", "src/config", "src/optim", "src/model"] + parallel + ["io", "kernels"],
    "src/cli": ["src/plan", "src/train", "src/convert", "src/checkpoint", "src/config", "src/optim", "src/model"] + parallel + ["io", "kernels"],
}
def folder_of(path):
    rel = os.path.relpath(path, top)
    for f in sorted(below, key=len, reverse=True):
        if rel == f or rel.startswith(f + "/"):
            return f
    return None
sources, home = [], {}
bad = 0
for f in below:
    for dp, dn, fn in os.walk(os.path.join(top, f)):
        for name in fn:
            if not name.endswith((".c", ".h", ".cu", ".cuh")):
                continue
            p = os.path.join(dp, name)
            sources.append(p)
            if name.endswith((".h", ".cuh")):
                if name in home and home[name] != p:
                    print("FAIL: two headers named %s: %s and %s" % (name, home[name], p)); bad += 1
                home[name] = p
include = re.compile(r'^\s*#\s*include\s+"([^"]+)"')
edges = {}
for p in sources:
    f = folder_of(p)
    edges[p] = []
    for line in open(p, errors="replace"):
        m = include.match(line)
        if not m or m.group(1) not in home:
            continue  # build_config.h and the like: generated, no layer
        h = home[m.group(1)]
        edges[p].append(h)
        g = folder_of(h)
        if g != f and g not in below[f]:
            print("FAIL: %s includes %s (%s may not depend on %s)" % (os.path.relpath(p, top), m.group(1), f, g))
            bad += 1
# include cycles among headers (depth-first search)
state = {}
def visit(h, stack):
    global bad
    state[h] = 1
    for n in edges.get(h, []):
        if state.get(n) == 1:
            print("FAIL: include cycle: %s" % " -> ".join(os.path.relpath(x, top) for x in stack + [h, n])); bad += 1
        elif n not in state:
            visit(n, stack + [h])
    state[h] = 2
for h in home.values():
    if h not in state:
        visit(h, [])
print("%d files, %d includes checked, %d violations" % (len(sources), sum(len(e) for e in edges.values()), bad))
sys.exit(1 if bad else 0)
EOF
}

if out=$(check_tree "$top"); then
  pass "includes point downwards: $(echo "$out" | tail -n 1)"
else
  echo "$out"; fail "the include graph breaks the layering"
fi

# expect_refused WHAT PATTERN — the check fails on the copy, for a reason matching PATTERN
expect_refused() {
  if out=$(check_tree "$copy"); then
    fail "$1 went unnoticed"
  elif echo "$out" | grep -q "$2"; then
    pass "$1 is refused: $(echo "$out" | grep "$2" | head -n 1)"
  else
    echo "$out"; fail "$1: not the reason given"
  fi
}

# the check itself: the model including the trainer is refused
copy="$work/tree"
mkdir -p "$copy"
(cd "$top" && tar -cf - kernels io parallel src) | (cd "$copy" && tar -xf -)
sed -i '0,/#include "model_internal.h"/s//#include "model_internal.h"\n#include "trainer.h"/' "$copy/src/model/block.c"
expect_refused "a wrong-way include (src/model including trainer.h)" 'block.c includes trainer.h'

# and an include cycle inside a folder: model_shape.h including model.h
cp "$top/src/model/block.c" "$copy/src/model/block.c"
sed -i '0,/#include <stddef.h>/s//#include <stddef.h>\n#include "model.h"/' "$copy/src/model/model_shape.h"
expect_refused "an include cycle (model_shape.h -> model.h -> model_shape.h)" 'include cycle'
finish
