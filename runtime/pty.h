/* SPDX-License-Identifier: Apache-2.0 */
/* Pseudo-terminals: allocating one inside the container's devpts, passing fds over a socket,
 * and the host terminal's raw mode (restored on every exit path). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <sys/ioctl.h>
#include <termios.h>

/* Open a new pty from the devpts mounted at /dev/pts (the caller's root): master and slave
 * fds (O_CLOEXEC) and the slave's path. */
int pty_open(int *ret_master, int *ret_slave, char *ret_name, size_t name_len);
/* Make slave the controlling terminal and stdin/stdout/stderr of a new session. */
int pty_make_controlling(int slave);

/* SCM_RIGHTS over a unix socket, with a small payload. */
int pty_send_fd(int sock, const void *data, size_t len, int fd);
/* Receives data (returns its length, 0 at EOF) and, if one came, a fd in *ret_fd (else -1). */
ssize_t pty_recv_fd(int sock, void *data, size_t len, int *ret_fd);

/* Put the terminal on fd in raw mode, remembering its settings; pty_restore() puts them back
 * (also registered with atexit, so an exit() anywhere restores it). No-op when not a tty. */
int pty_raw(int fd);
void pty_restore(void);
/* The window size of fd into ws; false when fd is no terminal. */
bool pty_get_size(int fd, struct winsize *ws);
