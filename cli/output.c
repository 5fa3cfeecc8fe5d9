/* SPDX-License-Identifier: Apache-2.0 */
#include <stdio.h>
#include <time.h>

#include "cli.h"

void fmt_size(uint64_t bytes, char *out, size_t len)
{
        /* docker prints decimal units with three significant digits */
        static const char *const units[] = { "B", "kB", "MB", "GB", "TB", "PB" };
        double v = (double)bytes;
        size_t u = 0;
        while (v >= 1000.0 && u + 1 < sizeof(units) / sizeof(units[0])) {
                v /= 1000.0;
                u++;
        }
        if (u == 0)
                snprintf(out, len, "%lluB", (unsigned long long)bytes);
        else
                snprintf(out, len, "%.3g%s", v, units[u]);
}

void fmt_ago(int64_t when, char *out, size_t len)
{
        int64_t d = (int64_t)time(NULL) - when;
        if (when <= 0) {
                snprintf(out, len, "N/A");
                return;
        }
        if (d < 0)
                d = 0;
        static const struct {
                int64_t secs;
                const char *one, *many;
        } steps[] = {
                { 365 * 86400, "a year", "years" }, { 30 * 86400, "a month", "months" },
                { 7 * 86400, "a week", "weeks" },   { 86400, "a day", "days" },
                { 3600, "an hour", "hours" },       { 60, "a minute", "minutes" },
        };
        for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++)
                if (d >= steps[i].secs) {
                        int64_t n = d / steps[i].secs;
                        if (n == 1)
                                snprintf(out, len, "%s ago", steps[i].one);
                        else
                                snprintf(out, len, "%lld %s ago", (long long)n, steps[i].many);
                        return;
                }
        snprintf(out, len, "%s", d < 2 ? "Less than a second ago" : "Less than a minute ago");
        if (d >= 2)
                snprintf(out, len, "%lld seconds ago", (long long)d);
}
