package ingest

import (
	"sync"
	"time"
)

// Scratch buffers for response bodies. Buffers above 64 KiB are dropped
// instead of pooled (a large GET must not pin memory).
var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

func getBuf() *[]byte { return bufPool.Get().(*[]byte) }

func putBuf(b *[]byte) {
	if cap(*b) > 64<<10 {
		return
	}
	*b = (*b)[:0]
	bufPool.Put(b)
}

// Timers for bounded waits, reused: since Go 1.23 Stop and Reset leave no
// stale value in the channel, so a pooled timer is safe to re-arm.
var timerPool sync.Pool

func getTimer(d time.Duration) *time.Timer {
	if t, ok := timerPool.Get().(*time.Timer); ok {
		t.Reset(d)
		return t
	}
	return time.NewTimer(d)
}

func putTimer(t *time.Timer) {
	t.Stop()
	timerPool.Put(t)
}
