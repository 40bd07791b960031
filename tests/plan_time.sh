#!/bin/sh
# plan_time — the planner's machine profiles and time model (issue 19):
#   1. the shipped profiles load, and bad profiles are refused with one line
#      naming the file and the fault (not JSON, a rate without its source,
#      a fraction above 1, a negative number, unsorted GEMM points, a wrong
#      format tag, missing links, a missing file);
#   2. with the A100 profile, the predicted per-GPU TFLOP/s of every
#      Megatron-LM configuration of Narayanan et al. (SC21) is within 20%
#      of the published figure (tests/plan_published), and the check can
#      fail: the same profile with its GEMM rates halved is refused;
#   3. `tessera plan --calibrate` on 2 ranks writes a profile that loads,
#      with rates that are positive and not absurd for a CPU.
. "$TESTS_SRCDIR/lib.sh"
published=${PLAN_PUBLISHED:-$(dirname "$TESSERA")/tests/plan_published}
profiles="$TESTS_SRCDIR/../profiles"

for p in a100-80gb h100-80gb; do
  if "$published" --load "$profiles/$p.json" > "$work/load" 2>&1; then pass "$p loads: $(sed -n 2p "$work/load" | cut -c1-120)"
  else fail "$p does not load:"; sed 's/^/    /' "$work/load"; fi
done

# bad PROFILE_EDIT PATTERN — a copy of the A100 profile changed by the
# python expression EDIT (on the dict d) must be refused with PATTERN
bad() {
  python3 - "$profiles/a100-80gb.json" "$work/bad.json" "$1" <<'PYEOF'
import json, sys
d = json.load(open(sys.argv[1]))
exec(sys.argv[3])
json.dump(d, open(sys.argv[2], "w"))
PYEOF
  "$published" --load "$work/bad.json" > "$work/out" 2> "$work/err"; got=$?
  if [ "$got" -eq 1 ] && [ "$(wc -l < "$work/err")" -eq 1 ] && grep -q "^machine profile .*bad.json: .*$2" "$work/err"; then
    pass "refused: $(cut -c1-140 "$work/err")"
  else fail "want exit 1 and one line matching '$2', got $got:"; sed 's/^/    /' "$work/err" | head -n 5; fi
}
bad 'del d["peak_flops"]["source"]' "'peak_flops' names no source"
bad 'd["gemm"][2]["flops"]["fraction"] = 1.5' "'gemm\[2\].flops.fraction' = 1.5 is not in (0, 1\]"
bad 'd["links"]["intra_node"]["alpha_s"]["value"] = -1' "'links.intra_node.alpha_s' = -1 must be a positive number"
bad 'd["gemm"][1]["min_dim"] = 8' "sorted by min_dim"
bad 'd["format"] = "tessera machine profile 2"' "'format' must be"
bad 'del d["links"]["inter_node"]' "'links.inter_node' is missing"
bad 'd["kernels"]["attention_flops"] = 3e14' "'kernels.attention_flops' must be an object"
bad 'd["links"]["inter_node"]["nics"] = 0' "'links.inter_node.nics' must be a whole number"
printf '{"format": "tessera machine profile 1",' > "$work/bad.json"
"$published" --load "$work/bad.json" 2> "$work/err"; got=$?
if [ "$got" -eq 1 ] && grep -q 'not JSON' "$work/err"; then pass "refused: $(cat "$work/err")"; else fail "truncated JSON: $got $(cat "$work/err")"; fi
"$published" --load "$work/none.json" 2> "$work/err"; got=$?
if [ "$got" -eq 1 ] && grep -q 'cannot read it' "$work/err"; then pass "refused: $(cut -c1-120 "$work/err")"; else fail "missing file: $got $(cat "$work/err")"; fi

# 2. published configurations, and a profile that must fail the check
if "$published" "$profiles/a100-80gb.json" > "$work/pub" 2>&1; then
  pass "Megatron-LM (SC21) configurations within 20% with the A100 profile:"; grep TFLOP "$work/pub" | sed 's/^/    /'
else fail "a prediction is outside 20% of the published figure:"; sed 's/^/    /' "$work/pub"; fi
python3 - "$profiles/a100-80gb.json" "$work/slow.json" <<'PYEOF'
import json, sys
d = json.load(open(sys.argv[1]))
for p in d["gemm"]: p["flops"]["fraction"] /= 2
json.dump(d, open(sys.argv[2], "w"))
PYEOF
if "$published" "$work/slow.json" > "$work/pub" 2>&1; then fail "halved GEMM rates still pass the published check"
else pass "halved GEMM rates fail the published check ($(grep -c TFLOP "$work/pub") rows, $(tail -n 1 "$work/pub"))"; fi

# 3. calibrate on this machine
cat > "$work/tiny.ini" <<'INIEOF'
[model]
n_layer = 2
n_head = 4
d_model = 64
vocab_size = 257
seq_len = 64
[train]
batch_size = 4
micro_batch_size = 2
[run]
backend = cpu
INIEOF
if $RUN_MPI 2 120 "$TESSERA" plan --calibrate --config "$work/tiny.ini" --out "$work/here.json" > "$work/cal" 2>&1 \
   && "$published" --load "$work/here.json" > "$work/load" 2>&1; then
  pass "calibrated on 2 ranks, the profile loads: $(sed -n 2p "$work/load" | cut -c1-200)"
  python3 - "$work/here.json" > "$work/check" 2>&1 <<'PYEOF' || fail "calibrated rates out of range: $(cat "$work/check")"
import json, sys
d = json.load(open(sys.argv[1]))
rates = [p["flops"]["value"] for p in d["gemm"]]
assert all(1e8 < r < 1e13 for r in rates), rates  # a CPU core: 0.1 GFLOP/s .. 10 TFLOP/s
assert d["gpus_per_node"] == 2 and d["dtype"] == "fp32", d
bw = d["links"]["intra_node"]["bandwidth"]["value"]
assert 1e7 < bw < 1e12, bw
print("ok")
PYEOF
  [ -f "$work/check" ] && grep -q '^ok' "$work/check" && pass "calibrated GEMM rates and bandwidth in range"
else
  fail "tessera plan --calibrate did not write a loadable profile:"; sed 's/^/    /' "$work/cal" "$work/load" 2>/dev/null | head -n 10
fi
ls "$work"/here.json.tmp.* > /dev/null 2>&1 && fail "a temporary profile was left behind"
finish
