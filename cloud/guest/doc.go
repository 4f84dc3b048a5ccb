// Package guest collects log files from guest VMs over SSH, incrementally,
// into each customer's log directory.
//
// A [Collector] is built from a [CollectorConfig] and asked to [Collector.Collect]
// a list of [Guest] values (see [FromServer]). Only RUNNING guests are
// contacted, at most Concurrency at once, each within Timeout (dial,
// handshake and every read): a guest that hangs fails with an error matching
// context.DeadlineExceeded and does not hold up the others. Each guest gets a
// [Result] with the bytes copied per file, its error (wrapped with the
// server id and address) and its duration.
//
// # Security
//
// Every connection leaves from an address of this host inside SourceCIDR
// (the classic source_cidr), so guest firewalls can admit exactly the
// workers; [NewCollector] fails, listing the host's addresses, if there is
// none. Host keys are always checked, against known_hosts files
// ([KnownHostsFile]) or keys pinned per address ([PinnedKeys]); there is no
// option to skip the check. Logins come from [Credentials], which key
// management implements. Guests are not trusted: their output is bounded and
// parsed strictly, and their error text is quoted before it reaches an error.
// A guest that sends more than it was asked for (ignoring head -c), or more
// than [MaxStderrBytes] on standard error, has its connection closed the
// moment it does: it gives up its collection slot at once instead of holding
// it until Timeout, the complete lines it sent within the limit are kept (the
// offset advances over them only), its other files wait for the next
// collection, and its error matches [ErrOutputLimit] and names the limit.
//
// The local tree is not trusted either. Below the directory that holds
// OutputDir(customer) (the operator's, which may be a symbolic link) no
// symbolic link is ever followed: not the customer's directory, not
// guests/<account>/<server>, not the log file. On Linux each element is
// opened relative to the one before with O_NOFOLLOW (openat), so even a link
// swapped in between a check and a write fails the write instead of
// redirecting it; elsewhere each element is checked with Lstat first. A link
// fails that file with an error matching [ErrSymlink] that names the link,
// and nothing is written. Account and server ids pass through
// logging.SafeName and file names are checked to be single plain names, so no
// id can climb out of the tree.
//
// # Logs
//
// Every record about a guest carries "customer" (logging.DefaultKey) and
// "account" attributes (and "server" and "address"), so a
// logging.CustomerHandler with the default Config.Key also files it in the
// customer's own log. A collection logs one line per guest: INFO when it
// succeeded, WARN with the error when it failed, however many of its files
// failed, and INFO when it was canceled (a shutdown is not a failure).
//
// # What runs on a guest
//
// Two commands, for POSIX sh with GNU coreutils or BusyBox, each in its own
// session of one connection per guest; no SFTP subsystem is needed:
//
//	if [ -e 'P' ]; then stat -L -c '%d:%i %s' -- 'P'; else echo absent; fi
//	tail -c +N -- 'P' | head -c M
//
// Files a guest lacks are skipped, not errors.
//
// # Incremental copies
//
// For each file the [Offsets] store holds an [Offset]: the remote file's
// identity (device:inode), the remote offset copied up to, a hash of the last
// 64 bytes copied, and the size of the local copy after that append. A
// collection reads only the bytes after the offset, re-reading the 64 bytes
// before it to check the hash; it appends only complete lines, so a line still
// being written is copied once finished. A line longer than MaxReadBytes is
// split rather than blocking the file.
//
// Local copies are <OutputDir(customer)>/guests/<account>/<server>/<name>,
// where account and server pass through logging.SafeName and name is the
// remote file's base name (so two Files must not share one). The account is
// part of the path because server ids are only unique within an account (two
// vCenters both have a "vm-42"). Directories are created 0o750, files 0o640.
//
// # Rotation and truncation
//
// A file whose identity changed was rotated: the lines added to the old file
// since the last collection are read from path+RotatedSuffix (".1") if that
// file has the old identity and the old content (hash check), its last line
// newline-terminated since nothing will be added to it; then the new file is
// read from its start. If the rotated file is gone (compressed or deleted
// already) those lines are lost; collect more often than files rotate. A file
// with the same identity that is shorter than the offset, or whose bytes
// before the offset no longer match the hash (truncated, then grown past the
// old offset, e.g. by logrotate's copytruncate), is read again from its start.
// The hash also catches a new file that reuses the old inode, once it grows
// past the old offset.
//
// # Crashes and restarts
//
// Per file, a collection appends the new lines to the local copy, syncs it
// (and its directory if the file is new), and only then stores the new offset
// with the new local size. A crash before the append changes nothing; a crash
// during or after the append, before the offset is stored, leaves bytes past
// the stored local size. The next collection cuts the local copy back to the
// stored size and copies those lines again, so a restart at any point gives
// neither duplicates nor gaps, provided the Offsets store is durable. With no
// stored offset and an existing local copy (offsets lost), the remote file is
// copied again from its start and lines may repeat; a warning says so. A
// local copy shorter than recorded (rotated locally) is appended to as it is.
//
// One collector per output directory and offset store: a Collector refuses
// to collect a guest it is already collecting ([ErrBusy]), but two processes
// collecting the same guest would interfere; the worker's schedule runs one
// poll per target at a time.
package guest
