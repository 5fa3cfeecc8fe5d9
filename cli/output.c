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

/* docker's HumanDuration (go-units), so `images` and `ps` read the same as docker's. */
void fmt_duration(int64_t d, char *out, size_t len)
{
        int64_t minutes = d / 60, hours = (d + 1800) / 3600;
        if (d < 1)
                snprintf(out, len, "Less than a second");
        else if (d == 1)
                snprintf(out, len, "1 second");
        else if (d < 60)
                snprintf(out, len, "%lld seconds", (long long)d);
        else if (minutes == 1)
                snprintf(out, len, "About a minute");
        else if (minutes < 60)
                snprintf(out, len, "%lld minutes", (long long)minutes);
        else if (hours == 1)
                snprintf(out, len, "About an hour");
        else if (hours < 48)
                snprintf(out, len, "%lld hours", (long long)hours);
        else if (hours < 24 * 7 * 2)
                snprintf(out, len, "%lld days", (long long)(hours / 24));
        else if (hours < 24 * 30 * 2)
                snprintf(out, len, "%lld weeks", (long long)(hours / 24 / 7));
        else if (hours < 24 * 365 * 2)
                snprintf(out, len, "%lld months", (long long)(hours / 24 / 30));
        else
                snprintf(out, len, "%lld years", (long long)(d / 3600 / 24 / 365));
}

void fmt_ago(int64_t when, char *out, size_t len)
{
        if (when <= 0) {
                snprintf(out, len, "N/A");
                return;
        }
        int64_t d = (int64_t)time(NULL) - when;
        char dur[48];
        fmt_duration(d < 0 ? 0 : d, dur, sizeof(dur));
        snprintf(out, len, "%s ago", dur);
}
