# common.sh — what jobs/quickstart, jobs/test and the benchmarks share:
# installing the Debian packages tessera needs, building it, preparing the
# bundled corpus, and the mpirun prefix for this machine. Sourced, not run.

tessera_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# Debian 12 packages: compilers and autotools, Open MPI, OpenBLAS, HDF5 (both
# the serial and the Open MPI build), gnuplot for plots, `fortunes`, the
# plain-text English corpus the quickstart trains on, and python3, with
# which the tests run the CUDA kernels on the host (tests/cuda_emu).
tessera_packages=(build-essential autoconf automake libtool pkg-config python3
  libopenmpi-dev openmpi-bin libopenblas-dev libhdf5-dev libhdf5-openmpi-dev hdf5-tools
  gnuplot-nox fortunes)

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

ensure_packages() {
  local missing=() p
  for p in "${tessera_packages[@]}"; do
    dpkg -s "$p" > /dev/null 2>&1 || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "== installing: ${missing[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" > /dev/null
}

build_tessera() {
  cd "$tessera_root"
  [ -x configure ] || { echo "== autoreconf"; autoreconf -fi > /dev/null 2>&1 || autoreconf -fi; }
  [ -f Makefile ] || { echo "== configure"; ./configure -q "$@"; }
  echo "== make"
  make -j"$(nproc --all)" > /dev/null
}

# The bundled corpus: every English fortune file (entries split at "%"
# lines), prepared once into data/fortunes.{bin,idx}.
prepare_corpus() {
  cd "$tessera_root"
  [ -f data/fortunes.idx ] && [ -f data/fortunes.bin ] && return 0
  mkdir -p data
  local files=() f
  for f in /usr/share/games/fortunes/*; do
    case $f in *.dat|*.u8|*/art|*/ascii-art) continue ;; esac
    [ -f "$f" ] && files+=("$f")
  done
  [ ${#files[@]} -gt 0 ] || { echo "no fortune files found: apt-get install fortunes" >&2; return 1; }
  ./tessera prep "${files[@]}" -o data/fortunes --split-lines %
}

# mpirun for this machine: oversubscription allowed (ranks may outnumber
# cores), root allowed when we are root, no core binding.
mpirun_cmd() {
  local cmd=(mpirun --oversubscribe --bind-to none)
  [ "$(id -u)" = 0 ] && cmd+=(--allow-run-as-root)
  echo "${cmd[@]}"
}
