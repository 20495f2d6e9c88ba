// Package bytesutil holds the byte-level helpers the hot path shares: a chunked
// arena whose views stay valid until Reset, and the unsafe []byte<->string
// conversions. It is the only package of orderflow that imports unsafe.
package bytesutil

import "unsafe"

// String returns a string that shares b's memory. The string is valid only
// while b is reachable and unmodified: callers that hand it on must make sure
// the memory behind b outlives every use (for orderflow, the batch arena).
func String(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(unsafe.SliceData(b), len(b))
}

// Bytes returns the bytes of s without copying. The result must never be
// written to: s may live in read-only memory.
func Bytes(s string) []byte {
	if s == "" {
		return nil
	}
	return unsafe.Slice(unsafe.StringData(s), len(s))
}

// Arena hands out byte slices carved from large chunks. A slice it returned
// stays valid (is never moved or overwritten) until Reset: when a chunk is
// full the arena starts a new one instead of growing the old one, so earlier
// views into it are never invalidated. Modelled on pebble's bytealloc.
//
// An Arena is not safe for concurrent use. The zero value is ready to use.
type Arena struct {
	buf   []byte // current chunk; len = bytes handed out
	total int    // bytes handed out since Reset, across chunks
	next  int    // size of the next fresh chunk; 0 means MinChunkSize
}

// MinChunkSize is the size of an arena's first chunk (2 KiB): a typical
// order and its event JSON fit in it, so a pooled single-order batch keeps
// one small chunk and steady-state decoding never allocates. Each further
// chunk doubles, up to ChunkSize, so a bulk request needs few chunks.
//
// The first chunk used to be 64 KiB: with thousands of requests in flight
// that pinned 64 KiB each (a 5x overload test showed 180 MB of live heap in
// arena chunks for ~1 KB of data per order).
const MinChunkSize = 2 << 10

// ChunkSize is the largest fresh chunk (64 KiB); a single value larger than
// that gets a chunk of its own size.
const ChunkSize = 64 << 10

// chunk returns the size of the next fresh chunk for a need of n bytes and
// advances the doubling.
func (a *Arena) chunk(n int) int {
	size := a.next
	if size == 0 {
		size = MinChunkSize
	}
	a.next = min(size*2, ChunkSize)
	return max(size, n)
}

// Alloc returns a slice of n bytes (contents unspecified) that stays valid
// until Reset.
func (a *Arena) Alloc(n int) []byte {
	if cap(a.buf)-len(a.buf) < n {
		a.buf = make([]byte, 0, a.chunk(n))
	}
	start := len(a.buf)
	a.buf = a.buf[:start+n]
	a.total += n
	return a.buf[start : start+n : start+n]
}

// Copy copies b into the arena and returns the copy; valid until Reset.
func (a *Arena) Copy(b []byte) []byte {
	dst := a.Alloc(len(b))
	copy(dst, b)
	return dst
}

// CopyString copies b into the arena and returns a string view of the copy,
// valid until Reset.
func (a *Arena) CopyString(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return String(a.Copy(b))
}

// Append lets a caller build a value of unknown length in place: fn receives
// an empty slice with spare capacity at the arena's tail, appends to it and
// returns it. The bytes appended become arena memory (valid until Reset). If
// fn outgrows the spare capacity, append moves the data to a fresh heap slice,
// which then becomes the arena's current chunk.
func (a *Arena) Append(fn func(dst []byte) []byte) []byte {
	if cap(a.buf)-len(a.buf) < 512 {
		a.buf = make([]byte, 0, a.chunk(512))
	}
	start := len(a.buf)
	tail := a.buf[start:start]
	out := fn(tail)
	if len(out) > 0 && cap(out) > 0 && &out[:1][0] != &a.buf[:start+1][start] {
		// fn outgrew the chunk: adopt its slice as the new current chunk.
		a.buf = out[:len(out):len(out)]
		a.total += len(out)
		return a.buf
	}
	a.buf = a.buf[:start+len(out)]
	a.total += len(out)
	return a.buf[start : start+len(out) : start+len(out)]
}

// Len reports how many bytes were handed out since the last Reset.
func (a *Arena) Len() int { return a.total }

// Cap reports the capacity of the current chunk.
func (a *Arena) Cap() int { return cap(a.buf) }

// Reset makes the arena's memory reusable. Every slice and string handed out
// before becomes invalid: callers must have dropped all views. The current
// chunk is kept unless it is larger than maxRetain, in which case it is
// dropped so that one huge request does not pin memory forever.
func (a *Arena) Reset(maxRetain int) {
	if cap(a.buf) > maxRetain {
		a.buf = nil
	} else {
		a.buf = a.buf[:0]
	}
	a.total = 0
	a.next = 0 // the kept chunk serves first; a new one starts small again
}
