// Package safefs does file operations below a directory without following
// symbolic links planted there.
//
// A [Path] is a base directory, which belongs to the operator and is used as
// given (it may itself be a symbolic link, as /var/log/stratus ->
// /data/logs would be), then single path elements below it. No element below
// the base is ever followed if it is a symbolic link: the operation fails
// with an error that names the link and matches [ErrSymlink], and nothing is
// created or written through it. Elements are checked to be plain names, so
// none can climb out of the base either.
//
// [Default] is the best [FS] the platform has. On Linux it is [At], which
// opens each element relative to the directory opened before it with
// O_NOFOLLOW (openat, mkdirat, fstatat): a link swapped in at any moment
// fails the lookup itself, so there is no window between a check and a use.
// Elsewhere it is [Lstat], which checks each element with Lstat before using
// it; another process could swap a link in between the check and the use.
package safefs
