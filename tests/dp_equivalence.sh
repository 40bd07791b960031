#!/bin/sh
# dp_equivalence — DESIGN.md principle 2: 1, 2 and 4 data-parallel ranks train
# the same model. The global batch (8 sequences) and its data order do not
# depend on dp; only the order of float additions does (micro-batch grouping
# and the all-reduce tree). Tolerance: 1e-5 relative on every one of the 20
# per-step losses and both validation losses. fp32 reassociation changes a
# gradient element by ~1e-7 relative; Adam normalises updates, so weights
# drift apart by ~lr·1e-7 per step, which stays far below 1e-5 in the loss
# over 20 steps (observed: ~3e-9). A wrong data slice or a missing all-reduce
# changes losses by 1e-2 or more from step 2 on. The 20 gradient norms (before
# clipping) hold to the same 1e-5: their sum of squares is one more reordered
# reduction, and they see a gradient scaled by a constant, which Adam's
# normalised update hides (observed: ~1e-7).
. "$TESTS_SRCDIR/lib.sh"

prep_corpus "$work/data" 100000
for np in 1 2 4; do
  $RUN_MPI $np 240 "$TESSERA" train -c "$TESTS_SRCDIR/tiny-test.ini" --data "$work/data" \
    --metrics "$work/dp$np.jsonl" > "$work/dp$np.out" 2>&1 \
    || { cat "$work/dp$np.out"; fail "dp=$np run"; continue; }
  ran_in_layout "$work/dp$np.out" $np "" || fail "dp=$np: not the layout asked for"
  losses "$work/dp$np.jsonl" > "$work/dp$np.losses"
  [ "$(wc -l < "$work/dp$np.losses")" -eq 20 ] || fail "dp=$np: expected 20 losses"
  val_losses "$work/dp$np.jsonl" > "$work/dp$np.val"
  grad_norms "$work/dp$np.jsonl" > "$work/dp$np.norms"
  [ "$(wc -l < "$work/dp$np.val")" -eq 2 ] || fail "dp=$np: expected 2 validation losses"
done
for np in 2 4; do
  diff=$(max_rel_diff "$work/dp$np.losses" "$work/dp1.losses")
  within "$diff" 1e-5 \
    && pass "dp=$np matches dp=1 (max relative difference $diff)" \
    || fail "dp=$np differs from dp=1 by $diff (tolerance 1e-5)"
  diff=$(max_rel_diff "$work/dp$np.val" "$work/dp1.val")
  within "$diff" 1e-5 \
    && pass "dp=$np validation matches dp=1 ($diff)" \
    || fail "dp=$np validation differs from dp=1 by $diff (tolerance 1e-5)"
  diff=$(max_rel_diff "$work/dp$np.norms" "$work/dp1.norms")
  within "$diff" 1e-5 \
    && pass "dp=$np gradient norms match dp=1 ($diff)" \
    || fail "dp=$np gradient norms differ from dp=1 by $diff (tolerance 1e-5)"
done
# The check is not vacuous: a different seed changes the losses by far more.
$RUN_MPI 1 240 "$TESSERA" train -c "$TESTS_SRCDIR/tiny-test.ini" --data "$work/data" \
  --seed 8 --metrics "$work/seed8.jsonl" > "$work/seed8.out" 2>&1 || { cat "$work/seed8.out"; fail "seed 8 run"; }
losses "$work/seed8.jsonl" > "$work/seed8.losses"
diff=$(max_rel_diff "$work/seed8.losses" "$work/dp1.losses")
beyond "$diff" 1e-3 \
  && pass "another seed differs ($diff)" || fail "another seed gives the same losses ($diff)"
finish
