# lib.sh — shared helpers of the shell tests (sourced, POSIX sh).
#
# The environment comes from `make check` (Makefile.am): TESSERA (the binary),
# RUN_MPI (mpirun under a timeout), TESTS_SRCDIR. Every test works in its own
# temporary directory, removed on exit.

set -u
: "${TESSERA:?run through make check (TESSERA unset)}"
: "${RUN_MPI:?run through make check (RUN_MPI unset)}"
: "${TESTS_SRCDIR:?run through make check (TESTS_SRCDIR unset)}"

work=$(mktemp -d "${TMPDIR:-/tmp}/tessera-test.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM
cd "$work" || exit 99  # whatever a run writes by default lands here
failures=0

fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
pass() { echo "ok: $*"; }

finish() {
  if [ "$failures" -eq 0 ]; then echo "all checks passed"; exit 0; fi
  echo "$failures check(s) failed"; exit 1
}

# make_corpus FILE BYTES — deterministic English-like text: words drawn by a
# fixed linear congruential generator, so every run trains on the same data.
make_corpus() {
  awk -v bytes="$2" 'BEGIN {
    n = split("the of and to in a is that for it as was with be by on not he this are or his from at which but have an they you were her she there all one their we can has more when will would if been so no what about some out into them than two time only other also new then these could may first any like my now over such our man me even most made after years", w, " ");
    s = 12345; out = 0; line = 0;
    while (out < bytes) {
      s = (s * 1103515245 + 12345) % 2147483648;
      word = w[int(s / 65536) % n + 1];
      if (line == 0) word = toupper(substr(word, 1, 1)) substr(word, 2);
      printf "%s", word; out += length(word) + 1; line++;
      if (line >= 12) { printf ".\n"; line = 0 } else printf " ";
    }
    printf "\n";
  }' > "$1"
}

# prep_corpus PREFIX BYTES — text -> token dataset
prep_corpus() {
  make_corpus "$work/corpus.txt" "$2"
  "$TESSERA" prep "$work/corpus.txt" -o "$1" > /dev/null || fail "prep of the test corpus"
}

# losses METRICS — the per-step losses, one per line
losses() { sed -n 's/.*"step":\([0-9]*\),"loss":\([^,]*\),.*/\2/p' "$1"; }

# val_losses METRICS — the validation losses, one per line
val_losses() { sed -n 's/^{"step":[0-9]*,"val_loss":\([^,}]*\)}$/\1/p' "$1"; }

# max_rel_diff A B — largest |a-b|/|b| over paired lines of two files
max_rel_diff() {
  paste "$1" "$2" | awk '{ d = $1 - $2; if (d < 0) d = -d; r = d / ($2 < 0 ? -$2 : $2);
                            if (r > m) m = r } END { printf "%.3g\n", m + 0 }'
}

# mpi_unit_test PROGRAM NAME NP... — runs the MPI unit test PROGRAM on each
# NP ranks (60 s at most); passes with its first "NAME..." summary line,
# fails with the head of its output
mpi_unit_test() {
  program=$1; name=$2; shift 2
  for np in "$@"; do
    if $RUN_MPI "$np" 60 "$program" > "$work/out" 2>&1; then
      pass "$np ranks: $(grep "$name" "$work/out" | head -n 1)"
    else
      fail "$np ranks:"; sed 's/^/    /' "$work/out" | head -n 20
    fi
  done
}

# one_error_line FILE — true when FILE has exactly one "tessera: error:" line
one_error_line() { [ "$(grep -c '^tessera: error:' "$1")" -eq 1 ]; }
