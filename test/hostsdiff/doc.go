// Package hostsdiff compares pullsafe's hosts.toml reader with containerd's.
package hostsdiff
