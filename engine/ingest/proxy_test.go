package ingest

import (
	"bufio"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// forwardedClient picks the right-most untrusted address, from the right
// end of the last X-Forwarded-For header, and never anything to its left.
func TestForwardedClient(t *testing.T) {
	nets, err := parseProxies([]string{"127.0.0.0/8", "10.0.0.0/8", "2001:db8:ffff::/48", " 192.0.2.1 "})
	if err != nil {
		t.Fatal(err)
	}
	peer := netip.MustParseAddr("127.0.0.1")
	f := func(want string, headers ...string) {
		t.Helper()
		values := make([][]byte, len(headers))
		for i, h := range headers {
			values[i] = []byte(h)
		}
		if got := forwardedClient(nets, values, peer); got != netip.MustParseAddr(want) {
			t.Errorf("X-Forwarded-For %q: got %v; want %v", headers, got, want)
		}
	}
	f("127.0.0.1")                                              // no header: the peer
	f("203.0.113.1", "203.0.113.1")                             // one proxy
	f("203.0.113.1", "198.51.100.9, 203.0.113.1")               // a forged left part is ignored
	f("203.0.113.1", "198.51.100.9,203.0.113.1, 10.0.0.2")      // through two trusted proxies
	f("203.0.113.1", "6.6.6.6, 203.0.113.1", "10.0.0.2")        // two headers: the last one is the right end
	f("10.0.0.7", "10.0.0.7, 10.0.0.8")                         // all trusted: the left-most
	f("192.0.2.2", "192.0.2.2, 192.0.2.1")                      // a single trusted address, not its network
	f("203.0.113.1", "203.0.113.1:5555")                        // a port
	f("2001:db8::1", "[2001:db8::1]:443")                       // IPv6 with a port
	f("2001:db8::1", "2001:db8::1, 2001:db8:ffff::9")           // IPv6 through a trusted IPv6 proxy
	f("203.0.113.1", "::ffff:203.0.113.1")                      // IPv4-mapped is IPv4
	f("10.0.0.9", "198.51.100.9, unknown, 10.0.0.9")            // not an address: the proxy that wrote it
	f("127.0.0.1", "garbage")                                   // right at the peer
	f("203.0.113.1", "203.0.113.1, , 10.0.0.2")                 // empty entries are skipped
	f("203.0.113.5", "1.1.1.1, 203.0.113.5", "", "10.255.0.1 ") // an empty header too

	for _, bad := range []string{"10.0.0.0/33", "example.com", "10.0.0.1/8/8"} {
		if _, err := parseProxies([]string{bad}); err == nil {
			t.Errorf("parseProxies(%q): no error", bad)
		}
		if err := (Config{TrustedProxies: []string{bad}}).Validate(); err == nil || !strings.Contains(err.Error(), FlagTrustedProxies) {
			t.Errorf("Validate with -%s=%s: %v; want an error naming the flag", FlagTrustedProxies, bad, err)
		}
	}
}

// Per-IP limits through the real listener, from 127.0.0.1 with a bucket of
// one request per client: a spoofed X-Forwarded-For from an untrusted peer
// changes nothing (every request is the peer's), and behind trusted
// proxies each real client has its own bucket whatever it forges on the
// left. Made to fail once by keying the limit on the TCP peer again: every
// request after the first was 429 behind the trusted proxy.
func TestTrustedProxies(t *testing.T) {
	type step struct {
		xff  []string // X-Forwarded-For headers, in order
		want string   // the status line's code
	}
	f := func(name string, trusted []string, steps ...step) {
		t.Run(name, func(t *testing.T) {
			ts := newTestServer(t, Config{PerIPLimit: Limit{Rate: 0.001, Burst: 1}, TrustedProxies: trusted}, nil)
			addr := ts.serveTCP()
			for i, s := range steps {
				req := "GET /v1/orders/nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
				for _, h := range s.xff {
					req += "X-Forwarded-For: " + h + "\r\n"
				}
				line := rawRequest(t, addr, req+"\r\n")
				if !strings.HasPrefix(line, "HTTP/1.1 "+s.want) {
					t.Errorf("request %d with X-Forwarded-For %q: %q; want %s", i, s.xff, line, s.want)
				}
			}
		})
	}
	const ok, limited = "404", "429"
	spoofs := []step{
		{[]string{"203.0.113.1"}, ok}, // the peer's one request
		{[]string{"203.0.113.2"}, limited},
		{[]string{"198.51.100.7, 203.0.113.3"}, limited},
		{[]string{"10.0.0.1"}, limited},
		{nil, limited},
	}
	f("trusted=none", nil, spoofs...)
	f("trusted=other", []string{"10.0.0.0/8", "192.0.2.0/24"}, spoofs...)
	f("trusted=loopback", []string{"127.0.0.0/8", "10.0.0.0/8"},
		step{[]string{"203.0.113.1"}, ok},
		step{[]string{"203.0.113.1"}, limited},                    // the same client again
		step{[]string{"203.0.113.2"}, ok},                         // another client: the proxy is not the one limited
		step{[]string{"198.51.100.7, 203.0.113.3, 10.1.2.3"}, ok}, // through two proxies
		step{[]string{"6.6.6.6, 203.0.113.3, 10.9.9.9"}, limited}, // forging the left part does not help
		step{[]string{"1.1.1.1, 203.0.113.4", "10.0.0.1"}, ok},    // two headers
		step{[]string{"203.0.113.4"}, limited},                    // the same client in one header
		step{[]string{"[2001:db8::1]:443"}, ok},                   // IPv6 with a port
		step{[]string{"2001:db8::1"}, limited},                    // the same without
		step{nil, ok},                                             // no header: the peer itself
		step{[]string{"127.0.0.1"}, limited},                      // the peer named in the header
	)
}

// rawRequest sends req on a new connection and returns the answer's status
// line.
func rawRequest(t *testing.T, addr, req string) string {
	t.Helper()
	conn := dialTCP(t, addr, 10*time.Second)
	if _, err := conn.Write([]byte(req)); err != nil {
		t.Fatal(err)
	}
	line, _ := bufio.NewReader(conn).ReadString('\n')
	return strings.TrimSpace(line)
}
