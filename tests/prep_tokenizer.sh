#!/bin/sh
# prep_tokenizer — `tessera prep --tokenizer` with GPT-2's files on a few
# English fortune files: 1, 2 and 3 ranks write byte-identical datasets and
# sidecars; every document's ids equal Hugging Face `tokenizers` on its text
# (tests/prep_reference.py), and HF loads the sidecar and encodes the same.
# Storage: uint16 for GPT-2, int32 for a tokenizer of 70257 ids (and
# --dtype uint16 with it is one error).
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
if HF_HUB_OFFLINE=1 timeout 60 "$TESSERA_PYTHON" "$TESTS_SRCDIR/prep_reference.py" "$work/g2" "$TESSERA_GPT2_TOKENIZER" % \
     $inputs > "$work/ref" 2>&1; then
  pass "$(cat "$work/ref")"
else
  fail "against HF tokenizers:"; cat "$work/ref"
fi
timeout 60 "$TESSERA" prep --tokenizer "$TESSERA_GPT2_TOKENIZER" "$fortunes/art" --dtype int32 -o "$work/wide" > /dev/null 2>&1 \
  && [ "$(od -A n -t u1 -j 17 -N 1 "$work/wide.idx" | tr -d ' ')" = 4 ] \
  && pass "--dtype int32 is kept" || fail "--dtype int32"
# a vocabulary beyond uint16: GPT-2's tokenizer.json with 20000 more tokens (70257 ids)
HF_HUB_OFFLINE=1 timeout 60 "$TESSERA_PYTHON" - "$work/g1.tokenizer.json" "$work/wide.json" <<'PY' || fail "a wide tokenizer"
import json, sys
t = json.load(open(sys.argv[1], encoding="utf-8"))
vocab = t["model"]["vocab"]
first = max(vocab.values()) + 1
vocab.update({"qx%05d" % i: first + i for i in range(20000)})
json.dump(t, open(sys.argv[2], "w", encoding="utf-8"))
from tokenizers import Tokenizer
assert Tokenizer.from_file(sys.argv[2]).get_vocab_size() == 70257
PY
timeout 60 "$TESSERA" prep --tokenizer "$work/wide.json" "$fortunes/art" -o "$work/w" > "$work/out" 2>&1 \
  && grep -q '70257 ids), int32' "$work/out" && [ "$(od -A n -t u1 -j 17 -N 1 "$work/w.idx" | tr -d ' ')" = 4 ] \
  && pass "70257 ids: int32 storage by default" || { fail "wide tokenizer:"; cat "$work/out"; }
timeout 60 "$TESSERA" prep --tokenizer "$work/wide.json" "$fortunes/art" -o "$work/w16" --dtype uint16 \
  > /dev/null 2> "$work/err"
status=$?
[ "$status" -eq 1 ] && one_error_line "$work/err" && grep -q 'uint16 holds ids below 65536.*70257' "$work/err" \
  && [ ! -e "$work/w16.bin" ] && pass "--dtype uint16 with 70257 ids: exit 1, one message, no output" \
  || { fail "--dtype uint16 with 70257 ids exits $status"; cat "$work/err"; }
timeout 60 "$TESSERA" prep --tokenizer "$work/no-such-folder" "$fortunes/art" -o "$work/bad" > /dev/null 2> "$work/err"
status=$?
[ "$status" -eq 1 ] && one_error_line "$work/err" && grep -q no-such-folder "$work/err" \
  && pass "a missing tokenizer: exit 1, one message naming it" || { fail "missing tokenizer exits $status"; cat "$work/err"; }
[ ! -e "$work/bad.bin" ] && [ ! -e "$work/bad.idx" ] && pass "no output after an error" || fail "output left"
finish
