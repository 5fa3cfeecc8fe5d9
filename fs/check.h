/* SPDX-License-Identifier: Apache-2.0 */
/* `ctfs check`: verify the store against its invariants, and with repair remove what is broken
 * or orphaned. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "store.h"

struct check_result {
        uint64_t objects, layers, images, refs, containers; /* checked */
        uint64_t problems;                                  /* found */
        uint64_t repaired;                                  /* removed or fixed (repair only) */
};

/* report is called once per problem with a one-line description (and whether it was repaired). */
typedef void (*check_report_fn)(const char *problem, bool repaired, void *userdata);

int store_check(store *s, bool repair, check_report_fn report, void *userdata, struct check_result *ret);
