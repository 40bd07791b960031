#!/bin/sh
# eval_reference — `tessera eval` with a checkpoint that carries GPT-2's
# tokenizer, against Python references:
#  * a model of GPT-2's vocabulary, trained 2 steps on a corpus prepared
#    with GPT-2's files (the checkpoint carries the tokenizer), scores a task
#    of 24 generated examples and 3 written by hand (non-ASCII text, a
#    context that ends in a space, an ending that starts with one):
#    every ending's token count equals tiktoken's encoding of " " + ending
#    (llm.c's convention), and acc / acc_norm recomputed from the printed
#    per-ending losses equal eval's counts (tests/eval_reference.py);
#  * a bytes checkpoint with --val-data of GPT-2 tokens is one error.
# Needs the reference venv (TESSERA_PYTHON, TESSERA_GPT2_TOKENIZER: jobs/test
# exports them); skipped (77) without it.
. "$TESTS_SRCDIR/lib.sh"

if [ -z "${TESSERA_PYTHON:-}" ] || [ -z "${TESSERA_GPT2_TOKENIZER:-}" ]; then
  echo "skipped: TESSERA_PYTHON and TESSERA_GPT2_TOKENIZER unset (run through jobs/test)"; exit 77
fi
cfg="$TESTS_SRCDIR/eval.ini"
make_corpus "$work/corpus.txt" 20000
"$TESSERA" prep --tokenizer "$TESSERA_GPT2_TOKENIZER" "$work/corpus.txt" -o "$work/g2" > /dev/null \
  || fail "prep with GPT-2's tokenizer"
"$TESSERA" prep "$work/corpus.txt" -o "$work/bytes" > /dev/null || fail "prep with bytes"
$RUN_MPI 1 120 "$TESSERA" train -c "$cfg" --data "$work/g2" --vocab_size 50257 --steps 2 --save-dir "$work/ckg" \
  --metrics "$work/g.jsonl" > "$work/g.out" 2>&1 || { sed 's/^/    /' "$work/g.out" | tail -n 5; fail "GPT-2 training"; }
$RUN_MPI 1 120 "$TESSERA" train -c "$cfg" --data "$work/bytes" --steps 2 --save-dir "$work/ckb" \
  --metrics "$work/b.jsonl" > "$work/b.out" 2>&1 || { sed 's/^/    /' "$work/b.out" | tail -n 5; fail "bytes training"; }

# 24 examples from the corpus's sentences, then 3 by hand
awk 'NR <= 24 { n = split($0, w, " "); ctx = w[1] " " w[2] " " w[3]; e[0] = w[4] " " w[5] " " w[6];
       e[1] = w[5] " " w[6]; e[2] = w[7] " " w[8] " " w[9] " " w[10]; e[3] = w[3];
       printf "{\"ctx\": \"%s\", \"endings\": [\"%s\", \"%s\", \"%s\", \"%s\"], \"label\": %d}\n",
              ctx, e[0], e[1], e[2], e[3], NR % 4 }' "$work/corpus.txt" > "$work/task.jsonl"
cat >> "$work/task.jsonl" <<'TASK'
{"ctx": "Le café était", "endings": ["fermé à l’heure du thé — naïve idée", "ouvert", "«plein» de 日本語"], "label": 1}
{"ctx": "A context that ends in a space ", "endings": ["and an ending", " that starts with one", "\ttab"], "label": 0}
{"ctx": "Numbers: 12345", "endings": ["678 and 9,000,000.5", "!!", "'s"], "label": 2}
TASK
$RUN_MPI 2 120 "$TESSERA" eval --ckpt "$work/ckg" --task "$work/task.jsonl" --verbose > "$work/v.out" 2>&1 \
  || { sed 's/^/    /' "$work/v.out" | tail -n 5; fail "eval with the GPT-2 checkpoint"; }
if out=$("$TESSERA_PYTHON" "$TESTS_SRCDIR/eval_reference.py" "$work/task.jsonl" "$TESSERA_GPT2_TOKENIZER" "$work/v.out" 2>&1); then
  pass "$out"
else
  fail "eval_reference.py: $out"
fi

$RUN_MPI 2 60 "$TESSERA" eval --ckpt "$work/ckb" --val-data "$work/g2" > /dev/null 2> "$work/err"; status=$?
[ $status -eq 1 ] && one_error_line "$work/err" && grep -q "made with the tokenizer byte-level BPE" "$work/err" \
  && pass "GPT-2 data for a bytes model: $(grep "^tessera: error:" "$work/err" | cut -c1-120)" \
  || { fail "GPT-2 data for a bytes model: exit $status (want 1 and one message)"; cat "$work/err"; }
finish
