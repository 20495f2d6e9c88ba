//go:build !race

package loadtest

import "testing"

func TestAppendBodyAllocs(t *testing.T) {
	p := newPayload(Config{RunID: "r"}.WithDefaults())
	buf := make([]byte, 0, 512)
	n := uint64(0)
	if a := testing.AllocsPerRun(1000, func() {
		n++
		buf = p.appendBody(buf[:0], n)
		buf = p.appendKey(buf, n)
	}); a != 0 {
		t.Fatalf("appendBody+appendKey: %v allocs per order; want 0", a)
	}
}
