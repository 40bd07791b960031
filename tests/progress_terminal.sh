#!/bin/sh
# progress_terminal — under mpirun on a terminal (faked with script(1)) the
# live progress line and the step lines share one stream: no step line is
# broken by the status line ("ETA 2m12sstep 26/300" was seen when the status
# went to stderr and the steps to stdout, forwarded separately by mpirun),
# every step line arrives whole, and the status line with its ETA is there.
. "$TESTS_SRCDIR/lib.sh"

command -v script > /dev/null || { echo "SKIP: script(1) (package bsdutils) not found"; exit 77; }
prep_corpus "$work/data" 40000
cmd="OPENBLAS_NUM_THREADS=1 $RUN_MPI 2 120 '$TESSERA' train -c '$TESTS_SRCDIR/tiny-test.ini' --data '$work/data' \
  --steps 30 --val_every 0 --progress auto --metrics '$work/m.jsonl'"
script -qec "$cmd" /dev/null > "$work/tty.out" 2>&1 || { tail -5 "$work/tty.out"; fail "the run under script(1) exits 0"; finish; }
# the terminal's lines: split at \r and \n, the clear-line escape dropped
tr '\r' '\n' < "$work/tty.out" | sed 's/\x1b\[K//g' > "$work/lines"
grep -q '^\[[#.]*\] step 30/30 .*ETA' "$work/lines" && pass "the status line with its ETA is drawn" \
  || fail "no status line with ETA on the terminal"
mixed=$(grep -c 'ETA.*|\||.*ETA' "$work/lines")
[ "$mixed" -eq 0 ] && pass "no line mixes the status line and a step line" \
  || { fail "$mixed lines mix the status line and a step line"; grep 'ETA.*|\||.*ETA' "$work/lines" | head -3; }
whole=$(grep -c '^step *[0-9]*/30 | loss [0-9.]* | lr .* ms$' "$work/lines")
[ "$whole" -eq 30 ] && pass "30 whole step lines" || fail "$whole whole step lines of 30"
finish
