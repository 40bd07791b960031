#!/bin/sh
# slow_phase — a legitimately slow phase on some ranks is not a hang, and a
# phase that never ends still is (comm.h, "Slow phases"). On 2 replicas
# (dp 2) only the first generates the samples; TESSERA_TEST_SLOW_SAMPLE
# (test-only) makes each sample take that many seconds longer:
#  1. samples 5 s longer than the watchdog's 2 s bound: the second replica
#     waits for them in the sample phase (bound 10 x 2 s) and the run
#     completes with the losses of the same run without the delay (exactly:
#     the delay changes nothing computed);
#  2. a sample that takes 60 s against a phase bound of 4 s: the waiting
#     rank reports the barrier, its group and ranks and the sample phase,
#     and the job ends with status 3 long before the sample would have;
#  3. a rank of 4 stalled before a training collective (TESSERA_FAULT, the
#     plain bound of tests/faults.sh): the others' reports name the missing
#     rank (it did not answer their roll call) and the ranks waiting with
#     them, and where (parallel/comm/roll_call.h).
. "$TESTS_SRCDIR/lib.sh"

cfg="$TESTS_SRCDIR/tiny-test.ini"
prep_corpus "$work/data" 40000
sampled() { # NAME DELAY FLAGS... — sets status, elapsed
  name=$1; delay=$2; shift 2
  start=$(date +%s)
  TESSERA_TEST_SLOW_SAMPLE=$delay $RUN_MPI 2 120 "$TESSERA" train -c "$cfg" --data "$work/data" --steps 6 \
    --sample_every 3 --sample_tokens 4 --metrics "$work/$name.jsonl" "$@" > "$work/$name.out" 2> "$work/$name.err"
  status=$?
  elapsed=$(( $(date +%s) - start ))
}

sampled quick 0 --watchdog 2
[ $status -eq 0 ] || { fail "the run without a delay: status $status"; sed 's/^/    /' "$work/quick.err" | head -n 5; }
sampled slow 5 --watchdog 2
samples=$(grep -c -- '^---- sample at step' "$work/slow.out")
if [ $status -eq 0 ] && [ "$samples" -eq 2 ] && [ "$elapsed" -ge 10 ]; then
  pass "2 samples each 5 s longer than the 2 s watchdog: the run completed in ${elapsed}s"
else
  fail "slow samples: status $status, $samples samples (want 2), ${elapsed}s (want >= 10)"
  sed 's/^/    /' "$work/slow.err" | head -n 5
fi
losses "$work/quick.jsonl" > "$work/quick.losses"
losses "$work/slow.jsonl" > "$work/slow.losses"
cmp -s "$work/quick.losses" "$work/slow.losses" && [ "$(wc -l < "$work/slow.losses")" -eq 6 ] \
  && pass "the slow run's 6 losses are the quick run's" || fail "the slow run's losses differ from the quick run's"

sampled hung 60 --watchdog 2 --watchdog-phase 4
if [ $status -eq 3 ] && [ "$elapsed" -lt 40 ] \
   && grep -q 'rank 1: .*watchdog: no progress for 4 s in allreduce #[0-9]* of group world (2 ranks: world ranks 0,1) waiting for the sample phase of other ranks' "$work/hung.err"; then
  pass "a sample past the phase bound ends the job (status 3 after ${elapsed}s): $(grep -o 'watchdog: .*other ranks' "$work/hung.err" | head -n 1)"
else
  fail "a sample past the phase bound: status $status after ${elapsed}s, want 3 and a report naming the sample phase:"
  sed 's/^/    /' "$work/hung.err" | head -n 5
fi
start=$(date +%s)
TESSERA_FAULT=stall:3:dp_sp:6 $RUN_MPI 4 90 "$TESSERA" train -c "$cfg" --data "$work/data" --watchdog 3 \
  --metrics "$work/stall.jsonl" > "$work/stall.out" 2> "$work/stall.err"
status=$?; elapsed=$(( $(date +%s) - start ))
# (any of ranks 0-2 may report first; the job's abort may cut the others short)
want='rank [0-2]: .*watchdog: no progress for 3 s in allreduce #6 of group dp_sp (4 ranks: world ranks 0,1,2,3); world rank 3 did not answer (lost, dead, or busy outside a collective); world ranks [0-2],[0-2] waiting in allreduce #6 of group dp_sp;'
if [ $status -eq 3 ] && [ $elapsed -lt 60 ] && grep -q "$want" "$work/stall.err"; then
  pass "the missing rank is named: $(grep -o 'world rank 3 did not answer.*dp_sp;' "$work/stall.err" | head -n 1)"
else
  fail "a stalled rank of 4: status $status after ${elapsed}s, want 3 and a report naming rank 3 as missing:"
  grep '^tessera' "$work/stall.err" | sed 's/^/    /' | head -n 4
fi
finish
