/* SPDX-License-Identifier: Apache-2.0 */
/* libarchive, loaded on first use (dlib.h): include this instead of <archive.h> and
 * <archive_entry.h>. */
#pragma once

#include <archive.h>
#include <archive_entry.h>

#include "dlib.h"

#define DLIB_ARCHIVE_SYMBOLS(X) \
        X(archive_entry_copy_hardlink) \
        X(archive_entry_copy_pathname) \
        X(archive_entry_copy_symlink) \
        X(archive_entry_filetype) \
        X(archive_entry_free) \
        X(archive_entry_gid) \
        X(archive_entry_hardlink) \
        X(archive_entry_mode) \
        X(archive_entry_mtime) \
        X(archive_entry_mtime_nsec) \
        X(archive_entry_new) \
        X(archive_entry_pathname) \
        X(archive_entry_pathname_utf8) \
        X(archive_entry_rdev) \
        X(archive_entry_set_gid) \
        X(archive_entry_set_mode) \
        X(archive_entry_set_mtime) \
        X(archive_entry_set_rdev) \
        X(archive_entry_set_size) \
        X(archive_entry_set_uid) \
        X(archive_entry_size) \
        X(archive_entry_sparse_count) \
        X(archive_entry_symlink) \
        X(archive_entry_symlink_utf8) \
        X(archive_entry_uid) \
        X(archive_entry_xattr_add_entry) \
        X(archive_entry_xattr_next) \
        X(archive_entry_xattr_reset) \
        X(archive_errno) \
        X(archive_error_string) \
        X(archive_read_data) \
        X(archive_read_data_block) \
        X(archive_read_free) \
        X(archive_read_new) \
        X(archive_read_next_header) \
        X(archive_read_open) \
        X(archive_read_open_fd) \
        X(archive_read_support_filter_all) \
        X(archive_read_support_format_gnutar) \
        X(archive_read_support_format_raw) \
        X(archive_read_support_format_tar) \
        X(archive_set_error) \
        X(archive_write_close) \
        X(archive_write_data) \
        X(archive_write_free) \
        X(archive_write_header) \
        X(archive_write_new) \
        X(archive_write_open_fd) \
        X(archive_write_set_bytes_in_last_block) \
        X(archive_write_set_format_pax_restricted)

DLIB_ARCHIVE_SYMBOLS(DLIB_DECLARE)

#define archive_entry_copy_hardlink dlib_archive_entry_copy_hardlink
#define archive_entry_copy_pathname dlib_archive_entry_copy_pathname
#define archive_entry_copy_symlink dlib_archive_entry_copy_symlink
#define archive_entry_filetype dlib_archive_entry_filetype
#define archive_entry_free dlib_archive_entry_free
#define archive_entry_gid dlib_archive_entry_gid
#define archive_entry_hardlink dlib_archive_entry_hardlink
#define archive_entry_mode dlib_archive_entry_mode
#define archive_entry_mtime dlib_archive_entry_mtime
#define archive_entry_mtime_nsec dlib_archive_entry_mtime_nsec
#define archive_entry_new dlib_archive_entry_new
#define archive_entry_pathname dlib_archive_entry_pathname
#define archive_entry_pathname_utf8 dlib_archive_entry_pathname_utf8
#define archive_entry_rdev dlib_archive_entry_rdev
#define archive_entry_set_gid dlib_archive_entry_set_gid
#define archive_entry_set_mode dlib_archive_entry_set_mode
#define archive_entry_set_mtime dlib_archive_entry_set_mtime
#define archive_entry_set_rdev dlib_archive_entry_set_rdev
#define archive_entry_set_size dlib_archive_entry_set_size
#define archive_entry_set_uid dlib_archive_entry_set_uid
#define archive_entry_size dlib_archive_entry_size
#define archive_entry_sparse_count dlib_archive_entry_sparse_count
#define archive_entry_symlink dlib_archive_entry_symlink
#define archive_entry_symlink_utf8 dlib_archive_entry_symlink_utf8
#define archive_entry_uid dlib_archive_entry_uid
#define archive_entry_xattr_add_entry dlib_archive_entry_xattr_add_entry
#define archive_entry_xattr_next dlib_archive_entry_xattr_next
#define archive_entry_xattr_reset dlib_archive_entry_xattr_reset
#define archive_errno dlib_archive_errno
#define archive_error_string dlib_archive_error_string
#define archive_read_data dlib_archive_read_data
#define archive_read_data_block dlib_archive_read_data_block
#define archive_read_free dlib_archive_read_free
#define archive_read_new dlib_archive_read_new
#define archive_read_next_header dlib_archive_read_next_header
#define archive_read_open dlib_archive_read_open
#define archive_read_open_fd dlib_archive_read_open_fd
#define archive_read_support_filter_all dlib_archive_read_support_filter_all
#define archive_read_support_format_gnutar dlib_archive_read_support_format_gnutar
#define archive_read_support_format_raw dlib_archive_read_support_format_raw
#define archive_read_support_format_tar dlib_archive_read_support_format_tar
#define archive_set_error dlib_archive_set_error
#define archive_write_close dlib_archive_write_close
#define archive_write_data dlib_archive_write_data
#define archive_write_free dlib_archive_write_free
#define archive_write_header dlib_archive_write_header
#define archive_write_new dlib_archive_write_new
#define archive_write_open_fd dlib_archive_write_open_fd
#define archive_write_set_bytes_in_last_block dlib_archive_write_set_bytes_in_last_block
#define archive_write_set_format_pax_restricted dlib_archive_write_set_format_pax_restricted
