// Package logging writes customer-specific log files next to the process log.
//
// [NewCustomerHandler] wraps the process's [log/slog] handler. Every record
// still goes to that handler; a record that carries a customer attribute
// (key "customer" unless [Config.Key] says otherwise) is also written as one
// JSON line to that customer's own file:
//
//	<Config.Dir>/<SafeName(customer)>/<Config.FileName>
//
// The customer may be an attribute of the record itself or may have been added
// with [log/slog.Logger.With]:
//
//	logger := slog.New(h)
//	logger.With("customer", "acme").Info("server launched", "id", "i-1")
//
// Only a customer attribute at the top level routes a record: one inside a
// group (after WithGroup, or in a [log/slog.Group] value) is data, because a
// grouped "customer" (say, the target of a cross-customer operation) says
// nothing about whose log the record belongs in. A record attribute overrides
// one added with With.
//
// # Files, rotation and retention
//
// Each customer's file is appended to and rotated by a
// [gopkg.in/natefinch/lumberjack.v2] logger: it is rotated when it reaches
// [Config.MaxSizeMB], and old files are removed after [Config.MaxBackups]
// files or [Config.MaxAgeDays] days, optionally gzipped, in the background
// after each opening and rotation ([CustomerHandler.Close] waits for that).
// [CustomerHandler.Rotate] rotates one customer's file on demand (for SIGHUP).
// Directories are created 0o750 and files 0o640.
//
// At most [Config.MaxOpen] files are open at once: the handler keeps a
// least-recently-used list and closes the file of the customer logged longest
// ago when it needs another one; logging for that customer later reopens the
// file and appends. A file being written at that moment is never closed under
// the writer, so the bound may be exceeded briefly by the number of goroutines
// logging at the same instant.
//
// Lumberjack starts one background goroutine per logger, for rotation
// clean-up (idle here: the handler does it), and never stops it. The handler therefore keeps one lumberjack
// logger per customer for its whole life and only closes and reopens the file,
// so the number of such goroutines is the number of distinct customers logged,
// not the number of reopenings.
//
// # Symbolic links
//
// The log tree may be shared (the guest-log collector of package cloud/guest
// writes into the customers' directories too), so no symbolic link below
// [Config.Dir] is followed; Config.Dir itself is the operator's and may be
// one. A link in place of a customer's directory, of its file or of one of
// its rotated files, pointing anywhere or dangling, refuses that customer's
// records with an error that names it and matches [ErrSymlink]; a FIFO or
// other non-regular file there is refused the same way (without blocking),
// and nothing is written, renamed or removed through any of them; they are
// left as they are. A link is also reported to the process handler, in one
// WARN line rather than one per record (once the customer's file has worked
// again, a new link is reported again). Every record still reaches the
// process handler, and other customers are not affected.
//
// Lumberjack opens and renames files by path, so the handler checks the
// customer's files without following links (openat with O_NOFOLLOW on Linux;
// Lstat elsewhere, which has a window of its own) just before every time
// lumberjack opens or rotates one,
// and does retention and compression itself, without following links. What
// remains is the few microseconds between a check and lumberjack's open or
// rename: a link swapped in by another process at that very moment, in a
// directory created 0o750 for this process's user, is followed.
//
// # Safe names
//
// Customer ids come from outside, so they never become paths directly.
// [SafeName] keeps an id that is already a safe name (lower-case letters,
// digits, '_' and '-', at most 64 bytes, not a reserved device name) and turns
// any other id into a readable sanitised prefix, a '.', and a hash of the
// original id: "acme" stays "acme", "a/b" becomes "a_b.<hash>" and
// "../../etc" becomes "______etc.<hash>". Because names kept as they are never
// contain '.', and hashed names always do, two distinct ids never share a
// directory, even on case-insensitive file systems. [CustomerDir] also checks
// that the result is inside the log directory.
package logging
