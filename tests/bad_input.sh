#!/bin/sh
# bad_input — every user or data error ends with exactly one clear message
# (from rank 0 only, though 2 ranks run), the exit status of DESIGN.md
# (1 user error, 2 data error), and no hang (each run is under a timeout).
. "$TESTS_SRCDIR/lib.sh"

prep_corpus "$work/data" 60000
cfg="$TESTS_SRCDIR/tiny-test.ini"

# expect STATUS NAME PATTERN NP ARGS... — run on NP ranks, check the exit
# status, exactly one "tessera: error:" line, and that it matches PATTERN.
expect() {
  want=$1; name=$2; pattern=$3; np=$4; shift 4
  $RUN_MPI "$np" 60 "$TESSERA" "$@" > "$work/out" 2> "$work/err"
  refusal "$name" "$want" $? "$work/err" "$pattern"
}

expect 1 "unknown option" "bogus" 2 train -c "$cfg" --data "$work/data" --bogus 3
expect 1 "unknown command" "frobnicate" 1 frobnicate
printf '[model]\nn_layer = 2\nn_heads = 4\n' > "$work/bad.ini"
expect 1 "unknown key in the config file" "bad.ini:3.*n_heads" 2 train -c "$work/bad.ini" --data "$work/data"
printf '[model]\nn_layer = two\n' > "$work/bad2.ini"
expect 1 "malformed value in the config file" "bad2.ini:2.*n_layer" 2 train -c "$work/bad2.ini" --data "$work/data"
expect 1 "malformed value on the command line" "lr" 2 train -c "$cfg" --data "$work/data" --lr=fast
expect 1 "value out of range" "zero" 2 train -c "$cfg" --data "$work/data" --zero 7
expect 1 "missing config file" "nope.ini" 2 train -c "$work/nope.ini" --data "$work/data"
# -c of a FIFO nobody writes: refused at once, never read (a read would block
# until the run's 60 s timeout, exit 124)
mkfifo "$work/fifo.ini"
expect 1 "config file that is a FIFO" "config file '$work/fifo.ini' is not a regular file" 2 \
  train -c "$work/fifo.ini" --data "$work/data"
expect 1 "config file that is a directory" "is a directory" 1 train -c "$work" --data "$work/data"
printf '[train]\nsteps = 5\nlr = 1e-3\nsteps = 6\n' > "$work/twice.ini"
expect 1 "key set twice in the config file" "twice.ini:4: key 'steps' is set twice, on line 2 and on line 4" 2 \
  train -c "$work/twice.ini" --data "$work/data"
expect 1 "no data given" "--data" 2 train -c "$cfg"
expect 1 "missing data" "missing" 2 train -c "$cfg" --data "$work/missing"
expect 1 "batch not divisible by dp x micro-batch" "batch_size 8 is not divisible by dp 3" 3 \
  train -c "$cfg" --data "$work/data"
expect 1 "heads do not divide d_model" "n_head" 2 train -c "$cfg" --data "$work/data" --n_head 5
# sequence parallelism (tiny-test.ini: seq_len 32, softmax attention)
expect 1 "sp chunks not dividing seq_len" "seq_len = 30 is not a multiple of 4" 2 \
  train -c "$cfg" --data "$work/data" --sp 2 --sp-kind ring --seq_len 30
expect 1 "sp with sequence sharding" "multiple of 2" 4 \
  train -c "$cfg" --data "$work/data" --sp 2 --tp 2 --tp-seq-shard --seq_len 34
expect 1 "hybrid without a pattern" "needs layer_pattern" 1 train -c "$cfg" --data "$work/data" --attention hybrid
expect 1 "a pattern with other letters" "needs layer_pattern" 1 \
  train -c "$cfg" --data "$work/data" --attention hybrid --layer_pattern LXS
expect 1 "a pattern without hybrid" "only read with attention = hybrid" 1 \
  train -c "$cfg" --data "$work/data" --layer_pattern LS
expect 1 "unknown norm" "layernorm|rmsnorm" 1 train -c "$cfg" --data "$work/data" --norm batchnorm
expect 1 "MLP width not divisible by tp" "ffn_hidden = 51 is not divisible by --tp 2" 2 \
  train -c "$cfg" --data "$work/data" --tp 2 --ffn_hidden 51
# pipelines (tiny-test.ini: 2 layers, 4 micro-batches per step on one replica)
expect 1 "more pipeline stages than layers" "need at least one layer each, but n_layer is 2" 4 \
  train -c "$cfg" --data "$work/data" --pp 4
expect 1 "1F1B with fewer micro-batches than stages" "1f1b needs at least as many micro-batches" 2 \
  train -c "$cfg" --data "$work/data" --pp 2 --micro_batch_size 8
expect 1 "--pp-layers not summing to n_layer" "sums to 3 layers, but n_layer is 2" 2 \
  train -c "$cfg" --data "$work/data" --pp 2 --pp-layers 1,2
expect 1 "--pp-layers with the wrong number of counts" "gives 1 counts" 2 \
  train -c "$cfg" --data "$work/data" --pp 2 --pp-layers 2
expect 1 "--pp-layers with an empty chunk" "at least one layer" 2 \
  train -c "$cfg" --data "$work/data" --pp 2 --pp-layers 2,0
expect 1 "--pp-virtual without the interleaved schedule" "needs --pp-schedule interleaved" 2 \
  train -c "$cfg" --data "$work/data" --pp 2 --pp-virtual 2 --n_layer 4
expect 1 "--pp-virtual on one stage" "needs --pp 2 or more" 1 \
  train -c "$cfg" --data "$work/data" --pp-virtual 2 --pp-schedule interleaved
expect 1 "interleaving with micro-batches not a multiple of stages" "multiple of --pp" 2 \
  train -c "$cfg" --data "$work/data" --pp 2 --pp-virtual 2 --pp-schedule interleaved --n_layer 4 \
  --micro_batch_size 1 --batch_size 3
expect 1 "ZeRO-2 with a pipeline" "use --zero 1 with a pipeline" 2 \
  train -c "$cfg" --data "$work/data" --pp 2 --zero 2
expect 1 "unknown schedule" "gpipe|1f1b|interleaved" 2 train -c "$cfg" --data "$work/data" --pp 2 --pp-schedule zigzag
expect 1 "tp does not divide the heads" "n_head = 2.*--tp 2" 3 train -c "$cfg" --data "$work/data" --tp 3
expect 1 "sequence sharding needs tp | seq_len" "seq_len = 31 is not divisible by 2" 2 \
  train -c "$cfg" --data "$work/data" --tp 2 --tp-seq-shard --seq_len 31
expect 1 "malformed switch value" "tp_seq_shard" 2 train -c "$cfg" --data "$work/data" --tp-seq-shard=maybe
expect 1 "world not divisible by tp" "3 ranks cannot be split as --tp 2" 3 train -c "$cfg" --data "$work/data" --tp 2

: > "$work/afile"
expect 1 "unwritable metrics file" "afile/m.jsonl': Not a directory" 2 \
  train -c "$cfg" --data "$work/data" --metrics "$work/afile/m.jsonl" --steps 1
# a refused run leaves the metrics of an earlier run alone
echo '{"step":1,"loss":1}' > "$work/earlier.jsonl"
expect 1 "missing data, existing metrics" "missing" 2 train -c "$cfg" --data "$work/missing" \
  --metrics "$work/earlier.jsonl"
[ "$(cat "$work/earlier.jsonl")" = '{"step":1,"loss":1}' ] && pass "earlier metrics untouched" \
  || fail "a refused run overwrote the metrics file"

# corrupt data: copies of the good dataset, damaged one way each
cp "$work/data.idx" "$work/trunc.idx"; cp "$work/data.bin" "$work/trunc.bin"
head -c 30 "$work/data.idx" > "$work/trunc.idx"
expect 2 "truncated .idx" "trunc.idx" 2 train -c "$cfg" --data "$work/trunc"
cp "$work/data.idx" "$work/magic.idx"; cp "$work/data.bin" "$work/magic.bin"
printf 'XXXXXXX' | dd of="$work/magic.idx" conv=notrunc 2> /dev/null
expect 2 "wrong magic in .idx" "magic.idx" 2 train -c "$cfg" --data "$work/magic"
cp "$work/data.idx" "$work/short.idx"
head -c 1000 "$work/data.bin" > "$work/short.bin"
expect 2 "truncated .bin" "short.bin" 2 train -c "$cfg" --data "$work/short"
# text full of the euro sign (UTF-8 bytes 226 130 172): a vocabulary of 200
# cannot hold byte 226, whichever windows the data order picks
awk 'BEGIN { for (i = 0; i < 3000; i++) printf "price \342\202\254%d\n", i }' > "$work/euro.txt"
"$TESSERA" prep "$work/euro.txt" -o "$work/euro" > /dev/null || fail "prep of the euro text"
expect 2 "token id >= vocab_size" "token id 226.*vocab_size 200" 2 \
  train -c "$cfg" --data "$work/euro" --vocab_size 200
finish
