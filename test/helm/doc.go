// Package helm holds the tests that keep charts/pullsafe, manifests/ and the
// monitoring rules consistent with each other and with pullsafe's code.
package helm
