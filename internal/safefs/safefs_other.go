//go:build !linux

package safefs

// Default is the best [FS] of this platform: [Lstat].
var Default FS = Lstat{}
