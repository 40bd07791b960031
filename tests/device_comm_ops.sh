#!/bin/sh
# device_comm_ops — runs tests/test_device_comm (every call of
# parallel/comm/device_comm through the host-view and the staged path) on 1, 3
# and 4 ranks.
. "$TESTS_SRCDIR/lib.sh"
TEST_DEVICE_COMM=${TEST_DEVICE_COMM:-$(dirname "$TESSERA")/tests/test_device_comm}
for np in 1 3 4; do
  if $RUN_MPI $np 60 "$TEST_DEVICE_COMM" > "$work/out" 2>&1; then
    pass "$np ranks: $(grep 'test_device_comm' "$work/out" | head -n 1)"
  else
    fail "$np ranks:"; sed 's/^/    /' "$work/out" | head -n 20
  fi
done
finish
