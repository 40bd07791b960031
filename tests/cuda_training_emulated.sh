#!/bin/sh
# cuda_training_emulated — training on the CUDA backend, end to end, on a
# machine without a GPU. tests/cuda_emu/build-tessera.sh builds a whole
# tessera whose CUDA backend runs kernels/cuda/*.cu on the host (bf16
# storage, the same kernels, every device buffer behind backend.h's opaque
# handles, host_pointer NULL); NCCL is not emulated, so device buffers
# travel by MPI staged through host memory (--comm mpi), the path several
# ranks sharing one GPU take. The suite — CUDA against CPU, multi-rank
# against one rank, checkpoints across backends, with the tolerances and
# why — is tests/cuda_lib.sh; here also: --comm nccl is refused in a build
# without NCCL, and the real binary refuses --backend cuda where no GPU is.
# What the emulator cannot show (speed, NCCL, concurrent streams, the GPU's
# own rounding) is tests/cuda_training.sh's, on a GPU. Skips (77) without
# g++ or python3; every MPI run is under RUN_MPI's limit.
command -v g++ > /dev/null 2>&1 && command -v python3 > /dev/null 2>&1 \
  || { echo "SKIP: g++ or python3 not found (apt-get install build-essential python3)"; exit 77; }
. "$TESTS_SRCDIR/lib.sh"
. "$TESTS_SRCDIR/cuda_lib.sh"

"$TESTS_SRCDIR/cuda_emu/build-tessera.sh" "$(dirname "$TESSERA")" "$work/emu" > "$work/build.out" 2>&1 \
  || { cat "$work/build.out"; fail "building tessera on the emulated CUDA backend"; finish; }
CUDA_BIN="$work/emu/tessera"
cuda_suite
# the emulated kernel is the CPU's arithmetic: offloaded runs equal the plain ones exactly (cuda_lib.sh, (d))
for o in zero1_host:zero1 zero2_nvme:zero2 zero3_nvme:zero3; do
  cmp -s "$work/${o%%:*}.losses" "$work/${o#*:}.losses" && cmp -s "$work/${o%%:*}.norms" "$work/${o#*:}.norms" \
    && pass "${o%%:*}: losses and gradient norms equal to ${o#*:}'s, as printed" || fail "${o%%:*} differs from ${o#*:}"
done
grep -q '"device":"host emulation of CUDA' "$work/cuda1.jsonl" && pass "the device is the emulation" \
  || fail "the emulated binary did not compute on its emulated GPU"

$RUN_MPI 1 60 "$CUDA_BIN" train -c "$cuda_cfg" --data "$work/data" --backend cuda --comm nccl > "$work/r2.out" 2>&1
status=$?
[ $status -eq 1 ] && one_error_line "$work/r2.out" && grep -q 'no NCCL.*use --comm mpi' "$work/r2.out" \
  && pass "--comm nccl without NCCL: $(grep 'error' "$work/r2.out")" || fail "--comm nccl in the emulated build: status $status"
# the device probe (kernels/device_probe.h) behind the runtime's answers,
# faked by the emulator (TESSERA_EMU_DEVICE_COUNT_ERROR, tests only): one
# device; cudaErrorNoDevice is no GPU, and so is another error where /dev
# has no NVIDIA device node (this machine; tests/test_device_probe.c has
# the broken case, which needs one)
"$CUDA_BIN" --version > "$work/v.out" 2>&1 && grep -q '^  GPUs: 1 visible$' "$work/v.out" \
  && pass "--version: GPUs: 1 visible" || { fail "--version of the emulated build:"; cat "$work/v.out"; }
TESSERA_EMU_DEVICE_COUNT_ERROR=100 "$CUDA_BIN" --version > "$work/v.out" 2>&1 \
  && grep -q '^  GPUs: none (cudaGetDeviceCount: emulated error (cudaErrorNoDevice))$' "$work/v.out" \
  && pass "cudaErrorNoDevice: $(grep GPUs "$work/v.out")" || { fail "cudaErrorNoDevice:"; cat "$work/v.out"; }
TESSERA_EMU_DEVICE_COUNT_ERROR=100 $RUN_MPI 1 60 "$CUDA_BIN" train -c "$cuda_cfg" --data "$work/data" --backend cuda \
  > "$work/r5.out" 2>&1
status=$?
[ $status -eq 1 ] && one_error_line "$work/r5.out" && grep -q '1 of 1 ranks see no GPU' "$work/r5.out" \
  && pass "--backend cuda where the runtime finds no device: $(grep 'error' "$work/r5.out")" \
  || { fail "--backend cuda, cudaErrorNoDevice: status $status"; cat "$work/r5.out"; }
if ! ls /dev/nvidia[0-9]* > /dev/null 2>&1; then
  TESSERA_EMU_DEVICE_COUNT_ERROR=35 "$CUDA_BIN" --version > "$work/v.out" 2>&1 \
    && grep -q '^  GPUs: none (cudaGetDeviceCount: emulated error (cudaErrorInsufficientDriver))$' "$work/v.out" \
    && pass "no driver and no device node: $(grep GPUs "$work/v.out")" || { fail "no driver:"; cat "$work/v.out"; }
fi
if ! command -v nvidia-smi > /dev/null 2>&1 || ! nvidia-smi -L > /dev/null 2>&1; then
  $RUN_MPI 1 60 "$TESSERA" train -c "$cuda_cfg" --data "$work/data" --backend cuda > "$work/r3.out" 2>&1
  status=$?
  [ $status -eq 1 ] && one_error_line "$work/r3.out" && grep -q 'use --backend cpu' "$work/r3.out" \
    && pass "--backend cuda without a GPU: $(grep 'error' "$work/r3.out")" || fail "--backend cuda without a GPU: status $status"
fi
finish
