/* device_probe — see device_probe.h. */
#include "device_probe.h"

#include <dirent.h>
#include <stdio.h>
#include <string.h>

device_verdict device_probe_classify(device_count_status status, int n_devices, bool device_nodes) {
  switch (status) {
    case DEVICE_COUNT_OK: return n_devices > 0 ? DEVICE_READY : DEVICE_NONE;
    case DEVICE_COUNT_NO_DEVICE: return DEVICE_NONE;
    default: /* without a device node no driver is loaded: a machine without a GPU */
      return device_nodes ? DEVICE_BROKEN : DEVICE_NONE;
  }
}

static bool is_gpu_node(const char *name) {
  if (strncmp(name, "nvidia", 6) != 0 || name[6] == '\0') return false;
  for (const char *c = name + 6; *c; c++)
    if (*c < '0' || *c > '9') return false;
  return true;
}

bool device_probe_nodes_present(const char *dir) {
  DIR *d = opendir(dir);
  if (!d) return false; /* no /dev to look at: nothing says a GPU is there */
  bool found = false;
  const struct dirent *e;
  while (!found && (e = readdir(d)) != NULL) found = is_gpu_node(e->d_name);
  closedir(d);
  return found;
}

void device_probe_describe(const device_probe *p, char *out, size_t out_bytes) {
  switch (p->verdict) {
    case DEVICE_READY: snprintf(out, out_bytes, "GPUs: %d visible", p->n_devices); break;
    case DEVICE_NONE: snprintf(out, out_bytes, "GPUs: none (%s)", p->message); break;
    default: snprintf(out, out_bytes, "GPUs: unusable: %s", p->message);
  }
}
