#!/bin/sh
# comm_ops — runs tests/test_comm (every call of parallel/comm and the grid)
# on 1, 3 and 4 ranks.
. "$TESTS_SRCDIR/lib.sh"
TEST_COMM=${TEST_COMM:-$(dirname "$TESSERA")/tests/test_comm}
for np in 1 3 4; do
  if $RUN_MPI $np 60 "$TEST_COMM" > "$work/out" 2>&1; then
    pass "$np ranks: $(grep 'test_comm' "$work/out")"
  else
    fail "$np ranks:"; sed 's/^/    /' "$work/out" | head -n 20
  fi
done
finish
