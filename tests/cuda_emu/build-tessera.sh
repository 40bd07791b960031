#!/bin/sh
# cuda_emu/build-tessera.sh BUILDDIR OUTDIR — a whole `tessera` binary whose
# CUDA backend is the host emulation of run.sh, written to OUTDIR/tessera,
# so that training on the CUDA backend (bf16 storage, the CUDA kernels, the
# device paths of parallel/comm/device_comm) runs on a machine without a GPU.
#
# BUILDDIR is a configured and built tree (`make` has run): its Makefile
# gives the compiler (mpicc) and the HDF5 and BLAS flags, build_config.h the
# build's settings, and its libtessera_src.a and libtessera_io.a are linked
# as they are (src/ and io/ hold no CUDA code). Compiled here: the
# kernels/cuda/*.cu files as host C++ (prep.py, include/, emu_runtime.cpp),
# src/cli/main.c, the CPU kernels and kernels/*.c (fail, segments), and parallel/ with
# nccl_comm_absent.c
# — NCCL is not emulated, so this binary refuses `--comm nccl` and its
# device buffers travel by MPI staged through host memory. Every rank's
# emulated device reports the same id, so ranks "share the one GPU", as
# several ranks on one real GPU do with `--comm mpi`.
#
# What the binary cannot show: speed (a kernel's threads run one after
# another as fibers), the GPU's own rounding of exp/log/pow, races a real
# warp schedule exposes, NCCL, CUDA streams running concurrently (every
# emulated call completes before it returns), pinned or device memory
# limits. Set EMU_OPT (default -O2) for the C++ optimisation level.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
builddir=$(cd "$1" && pwd)
out=$2
mkdir -p "$out"
mk() { sed -n "s/^$1 = //p" "$builddir/Makefile" | head -n 1; }
cc=$(mk CC)
blas_cflags=$(mk BLAS_CFLAGS)
blas_libs=$(mk BLAS_LIBS)
hdf5_cflags=$(mk HDF5_CFLAGS)
hdf5_libs=$(mk HDF5_LIBS)
libs=$(mk LIBS)
json_libs="$(mk JANSSON_LIBS) $(mk UTF8PROC_LIBS)" # the tokenizer's (io/)
for lib in libtessera_src.a libtessera_io.a; do
  [ -f "$builddir/$lib" ] || { echo "build-tessera.sh: $builddir/$lib missing: run make first" >&2; exit 1; }
done
opt=${EMU_OPT:--O2}
obj="$out/obj"
mkdir -p "$obj"

# the CUDA kernels as host C++
for f in "$top"/kernels/cuda/*.cu; do
  python3 "$here/prep.py" "$f" "$obj/$(basename "$f" .cu).cpp" 2> /dev/null
done
cp "$here"/emu_runtime.cpp "$here"/emu_cublaslt.cpp "$obj/"
cxxflags="-std=c++20 $opt -w -I$here/include -I$top/kernels -I$top/kernels/cuda"
cflags="-std=c11 -D_GNU_SOURCE $opt -fopenmp -w -I$builddir -I$top -I$top/kernels -I$top/io"
for d in "$top"/parallel/*/ "$top"/src/*/; do cflags="$cflags -I${d%/}"; done
cflags="$cflags $blas_cflags $hdf5_cflags -DTESSERA_DATADIR='\"/nonexistent\"'"
# two compilers at a time: the machine's cores
{
  for f in "$obj"/*.cpp; do echo "g++ $cxxflags -c $f -o ${f%.cpp}.o"; done
  for f in "$top"/src/cli/main.c "$top"/kernels/*.c "$top"/kernels/cpu/*.c "$top"/parallel/*/*.c; do
    case $f in */nccl_comm.c) continue ;; esac
    echo "$cc $cflags -c $f -o $obj/c_$(basename "$(dirname "$f")")_$(basename "$f" .c).o"
  done
} | tr '\n' '\0' | xargs -0 -n 1 -P "${EMU_JOBS:-2}" sh -c 'eval "$0"'
$cc $opt -fopenmp -o "$out/tessera" "$obj"/*.o "$builddir/libtessera_src.a" "$builddir/libtessera_io.a" \
  $hdf5_libs $blas_libs $json_libs $libs -lstdc++ -lm
rm -rf "$obj"
echo "$out/tessera"
