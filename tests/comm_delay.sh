#!/bin/sh
# comm_delay — the test-only link latency of the communication layer
# (TESSERA_TEST_COMM_DELAY_US: this machine's kernel has no netem; comm.h,
# doc/design.md "A test-only link latency"):
#  1. tests/test_comm_delay on 2 ranks with a 100 ms delay: a blocking
#     exchange and an all-reduce take >= 100 ms, a ping-pong >= 200 ms, and an
#     exchange started, then 100 ms of work, then waited adds < 25 ms (median);
#     and without the delay the same exchange takes < 50 ms (median; 12 ms
#     was seen at load average 8 on 2 cores: hence a delay this long).
#  2. Training with sp 2 (softmax ring attention, and linear attention with
#     All-Scan's pipelined messages) gives exactly the losses of the run
#     without the delay: the delay changes when a call completes, never
#     what it computes nor the order of any addition, so equal to the last
#     digit, not to a tolerance. The delayed run says so in its start lines
#     and in its metrics' start record.
#  3. A malformed value is refused with one error line, exit status 1.
. "$TESTS_SRCDIR/lib.sh"
program=${TEST_COMM_DELAY:-$(dirname "$TESSERA")/tests/test_comm_delay}

TESSERA_TEST_COMM_DELAY_US=100000; export TESSERA_TEST_COMM_DELAY_US
mpi_unit_test "$program" test_comm_delay 2
unset TESSERA_TEST_COMM_DELAY_US
mpi_unit_test "$program" test_comm_delay 2

prep_corpus "$work/data" 30000
train() { # NAME DELAY_US FLAGS...
  t_name=$1; t_delay=$2; shift 2
  TESSERA_TEST_COMM_DELAY_US=$t_delay $RUN_MPI 2 120 "$TESSERA" train -c "$TESTS_SRCDIR/pipe-equiv.ini" \
    --data "$work/data" --steps 6 --val_every 0 --sp 2 --metrics "$work/$t_name.jsonl" "$@" > "$work/$t_name.out" 2>&1 \
    || { fail "$t_name: the run failed:"; tail -n 5 "$work/$t_name.out"; return 1; }
}
for case in "softmax --sp-kind ring" "linear --sp-kind allscan"; do
  attention=${case%% *}; kind=${case#* }
  train "${attention}_plain" 0 --attention $attention $kind || continue
  train "${attention}_delayed" 2000 --attention $attention $kind || continue
  losses "$work/${attention}_plain.jsonl" > "$work/plain.losses"
  losses "$work/${attention}_delayed.jsonl" > "$work/delayed.losses"
  if [ "$(wc -l < "$work/plain.losses")" -ne 6 ]; then fail "$attention $kind: 6 losses"
  elif ! cmp -s "$work/plain.losses" "$work/delayed.losses"; then
    fail "$attention $kind: the 2 ms delay changed the losses:"; paste "$work/plain.losses" "$work/delayed.losses"
  else pass "$attention $kind: 6 losses equal with and without a 2 ms delay (last $(tail -n 1 "$work/plain.losses"))"
  fi
  line='^test-only link latency: every MPI message and collective completes >= 2000 us after it started'
  if ! grep -q "$line" "$work/${attention}_delayed.out"; then fail "$attention: no start line for the delay"
  elif grep -q '^test-only link latency' "$work/${attention}_plain.out"; then fail "$attention: the undelayed run names a delay"
  elif ! grep -q '"event":"start".*"test_comm_delay_us":2000' "$work/${attention}_delayed.jsonl"; then
    fail "$attention: the metrics' start record does not name the delay"
  else pass "$attention: the delayed run (only) names its delay in its start lines and metrics"
  fi
done

TESSERA_TEST_COMM_DELAY_US=5ms $RUN_MPI 2 60 "$TESSERA" train -c "$TESTS_SRCDIR/pipe-equiv.ini" --data "$work/data" \
  --steps 1 > "$work/bad.out" 2> "$work/bad.err"
refusal "a delay of '5ms'" 1 $? "$work/bad.err" "TESSERA_TEST_COMM_DELAY_US='5ms': a whole number of microseconds" -F
finish
