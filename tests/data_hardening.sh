#!/bin/sh
# data_hardening — data that changes or lies while a run reads it stops the run
# with one message naming the file and exit status 2, never a SIGBUS:
#  * the tokens file truncated in place while training (tokens mapped with
#    mmap: reading the lost pages would raise SIGBUS; the per-step check sees
#    the size change first);
#  * the tokens file replaced (renamed over) while training;
#  * an int32 dataset holding negative token ids: the id is printed as itself;
#  * limits that would make a run endless are refused up front, naming the
#    limit: val_sequences beyond 16 x the held-out windows (at least 1024;
#    the limit itself runs), sample --tokens beyond 1048576;
#  * SIGTERM stops a run after a step: exit 4, and the summary line, the
#    metrics end record and the last sample's label all give that step (not
#    the schedule's last step).
. "$TESTS_SRCDIR/lib.sh"

cfg="$TESTS_SRCDIR/tiny-test.ini"
prep_corpus "$work/data" 60000

# running_then ACTION NAME PATTERN — start a long 2-rank run on a copy of the
# data, wait for its second step, do ACTION to the copy's .bin, expect exit 2
# with exactly one error line matching PATTERN.
running_then() {
  action=$1; name=$2; pattern=$3
  rm -f "$work/live.jsonl"; cp "$work/data.idx" "$work/live.idx" && cp "$work/data.bin" "$work/live.bin" || { fail "$name: copy"; return; }
  $RUN_MPI 2 30 "$TESSERA" train -c "$cfg" --data "$work/live" --steps 1000000 --metrics "$work/live.jsonl" \
    > "$work/live.out" 2> "$work/live.err" &
  pid=$!
  i=0; steps=0
  while [ "$steps" -lt 2 ] && [ $i -lt 300 ]; do
    sleep 0.1; i=$((i + 1))
    steps=$(grep -c '"step":[0-9]*,"loss":' "$work/live.jsonl" 2> /dev/null); steps=${steps:-0}
  done
  [ "$steps" -ge 2 ] || fail "$name: the run never reached step 2"
  $action "$work/live.bin"
  wait $pid; status=$?
  if [ $status -ne 2 ] || ! one_error_line "$work/live.err" \
       || ! grep '^tessera: error:' "$work/live.err" | grep -q -- "$pattern"; then
    fail "$name: exit $status, want 2 and one error matching '$pattern'"; cat "$work/live.err"; return
  fi
  pass "$name: exit 2 ($(grep '^tessera: error:' "$work/live.err" | cut -c1-120))"
}

# 10 bytes off the end: the last page still exists, so even a read racing the
# truncation cannot fault — the test is deterministic, and the check must
# still see it
shorten() { truncate -s -10 "$1"; }
running_then shorten "tokens file truncated while training" "data file '$work/live.bin' was truncated while training"
replace() { cp "$1" "$1.new" && mv "$1.new" "$1"; }
running_then replace "tokens file replaced while training" "data file '$work/live.bin' was replaced while training"

# an int32 dataset whose every token reads 0xF9F9F9F9 = -101058055
"$TESSERA" prep "$work/corpus.txt" -o "$work/neg" --dtype int32 > /dev/null || fail "prep --dtype int32"
bytes=$(wc -c < "$work/neg.bin")
head -c "$bytes" /dev/zero | tr '\0' '\371' > "$work/neg.bin.new" && mv "$work/neg.bin.new" "$work/neg.bin"
$RUN_MPI 2 60 "$TESSERA" train -c "$cfg" --data "$work/neg" --steps 2 > "$work/neg.out" 2> "$work/neg.err"; status=$?
[ $status -eq 2 ] && one_error_line "$work/neg.err" \
  && grep '^tessera: error:' "$work/neg.err" | grep -q "token id -101058055 in global sample [0-9]* is negative" \
  && pass "negative int32 token id reported as itself, exit 2" \
  || { fail "negative token id: exit $status"; cat "$work/neg.err"; }

# val_sequences: the limit (16 x the held-out windows) is named; the limit runs, one more is refused
$RUN_MPI 2 60 "$TESSERA" train -c "$cfg" --data "$work/data" --steps 1 --val_sequences 16777216 \
  > /dev/null 2> "$work/val.err"; status=$?
n_val=$(sed -n 's/.*beyond the limit of 16 x the \([0-9]*\) held-out windows of seq_len 32 (\([0-9]*\); at least 1024).*/\1/p' "$work/val.err")
[ $status -eq 1 ] && one_error_line "$work/val.err" && [ -n "$n_val" ] && [ "$n_val" -gt 0 ] \
  && pass "val_sequences 16777216 refused, limit named ($(grep '^tessera: error:' "$work/val.err" | cut -c1-100))" \
  || { fail "val_sequences 16777216: exit $status"; cat "$work/val.err"; }
if [ -n "$n_val" ]; then
  $RUN_MPI 2 60 "$TESSERA" train -c "$cfg" --data "$work/data" --steps 1 --val_sequences $((16 * n_val)) \
    > "$work/val.out" 2>&1 && pass "val_sequences $((16 * n_val)) (the limit) runs" \
    || { fail "val_sequences at the limit"; tail -n 3 "$work/val.out"; }
  $RUN_MPI 2 60 "$TESSERA" train -c "$cfg" --data "$work/data" --steps 1 --val_sequences $((16 * n_val + 1)) \
    > /dev/null 2>&1; status=$?
  [ $status -eq 1 ] && pass "val_sequences $((16 * n_val + 1)) (one past) refused" || fail "one past the limit: exit $status"
fi
"$TESSERA" sample --ckpt "$work/none.h5" --tokens 1048577 > /dev/null 2> "$work/tok.err"; status=$?
[ $status -eq 1 ] && grep -q "^tessera: error: sample: --tokens = 1048577 is out of range \[0, 1048576\]" "$work/tok.err" \
  && pass "sample --tokens 1048577 refused, cap named" || { fail "sample --tokens 1048577: exit $status"; cat "$work/tok.err"; }

# SIGTERM to the ranks of a long run, once a few steps are logged
st="$work/term"
$RUN_MPI 2 30 "$TESSERA" train -c "$cfg" --data "$work/data" --steps 1000000 --sample_tokens 8 \
  --metrics "$st.jsonl" > "$st.out" 2> "$st.err" &
pid=$!
i=0; steps=0
while [ "$steps" -lt 3 ] && [ $i -lt 300 ]; do
  sleep 0.1; i=$((i + 1))
  steps=$(grep -c '"step":[0-9]*,"loss":' "$st.jsonl" 2> /dev/null); steps=${steps:-0}
done
pkill -TERM -f "^$TESSERA train.*$st.jsonl"
wait $pid; status=$?
stop=$(sed -n 's/^stopped by a signal after step \([0-9]*\).*/\1/p' "$st.out")
done_n=$(sed -n 's/^done: \([0-9]*\) steps .*/\1/p' "$st.out")
end_n=$(sed -n 's/^{"event":"end","steps":\([0-9]*\),"steps_run":\([0-9]*\),.*/\1 \2/p' "$st.jsonl")
label=$(sed -n 's/^---- sample at step \([0-9]*\) ----$/\1/p' "$st.out" | tail -n 1)
logged=$(grep -c '"step":[0-9]*,"loss":' "$st.jsonl")
[ $status -eq 4 ] && [ -n "$stop" ] && [ "$stop" -lt 1000000 ] && [ "$logged" -eq "$stop" ] && [ "$done_n" = "$stop" ] \
  && [ "$end_n" = "$stop $stop" ] && [ "$label" = "$stop" ] \
  && pass "SIGTERM after step $stop: exit 4; summary, end record and sample label say $stop" \
  || { fail "SIGTERM: exit $status, stopped '$stop', logged $logged, done '$done_n', end '$end_n', label '$label'";
       tail -n 5 "$st.out" "$st.err"; }

finish
