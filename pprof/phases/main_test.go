package main

import (
	"strings"
	"testing"
	"time"
)

const traces = `File: orderflow
Type: cpu
Duration: 10s, Total samples = 120ms (1.2%)
-----------+-------------------------------------------------------
      10ms   syscall.Syscall
             internal/poll.(*FD).Write
             net.(*conn).Write
             github.com/jackc/pgx/v5/pgconn.(*PgConn).flushWithPotentialWriteReadDeadlock
             github.com/jackc/pgx/v5.(*Conn).CopyFrom
             github.com/orderflow/orderflow/engine/store.copyOutbox
             github.com/orderflow/orderflow/engine/store.(*Store).WriteOrders
-----------+-------------------------------------------------------
      20ms   syscall.Syscall
             net.(*conn).Read
             github.com/jackc/pgx/v5/pgconn.(*PgConn).receiveMessage
             github.com/orderflow/orderflow/engine/store.readSweepPage
             github.com/orderflow/orderflow/engine/store.(*Store).SweepEvents.func1
-----------+-------------------------------------------------------
      30ms   runtime.mallocgc
             github.com/orderflow/orderflow/engine/internal/bytesutil.(*Arena).Copy
             github.com/orderflow/orderflow/engine/ingest.(*scanner).decodeOrder
             github.com/orderflow/orderflow/engine/ingest.(*Server).handleOrders
             github.com/valyala/fasthttp.(*Server).serveConn
-----------+-------------------------------------------------------
      40ms   syscall.Syscall
             bufio.(*Writer).Flush
             github.com/valyala/fasthttp.writeResponse
             github.com/valyala/fasthttp.(*Server).serveConn
-----------+-------------------------------------------------------
       5ms   runtime.scanobject
             runtime.gcDrain
             runtime.gcBgMarkWorker.func2
-----------+-------------------------------------------------------
       5ms   github.com/twmb/franz-go/pkg/kgo.(*recBuf).bufferRecord
             github.com/orderflow/orderflow/engine/publish.(*Publisher).publishFast
-----------+-------------------------------------------------------
      10ms   runtime.findRunnable
             runtime.schedule
             runtime.park_m
-----------+-------------------------------------------------------
`

func TestClassifyByLeafMostOrderflowFrame(t *testing.T) {
	samples, err := parseTraces(strings.NewReader(traces))
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		d     time.Duration
		phase string
	}{
		{10 * time.Millisecond, phCommit}, // pgx under WriteOrders
		{20 * time.Millisecond, phRelay},  // pgx under SweepEvents
		{30 * time.Millisecond, phDecode}, // allocation under the decoder, past bytesutil
		{40 * time.Millisecond, phHTTP},   // no orderflow frame: fasthttp's response write
		{5 * time.Millisecond, phGC},      // GC worker
		{5 * time.Millisecond, phPublish}, // franz-go under the fast path
		{10 * time.Millisecond, phSched},  // the scheduler
	}
	if len(samples) != len(want) {
		t.Fatalf("parsed %d samples; want %d", len(samples), len(want))
	}
	for i, w := range want {
		if samples[i].value != w.d {
			t.Errorf("sample %d value = %v; want %v", i, samples[i].value, w.d)
		}
		if got := classify(samples[i].stack); got != w.phase {
			t.Errorf("sample %d (%s) phase = %q; want %q", i, samples[i].stack[0], got, w.phase)
		}
	}
}
