#!/bin/sh
# cuda_training — training on a real GPU: the suite of tests/cuda_lib.sh
# (CUDA against CPU, multi-rank on one GPU with --comm mpi against one rank,
# checkpoints across backends; tolerances stated there) with this build's
# own binary, and where the machine has two GPUs or more, the same layouts
# with --comm nccl: NCCL communicators per grid group on their own streams,
# bf16 reductions, and the byte counters' 2-byte activations. `--comm auto`
# must pick NCCL there, and more ranks than GPUs with --comm nccl must be
# refused. Exits 77 only without a CUDA build or where the machine has no
# GPU (the CUDA runtime counts none, or fails where /dev has no NVIDIA
# device node: `tessera --version` says "GPUs: none (...)"); a GPU the
# runtime cannot use ("GPUs: unusable: ...", a broken driver) fails with
# the runtime's message (kernels/device_probe.h, tests/test_device_probe.c).
# tests/cuda_training_emulated.sh covers what a CPU machine can.
. "$TESTS_SRCDIR/lib.sh"
. "$TESTS_SRCDIR/cuda_lib.sh"

"$TESSERA" --version > "$work/version" 2>&1 || { cat "$work/version"; fail "tessera --version"; finish; }
grep -q 'CUDA: backend built' "$work/version" || { echo "SKIP: a build without CUDA"; exit 77; }
gpus=$(sed -n 's/^  GPUs: //p' "$work/version")
case $gpus in
  none*) echo "SKIP: no GPU: $gpus"; exit 77 ;;
  [1-9]*" visible") n_gpus=${gpus%% *} ;;
  *) fail "the CUDA backend cannot use this machine's GPU: ${gpus:-no GPUs line in tessera --version}"; finish ;;
esac
echo "GPUs: $n_gpus"
CUDA_BIN="$TESSERA"
cuda_suite

if [ "$n_gpus" -ge 2 ]; then
  # NCCL: one GPU per rank (each rank takes the GPU of its node-local rank)
  cuda_layout nccl_dp2 2 --comm nccl
  cuda_layout nccl_tp2 2 --comm nccl --tp 2
  cuda_layout nccl_zero2 2 --comm nccl --zero 2
  cuda_layout nccl_zero3 2 --comm nccl --zero 3
  cuda_layout nccl_sp2 2 --comm nccl --sp 2
  cuda_layout nccl_sp2_ring 2 --comm nccl --sp 2 --sp-kind ring
  cuda_layout nccl_sp2_ulysses 2 --comm nccl --sp 2 --sp-kind ulysses
  cuda_layout nccl_sp2_tokenring 2 --comm nccl --sp 2 --sp-kind tokenring
  cuda_layout nccl_tp2_seq 2 --comm nccl --tp 2 --tp-seq-shard
  cuda_layout nccl_pp2 2 --comm nccl --pp 2
  cuda_layout nccl_auto_dp2 2
  grep -q '"comm":"nccl"' "$work/nccl_auto_dp2.jsonl" && pass "--comm auto picks nccl with a GPU per rank" \
    || fail "--comm auto did not pick nccl on $n_gpus GPUs"
  tp_bytes_per_step nccl_tp2 2
  if [ "$n_gpus" -ge 4 ]; then
    cuda_layout nccl_tp2_sp2_zero1 4 --comm nccl --tp 2 --sp 2 --zero 1
    cuda_layout nccl_dp2_tp2_zero2 4 --comm nccl --tp 2 --zero 2
  fi
  over=$((n_gpus + 1))
  $RUN_MPI $over 120 "$TESSERA" train -c "$cuda_cfg" --data "$work/data" --backend cuda --comm nccl \
    --batch_size $((2 * over)) --micro_batch_size 2 > "$work/r4.out" 2>&1
  status=$?
  [ $status -eq 1 ] && one_error_line "$work/r4.out" && grep -q 'share a GPU.*--comm mpi' "$work/r4.out" \
    && pass "$over ranks on $n_gpus GPUs with --comm nccl: $(grep 'error' "$work/r4.out")" \
    || fail "$over ranks on $n_gpus GPUs with --comm nccl: status $status"
else
  echo "one GPU: the --comm nccl layouts need two"
fi
finish
