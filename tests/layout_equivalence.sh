#!/bin/sh
# layout_equivalence — the central test of tessera (DESIGN.md principle 2):
# one model trained 20 steps in many layouts gives the per-step losses, the
# validation losses and — gathered into the logical model at the end — the
# parameters of the 1-process run.
#
# Tolerances, and why float32 reordering explains them: layouts differ only
# in the order of additions (micro-batch grouping, all-reduce trees, GEMMs
# whose inner dimension tp splits into partial sums). Each reordering moves a
# value by ~1e-7 relative; Adam's normalised updates carry that into the
# weights at ~lr·1e-7 per step. Over 20 steps that stays far under 1e-5
# relative in every loss and 1e-4 in the whole parameter vector (relative L2;
# a few near-zero gradients can flip an Adam update's sign, which moves those
# elements by up to 2·lr, so parameters get the looser bound). A wrong shard,
# a missing reduction or a double-counted bias gives differences of 1e-2 to 1.
#
# Adding a layout is one line at the bottom: `layout NP "FLAGS"`.
. "$TESTS_SRCDIR/lib.sh"

cfg="$TESTS_SRCDIR/equiv.ini"
prep_corpus "$work/data" 60000
COMPARE=${COMPARE_PARAMS:-$(dirname "$TESSERA")/tests/compare_params}

run() { # NAME NP FLAGS...
  name=$1; np=$2; shift 2
  $RUN_MPI "$np" 240 "$TESSERA" train -c "$cfg" --data "$work/data" \
    --metrics "$work/$name.jsonl" --dump_params "$work/$name.params" "$@" > "$work/$name.out" 2>&1
}

run base 1 || { cat "$work/base.out"; fail "the 1-process run"; finish; }
losses "$work/base.jsonl" > "$work/base.losses"
val_losses "$work/base.jsonl" > "$work/base.val"

layout() { # NP "FLAGS"
  np=$1; flags=$2
  name=$(echo "np$np $flags" | tr -c 'a-z0-9\n' '_')
  # shellcheck disable=SC2086
  if ! run "$name" "$np" $flags; then
    fail "np=$np $flags: run failed"; sed 's/^/    /' "$work/$name.out" | tail -n 5; return
  fi
  losses "$work/$name.jsonl" > "$work/$name.losses"
  val_losses "$work/$name.jsonl" > "$work/$name.val"
  if [ "$(wc -l < "$work/$name.losses")" -ne 20 ]; then fail "np=$np $flags: 20 losses"; return; fi
  d_loss=$(max_rel_diff "$work/$name.losses" "$work/base.losses")
  d_val=$(max_rel_diff "$work/$name.val" "$work/base.val")
  d_par=$("$COMPARE" "$work/$name.params" "$work/base.params" 1e-4)
  ok_par=$?
  if awk -v a="$d_loss" -v b="$d_val" 'BEGIN { exit !(a <= 1e-5 && b <= 1e-5) }' && [ $ok_par -eq 0 ]; then
    pass "np=$np $flags: losses $d_loss, validation $d_val, parameters: $d_par"
  else
    fail "np=$np $flags: losses $d_loss, validation $d_val (tolerance 1e-5), parameters: $d_par (tolerance 1e-4)"
  fi
}

layout 2 ""              # dp2
layout 4 ""              # dp4
layout 2 "--tp 2"        # tp2
layout 4 "--tp 4"        # tp4
layout 4 "--tp 2"        # dp2 x tp2
layout 8 "--tp 4"        # dp2 x tp4
layout 2 "--zero 1"      # dp2, ZeRO-1
layout 4 "--zero 1"      # dp4, ZeRO-1
layout 4 "--tp 2 --zero 1"  # dp2 x tp2, ZeRO-1
layout 2 "--zero 2"      # dp2, ZeRO-2
layout 4 "--zero 2"      # dp4, ZeRO-2
layout 4 "--tp 2 --zero 2"  # dp2 x tp2, ZeRO-2
layout 2 "--zero 3"      # dp2, ZeRO-3
layout 4 "--zero 3"      # dp4, ZeRO-3
layout 4 "--tp 2 --zero 3"  # dp2 x tp2, ZeRO-3
layout 2 "--tp 2 --tp-seq-shard"  # tp2, Megatron sequence parallelism
layout 8 "--tp 4 --tp-seq-shard --zero 1"  # dp2 x tp4, sequence-sharded, ZeRO-1
finish
