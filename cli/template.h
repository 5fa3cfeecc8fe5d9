/* SPDX-License-Identifier: Apache-2.0 */
/* `inspect --format TEMPLATE`: Go's text/template, the part scripts use (see template.c). */
#pragma once

#include <stdbool.h>

struct json_object;

/* 0 and *ret (the text, malloc'd), or -1 and *ret_error (malloc'd). */
int template_render(const char *tmpl, struct json_object *value, char **ret, char **ret_error);

/* A listing's --format as docker reads it: "table" then an optional template (*ret_table; no
 * template: the command's own table), the template with \\t and \\n made a tab and a newline.
 * NULL: the default table. */
char *template_listing(const char *format, bool *ret_table);
