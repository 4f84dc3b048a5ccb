//go:build !linux

package guest

var defaultTree tree = lstatTree{}
