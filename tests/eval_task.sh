#!/bin/sh
# eval_task — `tessera eval` (doc/user-guide.md, "Evaluating a model"):
#  * a byte-level model (tests/eval.ini) trained 300 steps on four sentences
#    of different lengths repeated in random order, then a HellaSwag-style
#    task of 24 examples whose right ending is the corpus continuation of the
#    context and whose wrong endings are two other sentences' continuations
#    and one random text: acc and acc_norm must be >= 15/24 = 0.625. Chance
#    is 0.25 (4 endings): 15 or more right out of 24 by chance has binomial
#    probability 2e-4, while the trained model gets about 0.75 (its misses
#    are contexts cut on the left, where two continuations fit);
#  * the decisions re-derived with awk from the per-ending losses that
#    --verbose prints (argmin of the sums for acc, of the means for
#    acc_norm, ties to the first) give the counts eval reports;
#  * the same accuracies, and every ending's loss sum within 1e-5·(1 + |sum|),
#    with tp 2 × pp 2 × dp 2 on 8 ranks and with sp 2 (ring) on 2 ranks:
#    the layouts reorder float32 sums (tp splits the GEMMs' inner products
#    and the vocabulary's log-sum-exp, sp the attention's softmax), a
#    relative difference of ~1e-7 per token loss, summed over < 45 tokens
#    (measured: 4e-7);
#  * --val-data: the loss equals the validation loss training printed for
#    the same checkpoint on all the windows of the same dataset (1e-6
#    relative on 1 rank: the same forward on the same micro-batches, the
#    metrics file prints 9 digits; 1e-5 with tp 2 × pp 2 × dp 2, the
#    tolerance of tests/layout_equivalence.sh), the perplexity is exp(loss),
#    --max-windows counts;
#  * bad task files (not JSON, a key missing, a label out of range, empty
#    endings, an ending not a string, a missing or empty file) and bad usage
#    (an --out folder that does not exist, both --task and --val-data, a
#    model option): one message naming the line, exit 1, from 2 ranks,
#    nothing written.
. "$TESTS_SRCDIR/lib.sh"

cfg="$TESTS_SRCDIR/eval.ini"
sentences='s[0] = "the cat sat on the mat by the door."; s[1] = "a dog ran in the park after the red ball.";
  s[2] = "we ate bread and honey."; s[3] = "the old train left the station at nine sharp.";'
# the corpus: 700 sentences, each drawn by an LCG (kept below 2^31 so awk's
# doubles hold it exactly)
awk "BEGIN { $sentences"' x = 7;
  for (i = 0; i < 700; i++) { x = (x * 75 + 74) % 65537; printf "%s ", s[x % 4] } printf "\n" }' > "$work/corpus.txt"
awk "BEGIN { $sentences"' x = 3;
  for (i = 0; i < 40; i++) { x = (x * 75 + 74) % 65537; printf "%s ", s[x % 4] } printf "\n" }' > "$work/val.txt"
# the task: example i continues sentence j = i mod 4 after k = 2..4 words,
# odd examples with the sentence before it in the context; the right ending
# goes to position i mod 4
awk "BEGIN { $sentences"' x = 11;
  for (i = 0; i < 24; i++) {
    j = i % 4; k = 2 + int(i / 4) % 3; ctx = i % 2 ? s[(j + 1) % 4] : "";
    for (w = 0; w < 3; w++) {
      n = split(s[(j + w) % 4], words, " "); t = "";
      for (m = k + 1; m <= n; m++) t = t (m > k + 1 ? " " : "") words[m];
      if (w == 0) { right = t; for (m = 1; m <= k; m++) ctx = ctx (ctx == "" ? "" : " ") words[m] } else cand[w] = t
    }
    r = "";
    for (c = 0; c < length(right); c++) {
      x = (x * 75 + 74) % 65537; r = r substr("abcdefghijklmnopqrstuvwxyz ", x % 27 + 1, 1)
    }
    cand[3] = r; label = i % 4; e = ""; w = 1;
    for (c = 0; c < 4; c++) e = e (c ? ", " : "") "\"" (c == label ? right : cand[w++]) "\"";
    printf "{\"ctx\": \"%s\", \"endings\": [%s], \"label\": %d}\n", ctx, e, label
  } }' > "$work/task.jsonl"
"$TESSERA" prep "$work/corpus.txt" -o "$work/data" > /dev/null || fail "prep of the corpus"
"$TESSERA" prep "$work/val.txt" -o "$work/val" > /dev/null || fail "prep of the validation text"

# every whole window of the validation set: (tokens − 1) / seq_len, 2-byte tokens
val_windows=$(( ($(wc -c < "$work/val.bin") / 2 - 1) / 32 ))
$RUN_MPI 1 120 "$TESSERA" train -c "$cfg" --data "$work/data" --val-data "$work/val" --val_sequences "$val_windows" \
  --save-dir "$work/ck" --metrics "$work/train.jsonl" > "$work/train.out" 2>&1 \
  || { sed 's/^/    /' "$work/train.out" | tail -n 5; fail "training"; finish; }
train_val=$(val_losses "$work/train.jsonl" | tail -n 1)

# json_field FILE KEY — a number from eval's one-line JSON record
json_field() { sed -n "s/.*\"$2\":\([-0-9.eE+]*\).*/\1/p" "$1"; }

evaluate() { # NAME NP ARGS... — eval into $work/NAME.json, its output in $work/NAME.out
  name=$1; np=$2; shift 2
  $RUN_MPI "$np" 120 "$TESSERA" eval --ckpt "$work/ck" --out "$work/$name.json" "$@" > "$work/$name.out" 2>&1 \
    || { fail "$name: eval failed"; sed 's/^/    /' "$work/$name.out" | tail -n 5; return 1; }
}

# ---- accuracy on one rank, and the decisions re-derived from --verbose
if evaluate one 1 --task "$work/task.jsonl" --verbose; then
  acc=$(json_field "$work/one.json" acc); acc_norm=$(json_field "$work/one.json" acc_norm)
  awk -v a="$acc" -v n="$acc_norm" 'BEGIN { exit !(a >= 0.625 && n >= 0.625) }' \
    && pass "accuracy above chance: acc $acc, acc_norm $acc_norm (threshold 0.625, chance 0.25)" \
    || fail "accuracy: acc $acc, acc_norm $acc_norm (want both >= 0.625)"
  # "example line L label Y pred P pred_norm Q endings [sum S tokens N mean M] ..."
  derived=$(grep '^example line' "$work/one.out" | tr -d '[]' | awk '{
      best = 0; best_norm = 0; n = 0
      for (f = 11; f <= NF; f += 6) { sum[n] = $(f + 1); cnt[n] = $(f + 3); n++ }
      for (j = 1; j < n; j++) { if (sum[j] < sum[best]) best = j;
                                if (sum[j] / cnt[j] < sum[best_norm] / cnt[best_norm]) best_norm = j }
      right += best == $5; right_norm += best_norm == $5 }
    END { print right + 0, right_norm + 0, NR }')
  reported="$(json_field "$work/one.json" correct) $(json_field "$work/one.json" correct_norm) 24"
  [ "$derived" = "$reported" ] && pass "acc and acc_norm re-derived from the per-ending losses: $derived" \
    || fail "re-derived right answers $derived, eval reports $reported (then the example count)"
fi

# ---- the same numbers in other layouts
losses_of() { grep '^example line' "$1" | tr -d '[]' | awk '{ for (f = 12; f <= NF; f += 6) print $f }'; }
layout() { # NAME NP ARGS...
  name=$1; np=$2; shift 2
  evaluate "$name" "$np" --task "$work/task.jsonl" --verbose "$@" || return
  same="$(json_field "$work/$name.json" correct) $(json_field "$work/$name.json" correct_norm)"
  want="$(json_field "$work/one.json" correct) $(json_field "$work/one.json" correct_norm)"
  worst=$(losses_of "$work/$name.out" | paste - "$work/one.sums" | awk '{ d = $1 - $2; if (d < 0) d = -d;
      s = $2 < 0 ? -$2 : $2; r = d / (1 + s); if (r > m) m = r } END { printf "%.3g", m + 0 }')
  [ "$(losses_of "$work/$name.out" | wc -l)" -eq 96 ] || fail "$name: want 96 ending losses"
  [ "$same" = "$want" ] && awk -v w="$worst" 'BEGIN { exit !(w <= 1e-5) }' \
    && pass "$name: right answers $same as on 1 rank, ending sums within $worst·(1 + |sum|)" \
    || fail "$name: right answers $same (1 rank: $want), ending sums differ by $worst·(1 + |sum|) (tolerance 1e-5)"
}
losses_of "$work/one.out" > "$work/one.sums"
layout tp2_pp2_dp2 8 --tp 2 --pp 2
layout sp2_ring 2 --sp 2 --sp-kind ring
layout sp2_ulysses 2 --sp 2 --sp-kind ulysses
layout sp2_tokenring 2 --sp 2 --sp-kind tokenring

# ---- perplexity over a dataset: training's validation of the same checkpoint
val_check() { # NAME NP TOLERANCE ARGS...
  name=$1; np=$2; tol=$3; shift 3
  evaluate "$name" "$np" --val-data "$work/val" "$@" || return
  loss=$(json_field "$work/$name.json" loss); ppl=$(json_field "$work/$name.json" perplexity)
  windows=$(json_field "$work/$name.json" windows)
  awk -v l="$loss" -v t="$train_val" -v p="$ppl" -v tol="$tol" -v w="$windows" -v n="$val_windows" 'BEGIN {
      d = (l - t) / t; if (d < 0) d = -d; e = (p - exp(t)) / exp(t); if (e < 0) e = -e;
      exit !(d <= tol && e <= tol && w == n) }' \
    && pass "$name: loss $loss, perplexity $ppl over $windows windows; training printed val loss $train_val (tolerance $tol)" \
    || fail "$name: loss $loss, perplexity $ppl, windows $windows; training's val loss $train_val over $val_windows windows (tolerance $tol)"
}
val_check val_one 1 1e-6
val_check val_tp2_pp2_dp2 8 1e-5 --tp 2 --pp 2
if evaluate val_max 2 --val-data "$work/val" --max-windows 3; then
  [ "$(json_field "$work/val_max.json" windows)" = 3 ] && pass "--max-windows 3 evaluates 3 windows" \
    || fail "--max-windows 3: $(cat "$work/val_max.json")"
fi

# ---- bad task files and usage: one message, exit 1, nothing written
expect_error() { # NAME PATTERN ARGS...
  name=$1; pattern=$2; shift 2
  rm -f "$work/bad.json"
  $RUN_MPI 2 60 "$TESSERA" eval --ckpt "$work/ck" --out "$work/bad.json" "$@" > "$work/bad.out" 2> "$work/bad.err"
  refusal "$name" 1 $? "$work/bad.err" "$pattern" || return
  [ ! -e "$work/bad.json" ] || fail "$name: refused, but left the --out file"
}
bad_task() { # NAME PATTERN LINE — the task file with its line 2 replaced by LINE
  { head -n 1 "$work/task.jsonl"; printf '%s\n' "$3"; tail -n +3 "$work/task.jsonl"; } > "$work/bad.jsonl"
  expect_error "$1" "$2" --task "$work/bad.jsonl"
}
bad_task "not JSON" "bad.jsonl:2: not JSON" '{"ctx": "the cat", "endings": ["a", "b"], "label": 0'
bad_task "no ctx" "bad.jsonl:2: no \"ctx\"" '{"endings": ["a", "b"], "label": 0}'
bad_task "no label" "bad.jsonl:2: no integer \"label\"" '{"ctx": "the cat", "endings": ["a", "b"]}'
bad_task "label out of range" "bad.jsonl:2: \"label\" 4 is out of range" '{"ctx": "the cat", "endings": ["a", "b", "c", "d"], "label": 4}'
bad_task "empty endings" "bad.jsonl:2: \"endings\" is empty" '{"ctx": "the cat", "endings": [], "label": 0}'
bad_task "ending not a string" "bad.jsonl:2: \"endings\"\[1\] is not a string" '{"ctx": "the cat", "endings": ["a", 7], "label": 0}'
expect_error "missing task file" "nope.jsonl" --task "$work/nope.jsonl"
: > "$work/empty.jsonl"
expect_error "empty task file" "holds no examples" --task "$work/empty.jsonl"
expect_error "--out in a missing folder" "not writable" --task "$work/task.jsonl" --out "$work/no/such/dir/r.json"
expect_error "both --task and --val-data" "exactly one of" --task "$work/task.jsonl" --val-data "$work/val"
expect_error "a model option" "unknown option '--n_layer'" --task "$work/task.jsonl" --n_layer 3
finish
