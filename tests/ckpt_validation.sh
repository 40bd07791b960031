#!/bin/sh
# ckpt_validation — every reader refuses a checkpoint whose tensors are not
# the model's before it uses a byte of them, with one message naming the
# file, the tensor and the model's and the stored shape, exit 2: a column
# short, a row missing, transposed, stored as fp64, and a crafted checksum
# tiling (whose arithmetic overflowed a signed division before it was
# bounded). Each damaged file goes to `train --resume`, `ckpt verify` and
# `sample`, which share one validator (src/checkpoint/ckpt_validate.c), so
# verify cannot pass a file a resume refuses; `--init-from` and `eval` on one
# case each. The root attributes too: no `step`, a string `step`,
# format_version 9, step -1 and 2^62, optimizer_step unlike step, a
# data_position unlike step x batch_size, tokens unlike step x batch_size x
# seq_len (all passed `ckpt verify` before); a resume in another batch_size;
# a resume past the run's last step is a user error.
# `latest` naming a path outside its directory or being a directory, and
# `--resume auto` over checkpoints none of which is readable, are refused;
# a fresh start over an earlier metrics file says that it truncates it.
# The files are crafted with tests/rewrite_checkpoint (HDF5 API).
. "$TESTS_SRCDIR/lib.sh"

cfg="$TESTS_SRCDIR/tiny-test.ini"
REWRITE=${REWRITE_CHECKPOINT:-$(dirname "$TESSERA")/tests/rewrite_checkpoint}
STRIP_ATTRIBUTE=${STRIP_ATTRIBUTE:-$(dirname "$TESSERA")/tests/strip_attribute}
prep_corpus "$work/data" 20000
train() { $RUN_MPI 1 60 "$TESSERA" train -c "$cfg" --data "$work/data" --val_every 0 "$@"; }
# the refused runs: one process without mpirun (an MPI singleton; the checks
# are each rank's own), which saves mpirun's 2 s start per case
refused_train() { timeout 60 "$TESSERA" train -c "$cfg" --data "$work/data" --val_every 0 "$@"; }

train --steps 2 --save-dir "$work/good" --metrics "$work/good.jsonl" > "$work/good.out" 2>&1 \
  || { cat "$work/good.out"; fail "the run that saves the good checkpoint"; finish; }
good="$work/good/step_00000002.h5"
"$TESSERA" ckpt verify "$good" > /dev/null 2>&1 || fail "ckpt verify of the good checkpoint"

# refused NAME STATUS FRAGMENT — the last command's status and stderr ($work/NAME.err)
refused() { refusal "$1" "$2" "$status" "$work/$1.err" "$3" -F; }

# every_reader CASE FRAGMENT — resume, verify and sample refuse $work/CASE.h5
every_reader() {
  file="$work/$1.h5"
  refused_train --steps 4 --resume "$file" --metrics "$work/$1.jsonl" > "$work/$1.resume.out" 2> "$work/$1.resume.err"
  status=$?; refused "$1.resume" 2 "$2"
  "$TESSERA" ckpt verify "$file" > "$work/$1.verify.out" 2> "$work/$1.verify.err"
  status=$?; refused "$1.verify" 2 "$2"
  "$TESSERA" sample --ckpt "$file" --tokens 4 > "$work/$1.sample.out" 2> "$work/$1.sample.err"
  status=$?; refused "$1.sample" 2 "$2"
}

# craft CASE OP ARGS... — a copy of the good file, rewritten
craft() { name=$1; shift; cp "$good" "$work/$name.h5" && "$REWRITE" "$work/$name.h5" "$@" || fail "crafting $name"; }

wte=params/wte/weight
craft column_short reshape $wte 257 31
every_reader column_short "checkpoint '$work/column_short.h5': tensor $wte has the shape [257, 31], the model's is [257, 32]"
craft row_missing reshape $wte 256 32
every_reader row_missing "tensor $wte has the shape [256, 32], the model's is [257, 32]"
craft transposed reshape $wte 32 257
every_reader transposed "tensor $wte has the shape [32, 257], the model's is [257, 32]"
craft moment_short reshape params/wte/adam_m 257 31
refused_train --steps 4 --resume "$work/moment_short.h5" --metrics "$work/m.jsonl" > /dev/null 2> "$work/moment_short.resume.err"
status=$?; refused moment_short.resume 2 "tensor params/wte/adam_m has the shape [257, 31]"
"$TESSERA" ckpt verify "$work/moment_short.h5" > /dev/null 2> "$work/moment_short.verify.err"
status=$?; refused moment_short.verify 2 "tensor params/wte/adam_m has the shape [257, 31]"
craft fp64 f64 $wte
every_reader fp64 "tensor $wte is not stored as fp32"
# a shard extent near 2^63 overflowed ceil_div's signed sum before the bound
craft tiling_overflow tiling $wte 0 9223372036854775807 1
every_reader tiling_overflow "tensor $wte lacks its checksums or its checksum tiling is out of range"
craft tiling_rows tiling $wte -1 0 0
every_reader tiling_rows "tensor $wte lacks its checksums or its checksum tiling is out of range"

# the run state: present, integer, in range, consistent, a known format
strip() { name=$1; cp "$good" "$work/$name.h5" && "$STRIP_ATTRIBUTE" "$work/$name.h5" "$2" || fail "crafting $name"; }
strip no_step step
every_reader no_step "checkpoint '$work/no_step.h5' is damaged: attribute \`step\` is missing or not an integer"
craft string_step str step 2
every_reader string_step "attribute \`step\` is missing or not an integer"
craft version9 i64 format_version 9
every_reader version9 "checkpoint '$work/version9.h5' has format version 9; this tessera reads version 2"
craft step_negative i64 step -1
every_reader step_negative "is damaged: step -1 is out of range [0, 2^40]"
craft step_huge i64 step 4611686018427387904
"$TESSERA" ckpt verify "$work/step_huge.h5" > /dev/null 2> "$work/step_huge.verify.err"
status=$?; refused step_huge.verify 2 "step 4611686018427387904 is out of range [0, 2^40]"
craft optimizer_ahead i64 optimizer_step 5
every_reader optimizer_ahead "is damaged: optimizer_step 5 differs from step 2 (each step is one optimizer step)"
craft position_off i64 data_position 17
"$TESSERA" ckpt verify "$work/position_off.h5" > /dev/null 2> "$work/position_off.verify.err"
status=$?; refused position_off.verify 2 "is damaged: data_position 17 is not step 2 x batch_size 8"
craft tokens_off i64 tokens 1000
every_reader tokens_off "is damaged: tokens 1000 is not step 2 x batch_size 8 x seq_len 32"
# a resume in another batch_size would go on from another data position
refused_train --steps 4 --batch_size 16 --resume "$good" --metrics "$work/batch.jsonl" > /dev/null 2> "$work/other_batch.err"
status=$?; refused other_batch 1 "--resume: checkpoint '$good' was trained with batch_size 8 (16 sequences read by step 2); this run's batch_size 16 would go on from sequence 32, skipping or repeating data: resume with batch_size 8"

# a step past the run's schedule: nothing to continue (it printed "done: -1 steps")
refused_train --steps 1 --resume "$good" --metrics "$work/past.jsonl" > /dev/null 2> "$work/past_schedule.err"
status=$?; refused past_schedule 1 "--resume: the checkpoint is at step 2, beyond this run's 1 steps: raise --steps"

# `latest` names a file inside its directory, and is a file
mkdir -p "$work/elsewhere" "$work/latest_dir/latest"
echo "../good/step_00000002.h5" > "$work/elsewhere/latest"
refused_train --steps 4 --save-dir "$work/elsewhere" --resume auto --metrics "$work/e.jsonl" > /dev/null 2> "$work/elsewhere.resume.err"
status=$?; refused elsewhere.resume 2 "'$work/elsewhere/latest' names '../good/step_00000002.h5', not a file inside its directory"
"$TESSERA" ckpt verify "$work/elsewhere" > /dev/null 2> "$work/elsewhere.verify.err"
status=$?; refused elsewhere.verify 2 "names '../good/step_00000002.h5', not a file inside its directory"
"$TESSERA" sample --ckpt "$work/latest_dir" --tokens 4 > /dev/null 2> "$work/latest_dir.sample.err"
status=$?; refused latest_dir.sample 2 "'$work/latest_dir/latest' is a directory, not the file naming the newest checkpoint"
refused_train --steps 4 --save-dir "$work/latest_dir" --resume auto --metrics "$work/l.jsonl" > /dev/null 2> "$work/latest_dir.resume.err"
status=$?; refused latest_dir.resume 2 "'$work/latest_dir/latest' is a directory"

# --resume auto with checkpoints of which none is readable: an error that
# leaves the earlier run's metrics alone, never a fresh start
mkdir -p "$work/unreadable"
cp "$work/no_step.h5" "$work/unreadable/step_00000002.h5"
head -c 4096 "$good" > "$work/unreadable/step_00000001.h5"
echo "step_00000002.h5" > "$work/unreadable/latest"
echo '{"earlier":"run"}' > "$work/unreadable.jsonl"
refused_train --steps 4 --save-dir "$work/unreadable" --resume auto --metrics "$work/unreadable.jsonl" \
  > /dev/null 2> "$work/unreadable.resume.err"
status=$?; refused unreadable.resume 2 "--resume auto: '$work/unreadable' holds checkpoints but none is readable"
[ "$(cat "$work/unreadable.jsonl")" = '{"earlier":"run"}' ] && pass "the earlier run's metrics are untouched" \
  || fail "the refused resume changed the metrics file"
rm "$work/unreadable/latest"
refused_train --steps 4 --save-dir "$work/unreadable" --resume auto --metrics "$work/u2.jsonl" > /dev/null 2> "$work/no_latest.resume.err"
status=$?; refused no_latest.resume 2 "holds checkpoints but none is readable"
echo '{"earlier":"run"}' > "$work/empty.jsonl"
train --steps 2 --save-dir "$work/empty" --resume auto --metrics "$work/empty.jsonl" > "$work/empty.out" 2>&1 \
  && [ -f "$work/empty/step_00000002.h5" ] && pass "--resume auto in a directory without checkpoints starts fresh" \
  || { fail "fresh start with --resume auto"; tail -n 3 "$work/empty.out"; }
grep -qF "tessera: warning: a fresh start: truncating the metrics file '$work/empty.jsonl' (18 bytes of an earlier run)" \
  "$work/empty.out" && ! grep -q earlier "$work/empty.jsonl" \
  && pass "the fresh start says it truncates the earlier metrics file" \
  || { fail "a fresh start truncated the metrics file silently"; grep -i warning "$work/empty.out"; }

# --init-from and eval: the same validator
refused_train --steps 2 --init-from "$work/column_short.h5" --metrics "$work/init.jsonl" > /dev/null 2> "$work/init_from.err"
status=$?; refused init_from 2 "tensor $wte has the shape [257, 31], the model's is [257, 32]"
"$TESSERA" eval --ckpt "$work/transposed.h5" --val-data "$work/data" --backend cpu > /dev/null 2> "$work/eval.err"
status=$?; refused eval 2 "tensor $wte has the shape [32, 257], the model's is [257, 32]"
finish
