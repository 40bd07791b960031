#!/bin/sh
# cli_basics — the command line works end to end on one rank: --version names
# the build, --help lists the keys, a short run trains (loss falls) and writes
# a metrics file with the keys DESIGN.md promises on every line.
. "$TESTS_SRCDIR/lib.sh"

"$TESSERA" --version > "$work/version" 2>&1 || fail "--version exits 0"
for part in MPI BLAS HDF5 CUDA; do
  grep -q "^  $part:" "$work/version" && pass "--version names $part" || fail "--version lacks $part"
done
"$TESSERA" train --help > "$work/help" 2>&1 && grep -q -- '--micro_batch_size' "$work/help" \
  && pass "train --help lists the keys" || fail "train --help"

prep_corpus "$work/data" 200000
$RUN_MPI 1 120 "$TESSERA" train -c "$TESTS_SRCDIR/tiny-test.ini" --data "$work/data" \
  --steps 40 --metrics "$work/m.jsonl" --sample_tokens 40 > "$work/out" 2>&1 \
  || { cat "$work/out"; fail "1-rank training run exits 0"; finish; }
pass "1-rank training run"

losses "$work/m.jsonl" > "$work/losses"
[ "$(wc -l < "$work/losses")" -eq 40 ] && pass "40 step lines" || fail "expected 40 step lines"
first=$(head -n 1 "$work/losses"); last=$(tail -n 1 "$work/losses")
# ln(257) = 5.55 at initialisation; 40 steps on a 60-word vocabulary must get
# well below that: a model that does not learn stays near 5.5.
awk -v f="$first" -v l="$last" 'BEGIN { exit !(f > 5.0 && l < f - 1.5) }' \
  && pass "loss falls ($first -> $last)" || fail "loss did not fall enough ($first -> $last)"

for key in step loss lr grad_norm tokens_per_s mfu; do
  n=$(grep '"step"' "$work/m.jsonl" | grep -v val_loss | grep -c "\"$key\":")
  [ "$n" -eq 40 ] && pass "every step line has $key" || fail "$key on $n of 40 step lines"
done
grep -q '"val_loss"' "$work/m.jsonl" && pass "validation line" || fail "no val_loss line"
grep -q '"event":"end"' "$work/m.jsonl" && pass "summary line" || fail "no end line"
grep -q '^---- sample at step 40' "$work/out" && pass "sample printed" || fail "no sample"
grep -q '^done: 40 steps' "$work/out" && pass "summary printed" || fail "no summary"
grep -q 'memory per rank' "$work/out" && pass "memory report" || fail "no memory report"

# log_every: step lines of the first, every 10th and the last step only; the
# metrics file still has all 40. The default metrics file is runs/metrics.jsonl,
# its folder created, in the directory the run starts in.
mkdir "$work/cwd"
(cd "$work/cwd" && $RUN_MPI 1 120 "$TESSERA" train -c "$TESTS_SRCDIR/tiny-test.ini" --data "$work/data" \
  --steps 40 --log_every 10 --sample_tokens 0 > "$work/out10" 2>&1) \
  || { cat "$work/out10"; fail "run with --log_every 10 exits 0"; }
shown=$(sed -n 's/^step *\([0-9]*\)\/40 .*/\1/p' "$work/out10" | tr '\n' ' ')
[ "$shown" = "1 10 20 30 40 " ] && pass "--log_every 10 prints steps 1 10 20 30 40" \
  || fail "--log_every 10 printed steps '$shown'"
[ "$(losses "$work/cwd/runs/metrics.jsonl" | wc -l)" -eq 40 ] \
  && pass "the default metrics file runs/metrics.jsonl has all 40 steps" \
  || fail "no runs/metrics.jsonl with 40 steps in the run's directory"

# a global batch of more sequences than the data has windows trains (the
# order wraps) but says so at start
make_corpus "$work/small.txt" 200
"$TESSERA" prep "$work/small.txt" -o "$work/small" > /dev/null || fail "prep of the small corpus"
$RUN_MPI 1 120 "$TESSERA" train -c "$TESTS_SRCDIR/tiny-test.ini" --data "$work/small" --val_fraction 0 \
  --steps 1 --metrics "$work/small.jsonl" > "$work/small.out" 2> "$work/small.err" \
  || { cat "$work/small.err"; fail "the small-data run exits 0"; }
grep -q "warning: the global batch of 8 sequences is more than the [1-7] training windows" "$work/small.err" \
  && pass "a batch larger than the data is warned about" || { cat "$work/small.err"; fail "no warning for a batch larger than the data"; }
finish
