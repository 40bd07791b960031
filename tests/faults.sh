#!/bin/sh
# faults — a broken job ends instead of hanging, and says where it broke
# (fault injection through TESSERA_FAULT, see parallel/comm/comm.h):
#  1. A rank stalls before a dp×sp all-reduce. With --watchdog 3 the rank
#     left waiting reports the collective, group, sequence number and world
#     ranks of the group, and the whole job is aborted.
#  2. A rank skips a collective the others make (mismatched collectives):
#     the job ends with a failure status and a message from the rank that
#     noticed — MPI's own error, or the watchdog.
#  3. A rank dies inside a collective: MPI takes the survivors down and the
#     job fails well before the test's time limit.
. "$TESTS_SRCDIR/lib.sh"

cfg="$TESTS_SRCDIR/tiny-test.ini"
prep_corpus "$work/data" 40000

# run_fault NAME FAULT FLAGS... — sets status, elapsed; output in $work/NAME.err
run_fault() {
  name=$1; fault=$2; shift 2
  start=$(date +%s)
  TESSERA_FAULT=$fault $RUN_MPI 2 90 "$TESSERA" train -c "$cfg" --data "$work/data" \
    --metrics "$work/$name.jsonl" "$@" > "$work/$name.out" 2> "$work/$name.err"
  status=$?
  elapsed=$(( $(date +%s) - start ))
}
ended() { # the job failed on its own, not by the test's timeout (124, 137)
  [ "$status" -ne 0 ] && [ "$status" -ne 124 ] && [ "$status" -ne 137 ] && [ "$elapsed" -lt 60 ]
}

run_fault stall stall:1:dp_sp:6 --watchdog 3
ended && pass "stalled rank: the job ended with status $status after ${elapsed}s" \
  || fail "stalled rank: status $status after ${elapsed}s (124/137: hung until the timeout)"
if grep -q 'rank 0: .*watchdog: no progress for 3 s in allreduce #6 of group dp_sp (2 ranks: world ranks 0,1)' "$work/stall.err"; then
  pass "watchdog report: $(grep -o 'watchdog: no progress.*world ranks 0,1' "$work/stall.err" | head -n 1)"
else
  fail "no watchdog report naming the collective, group and ranks:"; sed 's/^/    /' "$work/stall.err" | head -n 10
fi

run_fault skip skip:1:dp_sp:6 --watchdog 3
ended && pass "mismatched collective: the job ended with status $status after ${elapsed}s" \
  || fail "mismatched collective: status $status after ${elapsed}s"
grep '^tessera: rank [01]: ' "$work/skip.err" | grep -v -q 'injected fault' \
  && pass "reported: $(grep '^tessera: rank [01]: ' "$work/skip.err" | grep -v 'injected fault' | head -n 1 | cut -c1-120)" \
  || { fail "no rank reported the mismatch"; sed 's/^/    /' "$work/skip.err" | head -n 10; }

run_fault exit exit:1:dp_sp:6
ended && pass "a rank died in a collective: the job ended with status $status after ${elapsed}s" \
  || fail "a rank died: status $status after ${elapsed}s"
grep -q 'injected fault: dying in allreduce #6 of group dp_sp' "$work/exit.err" \
  && pass "the rank died where it was told to" || fail "the fault was not injected"
finish
