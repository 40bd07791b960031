#!/bin/sh
# device_comm_ops — runs tests/test_device_comm (every call of
# parallel/comm/device_comm through the host-view and the staged path) on 1, 3
# and 4 ranks.
. "$TESTS_SRCDIR/lib.sh"
mpi_unit_test "${TEST_DEVICE_COMM:-$(dirname "$TESSERA")/tests/test_device_comm}" test_device_comm 1 3 4
finish
