#!/bin/sh
# prep_parallel — `tessera prep` under mpirun writes the same dataset as one
# process, byte for byte, for 1, 2 and 3 ranks: documents cut at separator
# lines wherever the ranks' byte ranges fall (separators at a file's start
# and end, runs of them, a final line without a newline, lines that only
# contain the separator, empty files, one document per file). An output
# that cannot be created, or a missing input, is one message from rank 0
# and leaves nothing behind.
. "$TESTS_SRCDIR/lib.sh"

# inputs whose documents are small and oddly placed, so the ranks' ranges
# cut through separators, documents and files
printf '%%\nfirst\n%%\n%%\n\nsecond has %%%% and %% inside\n%%\n' > "$work/a.txt"
: > "$work/empty.txt"
printf 'no newline at the end\n%%\nlast' > "$work/b.txt"
make_corpus "$work/c.txt" 3000
awk '{ print } NR % 3 == 0 { print "%" }' "$work/c.txt" > "$work/d.txt"
printf '%%' > "$work/e.txt"
inputs="$work/a.txt $work/empty.txt $work/b.txt $work/d.txt $work/e.txt $work/c.txt"

# shellcheck disable=SC2086 # the inputs are separate words
timeout 60 "$TESSERA" prep $inputs -o "$work/one" --split-lines % > "$work/out" 2>&1 \
  || { cat "$work/out"; fail "prep as one process"; }
docs=$(sed -n 's/.* -> \([0-9]*\) documents.*/\1/p' "$work/out")
for np in 1 2 3; do
  # shellcheck disable=SC2086
  $RUN_MPI "$np" 60 "$TESSERA" prep $inputs -o "$work/p$np" --split-lines % > "$work/out" 2>&1 \
    || { cat "$work/out"; fail "prep on $np ranks"; continue; }
  if cmp -s "$work/one.bin" "$work/p$np.bin" && cmp -s "$work/one.idx" "$work/p$np.idx"; then
    pass "$np rank(s): the same .bin and .idx as one process ($docs documents)"
  else
    fail "$np rank(s): the dataset differs from one process's"
  fi
  grep -q "on $np rank" "$work/out" && pass "$np rank(s): the summary names the ranks" || fail "summary: $(cat "$work/out")"
  [ ! -e "$work/p$np.tokenizer.json" ] && pass "$np rank(s): bytes, no sidecar" || fail "a bytes dataset has a sidecar"
done
# one document per file: a file is never cut between ranks
# shellcheck disable=SC2086
timeout 60 "$TESSERA" prep $inputs -o "$work/f1" > /dev/null 2>&1 || fail "prep, one document per file"
# shellcheck disable=SC2086
$RUN_MPI 3 60 "$TESSERA" prep $inputs -o "$work/f3" > /dev/null 2>&1 || fail "prep on 3 ranks, one document per file"
cmp -s "$work/f1.bin" "$work/f3.bin" && cmp -s "$work/f1.idx" "$work/f3.idx" \
  && pass "one document per file: 3 ranks write the same dataset" || fail "one document per file: datasets differ"
# the documents, counted by awk: a document is one line or more between separator lines
# shellcheck disable=SC2086
want=$(awk 'FNR == 1 { if (open) n++; open = 0 } $0 == "%" { if (open) n++; open = 0; next } { open = 1 }
            END { if (open) n++; print n }' $inputs)
[ "$docs" = "$want" ] && pass "$want documents, as the separators say" || fail "$docs documents, want $want"

$RUN_MPI 2 60 "$TESSERA" prep "$work/c.txt" -o "$work/nowhere/x" > "$work/out" 2> "$work/err"
status=$?
[ "$status" -eq 2 ] && pass "an output that cannot be created exits 2" || fail "an uncreatable output exits $status"
one_error_line "$work/err" && grep -q nowhere "$work/err" && pass "one message naming the file" \
  || { fail "messages:"; cat "$work/err"; }
# shellcheck disable=SC2086
$RUN_MPI 2 60 "$TESSERA" prep "$work/c.txt" "$work/missing.txt" -o "$work/m" > "$work/out" 2> "$work/err"
status=$?
[ "$status" -eq 1 ] && one_error_line "$work/err" && pass "a missing input on 2 ranks: exit 1, one message" \
  || { fail "a missing input on 2 ranks exits $status:"; cat "$work/err"; }
[ -z "$(find "$work" -name 'm.*' -o -name '*.tmp.*')" ] && pass "no output or temporary file left" \
  || fail "left: $(find "$work" -name 'm.*' -o -name '*.tmp.*')"
finish
