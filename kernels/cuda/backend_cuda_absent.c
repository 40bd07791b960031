/* backend_cuda_absent — compiled when the build has no CUDA backend:
 * backend_cuda() says so, and `--backend cuda` becomes a clear user error. */
#include "backend.h"

const backend *backend_cuda(void) { return NULL; }
bool backend_cuda_built(void) { return false; }
