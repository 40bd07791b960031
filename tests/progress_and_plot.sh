#!/bin/sh
# progress_and_plot — what a person watching sees: on a terminal (faked with
# script(1)) the run keeps a progress line with an ETA; off a terminal it
# does not; jobs/plot turns metrics files into a PNG (skipped without gnuplot).
. "$TESTS_SRCDIR/lib.sh"

prep_corpus "$work/data" 40000
cmd="'$TESSERA' train -c '$TESTS_SRCDIR/tiny-test.ini' --data '$work/data' --steps 5 --progress auto --metrics '$work/m.jsonl'"
if command -v script > /dev/null; then
  script -qec "$cmd" /dev/null > "$work/tty.out" 2>&1
  grep -q 'ETA' "$work/tty.out" && grep -q 'step 5/5' "$work/tty.out" \
    && pass "on a terminal: progress line with ETA" || { fail "no progress line on a terminal"; tail -5 "$work/tty.out"; }
else
  echo "script(1) not found: terminal check skipped"
fi
sh -c "$cmd" > "$work/plain.out" 2>&1
! grep -q 'ETA' "$work/plain.out" && pass "off a terminal: no progress line" || fail "progress line written to a pipe"

if command -v gnuplot > /dev/null; then
  "$TESTS_SRCDIR/../jobs/plot" -o "$work/p.png" "$work/m.jsonl" > /dev/null 2>&1
  # a PNG starts with \x89PNG
  [ "$(head -c 4 "$work/p.png" 2>/dev/null | od -A n -t x1 | tr -d ' \n')" = "89504e47" ] \
    && pass "jobs/plot wrote a PNG" || fail "jobs/plot did not write a PNG"
  "$TESTS_SRCDIR/../jobs/plot" -o "$work/q.png" "$work/missing.jsonl" > /dev/null 2>&1 \
    && fail "jobs/plot accepted a missing file" || pass "jobs/plot refuses a missing file"
else
  echo "gnuplot not found: plot check skipped"
fi
finish
