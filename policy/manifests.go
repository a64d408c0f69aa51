package policy

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/yaml"
)

// Manifest is one object read from a file, with where it came from.
type Manifest struct {
	Source string // file name, or "-" for stdin
	Doc    int    // 1-based document index in the file
	Item   int    // 1-based index inside a List, 0 otherwise
	Kind   string
	// APIVersion is the object's group/version ("apps/v1", "v1").
	APIVersion string
	JSON       []byte // the object as JSON
}

// GroupKind is the object's group and kind, what ExtractWorkload needs. A
// document without a (parsable) apiVersion, which kubectl would refuse, is
// read as the built-in kind of that name, if there is one.
func (m Manifest) GroupKind() schema.GroupKind {
	gv, err := schema.ParseGroupVersion(m.APIVersion)
	if m.APIVersion == "" || err != nil {
		return builtinGroupKind(m.Kind)
	}
	return gv.WithKind(m.Kind).GroupKind()
}

// Where is "file: document N[, item M]" for messages.
func (m Manifest) Where() string {
	if m.Item > 0 {
		return fmt.Sprintf("%s: document %d, item %d", m.Source, m.Doc, m.Item)
	}
	return fmt.Sprintf("%s: document %d", m.Source, m.Doc)
}

// maxManifestBytes bounds one document: a manifest is not a data dump. A
// file as a whole has no bound: it is read document by document.
const maxManifestBytes = 16 << 20

// ReadManifests reads every manifest of one file; see ManifestReader.
func ReadManifests(r io.Reader, source string) ([]Manifest, error) {
	mr := NewManifestReader(r, source)
	var out []Manifest
	for {
		m, err := mr.Next()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, m)
	}
}

// ManifestReader reads what `kubectl apply -f` accepts from one file, one
// document at a time: a YAML stream of documents, or JSON objects, with
// lists expanded as kubectl expands them (see expand). Empty documents are
// skipped but counted, so "document N" is the Nth between "---" separators
// (see SplitYAML for why kubectl's own YAMLReader is not used). Whatever it cannot
// read completely (an unparsable document, one over 16 MiB, a read error)
// is an error naming file and document: never a silent end of input.
type ManifestReader struct {
	source  string
	br      *bufio.Reader
	started bool
	yaml    *yamlDocs     // YAML input
	json    *json.Decoder // JSON input (k8s.io's YAMLOrJSONDecoder would buffer a document of any size)
	jsonIn  *docLimiter
	doc     int
	pending []Manifest // the rest of a List
}

// NewManifestReader reads manifests from r, naming source in errors.
func NewManifestReader(r io.Reader, source string) *ManifestReader {
	return &ManifestReader{source: source, br: bufio.NewReaderSize(r, 64<<10)}
}

// Next returns the next manifest, or io.EOF after the last.
func (mr *ManifestReader) Next() (Manifest, error) {
	if !mr.started {
		mr.started = true
		if first, err := firstByte(mr.br); err == nil && (first == '{' || first == '[') {
			mr.jsonIn = &docLimiter{r: mr.br}
			mr.json = json.NewDecoder(mr.jsonIn)
		} else {
			mr.yaml = &yamlDocs{br: mr.br}
		}
	}
	for len(mr.pending) == 0 {
		if err := mr.nextDocument(); err != nil {
			return Manifest{}, err
		}
	}
	m := mr.pending[0]
	mr.pending = mr.pending[1:]
	return m, nil
}

// nextDocument reads one document into pending (nothing for an empty one).
func (mr *ManifestReader) nextDocument() error {
	mr.doc++
	where := fmt.Sprintf("%s: document %d", mr.source, mr.doc)
	var raw []byte
	if mr.json != nil {
		mr.jsonIn.start(mr.json.InputOffset())
		var msg json.RawMessage
		err := mr.json.Decode(&msg)
		switch {
		case errors.Is(err, io.EOF) && !mr.jsonIn.failed():
			return io.EOF
		case errors.Is(err, errDocumentTooLarge) || mr.jsonIn.failed():
			return fmt.Errorf("%s: larger than %d bytes", where, maxManifestBytes)
		case err != nil:
			return fmt.Errorf("%s: %w", where, err)
		case len(msg) > maxManifestBytes:
			return fmt.Errorf("%s: larger than %d bytes", where, maxManifestBytes)
		}
		raw = msg
	} else {
		_, chunk, content, err := mr.yaml.next()
		if errors.Is(err, io.EOF) {
			return io.EOF
		}
		if err != nil {
			return fmt.Errorf("%s: %w", where, err)
		}
		if !content {
			return nil // only comments and blank lines: an empty document
		}
		if raw, err = yaml.YAMLToJSON(chunk); err != nil {
			if directive(chunk) {
				return fmt.Errorf("%s: %w (a %%YAML or %%TAG directive before \"---\" is a document of its own to kubectl, which cannot read it either: remove the directive)", where, err)
			}
			return fmt.Errorf("%s: %w", where, err)
		}
		if t := bytes.TrimSpace(raw); len(t) == 0 || string(t) == "null" {
			return nil
		}
	}
	ms, err := expand(raw, mr.source, mr.doc)
	if err != nil {
		return err
	}
	mr.pending = ms
	return nil
}

// Document is one document of a YAML stream, byte for byte: the separator
// line that opens it (with its line ending; empty for a first document
// that has none) and everything up to the next separator line. Joining
// every document's Separator and Body gives the stream back unchanged,
// which is what lets --pin leave what it does not pin exactly as it was.
type Document struct {
	Separator []byte
	Body      []byte
}

// SplitYAML splits a stream at "---" lines, keeping empty documents so the
// count matches what a person sees and ReadManifests' "document N". A
// trailing "---" is a last, empty document.
//
// k8s.io/apimachinery/pkg/util/yaml's YAMLReader (what kubectl uses) is not
// used here nor in ManifestReader: it drops empty documents (so its
// numbering differs from what a person counts), turns CRLF into LF and
// drops the separator lines (so a file cannot be written back byte for
// byte), and reads a line of any length into memory (no per-document
// bound). Its separator rule is the one kept here: "---" followed by
// nothing, blanks or a comment.
func SplitYAML(r io.Reader) ([]Document, error) {
	d := &yamlDocs{br: bufio.NewReaderSize(r, 64<<10)}
	var docs []Document
	for {
		sep, body, _, err := d.next()
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return docs, fmt.Errorf("document %d: %w", len(docs)+1, err)
		}
		docs = append(docs, Document{Separator: sep, Body: body})
	}
}

// yamlDocs splits a YAML stream into documents at "---" lines, as
// SplitYAML describes, holding one document at a time.
type yamlDocs struct {
	br      *bufio.Reader
	started bool   // a document was returned or a separator seen
	done    bool   // the input ended
	sep     []byte // the separator line that ended the last document
	line    []byte
}

var errDocumentTooLarge = fmt.Errorf("larger than %d bytes", maxManifestBytes)

// next returns the next document's separator line and body, byte for byte,
// and whether the body holds anything but comments and blank lines; or
// io.EOF.
func (d *yamlDocs) next() (sep, body []byte, content bool, err error) {
	if d.done {
		return nil, nil, false, io.EOF
	}
	sep, d.sep = d.sep, nil
	for {
		line, err := d.readLine()
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, nil, false, err
		}
		if len(line) == 0 && errors.Is(err, io.EOF) {
			d.done = true
			if len(body) > 0 || sep != nil || !d.started {
				d.started = true
				return sep, body, content, nil
			}
			return nil, nil, false, io.EOF
		}
		if isSep, bad := separator(bytes.TrimSuffix(line, []byte("\n"))); bad {
			return nil, nil, false, fmt.Errorf("content after the document separator: %.40q (put it on its own line)", line)
		} else if isSep {
			if !d.started && sep == nil && len(body) == 0 {
				d.started = true // a leading "---" opens the first document
				sep = bytes.Clone(line)
				continue
			}
			d.started = true
			d.sep = bytes.Clone(line)
			return sep, body, content, nil
		}
		if len(body)+len(line) > maxManifestBytes {
			return nil, nil, false, errDocumentTooLarge
		}
		// A document whose every line is blank or a comment is empty
		// (no block scalar can hide a "#" line without a line opening it).
		if t := bytes.TrimLeft(line, " \t\r\n"); len(t) > 0 && t[0] != '#' {
			content = true
		}
		body = append(body, line...)
	}
}

// readLine reads one line with its newline, however long, up to the
// document bound.
func (d *yamlDocs) readLine() ([]byte, error) {
	d.line = d.line[:0]
	for {
		chunk, err := d.br.ReadSlice('\n')
		d.line = append(d.line, chunk...)
		if len(d.line) > maxManifestBytes {
			return nil, errDocumentTooLarge
		}
		switch {
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case err != nil:
			return d.line, err
		}
		return d.line, nil
	}
}

// separator reports whether line is a document separator: "---" alone or
// followed by spaces or a comment (a CR of a CRLF file included). Other
// content after "---" is refused, as kubectl does, rather than dropped.
func separator(line []byte) (sep, bad bool) {
	rest, ok := bytes.CutPrefix(line, []byte("---"))
	if !ok {
		return false, false
	}
	if len(rest) > 0 && rest[0] != ' ' && rest[0] != '\t' && rest[0] != '\r' {
		return false, false // "----", "---foo": content
	}
	rest = bytes.TrimSpace(rest)
	return true, len(rest) > 0 && rest[0] != '#'
}

// directive reports whether the first line of doc with content is a YAML
// directive ("%YAML 1.2", "%TAG ...").
func directive(doc []byte) bool {
	for line := range bytes.Lines(doc) {
		if t := bytes.TrimSpace(line); len(t) > 0 && t[0] != '#' {
			return t[0] == '%'
		}
	}
	return false
}

// docLimiter bounds the bytes read for one JSON document: json.Decoder
// would otherwise buffer a document of any size.
type docLimiter struct {
	r     io.Reader
	read  int64 // bytes handed to the decoder
	from  int64 // decoder offset where the current document starts
	limit bool
}

// slack covers what the decoder reads ahead of the document it decodes.
const slack = 1 << 20

func (l *docLimiter) start(offset int64) { l.from = offset }

func (l *docLimiter) failed() bool { return l.limit }

func (l *docLimiter) Read(p []byte) (int, error) {
	if l.read-l.from > maxManifestBytes+slack {
		l.limit = true
		return 0, errDocumentTooLarge
	}
	n, err := l.r.Read(p)
	l.read += int64(n)
	return n, err
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

// expand turns one document into manifests as kubectl does: its decoder
// (unstructured.UnstructuredJSONScheme) makes any object with "items" a
// list, and items without kind and apiVersion take them from the list's
// kind ("PodList" -> "Pod"); meta.EachListItem then flattens it, as
// kubectl's resource builder does.
func expand(raw []byte, source string, doc int) ([]Manifest, error) {
	where := fmt.Sprintf("%s: document %d", source, doc)
	obj, _, err := unstructured.UnstructuredJSONScheme.Decode(raw, nil, nil)
	switch {
	case runtime.IsMissingKind(err):
		return nil, fmt.Errorf("%s: no kind", where)
	case err != nil:
		return nil, fmt.Errorf("%s: not a Kubernetes object: %w", where, err)
	}
	if !meta.IsListType(obj) {
		return []Manifest{{Source: source, Doc: doc, Kind: obj.GetObjectKind().GroupVersionKind().Kind, APIVersion: obj.GetObjectKind().GroupVersionKind().GroupVersion().String(), JSON: raw}}, nil
	}
	var out []Manifest
	err = meta.EachListItem(obj, func(o runtime.Object) error {
		item := len(out) + 1
		u, ok := o.(*unstructured.Unstructured)
		if !ok || u.GetKind() == "" {
			return fmt.Errorf("%s, item %d: no kind", where, item)
		}
		data, err := u.MarshalJSON()
		if err != nil {
			return fmt.Errorf("%s, item %d: %w", where, item, err)
		}
		out = append(out, Manifest{Source: source, Doc: doc, Item: item, Kind: u.GetKind(), APIVersion: u.GetAPIVersion(), JSON: data})
		return nil
	})
	return out, err
}
