/* SPDX-License-Identifier: Apache-2.0 */
/* `inspect --format TEMPLATE`: Go's text/template, the part scripts use (see template.c). */
#pragma once

#include <stdbool.h>
#include <stddef.h>

struct json_object;

/* 0 and *ret (the text, malloc'd), or -1 and *ret_error (malloc'd). */
int template_render(const char *tmpl, struct json_object *value, char **ret, char **ret_error);

/* A listing's --format as docker reads it: "table" then an optional template (*ret_table; no
 * template: the command's own table), the template with \\t and \\n made a tab and a newline.
 * NULL: the default table. */
char *template_listing(const char *format, bool *ret_table);

/* A 'table' template's header: the template over the columns' titles (cols[i][0] a field,
 * cols[i][1] its title). As template_render. */
int template_header(const char *tmpl, const char *const (*cols)[2], size_t n, char **ret, char **ret_error);
