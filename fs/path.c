/* SPDX-License-Identifier: Apache-2.0 */
#include "path.h"

#include <errno.h>
#include <string.h>

#include "util.h"

int path_normalize(const char *in, char **ret_path)
{
        size_t n = strlen(in);
        _cleanup_free_ char *out = xmalloc(n + 1);
        size_t o = 0;
        const char *p = in;
        while (*p) {
                while (*p == '/')
                        p++;
                if (!*p)
                        break;
                const char *e = strchrnul(p, '/');
                size_t len = (size_t)(e - p);
                if (len == 1 && p[0] == '.') {
                        p = e;
                        continue;
                }
                if (len == 2 && p[0] == '.' && p[1] == '.')
                        return -EINVAL;
                if (o)
                        out[o++] = '/';
                memcpy(out + o, p, len);
                o += len;
                p = e;
        }
        out[o] = '\0';
        *ret_path = TAKE_PTR(out);
        return 0;
}

const char *path_basename(const char *path)
{
        const char *s = strrchr(path, '/');
        return s ? s + 1 : path;
}

char *path_dirname(const char *path)
{
        const char *s = strrchr(path, '/');
        return s ? xstrndup(path, (size_t)(s - path)) : xstrdup("");
}
