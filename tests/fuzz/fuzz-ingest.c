/* SPDX-License-Identifier: Apache-2.0 */
/* Fuzz target: layer ingest of arbitrary (compressed) tar streams into a scratch store. */
#include <fcntl.h>
#include <sys/mman.h>

#include "ingest.h"
#include "store.h"
#include "util.h"

static store *s;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        if (!s) {
                char dir[] = "/tmp/ctfs-fuzz-ingest-XXXXXX";
                if (!mkdtemp(dir) || store_open(dir, &s) < 0)
                        abort();
        }
        int fd = memfd_create("layer", MFD_CLOEXEC);
        if (fd < 0 || util_write_all(fd, data, size) < 0)
                abort();
        lseek(fd, 0, SEEK_SET);
        struct ingest_result res;
        char *err = NULL;
        ingest_layer(s, fd, NULL, NULL, &res, &err);
        free(err);
        close(fd);
        return 0;
}
