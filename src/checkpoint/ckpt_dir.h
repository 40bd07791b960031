/* ckpt_dir — a save directory and the checkpoints in it: which file a user's
 * path names, which file `--resume auto` takes, the `latest` pointer, and
 * keeping only the newest saves. One process's view of the file system:
 * every rank that calls these sees the same files and reaches the same
 * answer.
 */
#ifndef TESSERA_CKPT_DIR_H
#define TESSERA_CKPT_DIR_H

#include <stddef.h>
#include <stdint.h>

/* Whether path is a complete checkpoint of this format: the format name and
 * version and the `complete` marker, without reading the tensors. 0, or
 * the exit status with a message in err. */
int ckpt_check_header(const char *path, char *err, size_t err_bytes);

/* A checkpoint named by the user: a directory stands for the file its
 * `latest` names (so `--resume DIR`, `ckpt info DIR` and `sample --ckpt DIR`
 * take the newest save); anything else is the path itself. Returns 0, or
 * EXIT_USER_ERROR with a message in err for a directory without `latest`,
 * EXIT_IO_ERROR for a `latest` that is a directory or names a path outside
 * its directory. */
int checkpoint_path_of(const char *given, char *path, size_t path_bytes, char *err, size_t err_bytes);

/* The file `--resume` names: "auto" takes DIR/latest when its header is good,
 * else the newest complete step file of save_dir ("" when there are no
 * checkpoints at all: a fresh start; step files or a `latest` but none
 * readable: an error), reporting a damaged `latest` on stderr of rank 0; anything
 * else is checkpoint_path_of the path, whose header must be good.
 * Collective failure (one message) otherwise. */
void ckpt_resolve_resume(const char *resume, const char *save_dir, int world_rank, char *path, size_t path_bytes);

/* The save directory, before the first step: it exists (or is created now,
 * one level), is a directory, and a file can really be created in it (a
 * probe file, removed; root ignores mode bits but not a read-only mount);
 * a `latest` in it is a file. 0, or EXIT_USER_ERROR (EXIT_IO_ERROR for a
 * `latest` that is a directory, as the resume reports it) with a message
 * that gives the OS's reason (ENOTDIR, EACCES, EROFS, ELOOP, ENOENT...). */
int ckpt_check_save_dir(const char *dir, char *err, size_t err_bytes);

/* The step of the checkpoint DIR/latest names; -1 when there is none (or
 * it names no step file). */
int64_t ckpt_latest_step(const char *dir);

/* After a save: DIR/latest names step's file (written beside and renamed),
 * and with keep > 0 only the newest `keep` step files stay. 0, or -1 with
 * errno set. */
int ckpt_point_latest(const char *dir, int64_t step);
void ckpt_keep_newest(const char *dir, int keep);

#endif
