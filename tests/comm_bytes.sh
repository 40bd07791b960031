#!/bin/sh
# comm_bytes — the communication counters agree with the formulas of
# doc/design.md, exactly, step by step (payload bytes per rank):
#   tp group, per micro-batch of N = b·s tokens, width h, L blocks:
#     forward  (1 + 2L)·N·h   embedding sum, 2 row-parallel sums per block
#     backward (1 + 2L)·N·h   head input gradient, 2 column-parallel inputs per block
#     cross-entropy 3·N        row maxima, exponential sums, target logits
#   plus one fp64 for the gradient norm's tp sum (8 bytes), all ×4 bytes/float;
#   dp×sp group: the whole local gradient once (params_local·4 bytes) plus the
#   loss sum and the token-id check (8 bytes each).
. "$TESTS_SRCDIR/lib.sh"

cfg="$TESTS_SRCDIR/equiv.ini"   # L = 2, h = 32, s = 16, micro-batch 2, batch 8
prep_corpus "$work/data" 30000
$RUN_MPI 4 120 "$TESSERA" train -c "$cfg" --data "$work/data" --tp 2 --steps 3 \
  --metrics "$work/m.jsonl" > "$work/out" 2>&1 || { cat "$work/out"; fail "dp2 x tp2 run"; finish; }
L=2; h=32; N=$((2 * 16)); micro_batches=$((8 / (2 * 2)))
want_tp=$(( micro_batches * (2 * (1 + 2 * L) * N * h + 3 * N) * 4 + 8 ))
params_local=$(sed -n 's/.*"params_local":\([0-9]*\).*/\1/p' "$work/m.jsonl")
want_dp=$(( params_local * 4 + 16 ))
n=0
for step in 1 2 3; do
  line=$(grep "^{\"step\":$step,\"loss\"" "$work/m.jsonl")
  got_tp=$(echo "$line" | sed -n 's/.*"comm_bytes_tp":\([0-9]*\).*/\1/p')
  got_dp=$(echo "$line" | sed -n 's/.*"comm_bytes_dp_sp":\([0-9]*\).*/\1/p')
  [ "$got_tp" = "$want_tp" ] && n=$((n + 1)) || fail "step $step: tp bytes $got_tp, formula $want_tp"
  [ "$got_dp" = "$want_dp" ] && n=$((n + 1)) || fail "step $step: dp bytes $got_dp, formula $want_dp"
done
[ $n -eq 6 ] && pass "tp bytes per step = $want_tp and dp x sp bytes = $want_dp, as the formulas say"
grep -q '^  tp     allreduce' "$work/out" && pass "end-of-run table lists the tp all-reduces" \
  || fail "no communication table"
finish
