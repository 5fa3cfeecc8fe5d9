/* SPDX-License-Identifier: Apache-2.0 */
/* `inspect --format TEMPLATE`: Go's text/template, the part scripts use (see template.c). */
#pragma once

struct json_object;

/* 0 and *ret (the text, malloc'd), or -1 and *ret_error (malloc'd). */
int template_render(const char *tmpl, struct json_object *value, char **ret, char **ret_error);
