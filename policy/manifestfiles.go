package policy

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// ReadManifestFiles reads what `kubectl apply -f` is given: each path a
// file, a directory (recursively: *.yaml, *.yml, *.json, in name order) or
// "-" for stdin. Every file is read as a stream, document by document,
// keeping only what decides a verdict: workloads (built-in kinds and
// custom), and the core Secrets, ServiceAccounts and Namespaces their pull
// secrets and settings come from (a CRD's kind named Namespace is none of
// them). So a file of any size is read whole or refused, never cut short.
// With keep (pinning writes the files back) it also returns each file's
// bytes by name.
func ReadManifestFiles(paths []string, stdin io.Reader, keep bool, custom []WorkloadKind) ([]Manifest, map[string][]byte, error) {
	in := &manifestFiles{keep: keep, custom: custom, files: map[string][]byte{}}
	for _, p := range paths {
		if p == "-" {
			if err := in.read("-", stdin); err != nil {
				return nil, nil, err
			}
			continue
		}
		names, err := manifestPaths(p)
		if err != nil {
			return nil, nil, err
		}
		for _, n := range names {
			if err := in.open(n); err != nil {
				return nil, nil, err
			}
		}
	}
	return in.out, in.files, nil
}

type manifestFiles struct {
	keep   bool
	custom []WorkloadKind
	out    []Manifest
	files  map[string][]byte
}

// manifestPaths is p itself for a file, else the manifest files below it,
// sorted: the order a person reads them in.
func manifestPaths(p string) ([]string, error) {
	var names []string
	err := filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		ext := strings.ToLower(filepath.Ext(path))
		if !d.IsDir() && (path == p || ext == ".yaml" || ext == ".yml" || ext == ".json") {
			names = append(names, path)
		}
		return nil
	})
	sort.Strings(names)
	return names, err
}

func (in *manifestFiles) open(name string) error {
	f, err := os.Open(name)
	if err != nil {
		return err
	}
	defer f.Close()
	return in.read(name, f)
}

func (in *manifestFiles) read(name string, r io.Reader) error {
	var data bytes.Buffer
	if in.keep {
		r = io.TeeReader(r, &data)
	}
	mr := NewManifestReader(r, name)
	for {
		m, err := mr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		if decides(m, in.custom) {
			in.out = append(in.out, m)
		}
	}
	if in.keep {
		in.files[name] = data.Bytes()
	}
	return nil
}

// decides: m is a workload, or a core object a workload's verdict reads.
func decides(m Manifest, custom []WorkloadKind) bool {
	gk := m.GroupKind()
	if gk.Group == "" && (gk.Kind == "Secret" || gk.Kind == "ServiceAccount" || gk.Kind == "Namespace") {
		return true
	}
	return Checked(gk, custom...)
}
