#!/bin/sh
# convert_init_from — `tessera train --init-from` from models saved by
# transformers (tests/convert_reference.py): a random GPT2LMHeadModel and a
# random LlamaForCausalLM (tied embeddings, rms_norm_eps 1e-5, no GQA), and
# an untied Llama with rms_norm_eps 1e-6 (lm_head.weight its own tensor).
# The data is one window of seq_len + 1 tokens (100 bytes of text through
# `tessera prep`: bytes and end-of-text, ids < 257 <= the models' 300), so
# tessera's first batch is that window whatever the seed and layout; step
# 1's loss is the loss of the loaded weights before the first update, and
# must equal transformers' cross-entropy of the same window.
# Tolerance 1e-4 absolute on a loss of about 5.7 (2e-5 relative): both sides
# compute in fp32 and sum in different orders (BLAS blocking, softmax and
# norm reductions), which moves the logits by about 1e-6 relative through
# the 2 layers; measured differences are below 1e-6.
# Also: the same start on 4 ranks (tp 2 × dp 2 with ZeRO 1 and 3; pp 2 × dp 2;
# tp 2 × pp 2 with the untied head; sp 2 × dp 2 with ZeRO 2)
# gives the same loss; a model key set to another value than the source's
# is one message naming each key (exit 1); a model carrying another
# tokenizer than the data's is refused (exit 1); a tessera checkpoint that
# `--resume` continues is started from instead with --init-from when it is
# weights-only (--resume refuses it, exit 1).
. "$TESTS_SRCDIR/lib.sh"

[ -n "${TESSERA_PYTHON:-}" ] || { echo "SKIP: TESSERA_PYTHON unset (jobs/test sets it)"; exit 77; }
HF_HUB_OFFLINE=1; export HF_HUB_OFFLINE
ref() { "$TESSERA_PYTHON" "$TESTS_SRCDIR/convert_reference.py" "$@" 2>> "$work/python.err"; }

printf 'The converters carry weights from transformers into tessera, one tensor at a time, checked.\n' > "$work/window.txt"
"$TESSERA" prep "$work/window.txt" -o "$work/window" --dtype uint16 > /dev/null || { fail "prep"; finish; }
run_first_loss() { # NAME NP MODEL [FLAGS] — step 1's loss, in $work/NAME.loss
  run=$1 np=$2 model=$3; shift 3
  $RUN_MPI "$np" 120 "$TESSERA" train --init-from "$model" --data "$work/window" --batch-size 4 \
    --micro-batch-size 1 --steps 1 --val-fraction 0 --sample-tokens 0 --backend cpu --progress off \
    --peak-tflops 1 --metrics "$work/$run.jsonl" "$@" > "$work/$run.out" 2>&1 \
    || { fail "$run: training from $model"; sed 's/^/    /' "$work/$run.out" | grep error | tail -n 5; return 1; }
  losses "$work/$run.jsonl" | head -n 1 > "$work/$run.loss"
}
close_to() { [ -n "$1" ] && [ -n "$2" ] && awk -v a="$1" -v b="$2" -v tol="$3" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d <= tol) }'; }

ref models "$work" gpt2 llama llama_untied || { cat "$work/python.err"; fail "transformers models"; finish; }
for arch in gpt2 llama llama_untied; do
  want=$(ref loss "$work/$arch" "$work/window.bin" 64)
  run_first_loss "$arch" 1 "$work/$arch" || continue
  got=$(cat "$work/$arch.loss")
  grep -q "initialised from Hugging Face" "$work/$arch.out" || fail "$arch: no 'initialised from' line"
  close_to "$got" "$want" 1e-4 && pass "$arch: first loss $got, transformers $want" \
    || fail "$arch: first loss $got, transformers $want (tolerance 1e-4)"
done

# other layouts start from the same weights: the same loss (1e-5 relative,
# the layout-equivalence tolerance: tp splits sums of products)
for layout in "llama:tp2_dp2:--tp 2 --zero 1" "llama:pp2_dp2:--pp 2" "llama_untied:tp2_dp2_zero3:--tp 2 --zero 3" \
              "llama_untied:tp2_pp2:--tp 2 --pp 2" "llama:sp2_dp2_zero2:--sp 2 --zero 2"; do
  from=${layout%%:*} rest=${layout#*:}; name=${rest%%:*} flags=${rest#*:}
  # shellcheck disable=SC2086
  run_first_loss "${from}_$name" 4 "$work/$from" $flags || continue
  got=$(cat "$work/${from}_$name.loss") one=$(cat "$work/$from.loss")
  close_to "$got" "$one" 6e-5 && pass "$from on $name: first loss $got (one rank $one)" \
    || fail "$from on $name: first loss $got, one rank $one"
done

# model keys the user sets must agree with the source: one message
$RUN_MPI 1 60 "$TESSERA" train --init-from "$work/gpt2" --data "$work/window" --n-layer 3 --norm rmsnorm \
  > "$work/keys.out" 2>&1; rc=$?
[ $rc -eq 1 ] && [ "$(grep -c 'tessera: error' "$work/keys.out")" -eq 1 ] && grep -q 'n_layer 2 .*, 3' "$work/keys.out" \
  && grep -q 'norm layernorm .*rmsnorm' "$work/keys.out" && pass "differing keys: $(cut -c1-110 "$work/keys.out" | head -n 1)" \
  || { fail "differing keys: exit $rc"; sed 's/^/    /' "$work/keys.out" | head -n 5; }
# keys set to the source's own values are fine; a rotary model may train at a shorter seq_len
run_first_loss same_keys 1 "$work/gpt2" --n-layer 2 --d-model 64 && pass "keys equal to the source's are accepted"
run_first_loss short_llama 1 "$work/llama" --seq-len 32 && pass "llama at seq_len 32 (rotary positions)"

# a model carrying another tokenizer than the data's (GPT-2's; the data is bytes)
if [ -n "${TESSERA_GPT2_TOKENIZER:-}" ]; then
  cp -r "$work/gpt2" "$work/gpt2_tok" && ref gpt2-tokenizer "$TESSERA_GPT2_TOKENIZER" "$work/gpt2_tok"
  $RUN_MPI 1 60 "$TESSERA" train --init-from "$work/gpt2_tok" --data "$work/window" > "$work/tok.out" 2>&1; rc=$?
  [ $rc -eq 1 ] && grep -q "carries the tokenizer byte-level BPE" "$work/tok.out" \
    && pass "another tokenizer than the data's: $(grep 'tessera: error' "$work/tok.out" | sed "s|$work/||g" | cut -c16-130)" \
    || { fail "another tokenizer than the data's: exit $rc"; head -n 3 "$work/tok.out"; }
fi

# a weights-only file: --init-from takes it (same loss), --resume refuses it
"$TESSERA" convert "$work/gpt2" "$work/gpt2.h5" > "$work/convert.out" 2>&1 || fail "convert to .h5"
run_first_loss from_h5 1 "$work/gpt2.h5" && close_to "$(cat "$work/from_h5.loss")" "$(cat "$work/gpt2.loss")" 0 \
  && pass "from the converted .h5: the same loss" || fail "from the converted .h5"
$RUN_MPI 1 60 "$TESSERA" train -c "$TESTS_SRCDIR/tiny-test.ini" --data "$work/window" --n-layer 2 --n-head 4 \
  --d-model 64 --vocab-size 300 --seq-len 64 --resume "$work/gpt2.h5" > "$work/resume.out" 2>&1; rc=$?
[ $rc -eq 1 ] && grep -q 'init-from' "$work/resume.out" && pass "--resume of a weights-only file: exit 1, points to --init-from" \
  || { fail "--resume of a weights-only file: exit $rc"; head -n 3 "$work/resume.out"; }
finish
