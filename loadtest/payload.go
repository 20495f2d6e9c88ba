package loadtest

import "strconv"

// OrderID returns the id the generator gives order number n of run runID:
// lt_<runID>_<n>.
func OrderID(runID string, n uint64) string {
	return string(appendOrderID(make([]byte, 0, 4+len(runID)+20), runID, n))
}

func appendOrderID(dst []byte, runID string, n uint64) []byte {
	dst = append(dst, "lt_"...)
	dst = append(dst, runID...)
	dst = append(dst, '_')
	return strconv.AppendUint(dst, n, 10)
}

// payload builds the request body and Idempotency-Key of order number n.
// Both are a pure function of (run id, n), so a duplicate is rebuilt from n
// alone and is byte-for-byte the body sent the first time. Safe for
// concurrent use: it is read-only after newPayload.
type payload struct {
	runID string
	items int
	skus  []string
}

func newPayload(cfg Config) *payload {
	return &payload{runID: cfg.RunID, items: cfg.Items, skus: cfg.SKUs}
}

// appendKey appends order n's Idempotency-Key, k_<runid>_<n>: a different
// string from the id, so the server's key path is exercised on its own.
func (p *payload) appendKey(dst []byte, n uint64) []byte {
	dst = append(dst, "k_"...)
	dst = append(dst, p.runID...)
	dst = append(dst, '_')
	return strconv.AppendUint(dst, n, 10)
}

// appendBody appends order n as JSON without reflection:
//
//	{"id":"lt_<runid>_<n>","user_id":"u_<k>","currency":"EUR","items":[{"sku":"…","qty":q},…]}
//
// SKUs, quantities and the user are spread by a hash of n. No price_cents is
// sent: the server prices from its catalog. Every string written is from the
// API's id alphabet, which needs no JSON escaping.
func (p *payload) appendBody(dst []byte, n uint64) []byte {
	h := mix64(n)
	dst = append(dst, `{"id":"`...)
	dst = appendOrderID(dst, p.runID, n)
	dst = append(dst, `","user_id":"u_`...)
	dst = strconv.AppendUint(dst, h%10000, 10)
	dst = append(dst, `","currency":"EUR","items":[`...)
	first := int(h>>16) % len(p.skus)
	for i := 0; i < p.items; i++ {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, `{"sku":"`...)
		dst = append(dst, p.skus[(first+i)%len(p.skus)]...)
		dst = append(dst, `","qty":`...)
		dst = strconv.AppendUint(dst, 1+(h>>(32+uint(i%8)*4))%5, 10)
		dst = append(dst, '}')
	}
	return append(dst, "]}"...)
}

// mix64 is SplitMix64's finalizer: a cheap, well-spread hash of n.
func mix64(n uint64) uint64 {
	n += 0x9e3779b97f4a7c15
	n = (n ^ n>>30) * 0xbf58476d1ce4e5b9
	n = (n ^ n>>27) * 0x94d049bb133111eb
	return n ^ n>>31
}
