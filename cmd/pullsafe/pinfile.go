package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"

	jsonpatch "github.com/evanphx/json-patch/v5"
	yaml "go.yaml.in/yaml/v3"

	"github.com/pullsafe/pullsafe/policy"
)

// writePinned writes every input file back with the pins applied. Documents
// without pins are kept byte for byte. YAML documents with pins are edited as
// YAML nodes, which keeps comments and key order; the yaml library may
// re-indent such a document and drops a document's "%YAML" directives. JSON
// documents keep their key order.
func writePinned(files map[string][]byte, results []checked, inPlace bool, stdout io.Writer) error {
	pins := map[string]map[int][]policy.Pin{} // file -> doc -> pins (paths from the document root)
	for _, r := range results {
		for _, p := range r.v.Pins {
			if pins[r.m.Source] == nil {
				pins[r.m.Source] = map[int][]policy.Pin{}
			}
			if r.m.Item > 0 {
				p.Path = "/items/" + strconv.Itoa(r.m.Item-1) + p.Path
			}
			pins[r.m.Source][r.m.Doc] = append(pins[r.m.Source][r.m.Doc], p)
		}
	}
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		out, err := pinFile(files[name], pins[name])
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		if inPlace {
			if len(pins[name]) == 0 {
				continue
			}
			if err := os.WriteFile(name, out, 0o644); err != nil {
				return err
			}
			continue
		}
		if len(names) > 1 {
			fmt.Fprintf(stdout, "# %s\n", name)
		}
		if _, err := stdout.Write(out); err != nil {
			return err
		}
	}
	return nil
}

func pinFile(data []byte, pins map[int][]policy.Pin) ([]byte, error) {
	if len(pins) == 0 {
		return data, nil
	}
	if t := bytes.TrimSpace(data); len(t) > 0 && (t[0] == '{' || t[0] == '[') {
		if len(pins) != 1 || len(pins[1]) == 0 {
			return nil, errors.New("--pin supports one JSON object per file")
		}
		return pinJSON(data, pins[1])
	}
	docs, err := policy.SplitYAML(bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	for i, doc := range docs {
		if i > 0 || bytes.HasPrefix(data, []byte("---")) {
			out.WriteString("---\n")
		}
		ps := pins[i+1]
		if len(ps) == 0 {
			out.Write(doc)
			continue
		}
		edited, err := pinYAML(doc, ps)
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", i+1, err)
		}
		out.Write(edited)
	}
	return out.Bytes(), nil
}

func pinJSON(data []byte, ps []policy.Pin) ([]byte, error) {
	var ops []string
	for _, p := range ps {
		ops = append(ops, fmt.Sprintf(`{"op":"test","path":%q,"value":%q},{"op":"replace","path":%q,"value":%q}`, p.Path, p.From, p.Path, p.To))
	}
	patch, err := jsonpatch.DecodePatch([]byte("[" + strings.Join(ops, ",") + "]"))
	if err != nil {
		return nil, err
	}
	return patch.ApplyIndent(data, "  ")
}

func pinYAML(doc []byte, ps []policy.Pin) ([]byte, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(doc, &root); err != nil {
		return nil, err
	}
	for _, p := range ps {
		n, err := lookup(&root, p.Path)
		if err != nil {
			return nil, err
		}
		if n.Value != p.From {
			return nil, fmt.Errorf("%s is %q, expected %q", p.Path, n.Value, p.From)
		}
		n.Value = p.To
	}
	var out bytes.Buffer
	enc := yaml.NewEncoder(&out)
	enc.SetIndent(2)
	if err := enc.Encode(&root); err != nil {
		return nil, err
	}
	return out.Bytes(), enc.Close()
}

// lookup follows a JSON pointer through a YAML node tree.
func lookup(n *yaml.Node, pointer string) (*yaml.Node, error) {
	if n.Kind == yaml.DocumentNode && len(n.Content) == 1 {
		n = n.Content[0]
	}
	for _, tok := range strings.Split(strings.TrimPrefix(pointer, "/"), "/") {
		tok = strings.NewReplacer("~1", "/", "~0", "~").Replace(tok)
		switch n.Kind {
		case yaml.MappingNode:
			var next *yaml.Node
			for i := 0; i+1 < len(n.Content); i += 2 {
				if n.Content[i].Value == tok {
					next = n.Content[i+1]
				}
			}
			if next == nil {
				return nil, fmt.Errorf("%s: no key %q", pointer, tok)
			}
			n = next
		case yaml.SequenceNode:
			i, err := strconv.Atoi(tok)
			if err != nil || i < 0 || i >= len(n.Content) {
				return nil, fmt.Errorf("%s: no index %q", pointer, tok)
			}
			n = n.Content[i]
		default:
			return nil, fmt.Errorf("%s: cannot descend into a scalar at %q", pointer, tok)
		}
	}
	return n, nil
}
