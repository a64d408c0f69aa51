package pinning

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"strings"
	"unicode/utf8"

	yaml "go.yaml.in/yaml/v3"
	k8syaml "sigs.k8s.io/yaml"

	"github.com/pullsafe/pullsafe/policy"
)

// pinDocument applies ps to one document. It replaces each image value in
// place, byte for byte, at the line and column yaml.v3 reports for it, so
// comments, indentation, quoting and line endings stay as written. A
// splice is used only when it is provably right: the value is a plain,
// single- or double-quoted scalar written exactly as its value (no escapes,
// tags, anchors or line folding), the bytes at that position are exactly
// that scalar, and the spliced document means exactly what the JSON patch
// of the original means (as kubectl reads it). Otherwise (a block scalar,
// an escape, an alias, a tag, a document yaml.v3 and kubectl's parser read
// differently) the whole document, and only that one, is re-encoded by
// reencode.
func pinDocument(doc []byte, ps []policy.Pin, reencode func([]byte, []policy.Pin) ([]byte, error)) ([]byte, error) {
	want, err := patchedJSON(doc, ps)
	if err != nil {
		return reencode(doc, ps) // reports what is wrong with the document
	}
	if out, ok := splice(doc, ps); ok && means(out, want) {
		return out, nil
	}
	out, err := reencode(doc, ps)
	if err != nil {
		return nil, err
	}
	if !means(out, want) {
		// Editing a node under an anchor edits every alias of it too.
		return nil, errors.New("pinning would change more than the image values (a YAML anchor shared with another field?): pin this document by hand")
	}
	return out, nil
}

// means reports whether doc reads, as kubectl reads it, as the JSON want.
func means(doc, want []byte) bool {
	got, err := k8syaml.YAMLToJSON(doc)
	return err == nil && jsonEqual(got, want)
}

// jsonEqual compares two JSON documents by value. (jsonpatch.Equal panics
// on a null inside an array.)
func jsonEqual(a, b []byte) bool {
	decode := func(data []byte) (any, error) {
		d := json.NewDecoder(bytes.NewReader(data))
		d.UseNumber()
		var v any
		return v, d.Decode(&v)
	}
	va, errA := decode(a)
	vb, errB := decode(b)
	return errA == nil && errB == nil && reflect.DeepEqual(va, vb)
}

// patchedJSON is doc as kubectl reads it, with the pins applied.
func patchedJSON(doc []byte, ps []policy.Pin) ([]byte, error) {
	j, err := k8syaml.YAMLToJSON(doc)
	if err != nil {
		return nil, err
	}
	patch, err := pinPatch(ps)
	if err != nil {
		return nil, err
	}
	return patch.Apply(j)
}

// edit replaces doc[from:to] with value.
type edit struct {
	from, to int
	value    string
}

// splice replaces each pinned scalar where it stands; false when any of
// them cannot be located exactly.
func splice(doc []byte, ps []policy.Pin) ([]byte, bool) {
	var root yaml.Node
	if err := yaml.Unmarshal(doc, &root); err != nil {
		return nil, false
	}
	edits := make([]edit, 0, len(ps))
	for _, p := range ps {
		n, err := lookup(&root, p.Path)
		if err != nil || n.Kind != yaml.ScalarNode || n.Value != p.From {
			return nil, false
		}
		src, value, ok := scalarSource(n.Style, p.From, p.To)
		if !ok {
			return nil, false
		}
		at, ok := byteOffset(doc, n.Line, n.Column)
		if ok && n.Anchor != "" {
			at, ok = skipAnchor(doc, at, n.Anchor)
		}
		if !ok || !bytes.HasPrefix(doc[at:], src) || !scalarEnds(doc[at+len(src):]) {
			return nil, false
		}
		edits = append(edits, edit{at, at + len(src), value})
	}
	// Back to front, so earlier offsets stay valid; the same value pinned
	// twice is one edit.
	slices.SortFunc(edits, func(a, b edit) int { return cmp.Compare(b.from, a.from) })
	edits = slices.Compact(edits)
	out := bytes.Clone(doc)
	for i, e := range edits {
		if i > 0 && e.to > edits[i-1].from {
			return nil, false // overlapping: not two distinct scalars
		}
		out = slices.Concat(out[:e.from], []byte(e.value), out[e.to:])
	}
	return out, true
}

// scalarSource is how a scalar of the given style spells from when it has
// no escapes, and how to spell to in the same style.
func scalarSource(style yaml.Style, from, to string) (src []byte, value string, ok bool) {
	switch style {
	case 0: // plain
		return []byte(from), to, true
	case yaml.DoubleQuotedStyle:
		if strings.ContainsAny(from+to, "\"\\") {
			return nil, "", false
		}
		return []byte(`"` + from + `"`), `"` + to + `"`, true
	case yaml.SingleQuotedStyle:
		if strings.Contains(from+to, "'") {
			return nil, "", false
		}
		return []byte("'" + from + "'"), "'" + to + "'", true
	}
	return nil, "", false // block scalars, tagged values
}

// skipAnchor steps over "&anchor " before a scalar: yaml.v3 places an
// anchored node where its anchor starts.
func skipAnchor(doc []byte, at int, anchor string) (int, bool) {
	if !bytes.HasPrefix(doc[at:], []byte("&"+anchor)) {
		return 0, false
	}
	at += 1 + len(anchor)
	start := at
	for at < len(doc) && (doc[at] == ' ' || doc[at] == '\t') {
		at++
	}
	return at, at > start
}

// scalarEnds reports whether a scalar may end where rest begins.
func scalarEnds(rest []byte) bool {
	return len(rest) == 0 || bytes.IndexByte([]byte(" \t\r\n,]}"), rest[0]) >= 0
}

// byteOffset turns yaml.v3's 1-based line and column, which count
// characters and treat CRLF, CR, LF, NEL, LS and PS each as one line
// break, into a byte offset in doc.
func byteOffset(doc []byte, line, column int) (int, bool) {
	i := 0
	if bytes.HasPrefix(doc, []byte("\xef\xbb\xbf")) {
		i = 3 // the BOM is not counted
	}
	for l, c := 1, 1; i < len(doc); {
		if l == line && c == column {
			return i, true
		}
		r, size := utf8.DecodeRune(doc[i:])
		switch {
		case r == '\r' && i+1 < len(doc) && doc[i+1] == '\n':
			size = 2
			fallthrough
		case r == '\r' || r == '\n' || r == '\u0085' || r == '\u2028' || r == '\u2029':
			if l == line {
				return 0, false // the column is past the end of the line
			}
			l, c = l+1, 1
		default:
			c++
		}
		i += size
	}
	return 0, false
}
