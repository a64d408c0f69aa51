// Package configmapvol updates a folder the way the kubelet updates a
// ConfigMap volume, for tests of code that watches one. It follows the
// kubelet's AtomicWriter (k8s.io/kubernetes/pkg/volume/util/atomic_writer.go,
// Write steps 5-12) for flat files on Linux: the data goes into a new
// `..2006_01_02_15_04_05.NNN` folder, a `..data_tmp` symlink to it is
// renamed onto `..data` (the one atomic step), each file is a symlink
// `name -> ..data/name`, and the old timestamped folder is removed.
package configmapvol

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"time"
)

const (
	dataDirName    = "..data"
	newDataDirName = "..data_tmp"
)

// Write makes files the content of dir, creating dir's layout on first use.
func Write(dir string, files map[string][]byte) error {
	dataDir := filepath.Join(dir, dataDirName)
	oldTS, err := os.Readlink(dataDir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	// (5) a new timestamped folder, as newTimestampDir makes it.
	ts, err := os.MkdirTemp(dir, time.Now().UTC().Format("..2006_01_02_15_04_05."))
	if err != nil {
		return err
	}
	if err := os.Chmod(ts, 0o755); err != nil {
		return err
	}
	// (6) the payload.
	for name, data := range files {
		// A ConfigMap item's path may name subfolders ("docker.io/hosts.toml").
		if err := os.MkdirAll(filepath.Dir(filepath.Join(ts, name)), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(ts, name), data, 0o644); err != nil {
			return err
		}
	}
	// (8) ..data_tmp -> new folder; (9) renamed onto ..data.
	tmp := filepath.Join(dir, newDataDirName)
	if err := os.Symlink(filepath.Base(ts), tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, dataDir); err != nil {
		return err
	}
	// (10) user-visible symlinks, created once.
	for name := range files {
		// The link is the path's first element: a subfolder is linked
		// whole, as the kubelet links it.
		name, _, _ = strings.Cut(filepath.ToSlash(name), "/")
		link := filepath.Join(dir, name)
		if _, err := os.Lstat(link); errors.Is(err, os.ErrNotExist) {
			if err := os.Symlink(filepath.Join(dataDirName, name), link); err != nil {
				return err
			}
		}
	}
	// (12) the old data.
	if oldTS != "" {
		return os.RemoveAll(filepath.Join(dir, oldTS))
	}
	return nil
}
