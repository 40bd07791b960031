#!/bin/sh
# untied_head — the model-shape choices Llama checkpoints need (issue 15):
# an output head of its own (`tie_embeddings = false`: the parameter lm_head)
# and the norms' epsilon (`norm_eps`).
#  * layout equivalence (tests/equiv_lib.sh, same tolerances and reasons) of
#    an untied Llama-style model with ε 1e-6: tp2 x pp2 (1F1B), also with
#    dp2 and ZeRO-1, and 2 interleaved stages, where the last stage holds
#    lm_head and no wte and no tied sum runs; dp2 x tp2 under ZeRO-3, where
#    lm_head is an outer tensor kept whole; sp2 x pp2;
#  * a checkpoint of it saved in tp2 x pp2 and resumed in dp2 ZeRO-3: steps
#    11-20 and the final parameters match the uninterrupted run;
#  * the checkpoint records both choices: a resume with another ε or a tied
#    head is refused, naming each difference; one without the two attributes
#    (an older file) loads as tied with ε 1e-5;
#  * tessera sample reproduces, from the untied checkpoint on one process,
#    the sample the run printed on tp2 x pp2 (the head's row of logits);
#  * ε reaches the kernels: the first loss with ε 0.1 differs from ε 1e-5's
#    (same weights: the first loss comes before any update).
. "$TESTS_SRCDIR/lib.sh"
. "$TESTS_SRCDIR/equiv_lib.sh"

cfg="$TESTS_SRCDIR/pipe-equiv.ini"   # 4 layers, T = 16
untied="--norm rmsnorm --mlp swiglu --position rope --bias false --tie_embeddings false --norm_eps 1e-6"
NORM_STEPS=1  # gradient norms at step 1 only: a loss spike at step 13 (why: tests/equiv_lib.sh)
equiv_base "$cfg" "$untied"
layout 4 "--tp 2 --pp 2"             # 1F1B (the default schedule)
layout 8 "--tp 2 --pp 2 --zero 1"    # dp2 x tp2 x pp2 (ZeRO-2/3 refuse a pipeline)
layout 2 "--pp 2 --pp-schedule interleaved --pp-virtual 2"
layout 4 "--tp 2 --zero 3"
layout 4 "--sp 2 --pp 2 --sp-kind ring"

# save in one layout, resume in another
# shellcheck disable=SC2086
train() { np=$1; shift; $RUN_MPI "$np" 120 "$TESSERA" train -c "$cfg" --data "$work/data" $untied "$@"; }
losses "$work/base.jsonl" | tail -n 10 > "$work/base.tail"
dir="$work/saved"
train 4 --tp 2 --pp 2 --save-dir "$dir" --save-every 10 --stop_at_step 10 --sample_every 10 --sample_tokens 24 \
  --sample_prompt "The" --metrics "$dir.jsonl" > "$dir.a.out" 2>&1 || { fail "first half"; tail -n 5 "$dir.a.out"; }
train 2 --zero 3 --save-dir "$dir" --resume auto --metrics "$dir.jsonl" --dump_params "$dir.params" \
  > "$dir.b.out" 2>&1 || { fail "resumed half"; tail -n 5 "$dir.b.out"; }
losses "$dir.jsonl" | tail -n 10 > "$dir.tail"
[ "$(losses "$dir.jsonl" | wc -l)" -eq 20 ] || fail "resume: the metrics should hold steps 1..20 once"
d=$(max_rel_diff "$dir.tail" "$work/base.tail")
p=$("$COMPARE" "$dir.params" "$work/base.params" 1e-4); ok=$?
grep -q 'resumed from .*step_00000010.h5 at step 10' "$dir.b.out" && within "$d" 1e-5 \
  && [ $ok -eq 0 ] && pass "tp2 x pp2 -> dp2 ZeRO-3: steps 11-20 losses $d, parameters: $p" \
  || fail "resume: losses $d (tolerance 1e-5), parameters: $p (tolerance 1e-4)"

ck="$dir/step_00000010.h5"
"$TESSERA" ckpt info "$ck" > "$work/info.out" 2>&1 && grep -q 'lm_head  *\[257, 32\]' "$work/info.out" \
  && grep -q 'rmsnorm (eps 1e-06).*untied head' "$work/info.out" \
  && pass "ckpt info: lm_head [257, 32], $(grep -o 'rmsnorm (eps 1e-06).*untied head' "$work/info.out")" \
  || { fail "ckpt info of the untied checkpoint"; cat "$work/info.out"; }

train 1 --norm_eps 1e-5 --tie_embeddings true --resume "$ck" --metrics "$work/e.jsonl" > /dev/null 2> "$work/e.err"
status=$?
[ $status -eq 1 ] && one_error_line "$work/e.err" && grep -q 'norm_eps 1e-06 in the checkpoint, 1e-05 now' "$work/e.err" \
  && grep -q 'tie_embeddings 0 in the checkpoint, 1 now' "$work/e.err" \
  && pass "another eps and a tied head are refused: $(grep -o 'tie_embeddings.*' "$work/e.err" | cut -c1-100)" \
  || { fail "eps / head mismatch: status $status"; cat "$work/e.err"; }

# the run's sample at step 10 (tp2 x pp2) from the file on one process (seed = seed + step)
sed -n '/^---- sample at step 10 ----$/,/^----$/p' "$dir.a.out" | sed '1d;$d' > "$work/train.txt"
"$TESSERA" sample --ckpt "$ck" --prompt "The" --tokens 24 --seed 21 > "$work/file.txt" 2>&1 \
  || fail "sample from the untied checkpoint exits $?"
[ -s "$work/train.txt" ] && cmp -s "$work/train.txt" "$work/file.txt" \
  && pass "tessera sample reproduces the tp2 x pp2 run's sample from the untied checkpoint" \
  || { fail "sample from the untied checkpoint differs"; cat "$work/train.txt" "$work/file.txt"; }

# an older file: a tied GPT-2 checkpoint without the two attributes resumes
old="$work/old"
$RUN_MPI 1 60 "$TESSERA" train -c "$TESTS_SRCDIR/equiv.ini" --data "$work/data" --steps 2 --save-dir "$old" \
  --metrics "$old.jsonl" > "$old.out" 2>&1 || fail "tied run"
"$STRIP_ATTRIBUTE" "$old/step_00000002.h5" tie_embeddings && "$STRIP_ATTRIBUTE" "$old/step_00000002.h5" norm_eps \
  || fail "strip_attribute"
$RUN_MPI 2 60 "$TESSERA" train -c "$TESTS_SRCDIR/equiv.ini" --data "$work/data" --steps 3 --tp 2 \
  --resume "$old/step_00000002.h5" --metrics "$old.jsonl" > "$old.b.out" 2>&1 \
  && grep -q 'resumed from .*step_00000002.h5 at step 2' "$old.b.out" \
  && pass "a checkpoint without tie_embeddings and norm_eps resumes as tied, eps 1e-5" \
  || { fail "older checkpoint"; tail -n 5 "$old.b.out"; }

# eps reaches the norms: one step each, ε 1e-5 against 0.1
for eps in 1e-5 0.1; do
  $RUN_MPI 1 60 "$TESSERA" train -c "$cfg" --data "$work/data" --steps 1 --norm_eps $eps --metrics "$work/eps$eps.jsonl" \
    > /dev/null 2>&1 || fail "one step at eps $eps"
  losses "$work/eps$eps.jsonl" > "$work/eps$eps.loss"
done
d=$(max_rel_diff "$work/eps0.1.loss" "$work/eps1e-5.loss")
beyond "$d" 1e-4 \
  && pass "first loss, eps 0.1 vs 1e-5: $(cat "$work/eps0.1.loss") vs $(cat "$work/eps1e-5.loss") (relative $d)" \
  || fail "norm_eps does not change the first loss (relative $d)"
finish
