#!/bin/sh
# ckpt_validation — every reader refuses a checkpoint whose tensors are not
# the model's before it uses a byte of them, with one message naming the
# file, the tensor and the model's and the stored shape, exit 2: a column
# short, a row missing, transposed, stored as fp64, and a crafted checksum
# tiling (whose arithmetic overflowed a signed division before it was
# bounded). Each damaged file goes to `train --resume`, `ckpt verify` and
# `sample`, which share one validator (src/checkpoint/ckpt_validate.c), so
# verify cannot pass a file a resume refuses; `--init-from` and `eval` on one
# case each. The files are crafted with tests/rewrite_checkpoint (HDF5 API).
. "$TESTS_SRCDIR/lib.sh"

cfg="$TESTS_SRCDIR/tiny-test.ini"
REWRITE=${REWRITE_CHECKPOINT:-$(dirname "$TESSERA")/tests/rewrite_checkpoint}
prep_corpus "$work/data" 20000
train() { $RUN_MPI 1 60 "$TESSERA" train -c "$cfg" --data "$work/data" --val_every 0 "$@"; }

train --steps 2 --save-dir "$work/good" --metrics "$work/good.jsonl" > "$work/good.out" 2>&1 \
  || { cat "$work/good.out"; fail "the run that saves the good checkpoint"; finish; }
good="$work/good/step_00000002.h5"
"$TESSERA" ckpt verify "$good" > /dev/null 2>&1 || fail "ckpt verify of the good checkpoint"

# refused NAME STATUS FRAGMENT — the last command's status and stderr ($work/NAME.err)
refused() {
  if [ "$status" -eq "$2" ] && one_error_line "$work/$1.err" && grep -qF "$3" "$work/$1.err"; then
    pass "$1: exit $2, $(grep '^tessera: error' "$work/$1.err" | cut -c1-150)"
  else
    fail "$1: status $status (want $2), want '$3' in:"; sed 's/^/    /' "$work/$1.err" | head -n 5
  fi
}

# every_reader CASE FRAGMENT — resume, verify and sample refuse $work/CASE.h5
every_reader() {
  file="$work/$1.h5"
  train --steps 4 --resume "$file" --metrics "$work/$1.jsonl" > "$work/$1.resume.out" 2> "$work/$1.resume.err"
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
train --steps 4 --resume "$work/moment_short.h5" --metrics "$work/m.jsonl" > /dev/null 2> "$work/moment_short.resume.err"
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

# --init-from and eval: the same validator
train --steps 2 --init-from "$work/column_short.h5" --metrics "$work/init.jsonl" > /dev/null 2> "$work/init_from.err"
status=$?; refused init_from 2 "tensor $wte has the shape [257, 31], the model's is [257, 32]"
"$TESSERA" eval --ckpt "$work/transposed.h5" --val-data "$work/data" --backend cpu > /dev/null 2> "$work/eval.err"
status=$?; refused eval 2 "tensor $wte has the shape [32, 257], the model's is [257, 32]"
finish
