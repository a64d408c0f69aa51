package main

import (
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"

	"github.com/pullsafe/pullsafe/pinning"
	"github.com/pullsafe/pullsafe/policy"
)

// writePinned writes every input file back with the pins of results
// applied (pinning.File): to stdout, each file named when there are
// several, or in place.
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
		out, err := pinning.File(files[name], pins[name])
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
