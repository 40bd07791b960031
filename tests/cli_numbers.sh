#!/bin/sh
# cli_numbers — every numeric argument of every command goes through the one
# checked parser (config_parse_int64): text that is not a whole number, or a
# number outside the option's range, is refused with exactly one message that
# names the command, the option and the value, exit status 1. Before, `sample
# --tokens abc` sampled 0 tokens and `--tokens 99999999999` wrapped to a
# negative int. prep, convert and ckpt take no numeric option; train's and
# eval's layout numbers are config keys (tests/bad_input.sh, test_config).
. "$TESTS_SRCDIR/lib.sh"

# expect NAME PATTERN COMMAND... — exit 1, one error line holding PATTERN
expect() {
  name=$1; pattern=$2; shift 2
  "$@" > "$work/out" 2> "$work/err"
  refusal "$name" 1 $? "$work/err" "$pattern" -F
}
ckpt="$work/none.h5"  # never read: the numbers are refused first
sample() { timeout 30 "$TESSERA" sample --ckpt "$ckpt" "$@"; }
eval_1() { $RUN_MPI 1 60 "$TESSERA" eval --ckpt "$ckpt" --val-data "$work/none" "$@"; }

expect "sample --tokens abc" "sample: --tokens needs a whole number, got 'abc'" sample --tokens abc
expect "sample --tokens 12x" "sample: --tokens needs a whole number, got '12x'" sample --tokens 12x
expect "sample --tokens empty" "sample: --tokens needs a whole number, got ''" sample --tokens ""
expect "sample --tokens 99999999999 (wrapped before)" \
  "sample: --tokens = 99999999999 is out of range [0, 1048576]" sample --tokens 99999999999
expect "sample --tokens -1" "sample: --tokens = -1 is out of range [0, 1048576]" sample --tokens -1
expect "sample --top-k abc" "sample: --top-k needs a whole number, got 'abc'" sample --top-k abc
expect "sample --top-k 2.5" "sample: --top-k needs a whole number, got '2.5'" sample --top-k 2.5
expect "sample --top-k -3" "sample: --top-k = -3 is out of range [0, 16777216]" sample --top-k -3
expect "sample --seed xyz" "sample: --seed needs a whole number, got 'xyz'" sample --seed xyz
expect "sample --seed beyond 64 bits" \
  "sample: --seed = 99999999999999999999 is out of range [0, 9223372036854775807]" sample --seed 99999999999999999999
# numbers in range pass the parser: the error is then the missing checkpoint
expect "sample: good numbers reach the checkpoint" "none.h5" sample --tokens 5 --top-k 3 --seed 7

expect "eval --max-windows abc" "eval: --max-windows needs a whole number, got 'abc'" eval_1 --max-windows abc
expect "eval --max-windows 0" "eval: --max-windows = 0 is out of range [1, 9223372036854775807]" eval_1 --max-windows 0
expect "eval --max-windows=1e3" "eval: --max-windows needs a whole number, got '1e3'" eval_1 --max-windows=1e3
expect "eval: good number reaches the checkpoint" "none.h5" eval_1 --max-windows 4

# train's numbers are keys: the same parser, named by the key
expect "train --steps abc" "--steps: 'steps' needs a whole number, got 'abc'" \
  $RUN_MPI 1 60 "$TESSERA" train --data "$work/none" --steps abc
expect "train --steps beyond 64 bits" "--steps: 'steps' = 99999999999999999999 is out of range" \
  $RUN_MPI 1 60 "$TESSERA" train --data "$work/none" --steps 99999999999999999999
expect "train --lr inf" "--lr: 'lr' needs a number, got 'inf'" \
  $RUN_MPI 1 60 "$TESSERA" train --data "$work/none" --lr inf
finish
