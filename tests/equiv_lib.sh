# equiv_lib.sh — the one helper of the layout-equivalence suites (sourced
# after lib.sh): a model trained 20 steps in some layout must give the
# per-step losses, the validation losses and — gathered into the logical
# model at the end — the parameters of the 1-process run of the same
# config (DESIGN.md principle 2).
#
# Tolerances, and why float32 reordering explains them: layouts differ only
# in the order of additions (micro-batch grouping, all-reduce trees, GEMMs
# whose inner dimension tp splits into partial sums, the tied embedding's
# two gradient halves added at the end of a pipelined step instead of as
# they come). Each reordering moves a value by ~1e-7 relative; Adam's
# normalised updates carry that into the weights at ~lr·1e-7 per step. Over
# 20 steps that stays far under 1e-5 relative in every loss and 1e-4 in the
# whole parameter vector (relative L2; a few near-zero gradients can flip an
# Adam update's sign, which moves those elements by up to 2·lr, so
# parameters get the looser bound). A wrong shard, a missing reduction, a
# micro-batch run twice or a double-counted bias gives differences of 1e-2
# to 1.
#
# Usage: equiv_base CONFIG [FLAGS] — prepare the corpus, run the reference;
#        layout NP "FLAGS" — one line per layout.

COMPARE=${COMPARE_PARAMS:-$(dirname "$TESSERA")/tests/compare_params}

equiv_run() { # NAME NP FLAGS...
  name=$1; np=$2; shift 2
  $RUN_MPI "$np" 240 "$TESSERA" train -c "$equiv_cfg" --data "$work/data" \
    --metrics "$work/$name.jsonl" --dump_params "$work/$name.params" $equiv_common "$@" > "$work/$name.out" 2>&1
}

equiv_base() { # CONFIG [FLAGS shared by every run]
  equiv_cfg=$1; equiv_common=${2:-}
  prep_corpus "$work/data" 60000
  equiv_run base 1 || { cat "$work/base.out"; fail "the 1-process run"; finish; }
  ran_in_layout "$work/base.out" 1 "$equiv_common" || fail "the 1-process run: not 1 rank"
  losses "$work/base.jsonl" > "$work/base.losses"
  val_losses "$work/base.jsonl" > "$work/base.val"
  [ "$(wc -l < "$work/base.losses")" -eq 20 ] && [ "$(wc -l < "$work/base.val")" -eq 2 ] \
    || fail "the 1-process run: 20 losses and 2 validation losses"
}

layout() { # NP "FLAGS"
  np=$1; flags=$2
  name=$(echo "np$np $flags" | tr -c 'a-z0-9\n' '_')
  # shellcheck disable=SC2086
  if ! equiv_run "$name" "$np" $flags; then
    fail "np=$np $flags: run failed"; sed 's/^/    /' "$work/$name.out" | tail -n 5; return
  fi
  # shellcheck disable=SC2086
  ran_in_layout "$work/$name.out" "$np" "$equiv_common $flags" || { fail "np=$np $flags: not the layout asked for"; return; }
  losses "$work/$name.jsonl" > "$work/$name.losses"
  val_losses "$work/$name.jsonl" > "$work/$name.val"
  # (max_rel_diff fails on counts that differ from the base's 20 and 2)
  d_loss=$(max_rel_diff "$work/$name.losses" "$work/base.losses")
  d_val=$(max_rel_diff "$work/$name.val" "$work/base.val")
  d_par=$("$COMPARE" "$work/$name.params" "$work/base.params" 1e-4)
  ok_par=$?
  if within "$d_loss" 1e-5 && within "$d_val" 1e-5 && [ $ok_par -eq 0 ]; then
    pass "np=$np $flags: losses $d_loss, validation $d_val, parameters: $d_par"
  else
    fail "np=$np $flags: losses $d_loss, validation $d_val (tolerance 1e-5), parameters: $d_par (tolerance 1e-4)"
  fi
}
