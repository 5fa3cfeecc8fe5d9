/* SPDX-License-Identifier: Apache-2.0 */
/* A minimal TAP producer for the unit tests. */
#pragma once

#include <stdio.h>
#include <stdlib.h>

static int tap_n, tap_failed;

#define ok(cond, ...)                                                                              \
        do {                                                                                       \
                int _ok_c = !!(cond);                                                              \
                tap_n++;                                                                           \
                if (_ok_c)                                                                         \
                        printf("ok %d - ", tap_n);                                                 \
                else {                                                                             \
                        tap_failed++;                                                              \
                        printf("not ok %d - ", tap_n);                                             \
                }                                                                                  \
                printf(__VA_ARGS__);                                                               \
                printf("\n");                                                                      \
                if (!_ok_c)                                                                         \
                        printf("#   failed at %s:%d: %s\n", __FILE__, __LINE__, #cond);             \
        } while (0)

#define diag(...)                                                                                  \
        do {                                                                                       \
                printf("# ");                                                                      \
                printf(__VA_ARGS__);                                                               \
                printf("\n");                                                                      \
        } while (0)

__attribute__((constructor)) static void tap_init(void) { setvbuf(stdout, NULL, _IOLBF, 0); }

static inline int tap_done(void)
{
        printf("1..%d\n", tap_n);
        return tap_failed ? 1 : 0;
}
