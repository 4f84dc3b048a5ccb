//go:build !unix

package service

import "io/fs"

// fileOwner is unknown on systems without Unix owners.
func fileOwner(fs.FileInfo) (int, bool) { return 0, false }
