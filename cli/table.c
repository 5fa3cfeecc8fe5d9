/* SPDX-License-Identifier: Apache-2.0 */
#include "table.h"

#include <stdarg.h>
#include <string.h>

#include "util.h"

struct table {
        size_t ncols, nrows;
        char **cells; /* row-major, row 0 = headers */
};

struct table *table_new(const char *const *headers)
{
        struct table *t = xcalloc(1, sizeof(*t));
        while (headers[t->ncols])
                t->ncols++;
        table_add(t, headers);
        return t;
}

void table_add(struct table *t, const char *const *cells)
{
        t->cells = xrealloc(t->cells, (t->nrows + 1) * t->ncols * sizeof(char *));
        for (size_t c = 0; c < t->ncols; c++)
                t->cells[t->nrows * t->ncols + c] = xstrdup(cells[c] ? cells[c] : "");
        t->nrows++;
}

void table_addf(struct table *t, ...)
{
        const char **cells = xcalloc(t->ncols, sizeof(char *));
        va_list ap;
        va_start(ap, t);
        for (size_t c = 0; c < t->ncols; c++)
                cells[c] = va_arg(ap, const char *);
        va_end(ap);
        table_add(t, cells);
        free(cells);
}

/* Columns a cell takes on a terminal: UTF-8 continuation bytes take none (a truncated
 * command ends in "…", three bytes, one column). */
static size_t columns(const char *s)
{
        size_t n = 0;
        for (; *s; s++)
                n += ((unsigned char)*s & 0xC0) != 0x80;
        return n;
}

void table_print(struct table *t, FILE *f, int with_headers)
{
        size_t *w = xcalloc(t->ncols, sizeof(size_t));
        for (size_t r = with_headers ? 0 : 1; r < t->nrows; r++)
                for (size_t c = 0; c < t->ncols; c++) {
                        size_t l = columns(t->cells[r * t->ncols + c]);
                        if (l > w[c])
                                w[c] = l;
                }
        for (size_t r = with_headers ? 0 : 1; r < t->nrows; r++) {
                /* pad every column but the last, and never leave trailing blanks */
                size_t last = 0;
                for (size_t c = 0; c < t->ncols; c++)
                        if (*t->cells[r * t->ncols + c])
                                last = c;
                for (size_t c = 0; c <= last; c++) {
                        const char *s = t->cells[r * t->ncols + c];
                        fputs(s, f);
                        if (c != last)
                                fprintf(f, "%*s", (int)(w[c] - columns(s) + 3), "");
                }
                fputc('\n', f);
        }
        free(w);
}

void table_free(struct table *t)
{
        if (!t)
                return;
        for (size_t i = 0; i < t->nrows * t->ncols; i++)
                free(t->cells[i]);
        free(t->cells);
        free(t);
}

void table_print_tabbed(char *const *lines, size_t n, FILE *f)
{
        /* lines[0] is the header; every line's cells are what its tabs separate */
        size_t ncols = 1;
        for (size_t i = 0; i < n; i++) {
                size_t k = 1;
                for (const char *p = lines[i]; (p = strchr(p, '\t')); p++)
                        k++;
                if (k > ncols)
                        ncols = k;
        }
        struct table *t = xcalloc(1, sizeof(*t));
        t->ncols = ncols;
        const char **cells = xcalloc(ncols, sizeof(char *));
        for (size_t i = 0; i < n; i++) {
                char *copy = xstrdup(lines[i]), *save = copy;
                for (size_t c = 0; c < ncols; c++) {
                        cells[c] = save ? save : "";
                        char *tab = save ? strchr(save, '\t') : NULL;
                        if (tab)
                                *tab = '\0';
                        save = tab ? tab + 1 : NULL;
                }
                table_add(t, cells);
                free(copy);
        }
        free(cells);
        table_print(t, f, 1);
        table_free(t);
}
