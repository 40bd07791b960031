/* offload_file — one rank's optimizer state on disk (ZeRO-Infinity's NVMe
 * offload): the fp32 master weights and Adam moments of the rank's ZeRO
 * range in a file DIR/tessera-offload-rankNNNNN.state, cut into chunks of
 * chunk_elems elements, each chunk its master, m and v back to back. The
 * file is a working copy, never a checkpoint: its first 4 KiB are a text
 * header saying so (run, rank, sizes), its name matches no checkpoint
 * pattern, it is made fresh at start (a stale one of a killed run is
 * replaced) and removed by offload_file_remove at a clean exit.
 *
 * I/O goes through O_DIRECT (no page cache: the point is that RAM holds
 * only the chunk buffers) when the file system takes it, else through the
 * page cache (offload_file_direct says which). Three aligned chunk buffers
 * ("slots") and a helper thread that runs queued reads and writes in the
 * order given let the caller update chunk k while chunk k−1 is written and
 * chunk k+1 read. Every failed call fails the process (exit 2) with the
 * rank, the file and the OS's message.
 */
#ifndef TESSERA_OFFLOAD_FILE_H
#define TESSERA_OFFLOAD_FILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buffer_sizer.h"

#define OFFLOAD_FILE_SLOTS 3
#define OFFLOAD_FILE_ALIGN 4096
/* chunk_elems must be a multiple of this (whole aligned blocks per state) */
#define OFFLOAD_FILE_CHUNK_QUANTUM (OFFLOAD_FILE_ALIGN / sizeof(float))

typedef struct offload_file offload_file;

/* Whether path begins as an offload file does (its header's first line). */
bool offload_file_is_one(const char *path);

/* The file name of a rank's state in dir. */
void offload_file_name(const char *dir, int rank, char *out, size_t out_bytes);

/* Creates the file fresh, header written and its whole size allocated (so
 * a full disk is found now, not mid-run), and the chunk buffers. NULL with
 * *status (EXIT_USER_ERROR: dir missing, not a folder, not writable, full)
 * and a message in err. run_label names the run in the header. */
offload_file *offload_file_create(const char *dir, int rank, int world, size_t n_elems, size_t chunk_elems,
                                  const char *run_label, int *status, char *err, size_t err_bytes);

size_t offload_file_n_chunks(const offload_file *f);
/* Elements of chunk k (the last may be short). */
size_t offload_file_chunk_len(const offload_file *f, size_t k);
size_t offload_file_chunk_elems(const offload_file *f);
/* Slot s's buffer: master, m, v of chunk_elems floats each, back to back. */
float *offload_file_slot(const offload_file *f, int slot);
/* Bytes of RAM the slots take; bytes of the file. */
size_t offload_file_ram_bytes(const offload_file *f);
/* The file's three chunk buffers (3 states x chunk_elems floats each),
 * allocated or only counted by s (kernels/buffer_sizer.h): what
 * offload_file_create holds, and what the planner counts. false: out of
 * memory (allocating). */
bool offload_file_buffers(buffer_sizer *s, size_t chunk_elems, float *slots[OFFLOAD_FILE_SLOTS]);
size_t offload_file_disk_bytes(const offload_file *f);
bool offload_file_direct(const offload_file *f);
const char *offload_file_path(const offload_file *f);

/* Queue a read of chunk k into slot s / a write of slot s to chunk k; the
 * returned ticket is done once offload_file_wait(f, ticket) returns. Queued
 * requests run one at a time in the order queued. */
uint64_t offload_file_read(offload_file *f, size_t k, int slot);
uint64_t offload_file_write(offload_file *f, size_t k, int slot);
void offload_file_wait(offload_file *f, uint64_t ticket);
/* Every queued request done. */
void offload_file_drain(offload_file *f);

/* Drains, closes and deletes the file, frees the buffers. */
void offload_file_remove(offload_file *f);

#endif
