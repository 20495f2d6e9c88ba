package chaos

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// cutMode says where pgProxy cuts a connection at COMMIT.
type cutMode int

const (
	// cutBeforeCommit drops the connection instead of forwarding COMMIT:
	// the server rolls back, the client cannot know.
	cutBeforeCommit cutMode = iota + 1
	// cutAfterCommit forwards COMMIT, waits for the server's answer (the
	// commit is durable then) and drops the connection instead of relaying
	// it: committed, but the client cannot know.
	cutAfterCommit
)

// pgProxy is a TCP proxy in front of PostgreSQL that reads the frontend
// protocol, so that it can cut a connection exactly at the COMMIT of a
// transaction that ran a given statement: the ambiguous commit of
// PITFALLS.md, on demand. Outside BEGIN … COMMIT, a statement of the
// extended protocol runs in an implicit transaction that commits at the
// Sync message: that Sync is its COMMIT (store.writeOrdersSQL commits so).
type pgProxy struct {
	ln     net.Listener
	target string

	mu    sync.Mutex
	conns map[*proxyConn]struct{}
	// armed: the next COMMIT of a transaction whose statements include
	// match is cut in mode; then disarmed.
	armMatch string
	armMode  cutMode
	cuts     atomic.Int64
	wg       sync.WaitGroup
}

type proxyConn struct {
	client, server net.Conn
	cutOnReply     atomic.Bool
	stmts          map[string]string // prepared statement name → SQL
	txSQL          []string          // SQL executed since the last COMMIT/ROLLBACK (or implicit commit)
	inTx           bool              // inside BEGIN … COMMIT/ROLLBACK
}

func newPGProxy(t *testing.T, target string) *pgProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("proxy: %v", err)
	}
	p := &pgProxy{ln: ln, target: target, conns: map[*proxyConn]struct{}{}}
	p.wg.Go(p.accept)
	t.Cleanup(func() {
		ln.Close()
		p.closeAll()
		p.wg.Wait()
	})
	return p
}

func (p *pgProxy) Addr() string { return p.ln.Addr().String() }

// arm makes the proxy cut the next COMMIT of a transaction that executed a
// statement containing match (e.g. "INSERT INTO orders").
func (p *pgProxy) arm(match string, mode cutMode) {
	p.mu.Lock()
	p.armMatch, p.armMode = match, mode
	p.mu.Unlock()
}

// armed reports whether the armed cut has not happened yet.
func (p *pgProxy) armed() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.armMode != 0
}

// closeAll drops every open connection (both sides), as a network failure
// or a PostgreSQL restart would.
func (p *pgProxy) closeAll() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		c.client.Close()
		c.server.Close()
	}
	return len(p.conns)
}

func (p *pgProxy) accept() {
	for {
		cl, err := p.ln.Accept()
		if err != nil {
			return
		}
		sv, err := net.Dial("tcp", p.target)
		if err != nil {
			cl.Close()
			continue
		}
		c := &proxyConn{client: cl, server: sv, stmts: map[string]string{}}
		p.mu.Lock()
		p.conns[c] = struct{}{}
		p.mu.Unlock()
		p.wg.Go(func() { p.upstream(c) })
		p.wg.Go(func() { p.downstream(c) })
	}
}

func (p *pgProxy) drop(c *proxyConn) {
	c.client.Close()
	c.server.Close()
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
}

// downstream relays server → client, unless a cut is due.
func (p *pgProxy) downstream(c *proxyConn) {
	defer p.drop(c)
	buf := make([]byte, 32<<10)
	for {
		n, err := c.server.Read(buf)
		if n > 0 {
			if c.cutOnReply.Load() {
				p.cuts.Add(1)
				return // the COMMIT's answer is never relayed
			}
			if _, werr := c.client.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// upstream relays client → server message by message, watching for the
// armed COMMIT.
func (p *pgProxy) upstream(c *proxyConn) {
	defer p.drop(c)
	r := bufio.NewReaderSize(c.client, 64<<10)
	// Startup: untyped messages (SSLRequest/GSSENCRequest first, maybe).
	for {
		var hdr [8]byte
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			return
		}
		n := int(binary.BigEndian.Uint32(hdr[:4]))
		rest := make([]byte, n-8)
		if _, err := io.ReadFull(r, rest); err != nil {
			return
		}
		if _, err := c.server.Write(append(hdr[:], rest...)); err != nil {
			return
		}
		code := binary.BigEndian.Uint32(hdr[4:])
		if code != 80877103 && code != 80877104 { // not SSL/GSSENC request
			break
		}
	}
	for {
		var hdr [5]byte
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			return
		}
		n := int(binary.BigEndian.Uint32(hdr[1:]))
		msg := make([]byte, 5+n-4)
		copy(msg, hdr[:])
		if _, err := io.ReadFull(r, msg[5:]); err != nil {
			return
		}
		if p.inspect(c, hdr[0], msg[5:]) == cutBeforeCommit {
			p.cuts.Add(1)
			return
		}
		if _, err := c.server.Write(msg); err != nil {
			return
		}
	}
}

// inspect tracks what the transaction ran and decides about a COMMIT.
func (p *pgProxy) inspect(c *proxyConn, typ byte, body []byte) cutMode {
	switch typ {
	case 'P': // Parse: name, query
		name, rest := cstring(body)
		q, _ := cstring(rest)
		c.stmts[name] = q
	case 'B': // Bind: portal, statement
		_, rest := cstring(body)
		stmt, _ := cstring(rest)
		c.txSQL = append(c.txSQL, c.stmts[stmt])
	case 'S': // Sync: commits the implicit transaction of what it ends
		if !c.inTx {
			return p.atCommit(c)
		}
	case 'Q':
		q, _ := cstring(body)
		switch strings.ToLower(strings.TrimSpace(strings.TrimRight(q, ";"))) {
		case "begin":
			c.inTx = true
			c.txSQL = c.txSQL[:0]
		case "commit":
			c.inTx = false
			return p.atCommit(c)
		case "rollback":
			c.inTx = false
			c.txSQL = c.txSQL[:0]
		default:
			c.txSQL = append(c.txSQL, q)
		}
	}
	return 0
}

func (p *pgProxy) atCommit(c *proxyConn) cutMode {
	defer func() { c.txSQL = c.txSQL[:0] }()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.armMode == 0 {
		return 0
	}
	hit := false
	for _, q := range c.txSQL {
		if strings.Contains(q, p.armMatch) {
			hit = true
			break
		}
	}
	if !hit {
		return 0
	}
	mode := p.armMode
	p.armMode = 0
	if mode == cutAfterCommit {
		c.cutOnReply.Store(true)
	}
	return mode
}

func cstring(b []byte) (string, []byte) {
	i := bytes.IndexByte(b, 0)
	if i < 0 {
		return string(b), nil
	}
	return string(b[:i]), b[i+1:]
}
