#!/bin/sh
# data_hardening — data that changes or lies while a run reads it stops the run
# with one message naming the file and exit status 2, never a SIGBUS:
#  * the tokens file truncated in place while training (tokens mapped with
#    mmap: reading the lost pages would raise SIGBUS; the per-step check sees
#    the size change first);
#  * the tokens file replaced (renamed over) while training;
#  * an int32 dataset holding negative token ids: the id is printed as itself.
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
    steps=$(grep -c '"loss":' "$work/live.jsonl" 2> /dev/null); steps=${steps:-0}
  done
  [ "$steps" -ge 2 ] || fail "$name: the run never reached step 2"
  $action "$work/live.bin"
  wait $pid; status=$?
  if [ $status -ne 2 ] || ! one_error_line "$work/live.err" \
       || ! grep '^tessera: error:' "$work/live.err" | grep -q -- "$pattern"; then
    fail "$name: exit $status, want 2 and one error matching '$pattern'"; tail -n 5 "$work/live.err"; return
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

finish
