#!/bin/sh
# save_failures — a save that cannot happen is said at start, and one that
# fails midway loses nothing (issue 16):
#  * the save directory is checked before the first step: a file, a path
#    through a file, a symbolic-link loop, a missing parent, a read-only
#    mount (root ignores mode bits, not a read-only file system) and a
#    `latest` that is a directory each get one message with the OS's reason,
#    exit 1 (2 for `latest`, as a resume reports it), and no step is trained;
#  * a disk that fills up during the second save (a tmpfs sized so the
#    first checkpoint fits and the second does not), synchronous and
#    --async-save, on both write paths (a model with a 1 MiB tensor, written
#    with pwrite and O_DIRECT; tp 2, whose split tensors go through HDF5's
#    H5Dwrite): exit 2, one message naming the file and "No space left on
#    device", no partial file left, `latest` still names step 1, which
#    verifies and resumes.
# Mounting needs root (CI runs as root); where mount is refused the test
# reports SKIP with the reason.
. "$TESTS_SRCDIR/lib.sh"

cfg="$TESTS_SRCDIR/equiv.ini"
prep_corpus "$work/data" 60000
mounts=""
cleanup() {
  for m in $mounts; do umount "$m" 2> /dev/null; done
  rm -rf "$work"
}
trap cleanup EXIT INT TERM
# mount_tmpfs DIR OPTIONS — a tmpfs at DIR, or SKIP (exit 77) with mount's reason
mount_tmpfs() {
  mkdir -p "$1"
  if ! why=$(mount -t tmpfs -o "$2" tmpfs "$1" 2>&1); then
    echo "SKIP: cannot mount a tmpfs (needs root): $why"; exit 77
  fi
  mounts="$1 $mounts"
}
train() { np=$1; shift; $RUN_MPI "$np" 120 "$TESSERA" train -c "$cfg" --data "$work/data" "$@"; }

# ---- the save directory, checked at start (exit 1, the reason) ----
# refused_dir NAME WANT DIR PATTERN — a 1-step run saving in DIR is refused
# with PATTERN before its first step (no metrics file: nothing was trained)
refused_dir() {
  train 1 --steps 1 --save-dir "$3" --metrics "$work/$1.jsonl" > /dev/null 2> "$work/$1.err"
  refusal "$1" "$2" $? "$work/$1.err" "$4" -F && { [ ! -e "$work/$1.jsonl" ] || fail "$1: a step was trained"; }
}
echo "not a directory" > "$work/afile"
refused_dir dir_is_file 1 "$work/afile" "save directory '$work/afile' is a file: Not a directory"
refused_dir dir_under_file 1 "$work/afile/sub" "save directory '$work/afile/sub': Not a directory"
ln -s "$work/loop_b" "$work/loop_a"; ln -s "$work/loop_a" "$work/loop_b"
refused_dir dir_symlink_loop 1 "$work/loop_a" "save directory '$work/loop_a': Too many levels of symbolic links"
refused_dir dir_no_parent 1 "$work/missing/sub" \
  "cannot create save directory '$work/missing/sub': No such file or directory"
mount_tmpfs "$work/ro" ro,size=64k
refused_dir dir_read_only 1 "$work/ro" \
  "save directory '$work/ro' is not writable: cannot create a file in it: Read-only file system"
refused_dir dir_read_only_new 1 "$work/ro/new" "cannot create save directory '$work/ro/new': Read-only file system"
# mode bits: root ignores them, so as `nobody` (setpriv; an MPI singleton)
# in a directory root owns
if command -v setpriv > /dev/null && setpriv --reuid=65534 --regid=65534 --clear-groups "$TESSERA" --version > /dev/null 2>&1; then
  # the config copied beside the data: the source tree may be a private (0700) folder, as jobs/test's second build
  chmod 755 "$work"; mkdir -m 755 "$work/root_only"; cp "$cfg" "$work/nobody.ini"; chmod 644 "$work"/data.* "$work/nobody.ini"
  (cd "$work/root_only" && timeout 60 setpriv --reuid=65534 --regid=65534 --clear-groups "$TESSERA" train -c "$work/nobody.ini" \
    --data "$work/data" --steps 1 --save-dir "$work/root_only" --metrics /dev/null) > /dev/null 2> "$work/dir_no_permission.err"
  refusal dir_no_permission 1 $? "$work/dir_no_permission.err" \
    "save directory '$work/root_only' is not writable: cannot create a file in it: Permission denied" -F
else
  echo "skip: dir_no_permission (cannot run tessera as nobody with setpriv)"
fi
mkdir -p "$work/latest_dir/latest"
refused_dir latest_is_dir 2 "$work/latest_dir" \
  "save directory: '$work/latest_dir/latest' is a directory, not the file naming the newest checkpoint"
train 1 --steps 1 --save-dir "$work/fresh" --metrics "$work/fresh.jsonl" > "$work/fresh.out" 2>&1 \
  && [ -f "$work/fresh/step_00000001.h5" ] && [ -z "$(ls -A "$work/fresh" | grep -v '^step_00000001.h5$\|^latest$')" ] \
  && pass "a missing save directory is created; the probe file is gone" \
  || { fail "fresh save directory"; ls -A "$work/fresh"; tail -n 3 "$work/fresh.out"; }

# ---- a disk that fills up in the second save ----
# full_disk NAME NP SIZE "FLAGS" [PATTERN] — a 3-step run saving every step
# on a tmpfs of SIZE: the second save fails; PATTERN: more the message must say
full_disk() {
  name=$1; np=$2; d="$work/$name/ckpt"
  mount_tmpfs "$work/$name" "size=$3"
  # shellcheck disable=SC2086
  train "$np" --steps 3 --save-every 1 --save-dir "$d" --metrics "$work/$name.jsonl" $4 \
    > "$work/$name.out" 2> "$work/$name.err"
  refusal "$name" 2 $? "$work/$name.err" "checkpoint of step 2 not saved: writing '$d/.step_00000002.h5.tmp' failed: No space left on device${5:-}.*; the partial file is removed, '$d/latest' and the earlier checkpoints are unchanged" || return
  left=$(ls -A "$d" | grep -v '^step_00000001.h5$\|^latest$')
  [ -z "$left" ] && [ "$(cat "$d/latest")" = "step_00000001.h5" ] && "$TESSERA" ckpt verify "$d" > /dev/null \
    && pass "$name: nothing else left in the directory; latest names step 1, which verifies" \
    || { fail "$name: left '$left', latest '$(cat "$d/latest")'"; "$TESSERA" ckpt verify "$d"; }
  # shellcheck disable=SC2086
  train "$np" --steps 2 --resume "$d" --save-dir "$work/$name.resumed" --metrics "$work/$name.r.jsonl" $4 \
    > "$work/$name.r.out" 2>&1 && grep -q "resumed from $d/step_00000001.h5 at step 1" "$work/$name.r.out" \
    && pass "$name: step 1 resumes" || { fail "$name: the resume from step 1"; tail -n 3 "$work/$name.r.out"; }
}
direct="--n_layer 1 --d_model 128 --ffn_hidden 2048" # mlp fc is [128, 2048]: 1 MiB, the O_DIRECT path
full_disk full_direct_sync 1 11m "$direct"   # a checkpoint is 7.6 MB
full_disk full_direct_async 1 11m "$direct --async-save"
# parallel HDF5: tp 2 writes its split tensors collectively with H5Dwrite,
# and the message says it was that call
h5dwrite=""; "$TESSERA" --version | grep -q 'HDF5: .*(parallel)' && h5dwrite=" (HDF5: H5Dwrite)"
full_disk full_h5dwrite_sync 2 700k "--tp 2" "$h5dwrite" # a checkpoint is 478 KB
full_disk full_h5dwrite_async 2 700k "--tp 2 --async-save"
finish
