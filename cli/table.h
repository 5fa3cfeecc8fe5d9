/* SPDX-License-Identifier: Apache-2.0 */
/* Column output like docker's: each column as wide as its widest cell, three spaces apart. */
#pragma once

#include <stdio.h>

struct table;

struct table *table_new(const char *const *headers); /* NULL-terminated */
/* Add a row of as many cells as there are headers (copied). */
void table_add(struct table *t, const char *const *cells);
void table_addf(struct table *t, ...); /* cells as const char * arguments, one per column */
void table_print(struct table *t, FILE *f, int with_headers);
void table_free(struct table *t);
/* `--format 'table ...'`: lines whose cells are separated by tabs (the first the header),
 * printed aligned as table_print aligns columns (docker aligns its table formats so). */
struct table *table_new_tabbed(void);
void table_add_tabbed(struct table *t, const char *line);
void table_print_tabbed(struct table *t, FILE *f);
