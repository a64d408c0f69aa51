// Package pinning writes manifests back with their images pinned to the
// digests a check resolved (policy.Pin), changing nothing else: what
// `pullsafe check --pin` prints or writes in place.
package pinning

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"

	jsonpatch "github.com/evanphx/json-patch/v5"
	yaml "go.yaml.in/yaml/v3"

	"github.com/pullsafe/pullsafe/policy"
)

// File is data, a manifest file as `pullsafe check` read it, with pins
// applied: pins[n] are document n's (numbered from 1 as
// policy.ManifestReader numbers them; a JSON file is document 1), their
// paths from the document's root. Only the pinned image values change:
// documents without pins, the separator lines and line endings come back
// byte for byte, and in a pinned document each image value is replaced
// where it stands (see pinDocument for the rare document that is
// re-encoded instead).
func File(data []byte, pins map[int][]policy.Pin) ([]byte, error) {
	if len(pins) == 0 {
		return data, nil
	}
	if t := bytes.TrimSpace(data); len(t) > 0 && (t[0] == '{' || t[0] == '[') {
		if len(pins) != 1 || len(pins[1]) == 0 {
			return nil, errors.New("--pin supports one JSON object per file")
		}
		return pinDocument(data, pins[1], pinJSON)
	}
	docs, err := policy.SplitYAML(bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, len(data)+len(pins)*80)
	for i, doc := range docs {
		out = append(out, doc.Separator...)
		ps := pins[i+1]
		if len(ps) == 0 {
			out = append(out, doc.Body...)
			continue
		}
		edited, err := pinDocument(doc.Body, ps, pinYAML)
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", i+1, err)
		}
		out = append(out, edited...)
	}
	return out, nil
}

// pinPatch is the JSON patch that pins ps, testing each value first.
func pinPatch(ps []policy.Pin) (jsonpatch.Patch, error) {
	var ops []string
	for _, p := range ps {
		ops = append(ops, fmt.Sprintf(`{"op":"test","path":%q,"value":%q},{"op":"replace","path":%q,"value":%q}`, p.Path, p.From, p.Path, p.To))
	}
	return jsonpatch.DecodePatch([]byte("[" + strings.Join(ops, ",") + "]"))
}

// pinJSON re-encodes a JSON document with the pins applied: the fallback
// for JSON pinDocument cannot splice.
func pinJSON(data []byte, ps []policy.Pin) ([]byte, error) {
	patch, err := pinPatch(ps)
	if err != nil {
		return nil, err
	}
	return patch.ApplyIndent(data, "  ")
}

// pinYAML re-encodes a YAML document with the pins applied: the fallback
// for YAML pinDocument cannot splice. Editing yaml.v3 nodes keeps comments
// and key order, but the encoder re-indents, may requote and re-wraps; the
// document keeps its CRLF line endings.
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
		switch n.Value {
		case p.From:
			n.Value = p.To
		case p.To: // pinned already through another alias of the node
		default:
			return nil, fmt.Errorf("%s is %q, expected %q", p.Path, n.Value, p.From)
		}
	}
	var out bytes.Buffer
	enc := yaml.NewEncoder(&out)
	enc.SetIndent(2)
	if err := enc.Encode(&root); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	if bytes.Contains(doc, []byte("\r\n")) {
		return bytes.ReplaceAll(out.Bytes(), []byte("\n"), []byte("\r\n")), nil
	}
	return out.Bytes(), nil
}

// lookup follows a JSON pointer through a YAML node tree.
func lookup(n *yaml.Node, pointer string) (*yaml.Node, error) {
	if n.Kind == yaml.DocumentNode && len(n.Content) == 1 {
		n = n.Content[0]
	}
	for _, tok := range strings.Split(strings.TrimPrefix(pointer, "/"), "/") {
		tok = strings.NewReplacer("~1", "/", "~0", "~").Replace(tok)
		for n.Kind == yaml.AliasNode && n.Alias != nil {
			n = n.Alias // pinDocument refuses the edit unless every use is pinned alike
		}
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
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n, nil
}
