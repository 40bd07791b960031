#!/bin/sh
# prep_tokenizer — `tessera prep --tokenizer` with GPT-2's files on a few
# English fortune files: 1, 2 and 3 ranks write byte-identical datasets and
# sidecars; every document's ids equal Hugging Face `tokenizers` on its text
# (tests/prep_reference.py), and HF loads the sidecar and encodes the same.
# Needs the reference venv (TESSERA_PYTHON, TESSERA_GPT2_TOKENIZER: jobs/test
# exports them) and the fortunes package; skipped (77) without them.
. "$TESTS_SRCDIR/lib.sh"

if [ -z "${TESSERA_PYTHON:-}" ] || [ -z "${TESSERA_GPT2_TOKENIZER:-}" ]; then
  echo "skipped: TESSERA_PYTHON and TESSERA_GPT2_TOKENIZER unset (run through jobs/test)"; exit 77
fi
fortunes=/usr/share/games/fortunes
inputs="$fortunes/computers $fortunes/debian $fortunes/art $fortunes/fortunes"
for f in $inputs; do [ -f "$f" ] || { echo "skipped: no $f (apt-get install fortunes)"; exit 77; }; done

for np in 1 2 3; do
  # shellcheck disable=SC2086 # the inputs are separate words
  $RUN_MPI "$np" 60 "$TESSERA" prep --tokenizer "$TESSERA_GPT2_TOKENIZER" $inputs -o "$work/g$np" \
    --split-lines % > "$work/out$np" 2>&1 || { cat "$work/out$np"; fail "prep --tokenizer on $np ranks"; }
  echo "  $(cat "$work/out$np")"
done
for np in 2 3; do
  cmp -s "$work/g1.bin" "$work/g$np.bin" && cmp -s "$work/g1.idx" "$work/g$np.idx" \
    && cmp -s "$work/g1.tokenizer.json" "$work/g$np.tokenizer.json" \
    && pass "$np ranks: the same .bin, .idx and .tokenizer.json as 1 rank" || fail "$np ranks: the dataset differs"
done
grep -q 'byte-level BPE (50257 ids), uint16' "$work/out1" && pass "GPT-2's 50257 ids stored as uint16" \
  || fail "summary: $(cat "$work/out1")"
# shellcheck disable=SC2086
if HF_HUB_OFFLINE=1 "$TESSERA_PYTHON" "$TESTS_SRCDIR/prep_reference.py" "$work/g2" "$TESSERA_GPT2_TOKENIZER" % \
     $inputs > "$work/ref" 2>&1; then
  pass "$(cat "$work/ref")"
else
  fail "against HF tokenizers:"; cat "$work/ref"
fi
"$TESSERA" prep --tokenizer "$TESSERA_GPT2_TOKENIZER" "$fortunes/art" --dtype int32 -o "$work/wide" > /dev/null 2>&1 \
  && [ "$(od -A n -t u1 -j 17 -N 1 "$work/wide.idx" | tr -d ' ')" = 4 ] \
  && pass "--dtype int32 is kept" || fail "--dtype int32"
"$TESSERA" prep --tokenizer "$work/no-such-folder" "$fortunes/art" -o "$work/bad" > /dev/null 2> "$work/err"
status=$?
[ "$status" -eq 1 ] && one_error_line "$work/err" && grep -q no-such-folder "$work/err" \
  && pass "a missing tokenizer: exit 1, one message naming it" || { fail "missing tokenizer exits $status"; cat "$work/err"; }
[ ! -e "$work/bad.bin" ] && [ ! -e "$work/bad.idx" ] && pass "no output after an error" || fail "output left"
finish
