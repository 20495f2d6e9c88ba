package ingest

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"

	"github.com/orderflow/orderflow/engine/metrics"
)

// Lingering close. When the server answers a request it will not read to
// the end (a body over the limit: fasthttp stops at the Content-Length, or
// once a chunked body passes the limit), the rest of the body is still on
// its way or already in the kernel's receive buffer. Closing such a socket
// makes the kernel send a reset instead of a FIN, and a reset can discard
// the answer from the client's receive buffer before the client reads it:
// the client then sees "connection reset by peer", which it must treat as
// an unknown outcome and retry, forever. So a connection closed after such
// an answer is closed the way nginx and Apache do it: the answer is
// flushed, the sending side is shut (the client reads the answer followed
// by end of stream), what the client still sends is read and discarded
// until it closes, at most Config.LingerMaxBytes and Config.LingerTimeout,
// and only then is the socket closed. A client past either bound has its
// connection closed with data unread: it may see a reset then.
//
// The worker goroutine that served the connection is not held: its Close
// hands the connection to a lingering goroutine of its own, at most
// Config.LingerMaxConns at once (past that a connection is closed at once,
// counted as busy). A lingering goroutine owns no buffer while it waits:
// it waits for the socket to be readable and reads into a pooled buffer
// only for the read itself (discard, linger_unix.go), so memory stays flat
// however many bytes are discarded.

// lingerEnd is how a lingering close ended: the label of
// orderflow_http_lingering_closes_total.
type lingerEnd uint8

const (
	endClientClosed lingerEnd = iota // the client closed (EOF or reset)
	endByteBound                     // LingerMaxBytes discarded
	endTimeBound                     // LingerTimeout passed
	endBusy                          // LingerMaxConns lingering already: closed at once
	endShutdown                      // cut by Shutdown
	numLingerEnds
)

var lingerEndNames = [numLingerEnds]string{"client_closed", "byte_bound", "time_bound", "busy", "shutdown"}

// lingerer runs lingering closes. Safe for concurrent use.
type lingerer struct {
	timeout  time.Duration
	maxBytes int64
	slots    chan struct{} // capacity LingerMaxConns; a lingering goroutine holds one

	mu      sync.Mutex
	conns   map[net.Conn]struct{} // lingering now; Shutdown cuts them
	closing bool                  // Shutdown began: no new lingering (wg.Add only before)
	cut     bool                  // Shutdown's context ended: the rest were cut
	wg      sync.WaitGroup

	ended     [numLingerEnds]prometheus.Counter
	discarded prometheus.Counter
	lingering prometheus.Gauge
}

func newLingerer(cfg *Config, m *metrics.Metrics) *lingerer {
	l := &lingerer{
		timeout:   cfg.LingerTimeout,
		maxBytes:  cfg.LingerMaxBytes,
		slots:     make(chan struct{}, cfg.LingerMaxConns),
		conns:     make(map[net.Conn]struct{}),
		discarded: m.LingerBytes,
		lingering: m.Lingering,
	}
	for e := range l.ended {
		l.ended[e] = m.LingerClosed.WithLabelValues(lingerEndNames[e])
	}
	return l
}

// listener wraps ln so that its connections close by lingering once marked
// (lingerOnClose).
func (l *lingerer) listener(ln net.Listener) net.Listener { return &lingerListener{ln, l} }

type lingerListener struct {
	net.Listener
	l *lingerer
}

func (ln *lingerListener) Accept() (net.Conn, error) {
	c, err := ln.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &lingerConn{Conn: c, l: ln.l}, nil
}

// lingerConn is an accepted connection whose Close lingers when linger is
// set.
type lingerConn struct {
	net.Conn
	l      *lingerer
	linger atomic.Bool
	closed atomic.Bool
}

// Close closes the connection, by a lingering close when it was marked. It
// does not block: the lingering runs on a goroutine of the lingerer.
func (c *lingerConn) Close() error {
	if !c.closed.CompareAndSwap(false, true) {
		return net.ErrClosed
	}
	if c.linger.Load() && c.l.start(c.Conn) {
		return nil
	}
	return c.Conn.Close()
}

// NetConn returns the connection lingerConn wraps.
func (c *lingerConn) NetConn() net.Conn { return c.Conn }

// lingerOnClose marks the request's connection so that closing it lingers,
// and asks fasthttp to close it after this answer. Connections wrapped by
// something else (a TLS layer over the lingerConn) are unwrapped.
func lingerOnClose(ctx *fasthttp.RequestCtx) {
	ctx.SetConnectionClose()
	c := ctx.Conn()
	for c != nil {
		if lc, ok := c.(*lingerConn); ok {
			lc.linger.Store(true)
			return
		}
		w, ok := c.(interface{ NetConn() net.Conn })
		if !ok {
			return
		}
		c = w.NetConn()
	}
}

// start hands c to a lingering goroutine. It returns false when none may
// start (LingerMaxConns lingering already, or Shutdown began): the caller
// closes c at once.
func (l *lingerer) start(c net.Conn) bool {
	select {
	case l.slots <- struct{}{}:
	default:
		l.ended[endBusy].Inc()
		return false
	}
	l.mu.Lock()
	if l.closing {
		l.mu.Unlock()
		<-l.slots
		l.ended[endShutdown].Inc()
		return false
	}
	l.conns[c] = struct{}{}
	l.wg.Add(1)
	l.mu.Unlock()
	l.lingering.Inc()
	go l.run(c)
	return true
}

func (l *lingerer) run(c net.Conn) {
	end := l.drain(c)
	_ = c.Close()
	l.mu.Lock()
	delete(l.conns, c)
	if l.cut && end == endTimeBound {
		end = endShutdown
	}
	l.mu.Unlock()
	l.ended[end].Inc()
	l.lingering.Dec()
	<-l.slots
	l.wg.Done()
}

// drain shuts c's sending side, then reads and discards until the client
// closes or a bound is reached.
func (l *lingerer) drain(c net.Conn) lingerEnd {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		if cw.CloseWrite() != nil {
			return endClientClosed // already reset
		}
	}
	if c.SetReadDeadline(time.Now().Add(l.timeout)) != nil {
		return endClientClosed
	}
	var total int64
	for total < l.maxBytes {
		n, err := discard(c, l.maxBytes-total)
		total += n
		l.discarded.Add(float64(n))
		switch {
		case err == nil:
		case errors.Is(err, os.ErrDeadlineExceeded):
			return endTimeBound
		default:
			return endClientClosed // EOF, or a reset
		}
	}
	return endByteBound
}

// shutdown waits for the lingering closes to end until ctx is done, then
// cuts the rest (a client still sending may see a reset) and waits for
// their goroutines.
func (l *lingerer) shutdown(ctx context.Context) {
	l.mu.Lock()
	l.closing = true
	l.mu.Unlock()
	done := make(chan struct{})
	go func() { l.wg.Wait(); close(done) }()
	select {
	case <-done:
		return
	case <-ctx.Done():
	}
	l.mu.Lock()
	l.cut = true
	for c := range l.conns {
		_ = c.SetReadDeadline(time.Now())
	}
	l.mu.Unlock()
	<-done
}

// drainBufs are the buffers discard reads into, each held only for one
// read that does not block (or, for a connection without a file
// descriptor, for one blocking read).
var drainBufs = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// discardRead reads once into a pooled buffer, at most max bytes; io.EOF
// when the client closed.
func discardRead(c net.Conn, max int64) (int64, error) {
	buf := drainBufs.Get().(*[]byte)
	p := *buf
	if int64(len(p)) > max {
		p = p[:max]
	}
	n, err := c.Read(p)
	drainBufs.Put(buf)
	if n > 0 {
		err = nil
	}
	if err == nil && n == 0 {
		err = io.EOF
	}
	return int64(n), err
}
