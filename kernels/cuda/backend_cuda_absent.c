/* backend_cuda_absent — compiled when the build has no CUDA backend:
 * backend_cuda() says so, and `--backend cuda` becomes a clear user error. */
#include "backend.h"

const backend *backend_cuda(void) { return NULL; }
bool backend_cuda_built(void) { return false; }
void backend_cuda_probe(device_probe *out) {
  *out = (device_probe){.verdict = DEVICE_NONE, .message = "no CUDA backend in this build"};
}
