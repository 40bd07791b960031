/* direct_writer — writes runs of a file with O_DIRECT, bypassing the page
 * cache, while the caller goes on: the caller copies each piece into one of
 * two aligned 16 MiB buffers and a helper thread writes the other, so the
 * copy (and whatever the caller computes between pieces) overlaps the disk.
 * Pieces are written in the order given. Offsets and lengths must be
 * multiples of DIRECT_WRITER_ALIGN; the memory may be anywhere. Where the
 * file system turns O_DIRECT down at write time (EINVAL), the thread writes
 * the same bytes through the page cache instead.
 */
#ifndef TESSERA_DIRECT_WRITER_H
#define TESSERA_DIRECT_WRITER_H

#include <stddef.h>
#include <sys/types.h>

#define DIRECT_WRITER_ALIGN 4096

typedef struct direct_writer direct_writer;

/* Opens path (which exists) for direct writes; NULL when O_DIRECT cannot be
 * had here (the caller writes through the page cache). */
direct_writer *direct_writer_open(const char *path);

/* Queues bytes for file offset `offset`; returns once they are copied. */
void direct_writer_write(direct_writer *w, const void *data, size_t bytes, off_t offset);

/* Waits for every queued write and closes; 0, or the errno of the first
 * write that failed. */
int direct_writer_close(direct_writer *w);

#endif
