/* llmc_model — llm.c's GPT-2 model file (train_gpt2.c's gpt2_build_from_checkpoint
 * and its write_checkpoint), read and written one tensor at a time.
 *
 * Layout: a header of 256 int32 — [0] magic 20240326, [1] version (3:
 * fp32, 5: bf16), [2] max_seq_len T, [3] vocab_size V, [4] num_layers L,
 * [5] num_heads NH, [6] channels C, [7] padded_vocab_size Vp (V rounded up
 * to a multiple of 128) — then 16 tensors, each for ALL layers at once:
 *   wte [Vp, C], wpe [T, C], ln1w [L, C], ln1b [L, C], qkvw [L, 3C, C],
 *   qkvb [L, 3C], attprojw [L, C, C], attprojb [L, C], ln2w [L, C],
 *   ln2b [L, C], fcw [L, 4C, C], fcb [L, 4C], fcprojw [L, C, 4C],
 *   fcprojb [L, C], lnfw [C], lnfb [C]
 * Linear weights are [out, in]; wte's rows V..Vp−1 are padding (zeros).
 * The file is exactly header + tensors: a shorter or longer one is refused.
 * Reading widens bf16 (version 5) to fp32; writing is always version 3.
 */
#ifndef TESSERA_LLMC_MODEL_H
#define TESSERA_LLMC_MODEL_H

#include <stddef.h>
#include <stdint.h>

#define LLMC_MAGIC 20240326
#define LLMC_HEADER_INTS 256

typedef enum llmc_tensor {
  LLMC_WTE, LLMC_WPE, LLMC_LN1W, LLMC_LN1B, LLMC_QKVW, LLMC_QKVB, LLMC_ATTPROJW, LLMC_ATTPROJB,
  LLMC_LN2W, LLMC_LN2B, LLMC_FCW, LLMC_FCB, LLMC_FCPROJW, LLMC_FCPROJB, LLMC_LNFW, LLMC_LNFB,
  LLMC_N_TENSORS
} llmc_tensor;

typedef struct llmc_sizes {
  int max_seq_len, vocab_size, n_layer, n_head, channels, padded_vocab_size;
} llmc_sizes;

typedef struct llmc_file {
  char path[4352];
  int fd;
  int version;                         /* 3 or 5 */
  int elem_bytes;                      /* 4 or 2 */
  llmc_sizes sizes;
  int64_t elems[LLMC_N_TENSORS];       /* of each tensor, all layers */
  uint64_t offsets[LLMC_N_TENSORS];    /* of each tensor in the file */
} llmc_file;

/* The padded vocabulary llm.c uses: V rounded up to a multiple of 128. */
int llmc_padded_vocab(int vocab_size);
/* Elements of one layer's slice of tensor k (the whole tensor for wte, wpe, lnf). */
int64_t llmc_slice_elems(const llmc_sizes *s, llmc_tensor k);

/* Opens and checks path. 0, or EXIT_USER_ERROR (cannot open) /
 * EXIT_IO_ERROR (wrong magic or version, bad sizes, wrong length) with err. */
int llmc_open(llmc_file *f, const char *path, char *err, size_t err_bytes);
/* The first n elements (at most llmc_slice_elems) of layer `layer`'s slice
 * of tensor k (layer ignored for wte, wpe, lnf), as fp32. 0 or
 * EXIT_IO_ERROR. */
int llmc_read(llmc_file *f, llmc_tensor k, int layer, int64_t n, float *out, char *err, size_t err_bytes);
void llmc_close(llmc_file *f);

/* Creates path (truncating): the header, and the tensors' space as zeros
 * (wte's padding rows stay so). 0 or EXIT_IO_ERROR. */
int llmc_create(llmc_file *f, const char *path, const llmc_sizes *sizes, char *err, size_t err_bytes);
/* Writes n elements at element `first` of layer `layer`'s slice of tensor k. */
int llmc_write(llmc_file *f, llmc_tensor k, int layer, int64_t first, const float *data, int64_t n, char *err,
               size_t err_bytes);
/* fsync and close; 0 or EXIT_IO_ERROR. */
int llmc_finish(llmc_file *f, char *err, size_t err_bytes);

#endif
