#!/bin/sh
# offload — --offload-optimizer host|nvme:DIR on the CPU backend
# (doc/design.md, "Optimizer offload"):
#  (a) ZeRO 1, 2 and 3 on 2 ranks, and tp 2 x dp 2 (ZeRO 1) and pp 2 x
#      dp 2 (ZeRO 1: ZeRO 2 and 3 refuse a pipeline) on 4 ranks: every loss
#      and gradient norm of the offloaded runs EQUALS the run without
#      offload, as printed (tolerance 0): the
#      host's update is the CPU backend's AdamW element for element (the
#      same function, fp32, no FMA contraction: ISO C mode) over the same
#      segments cut at chunk bounds, and an element's update reads only its
#      own gradient, weight and moments, so chunking reorders nothing; the
#      gradient norm is computed on the backend as before;
#  (b) the start record's memory per rank follows the formula, with S the
#      rank's ZeRO range (rank 0: ⌈Ψ/2⌉) and C the chunk (0.01 MiB: 2621
#      elements, rounded up to whole 4 KiB blocks: 3072): weights fall by 4S
#      (the fp32 master), optimizer by 8S (to 0), gradients and activations
#      stay; the new kind "offloaded" holds 12S (host) or 3 chunks x 3
#      states x 4C bytes (nvme) — and the start line says where the state is;
#  (c) a run with nvme offload into its own checkpoint folder SIGKILLed
#      mid-update (TESSERA_TEST_OFFLOAD_KILL, every rank, chunk 0 of step 6
#      written) leaves its offload files there; `ckpt info` / `ckpt verify`
#      of the folder take the step-4 checkpoint, `ckpt info` of an offload
#      file says it is none (exit 1), `--resume auto` continues from step 4
#      with the losses of the uninterrupted run, and the clean end removes
#      the files; a run killed before its first save leaves only offload
#      files, and `--resume auto` is then a fresh start (not "checkpoints
#      there but none readable");
#  (d) a checkpoint saved without offload resumes into nvme offload, whose
#      save resumes without: the losses of the uninterrupted run;
#  (e) refusals, exit 1 and one line: a folder that does not exist, a file
#      instead of a folder, a bad value, a folder whose offload file a live
#      run holds (flock); with a tmpfs (when mount works here): a full
#      folder (64 KiB) and a read-only one.
# The emulated CUDA backend's runs are in tests/cuda_lib.sh (cuda_offload).
. "$TESTS_SRCDIR/lib.sh"

cfg="$TESTS_SRCDIR/equiv.ini"
prep_corpus "$work/data" 30000
mounts=""
trap 'for m in $mounts; do umount "$m" 2> /dev/null; done; rm -rf "$work"' EXIT INT TERM
CHUNK=3072
train() { # NAME NP FLAGS... — 8 steps, chunks of 0.01 MiB
  t_name=$1; t_np=$2; shift 2
  $RUN_MPI "$t_np" 120 "$TESSERA" train -c "$cfg" --data "$work/data" --steps 8 --offload-chunk-mb 0.01 \
    --metrics "$work/$t_name.jsonl" "$@" > "$work/$t_name.out" 2>&1
}
field() { sed -n "s/.*\"$1\":\\([0-9]*\\).*/\\1/p" "$2" | head -n 1; }
same_numbers() { # NAME REF — every loss and gradient norm, as printed
  losses "$work/$1.jsonl" > "$work/$1.l"; losses "$work/$2.jsonl" > "$work/$2.l"
  grad_norms "$work/$1.jsonl" > "$work/$1.g"; grad_norms "$work/$2.jsonl" > "$work/$2.g"
  [ -s "$work/$1.l" ] && cmp -s "$work/$1.l" "$work/$2.l" && cmp -s "$work/$1.g" "$work/$2.g"
}

# (a), (b)
memory_formula() { # NAME REF KIND
  psi=$(field params_local "$work/$1.jsonl"); s=$(( (psi + 1) / 2 ))
  want_off=$((12 * s)); [ "$3" = nvme ] && want_off=$((3 * 3 * 4 * CHUNK))
  want="$(( $(field mem_weights "$work/$2.jsonl") - 4 * s )) $(field mem_grads "$work/$2.jsonl") 0 $want_off"
  got="$(field mem_weights "$work/$1.jsonl") $(field mem_grads "$work/$1.jsonl") $(field mem_optimizer "$work/$1.jsonl") $(field mem_offloaded "$work/$1.jsonl")"
  [ "$got" = "$want" ] && [ "$(field mem_optimizer "$work/$2.jsonl")" -eq $((8 * s)) ] \
    && pass "$1: weights, gradients, optimizer, offloaded bytes = $got (S = $s; without offload optimizer $((8 * s)))" \
    || fail "$1: memory $got, the formula $want (S = $s)"
}
for zero in 1 2 3; do
  train "z$zero" 2 --zero $zero || { fail "zero $zero without offload"; cat "$work/z$zero.out"; continue; }
  for kind in host nvme; do
    target=$kind; [ $kind = nvme ] && { mkdir -p "$work/off$zero"; target="nvme:$work/off$zero"; }
    name="z$zero-$kind"
    train "$name" 2 --zero $zero --offload-optimizer "$target" || { fail "$name"; cat "$work/$name.out"; continue; }
    same_numbers "$name" "z$zero" && pass "$name: $(wc -l < "$work/$name.l") losses and gradient norms equal to ZeRO $zero's" \
      || fail "$name: losses $(tr '\n' ' ' < "$work/$name.l") vs $(tr '\n' ' ' < "$work/z$zero.l")"
    memory_formula "$name" "z$zero" $kind
    grep -q "^optimizer offloaded to $kind" "$work/$name.out" || fail "$name: no 'optimizer offloaded to $kind' line"
    [ $kind = nvme ] && { [ -z "$(ls "$work/off$zero")" ] && pass "$name: the offload files are gone at the end" \
      || fail "$name: left $(ls "$work/off$zero")"; }
  done
done
mkdir -p "$work/offtp"
for case in "tp --tp 2 --zero 1|nvme:$work/offtp" "pp --pp 2 --zero 1|host"; do
  name=${case%% *}; rest=${case#* }; flags=${rest%|*}; target=${case#*|}
  # shellcheck disable=SC2086
  train "$name" 4 $flags && train "$name-off" 4 $flags --offload-optimizer "$target" \
    && ran_in_layout "$work/$name-off.out" 4 "$flags" && same_numbers "$name-off" "$name" \
    && pass "$flags --offload-optimizer ${target%%:*}: losses and gradient norms equal" \
    || { fail "$flags with offload"; tail -n 3 "$work/$name-off.out"; }
done

# (c) killed with nvme offload, the folder shared with the checkpoints
ck="$work/ck"; mkdir -p "$ck"
TESSERA_TEST_OFFLOAD_KILL=6 train killed 2 --zero 2 --offload-optimizer "nvme:$ck" --save-dir "$ck" --save-every 4
status=$?
[ $status -ne 0 ] && [ $status -ne 124 ] && [ -e "$ck/tessera-offload-rank00000.state" ] \
  && [ "$(cat "$ck/latest")" = step_00000004.h5 ] \
  && pass "SIGKILL in step 6's update: exit $status; left $(ls "$ck" | tr '\n' ' ')" \
  || { fail "the killed run: status $status, folder: $(ls "$ck" | tr '\n' ' ')"; tail -n 3 "$work/killed.out"; }
"$TESSERA" ckpt info "$ck" > "$work/info.out" 2>&1 && grep -q "step_00000004.h5" "$work/info.out" \
  && "$TESSERA" ckpt verify "$ck" > /dev/null 2>&1 && pass "ckpt info / verify of the folder take step_00000004.h5" \
  || { fail "ckpt info/verify of the folder with offload files"; cat "$work/info.out"; }
"$TESSERA" ckpt info "$ck/tessera-offload-rank00000.state" > /dev/null 2> "$work/info.err"
refusal "ckpt info of an offload file" 1 $? "$work/info.err" "offloaded optimizer state.*not a checkpoint"
train resumed 2 --zero 2 --offload-optimizer "nvme:$ck" --save-dir "$ck" --resume auto \
  && grep -q "resumed from .*step_00000004.h5 at step 4" "$work/resumed.out" \
  && losses "$work/resumed.jsonl" | head -n 4 > "$work/resumed.l" && losses "$work/z2.jsonl" | sed -n 5,8p > "$work/z2.tail" \
  && cmp -s "$work/resumed.l" "$work/z2.tail" \
  && pass "resume auto after the kill: steps 5-8 = the uninterrupted run's ($(tr '\n' ' ' < "$work/resumed.l"))" \
  || { fail "resume after the kill"; tail -n 3 "$work/resumed.out"; }
ls "$ck" | grep -q offload && fail "the resumed run's clean end left: $(ls "$ck" | tr '\n' ' ')" \
  || pass "the resumed run's clean end removed the offload files"
ck2="$work/ck2"; mkdir -p "$ck2"
TESSERA_TEST_OFFLOAD_KILL=2 train killed2 2 --zero 1 --offload-optimizer "nvme:$ck2" --save-dir "$ck2" --save-every 4
train fresh 2 --zero 1 --offload-optimizer "nvme:$ck2" --save-dir "$ck2" --resume auto \
  && ! grep -q resumed "$work/fresh.out" && same_numbers fresh z1 \
  && pass "killed before the first save: only offload files; --resume auto starts fresh, losses = ZeRO 1's" \
  || { fail "resume auto over offload files only"; tail -n 3 "$work/fresh.out"; }

# (d) without offload -> nvme -> without
ck3="$work/ck3"
train d1 2 --zero 1 --save-dir "$ck3" --save-every 4 --stop-at-step 4 \
  && train d2 2 --zero 1 --save-dir "$ck3" --save-every 2 --stop-at-step 6 --resume auto --offload-optimizer "nvme:$work" \
  && train d3 2 --zero 1 --save-dir "$ck3" --resume auto \
  && { losses "$work/d1.jsonl" | head -n 4; losses "$work/d2.jsonl" | head -n 2; losses "$work/d3.jsonl" | head -n 2; } > "$work/d.l" \
  && losses "$work/z1.jsonl" | head -n 8 > "$work/z1.head" && cmp -s "$work/d.l" "$work/z1.head" \
  && pass "saved without offload -> resumed into nvme offload (saved at 6) -> resumed without: the 8 losses of ZeRO 1" \
  || { fail "resume into and out of offload"; paste "$work/d.l" "$work/z1.head"; }

# (e) refusals
bad() { # NAME PATTERN TARGET
  train bad 1 --offload-optimizer "$3" --steps 1; status=$?
  refusal "$1" 1 $status "$work/bad.out" "$2"
}
bad "a folder that does not exist" "nvme:$work/nowhere: No such file or directory: create the folder" "nvme:$work/nowhere"
touch "$work/plain"
bad "a file, not a folder" "not a folder" "nvme:$work/plain"
bad "an unknown target" "offload_optimizer = 'disk': use none, host or nvme:DIR" disk
bad "nvme without a folder" "use none, host or nvme:DIR" "nvme:"
# a folder whose offload file another live run holds (its flock, taken here by flock(1))
mkdir -p "$work/busy"; touch "$work/busy/tessera-offload-rank00000.state"
if command -v flock > /dev/null 2>&1; then
  (exec 9> "$work/busy/tessera-offload-rank00000.state"; flock 9 && exec sleep 60) & holder=$! # the sleep holds it
  sleep 1
  bad "a folder in use by another run" "another run is using it" "nvme:$work/busy"
  kill "$holder" 2> /dev/null; wait "$holder" 2> /dev/null
  [ -e "$work/busy/tessera-offload-rank00000.state" ] && pass "the other run's file is left alone" \
    || fail "the refused run removed the other run's file"
else
  echo "NOTE: flock(1) not found (util-linux): the folder-in-use case is not run"
fi
mkdir -p "$work/full" "$work/ro"
if mount -t tmpfs -o size=64k tmpfs "$work/full" 2> "$work/mount.err"; then
  mounts="$work/full"
  bad "a full folder (tmpfs of 64 KiB)" "cannot create .*No space left on device: free space there" "nvme:$work/full"
  [ -z "$(ls "$work/full")" ] || fail "the refused run left $(ls "$work/full")"
  mount -t tmpfs -o ro,size=64k tmpfs "$work/ro" && mounts="$mounts $work/ro" \
    && bad "a read-only folder" "cannot create .*Read-only file system: name a writable folder" "nvme:$work/ro"
else
  echo "NOTE: the full and read-only folder cases need a tmpfs mount, not possible here: $(cat "$work/mount.err")"
fi
finish
