#!/bin/sh
# checkpoint_resume — universal checkpoints (DESIGN.md principle 6):
#  * 20 steps uninterrupted vs 10 steps in layout A, saved, then 10 more
#    resumed in layout B, for several (A, B) pairs that change the world size,
#    tp and the ZeRO stage: steps 11..20 give the same losses (1e-5 relative)
#    and the final logical parameters agree (1e-4 relative L2), the
#    tolerances of tests/layout_equivalence.sh and for the same reason;
#    so do the gradient norms of steps 11..20 (1e-5, tests/equiv_lib.sh),
#    except on the hybrid model, whose gradients magnify the layouts'
#    weight drift (measured in tests/sequence_equivalence.sh);
#  * h5dump reads a tensor without tessera, and it matches the parameter dump;
#  * a truncated newest checkpoint is reported and `--resume auto` uses the
#    one before; flipped bytes inside a tensor fail its checksum (exit 2),
#    also where only rank 1 reads them (rank 0 reports rank 1's message);
#    a file without its `complete` marker is refused (exit 2); another model
#    shape and a missing path are user errors (exit 1);
#  * --async-save: a resume pair saved by the background writer, SIGUSR1
#    during async saves, and the writer killed in the middle of a file.
. "$TESTS_SRCDIR/lib.sh"
# h5dump (Debian hdf5-tools, which jobs/common.sh installs) reads a checkpoint without tessera
command -v h5dump > /dev/null || { echo "SKIP: h5dump not found (apt-get install hdf5-tools)"; exit 77; }

cfg="$TESTS_SRCDIR/equiv.ini"
COMPARE=${COMPARE_PARAMS:-$(dirname "$TESSERA")/tests/compare_params}
prep_corpus "$work/data" 60000
train() { np=$1; shift; $RUN_MPI "$np" 120 "$TESSERA" train -c "$cfg" --data "$work/data" "$@"; }

train 1 --metrics "$work/full.jsonl" --dump_params "$work/full.params" > "$work/full.out" 2>&1 \
  || { cat "$work/full.out"; fail "uninterrupted run"; finish; }
losses "$work/full.jsonl" | tail -n 10 > "$work/full.tail"
grad_norms "$work/full.jsonl" | tail -n 10 > "$work/full.norms"
[ "$(losses "$work/full.jsonl" | wc -l)" -eq 20 ] || fail "uninterrupted run: 20 losses"

base=full
pair() { # NAME NP_A "FLAGS_A" NP_B "FLAGS_B" — against the run $base
  name=$1; dir="$work/$name"
  # shellcheck disable=SC2086
  train "$2" $3 --save-dir "$dir" --save-every 5 --stop_at_step 10 --metrics "$dir.jsonl" \
    > "$dir.a.out" 2>&1 || { fail "$name: first half"; sed 's/^/    /' "$dir.a.out" | tail -n 5; return; }
  # shellcheck disable=SC2086
  train "$4" $5 --save-dir "$dir" --resume auto --metrics "$dir.jsonl" --dump_params "$dir.params" \
    > "$dir.b.out" 2>&1 || { fail "$name: resumed half"; sed 's/^/    /' "$dir.b.out" | tail -n 5; return; }
  grep -q 'resumed from .*step_00000010.h5 at step 10' "$dir.b.out" || fail "$name: did not resume at step 10"
  ran_in_layout "$dir.a.out" "$2" "$3" || fail "$name: the first half ran in another layout"
  ran_in_layout "$dir.b.out" "$4" "$5" || fail "$name: the resumed half ran in another layout"
  losses "$dir.jsonl" > "$dir.losses"
  [ "$(wc -l < "$dir.losses")" -eq 20 ] || fail "$name: metrics should hold steps 1..20 once"
  tail -n 10 "$dir.losses" > "$dir.tail"
  d=$(max_rel_diff "$dir.tail" "$work/$base.tail")
  p=$("$COMPARE" "$dir.params" "$work/$base.params" 1e-4); ok=$?
  g="not compared"; ok_g=0
  if [ -e "$work/$base.norms" ]; then
    grad_norms "$dir.jsonl" | tail -n 10 > "$dir.norms"
    g=$(max_rel_diff "$dir.norms" "$work/$base.norms"); within "$g" 1e-5 || ok_g=1
  fi
  within "$d" 1e-5 && [ $ok -eq 0 ] && [ $ok_g -eq 0 ] \
    && pass "$name: steps 11-20 losses $d, gradient norms $g, parameters: $p" \
    || fail "$name: losses $d, gradient norms $g (tolerance 1e-5), parameters: $p (tolerance 1e-4)"
}
pair dp2_zero1_to_tp2_dp2_zero3 2 "--zero 1" 4 "--tp 2 --zero 3"
pair one_to_dp4 1 "" 4 ""
pair tp4_to_one 4 "--tp 4 --tp-seq-shard" 1 ""
pair eight_to_four 8 "--tp 2 --zero 3" 4 ""       # 8 -> 4 ranks, tp2 -> tp1, ZeRO 3 -> 0
pair one_to_eight 1 "" 8 "--tp 4 --zero 2"        # 1 -> 8 ranks
pair async_tp2_dp2_to_one 4 "--tp 2 --async-save" 1 ""  # written by rank 0's background thread

# pipelines, on the 4-layer model of the pipeline suite: each stage writes
# the tensors it holds (the first stage the tied embedding), any layout reads
cfg="$TESTS_SRCDIR/pipe-equiv.ini"
train 1 --metrics "$work/full4.jsonl" --dump_params "$work/full4.params" > "$work/full4.out" 2>&1 \
  || { cat "$work/full4.out"; fail "uninterrupted 4-layer run"; finish; }
losses "$work/full4.jsonl" | tail -n 10 > "$work/full4.tail"
grad_norms "$work/full4.jsonl" | tail -n 10 > "$work/full4.norms"
base=full4
pair pp2_dp2_zero1_to_tp2 4 "--pp 2 --zero 1" 2 "--tp 2"                 # 4 -> 2 ranks
pair one_to_pp2_interleaved_tp2 1 "" 4 "--pp 2 --pp-schedule interleaved --pp-virtual 2 --tp 2"
pair pp4_async_to_pp2_gpipe 4 "--pp 4 --async-save" 2 "--pp 2 --pp-schedule gpipe"

# sequence parallelism, on a hybrid Llama-style model (lr 1e-3: see
# tests/sequence_equivalence.sh): the checkpoint holds the logical model
# whatever the sequence split, and records the architecture
arch="--attention hybrid --layer_pattern LLS --norm rmsnorm --mlp swiglu --position rope --bias false --lr 1e-3 --min_lr 1e-4"
# shellcheck disable=SC2086
train 1 $arch --metrics "$work/fullh.jsonl" --dump_params "$work/fullh.params" > "$work/fullh.out" 2>&1 \
  || { cat "$work/fullh.out"; fail "uninterrupted hybrid run"; finish; }
losses "$work/fullh.jsonl" | tail -n 10 > "$work/fullh.tail"
base=fullh
pair sp2_ring_zero1_to_pp2_tp2 4 "$arch --sp 2 --sp-kind ring --zero 1" 4 "$arch --pp 2 --tp 2"
pair one_to_sp4_allgather 1 "$arch" 4 "$arch --sp 4"
# shellcheck disable=SC2086
train 1 --attention linear --resume "$work/one_to_sp4_allgather/step_00000010.h5" --metrics "$work/a.jsonl" \
  > /dev/null 2> "$work/a.err"; status=$?
[ $status -eq 1 ] && one_error_line "$work/a.err" && grep -q 'norm rmsnorm in the checkpoint, layernorm now' "$work/a.err" \
  && grep -q 'attention per layer LLSL in the checkpoint, LLLL now' "$work/a.err" \
  && pass "another architecture is refused, listing each difference: $(cut -c1-160 "$work/a.err")" \
  || { fail "architecture mismatch: status $status"; cat "$work/a.err"; }
cfg="$TESTS_SRCDIR/equiv.ini"

# read back without tessera
ck="$work/one_to_dp4/step_00000020.h5"
h5dump -d /params/wte/weight -s 0,0 -c 1,1 "$ck" > "$work/h5dump.out" 2>&1 || fail "h5dump of $ck"
got=$(sed -n 's/^ *(0,0): *//p' "$work/h5dump.out")
want=$(od -A n -t f4 -N 4 "$work/one_to_dp4.params" | tr -d ' ')
awk -v a="$got" -v b="$want" 'BEGIN { if (a == "" || b == "") exit 1; d = a - b; if (d < 0) d = -d; exit !(d <= 1e-6 * (b < 0 ? -b : b) + 1e-7) }' \
  && pass "h5dump reads wte[0,0] = $got (tessera: $want)" || fail "h5dump read '$got', tessera '$want'"

# faults
dir="$work/one_to_dp4"
head -c 2000 "$dir/step_00000020.h5" > "$dir/cut.h5" && mv "$dir/cut.h5" "$dir/step_00000020.h5"
train 1 --save-dir "$dir" --resume auto --steps 21 --metrics "$work/f.jsonl" > "$work/f.out" 2>&1
grep -q 'warning: checkpoint .*step_00000020.h5.*not a readable HDF5 file' "$work/f.out" \
  && grep -q 'resumed from .*step_00000010.h5 at step 10' "$work/f.out" \
  && pass "a truncated newest checkpoint is reported and the one before it is used" \
  || { fail "truncated newest checkpoint"; tail -n 5 "$work/f.out"; }

# flip_bytes FILE BYTES_FILE WHAT: overwrites 4 bytes of FILE where the 8
# bytes in BYTES_FILE first occur (found by their values: a final
# parameter dump holds the same fp32 numbers as the last checkpoint)
flip_bytes() {
  local pattern offset
  pattern=$(od -A n -t x1 "$2" | tr -s ' ' | sed 's/^ //; s/ $//; s/ /\\x/g; s/^/\\x/')
  offset=$(LC_ALL=C grep -obUaP "$pattern" "$1" | head -n 1 | cut -d: -f1)
  [ -n "$offset" ] || fail "could not find $3's bytes in the checkpoint"
  printf '\377\377\377\377' | dd of="$1" bs=1 seek="${offset:-0}" conv=notrunc 2> /dev/null
}

# flip bytes inside wte's weights (the first 8 bytes of the dump)
flip="$work/tp4_to_one/step_00000020.h5"
head -c 8 "$work/tp4_to_one.params" > "$work/first8"
flip_bytes "$flip" "$work/first8" wte
train 2 --resume "$flip" --metrics "$work/g.jsonl" > "$work/g.out" 2> "$work/g.err"; status=$?
[ $status -eq 2 ] && one_error_line "$work/g.err" && grep -q 'damaged' "$work/g.err" \
  && pass "flipped bytes: $(grep '^tessera: error' "$work/g.err" | cut -c1-100)" \
  || { fail "flipped bytes: status $status"; cat "$work/g.err"; }

# damage that only rank 1 reads: replicas read disjoint ranges and share
# them, and lnf.bias, the last tensor, lies in rank 1's; rank 0 reports
# rank 1's message
flip2="$work/eight_to_four/step_00000020.h5"
tail -c 8 "$work/eight_to_four.params" > "$work/last8"
flip_bytes "$flip2" "$work/last8" lnf.bias
train 2 --resume "$flip2" --metrics "$work/g2.jsonl" > "$work/g2.out" 2> "$work/g2.err"; status=$?
[ $status -eq 2 ] && one_error_line "$work/g2.err" && grep -q 'damaged: tensor params/lnf.bias/weight fails its checksum' "$work/g2.err" \
  && pass "flipped bytes in rank 1's range: $(grep '^tessera: error' "$work/g2.err" | cut -c1-60)...lnf.bias" \
  || { fail "flipped bytes in rank 1's range: status $status"; cat "$work/g2.err"; }

train 2 --resume "$work/tp4_to_one/step_00000010.h5" --d_model 64 --metrics "$work/h.jsonl" > /dev/null 2> "$work/h.err"; status=$?
[ $status -eq 1 ] && one_error_line "$work/h.err" && grep -q 'd_model 32 in the checkpoint, 64 now' "$work/h.err" \
  && pass "another model shape is refused, listing the difference" || { fail "model shape: $status"; cat "$work/h.err"; }
train 2 --resume "$work/nowhere.h5" --metrics "$work/i.jsonl" > /dev/null 2> "$work/i.err"; status=$?
[ $status -eq 1 ] && one_error_line "$work/i.err" && grep -q 'nowhere.h5' "$work/i.err" \
  && pass "a missing checkpoint is a user error" || { fail "missing checkpoint: $status"; cat "$work/i.err"; }

# tessera ckpt: info and verify
good="$work/dp2_zero1_to_tp2_dp2_zero3/step_00000020.h5"
"$TESSERA" ckpt info "$good" > "$work/info.out" 2>&1 && grep -q 'saved by: 4 ranks = dp 2 x tp 2 x pp 1 x sp 1, ZeRO 3' "$work/info.out" \
  && grep -q 'layers.1.attn.wqkv  *\[3, 4, 8, 32\]' "$work/info.out" \
  && pass "ckpt info shows the saved layout and logical shapes" || { fail "ckpt info"; cat "$work/info.out"; }
"$TESSERA" ckpt verify "$good" > "$work/verify.out" 2>&1 && grep -q 'every checksum good' "$work/verify.out" \
  && pass "ckpt verify passes a good checkpoint" || { fail "ckpt verify on a good file"; cat "$work/verify.out"; }
"$TESSERA" ckpt verify "$flip" > /dev/null 2> "$work/verify.err"; status=$?
[ $status -eq 2 ] && grep -q 'damaged' "$work/verify.err" && pass "ckpt verify finds the flipped bytes (exit 2)" \
  || { fail "ckpt verify on a damaged file: $status"; cat "$work/verify.err"; }

# a file without the `complete` marker (a save that never finished) is refused
nc="$work/no_complete.h5"
cp "$work/tp4_to_one/step_00000020.h5" "$nc" && "$STRIP_ATTRIBUTE" "$nc" complete || fail "strip_attribute"
train 1 --resume "$nc" --metrics "$work/nc.jsonl" > "$work/nc.out" 2> "$work/nc.err"; status=$?
[ $status -eq 2 ] && one_error_line "$work/nc.err" && grep -q 'incomplete (no `complete` marker)' "$work/nc.err" \
  && pass "missing complete marker: $(grep '^tessera: error' "$work/nc.err" | cut -c1-90)" \
  || { fail "missing complete marker: status $status"; cat "$work/nc.err"; }
"$TESSERA" ckpt verify "$nc" > /dev/null 2>&1; status=$?
[ $status -eq 2 ] && pass "ckpt verify refuses the incomplete file (exit 2)" || fail "ckpt verify of an incomplete file: $status"

# SIGUSR1 (Slurm's warning signal): save at the step boundary, exit 4; --keep 2;
# with --async-save, so the exit also waits for the background writer
sig="$work/signalled"
$RUN_MPI 2 120 "$TESSERA" train -c "$cfg" --data "$work/data" --steps 100000 --save-dir "$sig" \
  --save-every 25 --keep 2 --async-save --metrics "$sig.jsonl" > "$sig.out" 2>&1 &
for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do
  [ -f "$sig/step_00000075.h5" ] && break; sleep 1
done
pkill -USR1 -f "^$TESSERA train.*$sig" ; wait $!; status=$?
n=$(ls "$sig" | grep -c '^step_.*\.h5$')
stop_step=$(sed -n 's/^stopped by a signal after step \([0-9]*\).*/\1/p' "$sig.out")
[ $status -eq 4 ] && [ -n "$stop_step" ] && [ -f "$sig/$(printf 'step_%08d.h5' "$stop_step")" ] && [ "$n" -eq 2 ] \
  && pass "SIGUSR1: saved at step $stop_step, exit 4, $n checkpoints kept" \
  || { fail "SIGUSR1: status $status, stop step '$stop_step', $n checkpoints"; tail -n 5 "$sig.out"; ls "$sig"; }

# tessera sample: the checkpoint's model, the trainer's sampler: the text the
# run printed at its last step comes back from the file (seed = seed + step)
smp="$work/sampled"
train 1 --steps 3 --save-dir "$smp" --sample_tokens 40 --sample_prompt "The" --metrics "$smp.jsonl" \
  > "$smp.out" 2>&1 || fail "sampling run"
sed -n '/^---- sample at step 3 ----$/,/^----$/p' "$smp.out" | sed '1d;$d' > "$smp.train.txt"
"$TESSERA" sample --ckpt "$smp/step_00000003.h5" --prompt "The" --tokens 40 --seed 14 > "$smp.file.txt" 2>&1 \
  || fail "tessera sample --ckpt FILE exits $?"
[ -s "$smp.train.txt" ] && cmp -s "$smp.train.txt" "$smp.file.txt" \
  && pass "tessera sample reproduces the run's own sample from the checkpoint" \
  || { fail "tessera sample differs from the run's sample"; cat "$smp.train.txt" "$smp.file.txt"; }
# a save directory stands for the checkpoint its `latest` names
"$TESSERA" sample --ckpt "$smp" --prompt "The" --tokens 40 --seed 14 > "$smp.dir.txt" 2>&1 \
  || fail "tessera sample --ckpt DIR exits $?"
cmp -s "$smp.file.txt" "$smp.dir.txt" && "$TESSERA" ckpt info "$smp" > "$smp.info" 2>&1 \
  && grep -q "^checkpoint $smp/step_00000003.h5 " "$smp.info" \
  && pass "sample --ckpt DIR and ckpt info DIR take DIR/latest" \
  || { fail "a save directory as the checkpoint"; cat "$smp.dir.txt" "$smp.info"; }
mkdir -p "$work/no_latest"
"$TESSERA" ckpt verify "$work/no_latest" > /dev/null 2> "$work/nl.err"; status=$?
[ $status -eq 1 ] && one_error_line "$work/nl.err" && grep -q 'without a `latest` file' "$work/nl.err" \
  && pass "a directory without latest is a user error" || { fail "directory without latest: $status"; cat "$work/nl.err"; }
"$TESSERA" sample --ckpt "$work/nowhere.h5" > /dev/null 2> "$work/s.err"; status=$?
[ $status -eq 1 ] && one_error_line "$work/s.err" && pass "sample: a missing checkpoint is a user error" \
  || fail "sample with a missing checkpoint: $status"

# a rank killed in the middle of a save: the previous checkpoint stays
# `latest`, the half-written file is never taken for a checkpoint, and
# `--resume auto` continues from the previous one
# (parallel HDF5: rank 1, one of the collective writers; serial HDF5: rank 0,
# the one writer)
crash="$work/crash"
"$TESSERA" --version > "$work/version" 2>&1 || fail "tessera --version exits $?"
victim=1; grep -q 'HDF5: .*(serial)' "$work/version" && victim=0
TESSERA_FAULT_SAVE=$victim:10 $RUN_MPI 2 120 "$TESSERA" train -c "$cfg" --data "$work/data" --save-dir "$crash" \
  --save-every 5 --metrics "$crash.jsonl" > "$crash.out" 2>&1; status=$?
[ $status -ne 0 ] && [ $status -ne 124 ] && grep -q 'injected fault: dying in the save of step 10' "$crash.out" \
  && [ "$(cat "$crash/latest")" = "step_00000005.h5" ] && [ ! -e "$crash/step_00000010.h5" ] \
  && pass "killed mid-save: job ended ($status), latest still step 5, no step-10 file" \
  || { fail "killed mid-save: status $status, latest $(cat "$crash/latest" 2>/dev/null)"; ls -a "$crash"; }
train 1 --save-dir "$crash" --resume auto --metrics "$crash.jsonl" > "$crash.b.out" 2>&1 \
  && grep -q 'resumed from .*step_00000005.h5 at step 5' "$crash.b.out" \
  && pass "resume auto after the crash continues from step 5" || { fail "resume after the crash"; tail -n 3 "$crash.b.out"; }
# the same with --async-save: rank 0's background writer dies mid-file
crash="$work/crash_async"
TESSERA_FAULT_SAVE=0:10 $RUN_MPI 2 120 "$TESSERA" train -c "$cfg" --data "$work/data" --save-dir "$crash" \
  --save-every 5 --async-save --metrics "$crash.jsonl" > "$crash.out" 2>&1; status=$?
[ $status -ne 0 ] && [ $status -ne 124 ] && grep -q 'injected fault: dying in the save of step 10' "$crash.out" \
  && [ "$(cat "$crash/latest")" = "step_00000005.h5" ] && [ ! -e "$crash/step_00000010.h5" ] \
  && "$TESSERA" ckpt verify "$crash/step_00000005.h5" > /dev/null \
  && pass "async writer killed mid-save: job ended ($status), latest still step 5 and it verifies" \
  || { fail "async writer killed mid-save: status $status, latest $(cat "$crash/latest" 2>/dev/null)"; ls -a "$crash"; }
finish
