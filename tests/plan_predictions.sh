#!/bin/sh
# plan_predictions — `tessera plan` predicts, for a layout, the memory the
# run allocates and reports and the bytes its counters count, exactly:
#   memory: each kind of rank 0's start line (metrics mem_weights, ...,
#     mem_other, mem_offloaded: what the backends allocated and the
#     optimizer offload's host RAM, kernels/memory_tally.h) equals
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
# dp x sp, sp x tp); optimizer offload (tests/offload.sh) to host and nvme
# (ZeRO 1 host; ZeRO 3 nvme; dp x pp ZeRO 1 nvme). TESSERA_PLAN_ALL=1 runs every layout of those suites
# instead (minutes). Runs of 2 steps.
# Then `plan --offload` weighs offload (layouts that fit only with it) and
# plain `plan` does not; and bad input: one message on stderr, nothing on
# stdout, exit 1.
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
  for k in weights grads optimizer activations other offloaded; do
    got="$got $(num "mem_$k" "$start")"; want="$want $(num "$k" "$stage0")"
  done
  per_stage=$(printf '%s\n' "$start" | sed -n 's/.*"mem_activations_per_stage":\[\([0-9,]*\)\].*/\1/p')
  if [ -n "$per_stage" ]; then
    got="$got | $per_stage"
    want="$want | $(printf '%s\n' "$stages" | sed -n 's/.*"activations":\([0-9]*\).*/\1/p' | paste -sd, -)"
  fi
  [ "$got" = "$want" ] && pass "$what: memory of rank 0 (weights grads optimizer activations other offloaded) =$got" \
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
  mkdir -p "$work/nvme" || fail "mkdir $work/nvme"
  check "$equiv" 2 --zero 1 --offload-optimizer host                               # ZeRO-Offload
  check "$equiv" 2 --zero 3 --n_layer 4 --offload-optimizer "nvme:$work/nvme" --offload_chunk_mb 0.25
  check "$pipe" 4 --pp 2 --zero 1 --offload-optimizer "nvme:$work/nvme"           # dp 2 x pp 2, ZeRO-Infinity
fi

# offload is weighed when asked: at a budget below every layout's device
# memory without it, plain plan refuses and plan --offload lists only
# offloaded layouts
budget=0.00026 # GiB: the smallest equiv.ini layout on 2 ranks needs 0.00037 without offload, 0.00018 with
if "$TESSERA" plan -c "$equiv" --world 2 --memory-per-rank-gib $budget > /dev/null 2> "$work/r.err"; then
  fail "plan at $budget GiB without --offload: a layout fits"
else
  pass "plan at $budget GiB without --offload: $(cat "$work/r.err")"
fi
if "$TESSERA" plan -c "$equiv" --world 2 --offload --memory-per-rank-gib $budget --json > "$work/o.json" 2> "$work/r.err"; then
  fit=$(num fit "$(cat "$work/o.json")")
  none=$(grep -o '"offload_optimizer":"none"' "$work/o.json" | wc -l)
  offloaded=$(grep -o '"offload_optimizer":"[hn][ov][sm][te]"' "$work/o.json" | wc -l)
  [ "$fit" -gt 0 ] && [ "$none" -eq 0 ] && [ "$offloaded" -eq "$fit" ] \
    && pass "plan --offload at $budget GiB: $fit layouts fit, every one offloaded (host or nvme)" \
    || fail "plan --offload at $budget GiB: $fit fit, $none without offload, $offloaded offloaded"
else
  fail "plan --offload at $budget GiB: $(cat "$work/r.err")"
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
