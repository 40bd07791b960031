#!/bin/sh
# plan_predictions — `tessera plan` predicts, for a layout, the memory the
# run allocates and reports and the bytes its counters count, exactly:
#   memory: each kind of rank 0's start line (metrics mem_weights, ...,
#     mem_other: what the backends allocated, kernels/memory_tally.h) equals
#     the plan's stage 0 to the byte, and with a pipeline each stage's
#     activations (mem_activations_per_stage) its stage's; the plan lays
#     each stage out with the run's own allocation code in counting mode
#     (kernels/buffer_sizer.h), so any buffer added, resized or re-kinded in
#     the runtime without the sizer shows here;
#   bytes: every training step's comm_bytes_<group> of rank 0 (tp, sp,
#     dp_sp, pp, world; dp must count none) equals the plan's
#     bytes_per_step of that group (doc/design.md's formulas, src/plan/plan_comm.c).
# Exact integers, no tolerance: nothing here is floating point.
# The layouts: one or more of each parallelism and option of the
# equivalence suites (tests/layout_equivalence.sh, pipeline_equivalence.sh,
# sequence_equivalence.sh, zero_memory.sh): dp; tp; tp-seq-shard; ZeRO 0-3;
# pp with 1F1B, GPipe and interleaved virtual stages; recompute none,
# selective and full; sp ring, allgather, allscan and ulysses over softmax,
# linear and hybrid attention; Llama blocks; compositions (dp x tp, tp x pp,
# dp x sp, sp x tp). TESSERA_PLAN_ALL=1 runs every layout of those suites
# instead (minutes). Runs of 2 steps.
# Then bad input: one message on stderr, nothing on stdout, exit 1.
. "$TESTS_SRCDIR/lib.sh"

prep_corpus "$work/data" 30000
equiv="$TESTS_SRCDIR/equiv.ini"; pipe="$TESTS_SRCDIR/pipe-equiv.ini"
# num KEY TEXT — the first integer value of "KEY": in TEXT (0 when absent)
num() { v=$(printf '%s\n' "$2" | sed -n "s/.*\"$1\":\\([0-9]*\\).*/\\1/p" | head -n 1); echo "${v:-0}"; }

# check CONFIG NP FLAGS... — train 2 steps and plan the same layout; compare
check() {
  cfg=$1; np=$2; shift 2
  what="np $np $*"; [ "$cfg" = "$pipe" ] && what="$what (4 layers)"
  # shellcheck disable=SC2086
  if ! $RUN_MPI "$np" 120 "$TESSERA" train -c "$cfg" --data "$work/data" --steps 2 --val_every 0 \
      --metrics "$work/m.jsonl" "$@" < /dev/null > "$work/out" 2>&1; then
    fail "$what: run failed"; tail -n 3 "$work/out"; return
  fi
  if ! "$TESSERA" plan -c "$cfg" --world "$np" --given --json "$@" > "$work/plan.json" 2> "$work/plan.err"; then
    fail "$what: plan refused the layout: $(cat "$work/plan.err")"; return
  fi
  plan=$(cat "$work/plan.json"); start=$(grep '"event":"start"' "$work/m.jsonl")
  stages=$(printf '%s\n' "$plan" | sed 's/.*"stages":\[//; s/\].*//' | tr '}' '\n')
  stage0=$(printf '%s\n' "$stages" | head -n 1)
  got=""; want=""
  for k in weights grads optimizer activations other; do
    got="$got $(num "mem_$k" "$start")"; want="$want $(num "$k" "$stage0")"
  done
  per_stage=$(printf '%s\n' "$start" | sed -n 's/.*"mem_activations_per_stage":\[\([0-9,]*\)\].*/\1/p')
  if [ -n "$per_stage" ]; then
    got="$got | $per_stage"
    want="$want | $(printf '%s\n' "$stages" | sed -n 's/.*"activations":\([0-9]*\).*/\1/p' | paste -sd, -)"
  fi
  [ "$got" = "$want" ] && pass "$what: memory of rank 0 (weights grads optimizer activations other) =$got" \
    || { fail "$what: the run reports$got, the plan predicts$want"; return; }
  bytes=$(printf '%s\n' "$plan" | sed 's/.*"bytes_per_step":{\([^}]*\)}.*/\1/')
  got=""; want=""
  for g in tp sp dp_sp pp dp world; do
    w=$(num "$g" "{$bytes}")
    for step in 1 2; do
      line=$(grep "^{\"step\":$step,\"loss\"" "$work/m.jsonl")
      got="$got $g:$(num "comm_bytes_$g" "$line")"; want="$want $g:$w"
    done
  done
  [ "$got" = "$want" ] && pass "$what: bytes per step (steps 1 and 2) =$got" \
    || fail "$what: the counters count$got, the plan predicts$want"
}

if [ "${TESSERA_PLAN_ALL:-0}" = 1 ]; then
  . "$TESTS_SRCDIR/plan_all_layouts.sh"
else
  check "$equiv" 4 --zero 0                                   # dp 4
  check "$equiv" 4 --tp 2 --zero 1                            # dp 2 x tp 2, ZeRO-1
  check "$equiv" 2 --zero 2 --n_layer 4                       # ZeRO-2 (windows)
  check "$equiv" 2 --zero 3 --n_layer 4 --recompute full      # ZeRO-3, full recomputation
  check "$equiv" 2 --tp 2 --tp-seq-shard --recompute selective
  check "$pipe" 2 --pp 2 --zero 1                             # 1F1B
  check "$pipe" 4 --pp 2 --tp 2 --pp-schedule gpipe --recompute full
  check "$pipe" 2 --pp 2 --pp-schedule interleaved --pp-virtual 2
  check "$pipe" 2 --sp 2 --sp-kind ring --recompute selective # ring attention (zig-zag)
  check "$pipe" 4 --sp 2 --zero 3 --sp-kind ulysses           # dp 2 x sp 2
  check "$pipe" 2 --sp 2 --attention linear --recompute full  # LASP-2
  check "$pipe" 2 --sp 2 --sp-kind ulysses --recompute selective
  check "$pipe" 4 --sp 2 --tp 2 --attention linear --sp-kind allscan
  check "$pipe" 2 --sp 2 --attention hybrid --layer_pattern LLS --sp-kind ring --norm rmsnorm --mlp swiglu --position rope --bias false
  check "$pipe" 4 --sp 2 --attention hybrid --layer_pattern LLS --sp-kind allscan --recompute selective
  check "$pipe" 4 --sp 4 --sp-kind tokenring --recompute selective # TokenRing (zig-zag)
  check "$pipe" 2 --sp 2 --attention hybrid --layer_pattern LLS --sp-kind tokenring --recompute full
fi

# refuse ARGS... — one message, nothing on stdout, exit 1
refuse() {
  "$TESSERA" plan "$@" > "$work/r.out" 2> "$work/r.err"; status=$?
  lines=$(grep -c . "$work/r.err"); msg=$(head -n 1 "$work/r.err")
  [ "$status" -eq 1 ] && [ "$lines" -eq 1 ] && [ ! -s "$work/r.out" ] \
    && pass "plan $*: exit 1, '$msg'" || fail "plan $*: exit $status, $lines lines: $(cat "$work/r.err" "$work/r.out")"
}
refuse -c "$equiv" --world 3 --tp 2 --given      # 3 ranks do not factor into tp 2
refuse -c "$equiv" --world 3                     # no split of 3 ranks fits heads, layers, batch
refuse --world 2                                 # no config
refuse -c "$work/missing.ini" --world 2
refuse -c "$equiv" --world 0
refuse -c "$equiv" --world 4 --memory-per-rank-gib 0.0001  # fits nowhere
finish
