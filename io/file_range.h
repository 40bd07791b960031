/* file_range — exact byte ranges of a file by offset, for the model files
 * (checkpoints' tiles, safetensors, llm.c): pread/pwrite that retry short
 * transfers and interrupted calls, and fp32 tensors read from F32, F16 or
 * BF16 storage (widened exactly: every 16-bit value is an fp32 value).
 */
#ifndef TESSERA_FILE_RANGE_H
#define TESSERA_FILE_RANGE_H

#include <stddef.h>
#include <stdint.h>

typedef enum stored_float { STORED_F32, STORED_F16, STORED_BF16 } stored_float;

/* Exactly n bytes at offset; 0, or -1 with errno set (ENODATA: the file
 * ended first; EIO: a write that wrote nothing). */
int file_read_exact(int fd, void *buf, size_t n, uint64_t offset);
int file_write_exact(int fd, const void *buf, size_t n, uint64_t offset);

/* n elements stored as `kind` (little-endian) from offset, as fp32 into
 * out; 0, or -1 as file_read_exact. */
int file_read_floats(int fd, stored_float kind, int64_t n, uint64_t offset, float *out);

#endif
