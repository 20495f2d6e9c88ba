package ingest

import (
	"bytes"
	"fmt"
	"net/netip"
	"strings"

	"github.com/valyala/fasthttp"

	"github.com/orderflow/orderflow/engine/internal/bytesutil"
)

// The client IP behind load balancers. The per-IP limits (guard.go) key on
// the client's address. Behind a balancer the TCP peer is the balancer, so
// Config.TrustedProxies names the networks whose peers are proxies that
// append the address they received a request from to X-Forwarded-For.
// Only when the TCP peer is trusted is X-Forwarded-For read: from its
// right end (the address the nearest proxy saw), trusted addresses are
// skipped, and the first untrusted one is the client. Everything to its
// left was written by the client or its own proxies and can be forged, so
// it is never used. An untrusted peer's X-Forwarded-For is ignored.

// parseProxies parses Config.TrustedProxies: CIDR prefixes, or single
// addresses (a /32 or /128).
func parseProxies(list []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, v := range list {
		v = strings.TrimSpace(v)
		if v == "" {
			continue
		}
		if p, err := netip.ParsePrefix(v); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(v)
		if err != nil {
			return nil, fmt.Errorf("-%s: %q is neither a CIDR prefix nor an IP address", FlagTrustedProxies, v)
		}
		a = a.Unmap()
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

// trustedAddr reports whether a is in one of the trusted networks.
func trustedAddr(nets []netip.Prefix, a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range nets {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// clientIP is the address the per-IP limits key on (as ipKey): the TCP
// peer, or, when the peer is a trusted proxy, the right-most untrusted
// address of X-Forwarded-For (forwardedClient). It allocates nothing.
func (s *Server) clientIP(ctx *fasthttp.RequestCtx) [16]byte {
	peer := ipKey(ctx.RemoteIP())
	if len(s.proxies) == 0 {
		return peer
	}
	a := netip.AddrFrom16(peer)
	if !trustedAddr(s.proxies, a) {
		return peer
	}
	return forwardedClient(s.proxies, ctx.Request.Header.PeekAll(fasthttp.HeaderXForwardedFor), a).As16()
}

// forwardedClient walks the X-Forwarded-For values (in the order the
// headers came, each a comma-separated list) from the right, starting from
// the trusted peer: the first untrusted address is the client. When every
// address is trusted, the left-most is. An entry that is not an address
// (such as "unknown") ends the walk at the last trusted address before it,
// the proxy that wrote it.
func forwardedClient(nets []netip.Prefix, values [][]byte, peer netip.Addr) netip.Addr {
	client := peer
	for i := len(values) - 1; i >= 0; i-- {
		v := values[i]
		for len(v) > 0 {
			var entry []byte
			if j := bytes.LastIndexByte(v, ','); j >= 0 {
				entry, v = v[j+1:], v[:j]
			} else {
				entry, v = v, nil
			}
			entry = bytes.TrimSpace(entry)
			if len(entry) == 0 {
				continue
			}
			a, ok := parseForwarded(entry)
			if !ok {
				return client
			}
			client = a
			if !trustedAddr(nets, a) {
				return client
			}
		}
	}
	return client
}

// parseForwarded parses one X-Forwarded-For entry: an IPv4 or IPv6
// address, with or without a port ("1.2.3.4:80", "[2001:db8::1]:443").
func parseForwarded(e []byte) (netip.Addr, bool) {
	switch {
	case e[0] == '[':
		j := bytes.IndexByte(e, ']')
		if j < 0 {
			return netip.Addr{}, false
		}
		e = e[1:j]
	case bytes.Count(e, []byte{':'}) == 1:
		e = e[:bytes.IndexByte(e, ':')]
	}
	// The view is used only while e is: netip copies what it keeps.
	a, err := netip.ParseAddr(bytesutil.String(e))
	if err != nil {
		return netip.Addr{}, false
	}
	return a.Unmap(), true
}
