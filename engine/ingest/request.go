package ingest

import (
	"bytes"
	"errors"

	"github.com/valyala/fasthttp"
)

// Request checks that need no decoding: body encoding and size, Content-Type,
// ids in the path and the Idempotency-Key header.

var (
	encGzip     = []byte("gzip")
	encIdentity = []byte("identity")
)

// body returns the request body, un-gzipped when Content-Encoding says so,
// and enforces limit on the decompressed size. It answers the request and
// returns ok=false when the body cannot be used; a 413 closes the
// connection, as the transport's 413 does. The returned slice is valid only
// until the handler returns.
func (s *Server) body(ctx *fasthttp.RequestCtx, limit int) ([]byte, bool) {
	enc := ctx.Request.Header.ContentEncoding()
	raw := ctx.PostBody()
	switch {
	case len(enc) == 0 || bytes.EqualFold(enc, encIdentity):
		if len(raw) > limit {
			lingerOnClose(ctx)
			s.writeAnswer(ctx, bodyTooLarge(limit, false))
			return nil, false
		}
		return raw, true
	case bytes.EqualFold(enc, encGzip):
		out, err := ctx.Request.BodyGunzipWithLimit(limit)
		if errors.Is(err, fasthttp.ErrBodyTooLarge) {
			lingerOnClose(ctx)
			s.writeAnswer(ctx, bodyTooLarge(limit, true))
			return nil, false
		}
		if err != nil {
			s.writeAnswer(ctx, ansInvalidGzip)
			return nil, false
		}
		return out, true
	default:
		s.writeAnswer(ctx, ansBadEncoding)
		return nil, false
	}
}

// mediaType is a Content-Type without its parameters and spaces.
func mediaType(ct []byte) []byte {
	if i := bytes.IndexByte(ct, ';'); i >= 0 {
		ct = ct[:i]
	}
	return bytes.TrimSpace(ct)
}

// isJSON reports whether a Content-Type names application/json (parameters
// such as charset allowed, case-insensitive).
func isJSON(ct []byte) bool {
	return bytes.EqualFold(mediaType(ct), ctJSON)
}

// validID reports whether id is a possible order id (1–64 of
// A-Z a-z 0-9 _ - . :); anything else cannot exist, so GET answers 404
// without a query.
func validID(id []byte) bool {
	if len(id) == 0 || len(id) > 64 {
		return false
	}
	for _, c := range id {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_', c == '-', c == '.', c == ':':
		default:
			return false
		}
	}
	return true
}

// validIdempotencyKey: 1–128 visible ASCII characters.
func validIdempotencyKey(k []byte) bool {
	if len(k) == 0 || len(k) > 128 {
		return false
	}
	for _, c := range k {
		if c < 0x21 || c > 0x7e {
			return false
		}
	}
	return true
}
