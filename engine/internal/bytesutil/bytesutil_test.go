package bytesutil

import (
	"bytes"
	"strings"
	"testing"
)

func TestStringBytes(t *testing.T) {
	b := []byte("hello")
	if s := String(b); s != "hello" {
		t.Fatalf("String = %q", s)
	}
	if String(nil) != "" || String([]byte{}) != "" {
		t.Fatal("String of empty")
	}
	if got := Bytes("hello"); string(got) != "hello" || len(got) != 5 {
		t.Fatalf("Bytes = %q", got)
	}
	if Bytes("") != nil {
		t.Fatal("Bytes of empty")
	}
}

// TestArenaStable: views handed out stay intact while the arena grows into
// new chunks, through Alloc, Copy, CopyString and Append.
func TestArenaStable(t *testing.T) {
	var a Arena
	type view struct {
		got  func() string
		want string
	}
	var views []view
	total := 0
	for i := range 5000 {
		want := strings.Repeat(string(rune('a'+i%26)), i%97)
		switch i % 4 {
		case 0:
			b := a.Copy([]byte(want))
			views = append(views, view{func() string { return string(b) }, want})
		case 1:
			s := a.CopyString([]byte(want))
			views = append(views, view{func() string { return s }, want})
		case 2:
			b := a.Alloc(len(want))
			copy(b, want)
			if cap(b) != len(b) {
				t.Fatalf("Alloc(%d): cap %d", len(want), cap(b))
			}
			views = append(views, view{func() string { return string(b) }, want})
		case 3:
			b := a.Append(func(dst []byte) []byte { return append(dst, want...) })
			if cap(b) != len(b) {
				t.Fatalf("Append: cap %d len %d", cap(b), len(b))
			}
			views = append(views, view{func() string { return string(b) }, want})
		}
		total += len(want)
	}
	// An Append that outgrows the chunk, and a huge Alloc.
	big := strings.Repeat("x", 3*ChunkSize)
	bb := a.Append(func(dst []byte) []byte { return append(dst, big...) })
	views = append(views, view{func() string { return string(bb) }, big})
	hb := a.Copy([]byte(big + "y"))
	views = append(views, view{func() string { return string(hb) }, big + "y"})
	after := a.Copy([]byte("after"))
	views = append(views, view{func() string { return string(after) }, "after"})
	total += len(big)*2 + 1 + 5
	for i, v := range views {
		if got := v.got(); got != v.want {
			t.Fatalf("view %d changed: len %d; want len %d", i, len(got), len(v.want))
		}
	}
	if a.Len() != total {
		t.Fatalf("Len %d; want %d", a.Len(), total)
	}
}

func TestArenaAppendSmallTail(t *testing.T) {
	var a Arena
	a.Alloc(ChunkSize - 100) // leave less than 512 bytes
	b := a.Append(func(dst []byte) []byte { return append(dst, "abc"...) })
	c := a.Copy([]byte("def"))
	if string(b) != "abc" || string(c) != "def" {
		t.Fatalf("got %q %q", b, c)
	}
	e := a.Append(func(dst []byte) []byte { return dst })
	if len(e) != 0 {
		t.Fatalf("empty Append = %q", e)
	}
}

func TestArenaReset(t *testing.T) {
	var a Arena
	a.Copy(bytes.Repeat([]byte("x"), 100))
	capBefore := a.Cap()
	a.Reset(1 << 20)
	if a.Len() != 0 || a.Cap() != capBefore {
		t.Fatalf("Reset kept: Len %d Cap %d; want 0, %d", a.Len(), a.Cap(), capBefore)
	}
	a.Alloc(2 << 20)
	a.Reset(1 << 20)
	if a.Len() != 0 || a.Cap() != 0 {
		t.Fatalf("Reset of a huge chunk: Len %d Cap %d; want 0 0", a.Len(), a.Cap())
	}
	// Reuse after Reset does not allocate.
	a.Alloc(10)
	a.Reset(1 << 20)
	if n := testing.AllocsPerRun(100, func() {
		a.Copy([]byte("0123456789"))
		a.CopyString([]byte("abc"))
		a.Append(func(dst []byte) []byte { return append(dst, "xyz"...) })
		a.Reset(1 << 20)
	}); n != 0 {
		t.Fatalf("allocs per reuse = %v; want 0", n)
	}
}

// A fresh arena starts with a small chunk and doubles up to ChunkSize, so a
// pooled single-order batch pins ~2 KiB, not 64 KiB. With a 64 KiB first
// chunk this test fails on the first check.
func TestArenaChunksStartSmallAndDouble(t *testing.T) {
	var a Arena
	a.Alloc(100)
	if got := a.Cap(); got != MinChunkSize {
		t.Fatalf("first chunk = %d bytes; want %d", got, MinChunkSize)
	}
	// Small allocations: each new chunk doubles, up to ChunkSize (and stays
	// there: the capacity stops changing after 64 KiB).
	var caps []int
	for range 40000 {
		before := a.Cap()
		a.Alloc(100)
		if a.Cap() != before {
			caps = append(caps, a.Cap())
		}
	}
	want := []int{4 << 10, 8 << 10, 16 << 10, 32 << 10, 64 << 10}
	for i, w := range want {
		if i >= len(caps) || caps[i] != w {
			t.Fatalf("chunk sizes %v; want them to start %v", caps, want)
		}
	}
	a.Reset(1 << 20)
	a.Alloc(10)
	if a.Cap() > ChunkSize*2 {
		t.Fatalf("after Reset the kept chunk is %d bytes", a.Cap())
	}
}
