/* crc32c — the CRC-32C (Castagnoli) checksum of checkpoint tiles.
 *
 * CRC-32C is the checksum of iSCSI, ext4 metadata and many storage systems:
 * it catches every burst error up to 32 bits and, unlike HDF5's Fletcher-32
 * filter, it runs at memory speed on x86 (the SSE4.2 crc32 instruction);
 * other machines get a table-driven version with the same result.
 * Conventional form: initial value and final xor 0xFFFFFFFF, reflected
 * polynomial 0x82F63B78, so crc32c("123456789") is 0xE3069283.
 */
#ifndef TESSERA_CRC32C_H
#define TESSERA_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* The CRC-32C of bytes [data, data + n). */
uint32_t crc32c(const void *data, size_t n);

/* Continues a running CRC: crc32c_extend(crc32c(a), b) == crc32c(a ++ b). */
uint32_t crc32c_extend(uint32_t crc, const void *data, size_t n);

#endif
