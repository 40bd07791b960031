/* direct_reader — reads a file with O_DIRECT, bypassing the page cache, one
 * block ahead of the caller: the file is cut into aligned 4 MiB blocks, a
 * helper thread reads them into two aligned buffers, and the caller copies
 * its bytes out of them. When the caller's reads move forward (a checkpoint
 * load reads its tensors in file order), the thread is already reading the
 * next block while the caller checks and copies the current one, so the
 * disk never waits for the CPU. A read elsewhere just costs a block read of
 * its own (and the read-ahead it started is wasted: small blocks keep that
 * cheap; 4 MiB was the fastest of 4, 8 and 16 on the machine of
 * doc/performance.md). The memory and the offsets of the caller's reads
 * may be anything.
 */
#ifndef TESSERA_DIRECT_READER_H
#define TESSERA_DIRECT_READER_H

#include <stddef.h>
#include <sys/types.h>

typedef struct direct_reader direct_reader;

/* Opens path for direct reads; NULL when O_DIRECT cannot be had here (the
 * caller reads through the page cache). */
direct_reader *direct_reader_open(const char *path);

/* Copies bytes [offset, offset + n_bytes) of the file into `into`. Returns 0;
 * -1 when a read fails or the file ends first; 1 when the file system turns
 * O_DIRECT down at read time (then every later call returns 1: the caller
 * reads through the page cache instead). */
int direct_reader_read(direct_reader *r, void *into, size_t n_bytes, off_t offset);

/* Waits for the thread and closes. */
void direct_reader_close(direct_reader *r);

#endif
