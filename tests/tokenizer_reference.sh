#!/bin/sh
# tokenizer_reference — tessera's byte-level BPE gives the ids of Hugging Face
# `tokenizers` and tiktoken loading the same GPT-2 files, on the English
# fortune corpus and on adversarial text; the tokenizer.json it writes loads in
# HF and encodes the same; invalid UTF-8 round-trips and follows the rule of
# doc/data-format.md; other tokenizer kinds are refused with one message.
# The comparison is tests/tokenizer_reference.py; tests/tokenize_dump gets the
# ids out of C. Skips (77) without the test-only Python references
# (TESSERA_PYTHON and TESSERA_GPT2_TOKENIZER, which jobs/test exports).
. "$TESTS_SRCDIR/lib.sh"

if [ -z "${TESSERA_PYTHON:-}" ] || [ -z "${TESSERA_GPT2_TOKENIZER:-}" ]; then
  echo "SKIP: TESSERA_PYTHON / TESSERA_GPT2_TOKENIZER unset (jobs/test sets them)"
  exit 77
fi
: "${TOKENIZE_DUMP:?run through make check (TOKENIZE_DUMP unset)}"

# the corpus as jobs/common.sh prepare_corpus takes it
set --
for f in /usr/share/games/fortunes/*; do
  case $f in *.dat|*.u8|*/art|*/ascii-art) continue ;; esac
  [ -f "$f" ] && set -- "$@" "$f"
done
[ $# -gt 0 ] || echo "note: no fortune files (apt-get install fortunes): adversarial text only"

HF_HUB_OFFLINE=1 RAYON_NUM_THREADS=1 timeout 300 "$TESSERA_PYTHON" "$TESTS_SRCDIR/tokenizer_reference.py" \
  "$TOKENIZE_DUMP" "$TESSERA_GPT2_TOKENIZER" "$work" "$@" \
  && pass "tessera's ids equal HF tokenizers' and tiktoken's" || fail "reference comparison (above)"
finish
