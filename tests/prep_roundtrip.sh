#!/bin/sh
# prep_roundtrip — `tessera prep` end to end: text in, Megatron dataset out,
# sizes as the format says; --split-lines; a missing input is one clear error
# and leaves no output behind.
. "$TESTS_SRCDIR/lib.sh"

printf 'Hello, world.\n' > "$work/a.txt"
printf 'Second file\n%%\nwith two documents\n' > "$work/b.txt"
"$TESSERA" prep "$work/a.txt" "$work/b.txt" -o "$work/c" > "$work/out" 2>&1 \
  && pass "prep exits 0" || { cat "$work/out"; fail "prep exits 0"; }
a=$(wc -c < "$work/a.txt"); b=$(wc -c < "$work/b.txt")
want=$(( (a + 1 + b + 1) * 2 ))   # uint16 tokens, one end-of-text per file
got=$(wc -c < "$work/c.bin")
[ "$got" -eq "$want" ] && pass ".bin holds $want bytes" || fail ".bin is $got bytes, want $want"
grep -q '2 documents' "$work/out" && pass "summary counts 2 documents" || fail "summary: $(cat "$work/out")"
# header: magic, version 1, dtype code 8 (uint16), 2 sequences
header=$(od -A n -t x1 -N 26 "$work/c.idx" | tr -d ' \n')
[ "$header" = "4d4d494449445800000100000000000000080200000000000000" ] \
  && pass ".idx header" || fail ".idx header is $header"

"$TESSERA" prep "$work/b.txt" -o "$work/s" --split-lines % > "$work/out" 2>&1
grep -q '2 documents' "$work/out" && pass "--split-lines makes 2 documents" || fail "split: $(cat "$work/out")"
# the separator line is dropped: 12 + 19 bytes of text + 2 end-of-text tokens
[ "$(wc -c < "$work/s.bin")" -eq $(( (12 + 19 + 2) * 2 )) ] && pass "separator dropped" \
  || fail "split .bin is $(wc -c < "$work/s.bin") bytes"

"$TESSERA" prep "$work/a.txt" "$work/missing.txt" -o "$work/m" > "$work/out" 2> "$work/err"
status=$?
[ "$status" -eq 1 ] && pass "missing input exits 1" || fail "missing input exits $status"
one_error_line "$work/err" && grep -q 'missing.txt' "$work/err" && pass "one message naming the file" \
  || { fail "error message"; cat "$work/err"; }
[ ! -e "$work/m.bin" ] && [ ! -e "$work/m.idx" ] && pass "no output left behind" || fail "partial output"
"$TESSERA" prep "$work/a.txt" > /dev/null 2> "$work/err"
[ $? -eq 1 ] && one_error_line "$work/err" && pass "missing -o is a user error" || fail "missing -o"
finish
