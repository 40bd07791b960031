/* fuzz_safetensors — the safetensors reader (io/safetensors): st_open of any
 * bytes, then every tensor tessera can read (F32, F16, BF16) read as fp32.
 * Properties: each accepted tensor's byte range lies inside the file and is
 * exactly its elements, and st_find finds it by its name. */
#include <stdlib.h>

#include "fail.h"
#include "fuzz.h"
#include "safetensors.h"

int fuzz_safetensors(const uint8_t *data, size_t size) {
  char path[512], err[MESSAGE_BYTES] = "";
  fuzz_write_file("model.safetensors", data, size, path, sizeof path);
  st_file f;
  if (st_open(&f, path, err, sizeof err) != 0) {
    fuzz_refused(err);
    return 0;
  }
  for (int i = 0; i < f.n_tensors; i++) {
    const st_tensor *t = &f.tensors[i];
    FUZZ_ASSERT(t->begin <= t->end && t->end <= f.n_bytes && f.n_bytes == size, "tensor %s: bytes [%llu, %llu) of %llu",
                t->name, (unsigned long long)t->begin, (unsigned long long)t->end, (unsigned long long)f.n_bytes);
    FUZZ_ASSERT(t->n_elems >= 0 && t->end - t->begin == (uint64_t)t->n_elems * (uint64_t)t->elem_bytes,
                "tensor %s: %lld elements of %d bytes in %llu bytes", t->name, (long long)t->n_elems, t->elem_bytes,
                (unsigned long long)(t->end - t->begin));
    FUZZ_ASSERT(st_find(&f, t->name) != NULL, "tensor %s is not found by its name", t->name);
    float *values = malloc(((size_t)t->n_elems + 1) * sizeof *values);
    FUZZ_ASSERT(values, "out of memory");
    err[0] = '\0';
    if (st_read_f32(&f, t, values, err, sizeof err) != 0) fuzz_refused(err);
    free(values);
  }
  st_close(&f);
  return 0;
}

FUZZ_ENTRY(fuzz_safetensors)
