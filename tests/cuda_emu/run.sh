#!/bin/sh
# cuda_emu/run.sh — tests/test_kernels_cuda.c against the CUDA kernels run
# on the host, for machines without a GPU. The kernels/cuda/*.cu files are
# compiled as C++ (prep.py rewrites each kernel<<<grid, block, smem,
# stream>>>(…) into a call of emu_launch and `extern __shared__` arrays into
# the block's dynamic buffer); include/ holds stand-ins for the CUDA headers,
# emu_cublaslt.cpp the cuBLASLt calls as checked loops, and
# emu_runtime.cpp runs a grid's blocks one after another and a block's
# threads as cooperative fibers that switch at __syncthreads, __syncwarp and
# warp shuffles. It checks launch limits (empty grids, > 1024 threads, shared
# memory above 48 KiB without cudaFuncSetAttribute or above the H100's
# 227 KiB), shuffles and __syncwarp with exited lanes, and deadlocks;
# dynamic shared memory starts as NaN. What it cannot show: speed, races
# inside one barrier interval beyond what another thread order exposes
# (EMU_ORDER=reverse|random), the device's own expf/pow rounding, and
# anything about real hardware. `make check` runs it in two thread orders
# (tests/cuda_emulated.sh); build-tessera.sh builds a whole tessera on the
# same emulation (tests/cuda_training_emulated.sh).
#
# Usage: tests/cuda_emu/run.sh [--asan]   (EMU_ORDER=reverse|random to reorder threads)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
san=""
[ "${1:-}" = "--asan" ] && san="-fsanitize=address,undefined -fno-omit-frame-pointer"
build=$(mktemp -d "${TMPDIR:-/tmp}/cuda_emu.XXXXXX")
trap 'rm -rf "$build"' EXIT
# the configured build (EMU_BUILDDIR, else the source tree when configured
# in place) gives the BLAS flags and build_config.h; without one, OpenBLAS
# by pkg-config
builddir=${EMU_BUILDDIR:-$top}
if [ -f "$builddir/Makefile" ] && [ -f "$builddir/build_config.h" ]; then
  blas_cflags=$(sed -n 's/^BLAS_CFLAGS = //p' "$builddir/Makefile")
  blas_libs=$(sed -n 's/^BLAS_LIBS = //p' "$builddir/Makefile")
  cp "$builddir/build_config.h" "$build/"
else
  blas_cflags=$(pkg-config --cflags openblas)
  blas_libs=$(pkg-config --libs openblas)
  echo '#define TESSERA_HAVE_OPENBLAS 1' > "$build/build_config.h"
fi
for f in "$top"/kernels/cuda/*.cu; do python3 "$here/prep.py" "$f" "$build/$(basename "$f" .cu).cpp"; done
cp "$here"/emu_runtime.cpp "$here"/emu_cublaslt.cpp "$build/"
cxxflags="-std=c++20 -O1 -g $san -Wall -Wextra -Wno-unused-parameter -Wno-unknown-pragmas -Wno-sign-compare
  -I$here/include -I$top/kernels -I$top/kernels/cuda"
cflags="-std=c11 -D_GNU_SOURCE -O2 -g $san -fopenmp -I$build -I$top -I$top/kernels -I$top/tests $blas_cflags"
for f in "$build"/*.cpp; do g++ $cxxflags -c "$f" -o "${f%.cpp}.o"; done
for f in "$top"/kernels/cpu/*.c "$top"/kernels/*.c; do gcc $cflags -c "$f" -o "$build/cpu_$(basename "$f" .c).o"; done
gcc $cflags -c "$top/tests/test_kernels_cuda.c" -o "$build/test.o"
g++ $san -fopenmp "$build"/*.o -o "$build/test_kernels_cuda_emu" $blas_libs -lm
ASAN_OPTIONS=${ASAN_OPTIONS:-detect_stack_use_after_return=0:detect_leaks=0} "$build/test_kernels_cuda_emu"
