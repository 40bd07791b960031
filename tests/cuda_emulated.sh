#!/bin/sh
# cuda_emulated — the CUDA backend's arithmetic on a machine without a GPU:
# tests/test_kernels_cuda.c (every CUDA op against the CPU op, bf16
# tolerances) runs against kernels/cuda/*.cu compiled as host C++ by
# tests/cuda_emu (a block's threads as fibers switching at barriers and warp
# shuffles; launch limits, shared-memory sizes and deadlocks checked). What
# it cannot show — speed, races a real warp schedule exposes, the device's
# own rounding of exp and pow — needs the GPU test itself. Skips (77)
# without g++ and python3.
command -v g++ > /dev/null 2>&1 && command -v python3 > /dev/null 2>&1 \
  || { echo "SKIP: g++ or python3 not found (apt-get install build-essential python3)"; exit 77; }
# one thread order, then the reverse, so an order-dependent kernel shows
# the build's flags and build_config.h come from where `tessera` was built
EMU_BUILDDIR=$(dirname "$TESSERA"); export EMU_BUILDDIR
"$TESTS_SRCDIR/cuda_emu/run.sh" || exit 1
EMU_ORDER=reverse "$TESTS_SRCDIR/cuda_emu/run.sh"
