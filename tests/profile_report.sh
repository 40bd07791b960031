#!/bin/sh
# profile_report — `--profile true` times each region of the model with the
# backend's marks (src/profile.h): the end-of-run table and the metrics keys
# name every region a GPT-2 block has, each with time in it; the regions
# cover the measured step time (on the CPU the marks are the clock, so the
# sum of regions equals the step's wall time up to the few microseconds
# between the step's own clock readings and its first and last mark: 10% is
# room for a 2-core machine's scheduling of a 2 ms step); and without the
# flag neither the table nor the keys appear.
. "$TESTS_SRCDIR/lib.sh"

cfg="$TESTS_SRCDIR/tiny-test.ini"
prep_corpus "$work/data" 30000
run() { # NAME NP FLAGS...
  name=$1; np=$2; shift 2
  $RUN_MPI "$np" 120 "$TESSERA" train -c "$cfg" --data "$work/data" --steps 4 --metrics "$work/$name.jsonl" "$@" \
    > "$work/$name.out" 2>&1 || { fail "$name: run failed"; tail -n 5 "$work/$name.out"; }
}
key() { sed -n "s/.*\"$1\":\\([-0-9.e+]*\\).*/\\1/p" "$2" | tail -n 1; }

run one 1 --profile true
missing=""
for region in norms qkv attention attention_out mlp_in mlp_out head optimizer; do
  fwd=$(key "profile_${region}_fwd_ms" "$work/one.jsonl"); bwd=$(key "profile_${region}_bwd_ms" "$work/one.jsonl")
  awk -v f="${fwd:-0}" -v b="${bwd:-0}" 'BEGIN { exit !(f + b > 0) }' || missing="$missing $region"
done
[ -z "$missing" ] && grep -q '^time by region on rank 0 (wall clock' "$work/one.out" \
  && pass "one rank: every block region has time, in the table and the metrics" \
  || { fail "one rank: regions without time:$missing"; cat "$work/one.out"; }
line=$(grep '^  covered' "$work/one.out")
covered=$(echo "$line" | awk '{ print $2 }'); wall=$(echo "$line" | awk '{ print $6 }')
awk -v c="$covered" -v w="$wall" 'BEGIN { exit !(w > 0 && c >= 0.9 * w && c <= 1.1 * w) }' \
  && pass "the regions cover the step: $covered ms of $wall ms" || fail "coverage: $line"

run pipeline 4 --profile true --pp 2 --tp 2 --recompute selective
grep -q '^  pipeline ' "$work/pipeline.out" && grep -q '^  attention ' "$work/pipeline.out" \
  && pass "pp 2 x tp 2 with recomputation: the table has the pipeline's waits" \
  || { fail "pp 2 x tp 2 profile"; cat "$work/pipeline.out"; }

run plain 1
! grep -q 'time by region' "$work/plain.out" && ! grep -q '"profile_' "$work/plain.jsonl" \
  && pass "without --profile: no table, no profile keys" || fail "profile output without --profile"
finish
