package soak

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
)

func TestParseCEID(t *testing.T) {
	f := func(id, run string, n uint64, v int, ok bool) {
		t.Helper()
		gr, gn, gv, gok := parseCEID([]byte(id))
		if gr != run || gn != n || gv != v || gok != ok {
			t.Fatalf("parseCEID(%q) = %q %d %d %v; want %q %d %d %v", id, gr, gn, gv, gok, run, n, v, ok)
		}
	}
	f("lt_20261129T200706-eb04_17/1", "20261129T200706-eb04", 17, 1, true)
	f("lt_r_x-max_3/2", "r_x-max", 3, 2, true)
	f("ord_1/1", "", 0, 0, false)
	f("lt_r_17", "", 0, 0, false)
	f("lt_r_x/1", "", 0, 0, false)
	f("lt_r_1/v", "", 0, 0, false)
}

// TestTopicCounterRepeats counts records per known run: a ce_id read a
// second time is a repeat, another version of the same order is not, and a
// record of an unknown run is foreign.
func TestTopicCounterRepeats(t *testing.T) {
	tc := &topicCounter{seen: map[string][]uint8{"r": nil, "r-max": nil}}
	for _, id := range []string{"lt_r_1/1", "lt_r_2/1", "lt_r_1/2", "lt_r_1/1", "lt_r-max_1/1", "lt_other_1/1", "lt_r_300/1", "lt_r_2/1", "lt_r_9/9"} {
		tc.count(&kgo.Record{Headers: []kgo.RecordHeader{{Key: "ce_id", Value: []byte(id)}}})
	}
	c := tc.counts()
	if c.Records != 9 || c.Repeats != 2 || c.Foreign != 2 {
		t.Fatalf("counts %+v; want 9 records, 2 repeats, 2 foreign", c)
	}
	if m := tc.missing("r", []uint64{1, 2, 3, 300, 301}); len(m) != 2 || m[0] != 3 || m[1] != 301 {
		t.Fatalf("missing = %v; want [3 301]", m)
	}
	if m := tc.missing("r-max", []uint64{1, 2}); len(m) != 1 || m[0] != 2 {
		t.Fatalf("missing = %v; want [2]", m)
	}
}
