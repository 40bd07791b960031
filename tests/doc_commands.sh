#!/bin/sh
# doc_commands — every command README.md and doc/user-guide.md show runs as
# written. Each plain ```sh block of a document is taken in order and run by
# bash (the docs use its brace expansion) with `set -e`, in a fresh folder
# that looks like the repository after the two set-up commands: jobs/ (the
# presets and job scripts), data/fortunes prepared, tessera on PATH, GPT-2's
# files in the machine's cache (jobs/test's reference environment), and none
# of Open MPI's root or oversubscription variables set: the documents' own
# `export` lines must be enough. Blocks marked ```sh setup (the set-up
# itself), ```sh cluster and ```sh download are not run; ```text blocks are
# synopses. The documents' sizes are the tiny ones a 2-core machine runs in
# minutes; the README's commands and the guide's each run once.
. "$TESTS_SRCDIR/lib.sh"

[ -n "${TESSERA_GPT2_TOKENIZER:-}" ] && [ -f "$TESSERA_GPT2_TOKENIZER/encoder.json" ] \
  || { echo "SKIP: GPT-2's tokenizer files are not cached (jobs/test's reference environment)"; exit 77; }
command -v bash > /dev/null || { echo "SKIP: bash not found"; exit 77; }
top=$(cd "$TESTS_SRCDIR/.." && pwd)

# the plain sh blocks of FILE as one bash script that names each command
# before running it (a command continued with \ is one command)
extract() {
  awk '
    /^```/ { if (inside) { inside = 0; next } if ($0 == "```sh") { inside = 1; block++ } next }
    inside {
      line = $0
      if (cont == "" && line !~ /^[ \t]*(#|$)/) {
        label = substr(line, 1, 100); gsub(/[^-A-Za-z0-9 .,\/=_:{}%]/, "", label)
        printf "echo \"== [$SECONDS s] %s: %s\" >&2\n", FILENAME, label
      }
      print line
      cont = (line ~ /\\$/) ? "yes" : ""
    }
    END { printf "echo \"== %d blocks done\" >&2\n", block }' "$1"
}

for doc in README.md doc/user-guide.md; do
  name=$(basename "$doc" .md)
  dir="$work/$name"
  mkdir -p "$dir/bin" "$dir/data"
  ln -s "$top/jobs" "$dir/jobs"
  ln -s "$TESSERA" "$dir/bin/tessera"
  # what jobs/quickstart leaves: the bundled corpus, every English fortune file
  files=$(ls /usr/share/games/fortunes/* | grep -v -E '\.(dat|u8)$|/(art|ascii-art)$')
  # shellcheck disable=SC2086
  (cd "$dir" && "$TESSERA" prep $files -o data/fortunes --split-lines % > /dev/null) || fail "prep of data/fortunes"
  (cd "$top" && extract "$doc") > "$dir/commands.sh"
  n=$(grep -c '^echo "== ' "$dir/commands.sh")
  [ "$n" -gt 3 ] || fail "$doc: only $n commands found"
  start=$(date +%s)
  (cd "$dir" && env -u OMPI_ALLOW_RUN_AS_ROOT -u OMPI_ALLOW_RUN_AS_ROOT_CONFIRM \
      -u OMPI_MCA_rmaps_base_oversubscribe -u OPENBLAS_NUM_THREADS PATH="$dir/bin:$PATH" \
      timeout --kill-after=10 900 bash -e commands.sh) > "$dir/out" 2> "$dir/err"
  status=$?
  grep '^== ' "$dir/err"  # each command with the seconds at its start, for the log
  if [ "$status" -eq 0 ] && grep -q "^== [0-9]* blocks done" "$dir/err"; then
    pass "$doc: all $((n - 1)) commands ran as written ($(( $(date +%s) - start )) s)"
  else
    fail "$doc: exit status $status at: $(grep '^== ' "$dir/err" | tail -n 1)"
    tail -n 30 "$dir/err"; tail -n 10 "$dir/out"
  fi
done
finish
