/* SPDX-License-Identifier: Apache-2.0 */
#include "table.h"

#include <stdarg.h>
#include <string.h>

#include "util.h"

struct table {
        size_t ncols, nrows;
        char **cells; /* row-major, row 0 = headers; a tabbed table (ncols 0): its lines */
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
        /* (a tabbed table keeps a line a row: no columns yet) */
        for (size_t i = 0; i < t->nrows * (t->ncols ? t->ncols : 1); i++)
                free(t->cells[i]);
        free(t->cells);
        free(t);
}

struct table *table_new_tabbed(void) { return xcalloc(1, sizeof(struct table)); }

void table_add_tabbed(struct table *t, const char *line)
{
        /* kept whole until printed (the widest row decides how many columns there are) */
        t->cells = xrealloc(t->cells, (t->nrows + 1) * sizeof(char *));
        t->cells[t->nrows++] = xstrdup(line);
}

void table_print_tabbed(struct table *t, FILE *f)
{
        size_t ncols = 1;
        for (size_t i = 0; i < t->nrows; i++) {
                size_t k = 1;
                for (const char *p = t->cells[i]; (p = strchr(p, '\t')); p++)
                        k++;
                if (k > ncols)
                        ncols = k;
        }
        struct table *cols = xcalloc(1, sizeof(*cols));
        cols->ncols = ncols;
        const char **cells = xcalloc(ncols, sizeof(char *));
        for (size_t i = 0; i < t->nrows; i++) {
                char *copy = xstrdup(t->cells[i]), *save = copy;
                for (size_t c = 0; c < ncols; c++) {
                        cells[c] = save ? save : "";
                        char *tab = save ? strchr(save, '\t') : NULL;
                        if (tab)
                                *tab = '\0';
                        save = tab ? tab + 1 : NULL;
                }
                table_add(cols, cells);
                free(copy);
        }
        free(cells);
        table_print(cols, f, 1);
        table_free(cols);
}
