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
}

// ChunkSize is the size of a fresh arena chunk (64 KiB): one chunk holds a
// typical order with room to spare, so steady-state decoding never allocates.
const ChunkSize = 64 << 10

// Alloc returns a slice of n bytes (contents unspecified) that stays valid
// until Reset.
func (a *Arena) Alloc(n int) []byte {
	if cap(a.buf)-len(a.buf) < n {
		size := ChunkSize
		if n > size {
			size = n
		}
		a.buf = make([]byte, 0, size)
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
		a.buf = make([]byte, 0, ChunkSize)
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
}
