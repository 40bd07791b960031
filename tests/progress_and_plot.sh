#!/bin/sh
# progress_and_plot — what a person watching sees: on a terminal (faked with
# script(1)) the run keeps a progress line with an ETA; off a terminal it
# does not; jobs/plot turns metrics files into a PNG. Skips (77) without
# script (bsdutils) or gnuplot (gnuplot-nox), which jobs/common.sh installs.
. "$TESTS_SRCDIR/lib.sh"
command -v script > /dev/null || { echo "SKIP: script(1) not found (apt-get install bsdutils)"; exit 77; }
command -v gnuplot > /dev/null || { echo "SKIP: gnuplot not found (apt-get install gnuplot-nox)"; exit 77; }

prep_corpus "$work/data" 40000
cmd="'$TESSERA' train -c '$TESTS_SRCDIR/tiny-test.ini' --data '$work/data' --steps 5 --progress auto --metrics '$work/m.jsonl'"
# script -e: its exit status is the run's
script -qec "$cmd" /dev/null > "$work/tty.out" 2>&1 || fail "the run on a terminal exits $?"
grep -q 'ETA' "$work/tty.out" && grep -q 'step 5/5' "$work/tty.out" \
  && pass "on a terminal: progress line with ETA" || { fail "no progress line on a terminal"; tail -5 "$work/tty.out"; }
sh -c "$cmd" > "$work/plain.out" 2>&1 || { fail "the run off a terminal exits $?"; tail -5 "$work/plain.out"; }
grep -q '^done: 5 steps' "$work/plain.out" && ! grep -q 'ETA' "$work/plain.out" \
  && pass "off a terminal: no progress line" || fail "progress line written to a pipe, or no summary line"

"$TESTS_SRCDIR/../jobs/plot" -o "$work/p.png" "$work/m.jsonl" > "$work/plot.out" 2>&1 \
  || { fail "jobs/plot exits $?"; cat "$work/plot.out"; }
# a PNG starts with \x89PNG
[ "$(head -c 4 "$work/p.png" 2>/dev/null | od -A n -t x1 | tr -d ' \n')" = "89504e47" ] \
  && pass "jobs/plot wrote a PNG" || fail "jobs/plot did not write a PNG"
"$TESTS_SRCDIR/../jobs/plot" -o "$work/q.png" "$work/missing.jsonl" > /dev/null 2>&1 \
  && fail "jobs/plot accepted a missing file" || pass "jobs/plot refuses a missing file"
finish
