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

# max_rel_diff A B — largest |a-b|/|b| over the paired lines of two files of
# one number a line. Two empty files, files of different lengths, an empty
# or non-numeric line, or a zero in B are no comparison: it prints why
# ("not comparable: ...") and fails, and `within`/`beyond` reject that text.
max_rel_diff() {
  awk -v fa="$1" -v fb="$2" '
    function bad(why) { printf "not comparable: %s\n", why; failed = 1; exit 1 }
    function number(x) { return x ~ /^[-+]?([0-9]+[.]?[0-9]*|[.][0-9]+)([eE][-+]?[0-9]+)?$/ }
    BEGIN {
      while ((ra = getline a < fa) > 0) {
        if ((rb = getline b < fb) < 0) bad("cannot read " fb)
        if (rb == 0) bad(sprintf("%s has more lines than %s", fa, fb))
        n++
        if (!number(a) || !number(b)) bad(sprintf("line %d is \"%s\" vs \"%s\"", n, a, b))
        if (b + 0 == 0) bad(sprintf("line %d of %s is 0", n, fb))
        d = a - b; if (d < 0) d = -d; r = d / (b < 0 ? -b : b); if (r > m) m = r
      }
      if (ra < 0) bad("cannot read " fa)
      if ((rb = getline b < fb) != 0) bad(rb < 0 ? "cannot read " fb : sprintf("%s has more lines than %s", fb, fa))
      if (n == 0) bad("no values")
      printf "%.3g\n", m
    }
    END { exit failed }'
}

# within D TOL / beyond D TOL — D (from max_rel_diff) is a number <= TOL / > TOL
within() { awk -v a="$1" -v t="$2" 'BEGIN { exit !(a ~ /^[0-9.eE+-]+$/ && a + 0 <= t + 0) }'; }
beyond() { awk -v a="$1" -v t="$2" 'BEGIN { exit !(a ~ /^[0-9.eE+-]+$/ && a + 0 > t + 0) }'; }

# grad_norms METRICS — the per-step gradient norms (before clipping), one per line
grad_norms() { sed -n 's/.*"step":[0-9]*,"loss":[^,]*,"lr":[^,]*,"grad_norm":\([^,]*\),.*/\1/p' "$1"; }

# layout_line NP "FLAGS" — the layout line (up to the backend) a run on NP
# ranks with FLAGS must print: tp, pp, sp and ZeRO as FLAGS give them (1, 1,
# 1 and 0 by default), dp the ranks left over
layout_line() {
  echo " $2 " | awk -v np="$1" '{
    tp = 1; pp = 1; sp = 1; zero = 0
    for (i = 1; i < NF; i++) {
      if ($i == "--tp") tp = $(i + 1); else if ($i == "--pp") pp = $(i + 1)
      else if ($i == "--sp") sp = $(i + 1); else if ($i == "--zero") zero = $(i + 1)
    }
    printf "layout: %d ranks = dp %g x tp %d x pp %d x sp %d, ZeRO stage %d\n", np, np / (tp * pp * sp), tp, pp, sp, zero
  }'
}

# ran_in_layout OUT NP "FLAGS" — true when OUT, a trainer's output, holds
# exactly one layout line and it is the one NP ranks with FLAGS ask for (N
# independent 1-rank copies would print N lines of 1 rank each); otherwise
# prints both lines, indented, and fails
ran_in_layout() {
  want=$(layout_line "$2" "$3")
  got=$(grep '^layout: ' "$1" | sed 's/, backend .*//')
  [ "$got" = "$want" ] && return 0
  echo "    expected '$want', the run printed '$(printf %s "${got:-no layout line}" | tr '\n' '|')'"
  return 1
}

# mpi_unit_test PROGRAM NAME NP... — runs the MPI unit test PROGRAM on each
# NP ranks (60 s at most); passes with its one summary line, which must
# begin "NAME on NP ranks: " (the world size the program saw), fails with
# the head of its output
mpi_unit_test() {
  program=$1; name=$2; shift 2
  for np in "$@"; do
    if $RUN_MPI "$np" 60 "$program" > "$work/out" 2>&1 \
       && [ "$(grep -c "^$name" "$work/out")" -eq 1 ] && grep -q "^$name on $np ranks: " "$work/out"; then
      pass "$np ranks: $(grep "$name" "$work/out" | head -n 1)"
    else
      fail "$np ranks: the run failed or printed no single '$name on $np ranks:' line"; sed 's/^/    /' "$work/out" | head -n 20
    fi
  done
}

# one_error_line FILE — true when FILE has exactly one "tessera: error:" line
one_error_line() { [ "$(grep -c '^tessera: error:' "$1")" -eq 1 ]; }

# refusal NAME WANT GOT ERR PATTERN [-F] — judges a run that must be refused:
# its exit status GOT is WANT, its stderr ERR has exactly one "tessera:
# error:" line, and that line matches PATTERN (a basic regular expression, a
# fixed string with -F). Prints ok or FAIL (with the stderr); 0 when ok.
refusal() {
  r_name=$1; r_want=$2; r_got=$3; r_err=$4; r_pattern=$5; r_fixed=${6:-}
  if [ "$r_got" -ne "$r_want" ]; then fail "$r_name: exit status $r_got, want $r_want"
  elif ! one_error_line "$r_err"; then fail "$r_name: want exactly one error line, got:"
  elif ! grep '^tessera: error:' "$r_err" | grep -q $r_fixed -- "$r_pattern"; then
    fail "$r_name: the message does not match '$r_pattern':"
  else pass "$r_name ($(grep '^tessera: error:' "$r_err" | cut -c1-150))"; return 0
  fi
  sed 's/^/    /' "$r_err" | head -n 8
  return 1
}

# gpt2_params_local V C T L TP — the parameter elements one tp rank of a
# GPT-2 model holds (tied head, learned positions, biases, LayerNorm, no
# pipeline), from the shape alone, for the memory and byte formulas to
# check the run against instead of taking its own count: the vocabulary
# rows split over tp and padded up (⌈V/tp⌉·C), the positions T·C, per block
# the split QKV, projection and MLP matrices with their split biases
# (12C² + 7C)/tp and the whole ones 6C (two norms, the two output biases),
# the final norm 2C. TP = 1 gives the model's parameter count.
gpt2_params_local() {
  echo $(( ($1 + $5 - 1) / $5 * $2 + $3 * $2 + $4 * ((12 * $2 * $2 + 7 * $2) / $5 + 6 * $2) + 2 * $2 ))
}

# mem_activations METRICS — the activation bytes of a run's start record
mem_activations() { sed -n 's/.*"mem_activations":\([0-9]*\).*/\1/p' "$1" | head -n 1; }

# took_effect NAME NP "FLAGS" BASE — for a run NAME (files $work/NAME.out and
# .jsonl) on NP ranks with FLAGS, compared by its test with the 1-rank run
# BASE: a line comparing a 1-rank run with the 1-rank base would pass if its
# options were ignored, so `--recompute MODE` must be named by the run's
# "activation recomputation: MODE" line (printed from the model's own mode),
# and a 1-rank run — whose only difference from BASE is its options:
# recomputation, the head in chunks of rows, none of which may be a no-op
# on memory — must report fewer activation bytes than BASE
# (tests/activation_memory.sh holds those bytes to their formula). Fails
# (and returns 1) otherwise.
took_effect() {
  te_mode=$(echo " $3 " | sed -n 's/.* --recompute \([a-z]*\) .*/\1/p')
  if [ -n "$te_mode" ] && [ "$te_mode" != none ] && ! grep -q "^activation recomputation: $te_mode\$" "$work/$1.out"; then
    fail "np=$2 $3: no 'activation recomputation: $te_mode' line (the option was ignored?)"; return 1
  fi
  [ "$2" -eq 1 ] || return 0
  te_run=$(mem_activations "$work/$1.jsonl"); te_base=$(mem_activations "$work/$4.jsonl")
  if [ -z "$te_run" ] || [ -z "$te_base" ] || [ "$te_run" -ge "$te_base" ]; then
    fail "np=1 $3: activations '$te_run' bytes, $4's '$te_base': the option did not take effect"; return 1
  fi
  echo "    np=1 $3: activations $te_base -> $te_run bytes"
}
