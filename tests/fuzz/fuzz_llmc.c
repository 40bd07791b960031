/* fuzz_llmc — the llm.c model reader (io/llmc_model): llmc_open of any
 * bytes, then every tensor of every layer read as fp32. Property: an
 * accepted file is exactly its header and tensors, and every tensor lies
 * inside it. */
#include <stdlib.h>

#include "fail.h"
#include "fuzz.h"
#include "llmc_model.h"

int fuzz_llmc(const uint8_t *data, size_t size) {
  char path[512], err[MESSAGE_BYTES] = "";
  fuzz_write_file("model.bin", data, size, path, sizeof path);
  llmc_file f;
  if (llmc_open(&f, path, err, sizeof err) != 0) {
    fuzz_refused(err);
    return 0;
  }
  for (int k = 0; k < LLMC_N_TENSORS; k++) {
    FUZZ_ASSERT(f.offsets[k] + (uint64_t)f.elems[k] * (uint64_t)f.elem_bytes <= size,
                "tensor %d: %lld elements at %llu pass the end of %zu bytes", k, (long long)f.elems[k],
                (unsigned long long)f.offsets[k], size);
    const int64_t slice = llmc_slice_elems(&f.sizes, (llmc_tensor)k);
    FUZZ_ASSERT(slice >= 0 && (uint64_t)slice * (uint64_t)f.elem_bytes <= size, "tensor %d: slice of %lld elements",
                k, (long long)slice);
    float *values = malloc(((size_t)slice + 1) * sizeof *values);
    FUZZ_ASSERT(values, "out of memory");
    const int per_layer = k != LLMC_WTE && k != LLMC_WPE && k != LLMC_LNFW && k != LLMC_LNFB;
    for (int layer = 0; layer < (per_layer ? f.sizes.n_layer : 1); layer++) {
      err[0] = '\0';
      if (llmc_read(&f, (llmc_tensor)k, layer, slice, values, err, sizeof err) != 0)
        fuzz_refused(err);
    }
    free(values);
  }
  llmc_close(&f);
  return 0;
}

FUZZ_ENTRY(fuzz_llmc)
