/* SPDX-License-Identifier: Apache-2.0 */
/*
 * `inspect --format`: the part of Go's text/template that scripts use on docker inspect, over
 * the JSON ctfs prints. Text is copied; an action {{...}} (with {{- and -}} trimming blanks) is
 * one of:
 *   .  .Field.Sub  $              the value there (a missing field: <no value>)
 *   json ARG  index ARG KEY...  join ARG SEP  len ARG  upper ARG  lower ARG  println ARG...
 *   eq ne lt le gt ge not and or printf   (ARG)   CMD | CMD (the value the next one's last ARG)
 *   if ARG ... [else if ARG ...] [else ...] end   with ARG ... end (the dot is ARG)
 *   range ARG ... [else ...] end (the dot is each element)
 * Values print as Go prints them: strings bare, arrays [a b], objects map[k:v] (keys sorted).
 */
#include "template.h"

#include <ctype.h>
#include <json-c/json.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

enum node_kind { N_TEXT, N_VALUE, N_IF, N_RANGE, N_WITH };

struct node {
        enum node_kind kind;
        char *text;               /* N_TEXT: the text; else the action's words */
        struct node *body, *alt;  /* N_IF, N_RANGE: the block and its else */
        struct node *next;
};

struct parser {
        const char *p;
        char *error;
        char *else_rest; /* what followed "else" in the last {{else ...}} ("if .X": else if) */
};

static void node_free(struct node *n)
{
        while (n) {
                struct node *next = n->next;
                free(n->text);
                node_free(n->body);
                node_free(n->alt);
                free(n);
                n = next;
        }
}

/* The next action's words (trimmed), or the text up to it. */
enum token { T_END, T_TEXT, T_ACTION };

static enum token next_token(struct parser *ps, char **ret)
{
        if (!*ps->p)
                return T_END;
        const char *open = strstr(ps->p, "{{");
        if (open != ps->p) {
                size_t n = open ? (size_t)(open - ps->p) : strlen(ps->p);
                /* {{- trims the blanks before it */
                size_t keep = n;
                if (open && open[2] == '-')
                        while (keep > 0 && isspace((unsigned char)ps->p[keep - 1]))
                                keep--;
                *ret = xstrndup(ps->p, keep);
                ps->p += n;
                return T_TEXT;
        }
        const char *start = ps->p + 2;
        if (*start == '-')
                start++;
        /* the "}}" that closes it: not one inside a "string" or a `raw string` */
        const char *close = start;
        for (char q = 0; *close; close++) {
                if (q) {
                        if (*close == '\\' && q == '"' && close[1])
                                close++;
                        else if (*close == q)
                                q = 0;
                } else if (*close == '"' || *close == '`')
                        q = *close;
                else if (close[0] == '}' && close[1] == '}')
                        break;
        }
        if (!*close)
                close = NULL;
        if (!close) {
                util_error_once(&ps->error, "unclosed action");
                return T_END;
        }
        const char *end = close;
        bool trim_after = end > start && end[-1] == '-' && (end - 1 == start || isspace((unsigned char)end[-2]));
        if (trim_after)
                end--;
        while (start < end && isspace((unsigned char)*start))
                start++;
        while (end > start && isspace((unsigned char)end[-1]))
                end--;
        *ret = xstrndup(start, (size_t)(end - start));
        ps->p = close + 2;
        if (trim_after) /* -}} trims the blanks after it */
                while (isspace((unsigned char)*ps->p))
                        ps->p++;
        return T_ACTION;
}

static bool word_is(const char *s, const char *w)
{
        size_t n = strlen(w);
        return strncmp(s, w, n) == 0 && (s[n] == '\0' || isspace((unsigned char)s[n]));
}

static struct node *parse_list(struct parser *ps, const char **stop);

/* An if's or a range's body, its {{else}} or {{else if ...}} (an if in the else, which takes
 * the {{end}}), and its {{end}}. */
static void parse_block(struct parser *ps, struct node *n)
{
        const char *s;
        n->body = parse_list(ps, &s);
        if (s && !strcmp(s, "else")) {
                const char *rest = ps->else_rest ? ps->else_rest : "";
                while (isspace((unsigned char)*rest))
                        rest++;
                if (*rest && n->kind == N_IF && word_is(rest, "if")) {
                        struct node *m = xcalloc(1, sizeof(*m));
                        m->kind = N_IF;
                        m->text = xstrdup(rest + 2);
                        n->alt = m;
                        parse_block(ps, m);
                        return;
                }
                if (*rest) {
                        util_error_once(&ps->error, "unexpected \"%s\" after else", rest);
                        return;
                }
                n->alt = parse_list(ps, &s);
        }
        if (!s || strcmp(s, "end") != 0)
                util_error_once(&ps->error, "%s without its {{end}}", n->kind == N_IF ? "if" : n->kind == N_RANGE ? "range" : "with");
}

/* Nodes up to {{end}} or {{else}} (*stop says which), or the end of the text (top level). */
static struct node *parse_list(struct parser *ps, const char **stop)
{
        struct node *head = NULL, **tail = &head;
        *stop = NULL;
        for (;;) {
                char *tok = NULL;
                enum token t = next_token(ps, &tok);
                if (t == T_END || ps->error) {
                        free(tok);
                        return head;
                }
                struct node *n = xcalloc(1, sizeof(*n));
                if (t == T_TEXT) {
                        n->kind = N_TEXT;
                        n->text = tok;
                } else if (!strcmp(tok, "end") || word_is(tok, "else")) {
                        *stop = !strcmp(tok, "end") ? "end" : "else";
                        free(ps->else_rest);
                        ps->else_rest = word_is(tok, "else") ? xstrdup(tok + 4) : NULL;
                        free(tok);
                        free(n);
                        return head;
                } else if (word_is(tok, "if") || word_is(tok, "range") || word_is(tok, "with")) {
                        bool is_if = word_is(tok, "if");
                        n->kind = is_if ? N_IF : word_is(tok, "range") ? N_RANGE : N_WITH;
                        n->text = xstrdup(tok + (is_if ? 2 : n->kind == N_RANGE ? 5 : 4));
                        free(tok);
                        parse_block(ps, n);
                } else if (tok[0] == '/' && tok[1] == '*') {
                        free(tok); /* a comment */
                        free(n);
                        continue;
                } else {
                        n->kind = N_VALUE;
                        n->text = tok;
                }
                *tail = n;
                tail = &n->next;
        }
}

/* ---- evaluation ---- */

struct out {
        char *buf;
        size_t len, cap;
};

static void put(struct out *o, const char *s, size_t n)
{
        if (o->len + n + 1 > o->cap) {
                o->cap = (o->len + n + 1) * 2;
                o->buf = xrealloc(o->buf, o->cap);
        }
        memcpy(o->buf + o->len, s, n);
        o->len += n;
        o->buf[o->len] = '\0';
}

static void puts_(struct out *o, const char *s) { put(o, s, strlen(s)); }

static int key_cmp(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* A value as Go's fmt prints it. */
static void print_value(struct out *o, json_object *v)
{
        char num[64];
        switch (json_object_get_type(v)) {
        case json_type_null:
                puts_(o, "<no value>");
                break;
        case json_type_boolean:
                puts_(o, json_object_get_boolean(v) ? "true" : "false");
                break;
        case json_type_int:
                snprintf(num, sizeof(num), "%lld", (long long)json_object_get_int64(v));
                puts_(o, num);
                break;
        case json_type_double:
                snprintf(num, sizeof(num), "%g", json_object_get_double(v));
                puts_(o, num);
                break;
        case json_type_string:
                put(o, json_object_get_string(v), (size_t)json_object_get_string_len(v));
                break;
        case json_type_array:
                puts_(o, "[");
                for (size_t i = 0; i < json_object_array_length(v); i++) {
                        if (i)
                                puts_(o, " ");
                        print_value(o, json_object_array_get_idx(v, i));
                }
                puts_(o, "]");
                break;
        case json_type_object: {
                size_t n = 0;
                char **keys = NULL;
                json_object_object_foreach(v, k, val) {
                        (void)val;
                        keys = xrealloc(keys, (n + 1) * sizeof(*keys));
                        keys[n++] = k;
                }
                if (n)
                        qsort(keys, n, sizeof(*keys), key_cmp);
                puts_(o, "map[");
                for (size_t i = 0; i < n; i++) {
                        if (i)
                                puts_(o, " ");
                        puts_(o, keys[i]);
                        puts_(o, ":");
                        json_object *x = NULL;
                        json_object_object_get_ex(v, keys[i], &x);
                        print_value(o, x);
                }
                puts_(o, "]");
                free(keys);
                break;
        }
        }
}

struct eval {
        json_object *root; /* $ */
        char *error;
        json_object **made; /* values made while evaluating (freed at the end) */
        size_t n_made;
};

static json_object *keep(struct eval *e, json_object *v)
{
        e->made = xrealloc(e->made, (e->n_made + 1) * sizeof(*e->made));
        e->made[e->n_made++] = v;
        return v;
}

/* The next word of an action: a "string" (its content in *ret_str), or a bare word. */
static bool next_word(const char **p, char **ret, bool *ret_quoted)
{
        while (isspace((unsigned char)**p))
                (*p)++;
        if (!**p)
                return false;
        *ret_quoted = false;
        if (**p == '`') { /* raw */
                const char *s = ++(*p);
                while (**p && **p != '`')
                        (*p)++;
                *ret = xstrndup(s, (size_t)(*p - s));
                if (**p)
                        (*p)++;
                *ret_quoted = true;
                return true;
        }
        if (**p == '"') { /* with Go's escapes: \n \t \r \\ \" */
                (*p)++;
                char *out = xmalloc(strlen(*p) + 1), *o = out;
                while (**p && **p != '"') {
                        char ch = *(*p)++;
                        if (ch == '\\' && **p) {
                                ch = *(*p)++;
                                ch = ch == 'n' ? '\n' : ch == 't' ? '\t' : ch == 'r' ? '\r' : ch;
                        }
                        *o++ = ch;
                }
                *o = '\0';
                if (**p)
                        (*p)++;
                *ret = out;
                *ret_quoted = true;
                return true;
        }
        if (**p == '(') { /* a sub-pipeline: "(" and what is inside the parentheses */
                const char *s = *p;
                int depth = 0;
                char q = 0;
                for (; **p; (*p)++) {
                        char ch = **p;
                        if (q) {
                                if (ch == '\\' && q == '"' && (*p)[1])
                                        (*p)++;
                                else if (ch == q)
                                        q = 0;
                        } else if (ch == '"' || ch == '`')
                                q = ch;
                        else if (ch == '(')
                                depth++;
                        else if (ch == ')' && --depth == 0)
                                break;
                }
                *ret = xstrndup(s, (size_t)(*p - s)); /* without the ")" */
                if (**p)
                        (*p)++;
                return true;
        }
        const char *s = *p;
        while (**p && !isspace((unsigned char)**p))
                (*p)++;
        *ret = xstrndup(s, (size_t)(*p - s));
        return true;
}

/* .A.B on dot ($.A.B on the root); NULL: a missing field. */
static json_object *field(struct eval *e, json_object *dot, const char *path)
{
        json_object *v = dot;
        if (path[0] == '$') {
                v = e->root;
                path++;
        }
        if (!strcmp(path, ".") || !*path)
                return v;
        _cleanup_free_ char *copy = xstrdup(path + 1);
        char *save = NULL;
        for (char *f = strtok_r(copy, ".", &save); f; f = strtok_r(NULL, ".", &save)) {
                json_object *x = NULL;
                if (!v || json_object_get_type(v) != json_type_object || !json_object_object_get_ex(v, f, &x))
                        return NULL;
                v = x;
        }
        return v;
}

static json_object *eval_pipeline(struct eval *e, json_object *dot, const char *text, bool *ret_missing);

static json_object *arg_value(struct eval *e, json_object *dot, const char *w, bool quoted, bool *ret_missing)
{
        *ret_missing = false;
        if (quoted)
                return keep(e, json_object_new_string(w));
        if (w[0] == '(')
                return eval_pipeline(e, dot, w + 1, ret_missing);
        if (!strcmp(w, "true") || !strcmp(w, "false"))
                return keep(e, json_object_new_boolean(w[0] == 't'));
        if (!strcmp(w, "nil"))
                return NULL;
        if (w[0] == '.' || w[0] == '$') {
                json_object *v = field(e, dot, w);
                *ret_missing = v == NULL && strcmp(w, ".") != 0;
                return v;
        }
        char *end;
        long long n = strtoll(w, &end, 10);
        if (*w && !*end)
                return keep(e, json_object_new_int64(n));
        util_error_once(&e->error, "function \"%s\" not defined", w);
        return NULL;
}

static bool truthy(json_object *v)
{
        switch (json_object_get_type(v)) {
        case json_type_null:
                return false;
        case json_type_boolean:
                return json_object_get_boolean(v);
        case json_type_int:
                return json_object_get_int64(v) != 0;
        case json_type_double:
                return json_object_get_double(v) != 0;
        case json_type_string:
                return json_object_get_string_len(v) > 0;
        case json_type_array:
                return json_object_array_length(v) > 0;
        case json_type_object:
                return json_object_object_length(v) > 0;
        }
        return false;
}

/* An action's value: a field, or a function of its arguments. *ret_missing: a missing field
 * (printed as <no value>). */
/* Two values as Go's eq/lt see them: -2 when they cannot be compared. */
static int compare(json_object *a, json_object *b)
{
        json_type ta = json_object_get_type(a), tb = json_object_get_type(b);
        bool na = ta == json_type_int || ta == json_type_double, nb = tb == json_type_int || tb == json_type_double;
        if (na && nb) {
                double x = json_object_get_double(a), y = json_object_get_double(b);
                return x < y ? -1 : x > y;
        }
        if (ta == json_type_string && tb == json_type_string) {
                int c = strcmp(json_object_get_string(a), json_object_get_string(b));
                return c < 0 ? -1 : c > 0;
        }
        if (ta == json_type_boolean && tb == json_type_boolean)
                return json_object_get_boolean(a) == json_object_get_boolean(b) ? 0 : 1;
        if (ta == json_type_null && tb == json_type_null)
                return 0;
        return -2;
}

static bool truthy(json_object *v);

/* printf: %s %v %d %q %% over the values as they print. */
static char *printf_values(struct eval *e, const char *fmt, json_object **args, size_t n)
{
        struct out o = { 0 };
        puts_(&o, "");
        size_t k = 0;
        for (const char *p = fmt; *p; p++) {
                if (*p != '%' || !p[1]) {
                        put(&o, p, 1);
                        continue;
                }
                char verb = *++p;
                if (verb == '%') {
                        puts_(&o, "%");
                        continue;
                }
                if (k >= n) {
                        puts_(&o, "%!");
                        put(&o, &verb, 1);
                        puts_(&o, "(MISSING)");
                        continue;
                }
                json_object *v = args[k++];
                if (verb == 'q') {
                        puts_(&o, "\"");
                        print_value(&o, v);
                        puts_(&o, "\"");
                } else if (verb == 's' || verb == 'v' || verb == 'd')
                        print_value(&o, v);
                else
                        util_error_once(&e->error, "printf: unsupported verb %%%c", verb);
        }
        return o.buf;
}

static json_object *eval_command(struct eval *e, json_object *dot, const char *action, json_object *prev,
                                 bool has_prev, bool *ret_missing)
{
        const char *p = action;
        char *w = NULL;
        bool quoted;
        *ret_missing = false;
        if (!next_word(&p, &w, &quoted)) {
                util_error_once(&e->error, "empty command");
                return NULL;
        }
        static const char *const cmp_funcs[] = { "eq", "ne", "lt", "le", "gt", "ge", "not", "and", "or", "printf" };
        for (size_t i = 0; i < sizeof(cmp_funcs) / sizeof(cmp_funcs[0]) && !quoted; i++) {
                if (strcmp(w, cmp_funcs[i]) != 0)
                        continue;
                json_object *args[16];
                size_t n = 0;
                char *a;
                bool q, miss;
                while (n < 15 && next_word(&p, &a, &q)) {
                        args[n++] = arg_value(e, dot, a, q, &miss);
                        free(a);
                }
                if (has_prev)
                        args[n++] = prev;
                json_object *r = NULL;
                const char *f = cmp_funcs[i];
                if (!strcmp(f, "not")) {
                        if (n != 1)
                                util_error_once(&e->error, "not takes one argument");
                        else
                                r = keep(e, json_object_new_boolean(!truthy(args[0])));
                } else if (!strcmp(f, "and") || !strcmp(f, "or")) {
                        if (n < 1)
                                util_error_once(&e->error, "%s takes arguments", f);
                        bool want = f[0] == 'o'; /* or: the first true one; and: the first false */
                        for (size_t k = 0; k < n; k++) {
                                r = args[k];
                                if (truthy(r) == want)
                                        break;
                        }
                } else if (!strcmp(f, "printf")) {
                        if (n < 1 || json_object_get_type(args[0]) != json_type_string)
                                util_error_once(&e->error, "printf takes a format and values");
                        else {
                                char *text = printf_values(e, json_object_get_string(args[0]), args + 1, n - 1);
                                r = keep(e, json_object_new_string(text));
                                free(text);
                        }
                } else if (n < 2) {
                        util_error_once(&e->error, "%s takes two values", f);
                } else if (!strcmp(f, "eq")) { /* eq a b c: a equals b or c */
                        bool any = false;
                        for (size_t k = 1; k < n && !e->error; k++) {
                                int c = compare(args[0], args[k]);
                                if (c == -2)
                                        util_error_once(&e->error, "eq: values of different kinds");
                                any = any || c == 0;
                        }
                        r = keep(e, json_object_new_boolean(any));
                } else {
                        int c = compare(args[0], args[1]);
                        if (c == -2)
                                util_error_once(&e->error, "%s: values that cannot be compared", f);
                        bool v = !strcmp(f, "ne")   ? c != 0
                                 : !strcmp(f, "lt") ? c == -1
                                 : !strcmp(f, "le") ? c <= 0 && c != -2
                                 : !strcmp(f, "gt") ? c == 1
                                                    : c >= 0;
                        r = keep(e, json_object_new_boolean(v));
                }
                free(w);
                return r;
        }
        if (has_prev && (quoted || w[0] == '.' || w[0] == '$' || w[0] == '(')) {
                util_error_once(&e->error, "can't give a value to %s", w);
                free(w);
                return NULL;
        }
        static const char *const funcs[] = { "json", "index", "join", "len", "upper", "lower", "println" };
        bool known = quoted || w[0] == '.' || w[0] == '$' || w[0] == '(' || !strcmp(w, "true") || !strcmp(w, "false");
        for (size_t i = 0; i < sizeof(funcs) / sizeof(funcs[0]) && !known; i++)
                known = !strcmp(w, funcs[i]);
        if (!known) {
                util_error_once(&e->error, "function \"%s\" not defined", w);
                free(w);
                return NULL;
        }
        json_object *args[9];
        bool miss[9];
        size_t n = 0;
        char *a;
        bool q;
        while (n < 8 && next_word(&p, &a, &q)) {
                args[n] = arg_value(e, dot, a, q, &miss[n]);
                free(a);
                n++;
        }
        if (has_prev) {
                miss[n] = false;
                args[n++] = prev;
        }
        json_object *r = NULL;
        if (quoted || w[0] == '.' || w[0] == '$' || w[0] == '(' || !strcmp(w, "true") || !strcmp(w, "false")) {
                if (n)
                        util_error_once(&e->error, "%s is not a function", w);
                else
                        r = arg_value(e, dot, w, quoted, ret_missing);
        } else if (!strcmp(w, "json")) {
                if (n != 1)
                        util_error_once(&e->error, "json takes one argument");
                else
                        r = keep(e, json_object_new_string(
                                            args[0] ? json_object_to_json_string_ext(args[0], JSON_C_TO_STRING_PLAIN |
                                                                                            JSON_C_TO_STRING_NOSLASHESCAPE)
                                                    : "null"));
        } else if (!strcmp(w, "index")) {
                r = n ? args[0] : NULL;
                if (!n)
                        util_error_once(&e->error, "index takes a value and keys");
                for (size_t i = 1; i < n && r; i++) {
                        json_object *x = NULL;
                        if (json_object_get_type(r) == json_type_object && json_object_get_type(args[i]) == json_type_string)
                                json_object_object_get_ex(r, json_object_get_string(args[i]), &x);
                        else if (json_object_get_type(r) == json_type_array && json_object_get_type(args[i]) == json_type_int) {
                                int64_t k = json_object_get_int64(args[i]);
                                if (k < 0 || (size_t)k >= json_object_array_length(r))
                                        util_error_once(&e->error, "index out of range: %lld", (long long)k);
                                else
                                        x = json_object_array_get_idx(r, (size_t)k);
                        }
                        r = x;
                }
                *ret_missing = r == NULL;
        } else if (!strcmp(w, "join")) {
                if (n != 2 || json_object_get_type(args[0]) != json_type_array ||
                    json_object_get_type(args[1]) != json_type_string)
                        util_error_once(&e->error, "join takes a list and a separator");
                else {
                        struct out o = { 0 };
                        puts_(&o, "");
                        for (size_t i = 0; i < json_object_array_length(args[0]); i++) {
                                if (i)
                                        puts_(&o, json_object_get_string(args[1]));
                                print_value(&o, json_object_array_get_idx(args[0], i));
                        }
                        r = keep(e, json_object_new_string(o.buf));
                        free(o.buf);
                }
        } else if (!strcmp(w, "len")) {
                json_type t = n == 1 ? json_object_get_type(args[0]) : json_type_null;
                if (t == json_type_array)
                        r = keep(e, json_object_new_int64((int64_t)json_object_array_length(args[0])));
                else if (t == json_type_object)
                        r = keep(e, json_object_new_int64(json_object_object_length(args[0])));
                else if (t == json_type_string)
                        r = keep(e, json_object_new_int64(json_object_get_string_len(args[0])));
                else
                        util_error_once(&e->error, "len of a value that has none");
        } else if (!strcmp(w, "upper") || !strcmp(w, "lower") || !strcmp(w, "println")) {
                struct out o = { 0 };
                puts_(&o, "");
                for (size_t i = 0; i < n; i++) {
                        if (i)
                                puts_(&o, " ");
                        print_value(&o, args[i]);
                }
                if (!strcmp(w, "println"))
                        puts_(&o, "\n");
                else if (n != 1)
                        util_error_once(&e->error, "%s takes one argument", w);
                for (char *c = o.buf; *c; c++)
                        *c = (char)(w[0] == 'u' ? toupper((unsigned char)*c) : w[0] == 'l' ? tolower((unsigned char)*c) : *c);
                r = keep(e, json_object_new_string(o.buf));
                free(o.buf);
        } else {
                util_error_once(&e->error, "function \"%s\" not defined", w);
        }
        free(w);
        return r;
}

/* cmd | cmd | ...: each command's value the last argument of the next. */
static json_object *eval_pipeline(struct eval *e, json_object *dot, const char *text, bool *ret_missing)
{
        _cleanup_free_ char *copy = xstrdup(text);
        json_object *v = NULL;
        bool has_prev = false;
        *ret_missing = false;
        char *start = copy;
        for (char *c = copy, q = 0;; c++) {
                if (*c && q) {
                        if (*c == '\\' && q == '"' && c[1])
                                c++;
                        else if (*c == q)
                                q = 0;
                        continue;
                }
                if (*c == '"' || *c == '`') {
                        q = *c;
                        continue;
                }
                if (*c == '(') { /* skip a sub-pipeline whole */
                        int d = 0;
                        char qq = 0;
                        for (; *c; c++) {
                                if (qq) {
                                        if (*c == '\\' && qq == '"' && c[1])
                                                c++;
                                        else if (*c == qq)
                                                qq = 0;
                                } else if (*c == '"' || *c == '`')
                                        qq = *c;
                                else if (*c == '(')
                                        d++;
                                else if (*c == ')' && --d == 0)
                                        break;
                        }
                        if (!*c)
                                c--;
                        continue;
                }
                if (*c != '|' && *c)
                        continue;
                bool end = !*c;
                *c = '\0';
                v = eval_command(e, dot, start, v, has_prev, ret_missing);
                has_prev = true;
                if (end || e->error)
                        break;
                start = c + 1;
        }
        return v;
}

static json_object *eval_action(struct eval *e, json_object *dot, const char *action, bool *ret_missing)
{
        return eval_pipeline(e, dot, action, ret_missing);
}

static void exec_list(struct eval *e, struct out *o, struct node *n, json_object *dot)
{
        for (; n && !e->error; n = n->next) {
                bool missing;
                switch (n->kind) {
                case N_TEXT:
                        puts_(o, n->text);
                        break;
                case N_VALUE: {
                        json_object *v = eval_action(e, dot, n->text, &missing);
                        if (!e->error)
                                print_value(o, missing ? NULL : v);
                        break;
                }
                case N_IF: {
                        json_object *v = eval_action(e, dot, n->text, &missing);
                        if (!e->error)
                                exec_list(e, o, truthy(v) ? n->body : n->alt, dot);
                        break;
                }
                case N_WITH: { /* the dot is the value, when it is true */
                        json_object *v = eval_action(e, dot, n->text, &missing);
                        if (!e->error)
                                exec_list(e, o, truthy(v) ? n->body : n->alt, truthy(v) ? v : dot);
                        break;
                }
                case N_RANGE: {
                        json_object *v = eval_action(e, dot, n->text, &missing);
                        if (e->error)
                                break;
                        if (!truthy(v))
                                exec_list(e, o, n->alt, dot);
                        else if (json_object_get_type(v) == json_type_array)
                                for (size_t i = 0; i < json_object_array_length(v) && !e->error; i++)
                                        exec_list(e, o, n->body, json_object_array_get_idx(v, i));
                        else if (json_object_get_type(v) == json_type_object) {
                                json_object_object_foreach(v, k, val) {
                                        (void)k;
                                        exec_list(e, o, n->body, val);
                                }
                        } else
                                util_error_once(&e->error, "range can't iterate over %s",
                                           json_object_to_json_string_ext(v, JSON_C_TO_STRING_NOSLASHESCAPE));
                        break;
                }
                }
        }
}

int template_render(const char *tmpl, json_object *value, char **ret, char **ret_error)
{
        struct parser ps = { .p = tmpl };
        const char *stop;
        struct node *n = parse_list(&ps, &stop);
        if (!ps.error && stop)
                util_error_once(&ps.error, "unexpected {{%s}}", stop);
        free(ps.else_rest);
        if (ps.error) {
                node_free(n);
                *ret_error = ps.error;
                return -1;
        }
        struct eval e = { .root = value };
        struct out o = { 0 };
        puts_(&o, "");
        exec_list(&e, &o, n, value);
        node_free(n);
        for (size_t i = 0; i < e.n_made; i++)
                json_object_put(e.made[i]);
        free(e.made);
        if (e.error) {
                free(o.buf);
                *ret_error = e.error;
                return -1;
        }
        *ret = o.buf;
        return 0;
}

char *template_listing(const char *format, bool *ret_table)
{
        *ret_table = strncmp(format, "table", 5) == 0;
        if (*ret_table)
                format += 5;
        while (*format == ' ')
                format++;
        if (*ret_table && !*format)
                return NULL;
        char *out = xmalloc(strlen(format) + 1), *o = out;
        for (const char *p = format; *p; p++) {
                if (p[0] == '\\' && (p[1] == 't' || p[1] == 'n')) {
                        *o++ = p[1] == 't' ? '\t' : '\n';
                        p++;
                } else
                        *o++ = *p;
        }
        while (o > out && o[-1] == ' ')
                o--;
        *o = '\0';
        return out;
}

int template_header(const char *tmpl, const char *const (*cols)[2], size_t n, char **ret, char **ret_error)
{
        json_object *h = json_object_new_object();
        for (size_t i = 0; i < n; i++)
                json_object_object_add(h, cols[i][0], json_object_new_string(cols[i][1]));
        int r = template_render(tmpl, h, ret, ret_error);
        json_object_put(h);
        return r;
}
