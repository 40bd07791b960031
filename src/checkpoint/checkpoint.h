/* checkpoint — saving and resuming the logical model (DESIGN.md principle 6).
 *
 * A save writes DIR/step_NNNNNNNN.h5 under a temporary name, flushes it to
 * disk, renames it into place and only then points DIR/latest at it, so a
 * crash at any moment leaves the previous checkpoint usable. The file holds
 * every parameter's fp32 master weights and Adam moments in their logical
 * shapes (io/checkpoint_file.h, doc/checkpoint-format.md), each region
 * written once:
 *   - parallel HDF5, synchronous save: the first data-parallel replica's tp
 *     ranks each write their own shard (collective I/O only for shards that
 *     are not one run of the file; the rest by pwrite/O_DIRECT, while the
 *     other ranks wait in a barrier that sleeps);
 *   - serial HDF5, or --async-save: world rank 0 is the one writer; the
 *     first replica's tp ranks send it their shards at the step boundary.
 * With --async-save the state is copied to host memory at the step boundary
 * (the only part training waits for) and rank 0's background thread writes
 * the file while training goes on; that thread makes no MPI calls. The next
 * save, or the end of the run, waits for it first.
 *
 * A resume reads in any layout: each rank needs its own tp shard's
 * hyperslabs; the dp×sp replicas of a shard each read a disjoint range of
 * it (their ZeRO ranges under ZeRO) and all-gather the rest, straight into
 * the model's and optimizer's buffers. Training continues exactly (the data
 * order and learning rate are pure functions of the step).
 *
 * The parts, one file each: ckpt_names (what is where in a file and a
 * directory), ckpt_attributes (the model shape and the run as attributes),
 * ckpt_dir (latest, --resume auto, pruning), state_gather (shards to one
 * writer; the parameter dump), ckpt_save (the saver and its background
 * thread), ckpt_write (the two writers), ckpt_resume (the load).
 * Checkpoint code takes the model shape and a description of the run
 * (ckpt_run_info), never the configuration.
 * A save that fails (disk full, I/O error) removes its temporary file and
 * ends the job with one message; `latest` and the earlier files stay.
 * Test hook: TESSERA_FAULT_SAVE="RANK:STEP" kills a rank halfway through the
 * writing of a save, to show that the previous checkpoint survives;
 * "RANK:STEP:stall" stalls every save from STEP on for 60 s there (a save
 * that mpirun's SIGKILL interrupts).
 */
#ifndef TESSERA_CHECKPOINT_H
#define TESSERA_CHECKPOINT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ckpt_attributes.h"
#include "ckpt_dir.h"
#include "grid.h"
#include "model.h"
#include "optimizer.h"
#include "state_gather.h"
#include "tokenizer.h"

typedef struct ckpt_save_options {
  const char *dir; /* the save directory (created if missing) */
  int keep;        /* > 0: keep only the newest `keep` saves */
  bool async;      /* write on a background thread */
} ckpt_save_options;

typedef struct checkpoint_stats {
  int64_t step;
  double bytes;            /* logical bytes in the file */
  double seconds;          /* from the step boundary until the file is in place */
  double blocking_seconds; /* of those, how long training waited */
  double stage_seconds;    /* gathering the state into host memory */
  double write_seconds;    /* HDF5: creating, writing, closing */
  double sync_seconds;     /* fsync, rename, `latest` */
} checkpoint_stats;

typedef struct checkpoint_saver checkpoint_saver;

/* Collective over the pp group. Allocates and touches the host staging
 * copy (12 bytes per local parameter; rank 0 of a single-writer save holds
 * every tp shard), kept for the whole run. options->dir and info->version
 * must outlive the saver. */
checkpoint_saver *checkpoint_saver_create(const ckpt_save_options *options, const ckpt_run_info *info, grid *g,
                                          model *m, optimizer *opt);
size_t checkpoint_saver_staging_bytes(const checkpoint_saver *s);
void checkpoint_saver_free(checkpoint_saver *s);

/* Collective over the world: saves the state after `step`. Synchronous:
 * returns when the file is in place. Async: returns once the state is
 * staged (stats.seconds is then only the staging time; the write is
 * reported by checkpoint_saver_poll). */
checkpoint_stats checkpoint_save(checkpoint_saver *s, int64_t step);

/* Local: true once for each background save that has finished, on the rank
 * that wrote it, with its statistics. */
bool checkpoint_saver_poll(checkpoint_saver *s, checkpoint_stats *done);

/* Collective: waits for a background save; a failed one ends the job. */
void checkpoint_saver_finish(checkpoint_saver *s);

/* Collective: resolves `resume` ("auto": save_dir's latest, else its newest
 * complete file, a damaged newest one reported and skipped; a directory:
 * its latest; else a file), checks that it holds the model `shape`, was
 * trained with the run's `batch_size` (its data position) and
 * that its tokenizer (bytes when it carries none) is the data's, *tok
 * (NULL: not known, GPT-2 tokens; *tok then becomes the tokenizer the
 * checkpoint carries, so the run keeps it), loads weights and optimizer
 * state. Returns the step saved, or 0 when "auto" finds no checkpoint (a
 * fresh start). Errors: one message, exit 1 (missing path, other model,
 * other batch_size, other tokenizer) or 2 (damaged file). */
int64_t checkpoint_resume(const char *resume, const char *save_dir, const model_shape *shape, int64_t batch_size,
                          tokenizer **tok, grid *g, model *m, optimizer *opt);

/* Collective: the weights only of the checkpoint `given` (a file, or a
 * save directory's latest) into the model, which must have the checkpoint's
 * `shape`, in any layout; for evaluation (no optimizer, no ZeRO). Returns
 * the step saved. Errors as checkpoint_resume's. */
int64_t checkpoint_load_weights(const char *given, const model_shape *shape, grid *g, model *m);

#endif
