/* SPDX-License-Identifier: Apache-2.0 */
#include "pty.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "util.h"

int pty_open(int *ret_master, int *ret_slave, char *ret_name, size_t name_len)
{
        _cleanup_close_ int m = open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
        if (m < 0)
                return -errno;
        if (unlockpt(m) < 0)
                return -errno;
        int r = ptsname_r(m, ret_name, name_len);
        if (r != 0)
                return -r;
        int sl = open(ret_name, O_RDWR | O_NOCTTY | O_CLOEXEC);
        if (sl < 0)
                return -errno;
        *ret_master = TAKE_FD(m);
        *ret_slave = sl;
        return 0;
}

int pty_make_controlling(int slave)
{
        if (setsid() < 0)
                return -errno;
        if (ioctl(slave, TIOCSCTTY, 0) < 0)
                return -errno;
        for (int i = 0; i < 3; i++)
                if (dup2(slave, i) < 0)
                        return -errno;
        return 0;
}

int pty_send_fd(int sock, const void *data, size_t len, int fd)
{
        struct iovec iov = { .iov_base = (void *)data, .iov_len = len };
        union {
                char buf[CMSG_SPACE(sizeof(int))];
                struct cmsghdr align;
        } u;
        struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
        if (fd >= 0) {
                memset(&u, 0, sizeof(u));
                msg.msg_control = u.buf;
                msg.msg_controllen = sizeof(u.buf);
                struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
                c->cmsg_level = SOL_SOCKET;
                c->cmsg_type = SCM_RIGHTS;
                c->cmsg_len = CMSG_LEN(sizeof(int));
                memcpy(CMSG_DATA(c), &fd, sizeof(int));
        }
        while (sendmsg(sock, &msg, MSG_NOSIGNAL) < 0)
                if (errno != EINTR)
                        return -errno;
        return 0;
}

ssize_t pty_recv_fd(int sock, void *data, size_t len, int *ret_fd)
{
        struct iovec iov = { .iov_base = data, .iov_len = len };
        union {
                char buf[CMSG_SPACE(sizeof(int))];
                struct cmsghdr align;
        } u;
        struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof(u.buf) };
        ssize_t n;
        *ret_fd = -1;
        while ((n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC)) < 0)
                if (errno != EINTR)
                        return -errno;
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c))
                if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS)
                        memcpy(ret_fd, CMSG_DATA(c), sizeof(int));
        return n;
}

static struct termios saved_termios;
static int saved_fd = -1;

void pty_restore(void)
{
        if (saved_fd >= 0) {
                tcsetattr(saved_fd, TCSADRAIN, &saved_termios);
                saved_fd = -1;
        }
}

int pty_raw(int fd)
{
        struct termios t;
        if (!isatty(fd) || tcgetattr(fd, &t) < 0)
                return 0;
        static bool registered;
        saved_termios = t;
        saved_fd = fd;
        if (!registered) {
                atexit(pty_restore);
                registered = true;
        }
        cfmakeraw(&t);
        /* keep output processing: the container's tty does its own \n -> \r\n */
        if (tcsetattr(fd, TCSADRAIN, &t) < 0)
                return -errno;
        return 1;
}

bool pty_get_size(int fd, struct winsize *ws)
{
        return ioctl(fd, TIOCGWINSZ, ws) == 0;
}
