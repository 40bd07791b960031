#!/bin/sh
# activation_memory — the activation bytes a run reports follow the slots a
# pipeline schedule holds and the recompute mode (doc/design.md, "Activation
# memory"). On the CPU backend (4-byte values), per block of a micro-batch of
# B sequences of T tokens (BT rows, width C, Cl = C/tp, NHl heads here):
#   all  = 4·(2·BT·C + 12·BT·Cl + 2·BT·C) + 4·(4·BT + B·NHl·T²)
#          (ln1, qkv, attention output, res2, ln2, fch, gelu, res3; four norm
#          statistics; the CPU attention's probabilities)
#   core = 4·(BT·Cl + B·NHl·T²)   the attention core: what selective recomputes
#   out  = 4·BT·C                 the block output: all that full keeps
# A run holds S slots of L blocks (the largest chunk); what a slot does not
# keep lives once in shared scratch, so
#   none − selective = (S·L − 1)·core,   selective − full = (S·L − 1)·(all − core − out)
# and GPipe holds all m micro-batches while 1F1B holds p on the first stage.
# Exact integers: any slot or buffer counted wrongly shows. The bytes are
# what the run allocated for its activation arenas (kernels/memory_tally.h);
# the shape, tp and the slots S (1 without a pipeline, p for 1F1B's first
# stage, m for GPipe's) come from the test, not from the run.
. "$TESTS_SRCDIR/lib.sh"

cfg="$TESTS_SRCDIR/tiny-test.ini"
prep_corpus "$work/data" 30000
field() { sed -n "s/.*\"$1\":\\([0-9]*\\).*/\\1/p" "$2" | head -n 1; }
# tiny-test.ini: C 32, 2 heads, T 32, micro-batches of 2 sequences, 4 per step
B=2; T=32; C=32; NH=2
run() { # NAME NP FLAGS...
  name=$1; np=$2; shift 2
  $RUN_MPI "$np" 120 "$TESSERA" train -c "$cfg" --data "$work/data" --steps 1 --metrics "$work/$name.jsonl" "$@" \
    > "$work/$name.out" 2>&1 || { fail "$name: run failed"; tail -n 5 "$work/$name.out"; return; }
  ran_in_layout "$work/$name.out" "$np" "$*" || fail "$name: not the layout asked for"
}
check_modes() { # LABEL NP S TP FLAGS — the three recompute modes in one layout
  label=$1; np=$2; S=$3; tp=$4; shift 4
  run "${label}_none" "$np" "$@" --recompute none
  run "${label}_sel" "$np" "$@" --recompute selective
  run "${label}_full" "$np" "$@" --recompute full
  none=$(field mem_activations "$work/${label}_none.jsonl"); sel=$(field mem_activations "$work/${label}_sel.jsonl")
  full=$(field mem_activations "$work/${label}_full.jsonl"); L=$LAYERS
  BT=$((B * T)); Cl=$((C / tp)); NHl=$((NH / tp))
  all=$(( 4 * (2 * BT * C + 12 * BT * Cl + 2 * BT * C) + 4 * (4 * BT + B * NHl * T * T) ))
  core=$(( 4 * (BT * Cl + B * NHl * T * T) )); out=$((4 * BT * C))
  want1=$(( (S * L - 1) * core )); want2=$(( (S * L - 1) * (all - core - out) ))
  [ "$((none - sel))" -eq "$want1" ] && [ "$((sel - full))" -eq "$want2" ] && [ "$full" -lt "$sel" ] \
    && pass "$label ($S slots x $L blocks): activations none $none > selective $sel > full $full bytes, differences = formula" \
    || fail "$label: none $none, selective $sel, full $full; want differences $want1 and $want2 (S $S, L $L)"
}
LAYERS=2; check_modes "one rank" 1 1 1
LAYERS=2; check_modes "tp 2" 2 1 2 --tp 2
LAYERS=1; check_modes "pp 2, 1F1B, stage 0" 2 2 1 --pp 2
LAYERS=1; check_modes "pp 2, GPipe, stage 0" 2 4 1 --pp 2 --pp-schedule gpipe
# the head's logits exist for head_chunk_rows rows at a time: with R rows
# instead of all BT, the logits (V values per row) and the loss's three
# statistics per row (loss, max, two sums) shrink by (BT − R)·(V + 4)·4
# bytes (V = 257 on one rank)
run head_all 1; run head_5 1 --head_chunk_rows 5
a_all=$(field mem_activations "$work/head_all.jsonl"); a_5=$(field mem_activations "$work/head_5.jsonl")
want=$(( (B * T - 5) * (257 + 4) * 4 ))
[ "$((a_all - a_5))" -eq "$want" ] \
  && pass "head in chunks of 5 rows: activations $a_all -> $a_5 bytes, difference $want = formula" \
  || fail "head chunks: activations $a_all -> $a_5, want a difference of $want"
s_1f1b=$(field activation_slots "$work/pp 2, 1F1B, stage 0_none.jsonl")
s_gpipe=$(field activation_slots "$work/pp 2, GPipe, stage 0_none.jsonl")
[ "$s_1f1b" = 2 ] && [ "$s_gpipe" = 4 ] \
  && pass "slots on stage 0 of 2 with 4 micro-batches: 1F1B $s_1f1b (= p), GPipe $s_gpipe (= m)" \
  || fail "slots: 1F1B $s_1f1b (want 2), GPipe $s_gpipe (want 4)"
finish
