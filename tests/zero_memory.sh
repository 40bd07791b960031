#!/bin/sh
# zero_memory — the per-rank memory a run reports, counted as its buffers
# were allocated (kernels/memory_tally.h), equals the ZeRO paper's formulas
# for fp32 storage on the CPU backend (doc/design.md), with Ψ the rank's
# parameter elements (its tp shard), computed here from the model's shape
# (gpt2_params_local, tests/lib.sh; the run's own params_local must agree),
# and D the dp×sp group size:
#   stage 0: weights 4Ψ (compute) + 4Ψ (fp32 master), gradients 4Ψ, Adam 8Ψ
#   stage 1: weights 4Ψ + 4Ψ/D, gradients 4Ψ, Adam 8Ψ/D
#   stage 2: weights 4Ψ + 4Ψ/D, gradients 4Ψ/D + 4(Ψ_outer + 2Ψ_block), Adam 8Ψ/D
#   stage 3: weights 4Ψ/D + 4(Ψ_outer + 2Ψ_block) + 4Ψ/D, gradients and Adam as stage 2
# where Ψ/D is rank 0's share: ⌊Ψ/D⌋, plus one when D does not divide Ψ, and
# stage 2's gradient buffers besides the shard are the embeddings and final
# norm (Ψ_outer, kept over the micro-batches) and two one-block windows.
# The model: tests/equiv.ini with 4 blocks (so that two windows are less
# than the whole), h = 32.
. "$TESTS_SRCDIR/lib.sh"

cfg="$TESTS_SRCDIR/equiv.ini"
prep_corpus "$work/data" 30000
field() { sed -n "s/.*\"$1\":\\([0-9]*\\).*/\\1/p" "$2" | head -n 1; }
for zero in 0 1 2 3; do
  for flags in "" "--tp 2"; do
    # shellcheck disable=SC2086
    $RUN_MPI 4 120 "$TESSERA" train -c "$cfg" --data "$work/data" --steps 1 --n_layer 4 --zero $zero $flags \
      --metrics "$work/m.jsonl" > "$work/out" 2>&1 || { cat "$work/out"; fail "zero $zero $flags run"; continue; }
    ran_in_layout "$work/out" 4 "--zero $zero $flags" || { fail "zero $zero $flags: not the layout asked for"; continue; }
    tp=1; [ -n "$flags" ] && tp=2
    h=32; L=4; D=$((4 / tp))
    psi=$(gpt2_params_local 257 $h 16 $L $tp)
    [ "$(field params_local "$work/m.jsonl")" = "$psi" ] \
      || fail "zero $zero $flags: the run holds $(field params_local "$work/m.jsonl") parameter elements, the shape says $psi"
    shard=$psi
    if [ "$zero" -ge 1 ]; then shard=$((psi / D)); [ $((psi % D)) -gt 0 ] && shard=$((shard + 1)); fi
    # one block's local elements: QKV 3h²+3h, wo h², w1 4h²+4h, w2 4h² split over tp;
    # two norms 4h, bo h, b2 h whole
    block=$(( (12 * h * h + 7 * h) / tp + 6 * h ))
    grads=$((4 * psi))
    [ "$zero" -ge 2 ] && grads=$(( 4 * shard + 4 * (psi - L * block + 2 * block) ))
    weights=$((4 * psi + 4 * shard))
    [ "$zero" -ge 3 ] && weights=$(( 4 * shard + 4 * (psi - L * block + 2 * block) + 4 * shard ))
    want="$weights $grads $((8 * shard))"
    got="$(field mem_weights "$work/m.jsonl") $(field mem_grads "$work/m.jsonl") $(field mem_optimizer "$work/m.jsonl")"
    [ "$got" = "$want" ] && pass "zero $zero $flags: weights, gradients, optimizer bytes = $got (Ψ = $psi, D = $D)" \
      || fail "zero $zero $flags: reported $got, formula $want (Ψ = $psi, D = $D)"
  done
done
# the whole model's parameter count, from the shape as well
want=$(gpt2_params_local 257 32 16 4 1)
[ "$(field params "$work/m.jsonl")" = "$want" ] && pass "the model has $want parameters, as its shape says" \
  || fail "the run counts $(field params "$work/m.jsonl") parameters, the shape says $want"
finish
