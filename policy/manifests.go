package policy

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"sigs.k8s.io/yaml"
)

// Manifest is one object read from a file, with where it came from.
type Manifest struct {
	Source string // file name, or "-" for stdin
	Doc    int    // 1-based document index in the file
	Item   int    // 1-based index inside a List, 0 otherwise
	Kind   string
	JSON   []byte // the object as JSON
}

// Where is "file: document N[, item M]" for messages.
func (m Manifest) Where() string {
	if m.Item > 0 {
		return fmt.Sprintf("%s: document %d, item %d", m.Source, m.Doc, m.Item)
	}
	return fmt.Sprintf("%s: document %d", m.Source, m.Doc)
}

// maxManifestBytes bounds one document: a manifest is not a data dump.
const maxManifestBytes = 16 << 20

// ReadManifests reads what `kubectl apply -f` accepts from one file: a YAML
// stream of documents, or JSON objects, with List objects expanded. Empty
// documents are skipped but counted, so "document N" is the Nth between
// "---" separators. An unparsable document is an error naming file and
// document.
func ReadManifests(r io.Reader, source string) ([]Manifest, error) {
	br := bufio.NewReader(io.LimitReader(r, 4*maxManifestBytes))
	if first, err := firstByte(br); err == nil && (first == '{' || first == '[') {
		return readJSON(br, source)
	}
	docs, err := SplitYAML(br)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", source, err)
	}
	var out []Manifest
	for i, chunk := range docs {
		doc := i + 1
		if len(chunk) > maxManifestBytes {
			return out, fmt.Errorf("%s: document %d: larger than %d bytes", source, doc, maxManifestBytes)
		}
		raw, err := yaml.YAMLToJSON(chunk)
		if err != nil {
			return out, fmt.Errorf("%s: document %d: %w", source, doc, err)
		}
		if t := bytes.TrimSpace(raw); len(t) == 0 || string(t) == "null" {
			continue
		}
		ms, err := expand(raw, source, doc)
		if err != nil {
			return out, err
		}
		out = append(out, ms...)
	}
	return out, nil
}

// SplitYAML splits a stream at "---" lines, keeping empty documents so the
// count matches what a person sees (k8s.io's YAMLReader drops them).
func SplitYAML(r io.Reader) ([][]byte, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), maxManifestBytes)
	var docs [][]byte
	var cur bytes.Buffer
	started := false
	for sc.Scan() {
		line := sc.Bytes()
		if bytes.HasPrefix(line, []byte("---")) && (len(line) == 3 || line[3] == ' ' || line[3] == '\t') {
			if started || cur.Len() > 0 {
				docs = append(docs, bytes.Clone(cur.Bytes()))
			}
			cur.Reset()
			started = true
			continue
		}
		cur.Write(line)
		cur.WriteByte('\n')
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if cur.Len() > 0 || !started {
		docs = append(docs, cur.Bytes())
	}
	return docs, nil
}

// readJSON reads one or more concatenated JSON values.
func readJSON(r io.Reader, source string) ([]Manifest, error) {
	dec := json.NewDecoder(r)
	var out []Manifest
	for doc := 1; ; doc++ {
		var raw json.RawMessage
		if err := dec.Decode(&raw); errors.Is(err, io.EOF) {
			return out, nil
		} else if err != nil {
			return out, fmt.Errorf("%s: document %d: %w", source, doc, err)
		}
		ms, err := expand(raw, source, doc)
		if err != nil {
			return out, err
		}
		out = append(out, ms...)
	}
}

func firstByte(br *bufio.Reader) (byte, error) {
	for {
		b, err := br.ReadByte()
		if err != nil {
			return 0, err
		}
		if b != ' ' && b != '\t' && b != '\n' && b != '\r' {
			return b, br.UnreadByte()
		}
	}
}

func expand(raw []byte, source string, doc int) ([]Manifest, error) {
	var head struct {
		Kind  string            `json:"kind"`
		Items []json.RawMessage `json:"items"`
	}
	if err := json.Unmarshal(raw, &head); err != nil {
		return nil, fmt.Errorf("%s: document %d: not a Kubernetes object: %w", source, doc, err)
	}
	if head.Kind == "" {
		return nil, fmt.Errorf("%s: document %d: no kind", source, doc)
	}
	if head.Kind != "List" && !strings.HasSuffix(head.Kind, "List") {
		return []Manifest{{Source: source, Doc: doc, Kind: head.Kind, JSON: raw}}, nil
	}
	var out []Manifest
	for i, item := range head.Items {
		var k struct {
			Kind string `json:"kind"`
		}
		if err := json.Unmarshal(item, &k); err != nil || k.Kind == "" {
			return nil, fmt.Errorf("%s: document %d, item %d: not a Kubernetes object", source, doc, i+1)
		}
		out = append(out, Manifest{Source: source, Doc: doc, Item: i + 1, Kind: k.Kind, JSON: item})
	}
	return out, nil
}
