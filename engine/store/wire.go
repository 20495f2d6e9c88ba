package store

import (
	"encoding/binary"
	"time"

	"github.com/jackc/pgx/v5/pgtype"

	"github.com/orderflow/orderflow/engine/order"
)

// wireParams encodes writeOrdersSQL's sixteen array parameters (and its two
// scalar ones) in
// PostgreSQL's binary array format, straight from the orders into one
// reused buffer, for PgConn.ExecPrepared. pgx's own array encoding boxes
// every element in an interface (FlatArray.Index), one allocation per
// element: 17 per 3-item order, 96% of the group commit's allocations
// (BenchmarkWriteOrders, -memprofile). This costs none once the buffer has
// grown. TestWireParamsMatchPgx decodes every column with pgx to pin the
// format.
type wireParams struct {
	uniq   []*order.Order // the first order of each id, in set order
	buf    []byte
	spans  [][2]int // each parameter's bytes in buf
	values [][]byte // views of buf, for ExecPrepared
}

// writeOrdersFormats asks for every parameter and result column in binary.
var writeOrdersFormats = []int16{pgtype.BinaryFormatCode}

// Element type OIDs of the arrays.
const (
	oidText        = pgtype.TextOID
	oidInt4        = pgtype.Int4OID
	oidInt8        = pgtype.Int8OID
	oidTimestamptz = pgtype.TimestamptzOID
	oidBytea       = pgtype.ByteaOID
)

// fill encodes set (sorted by id) and the Ticket (pub, ticket: $17, $18)
// and returns the parameter values, views of p's buffer valid until the
// next fill or reset. Only the first order of each id goes in: the others
// are duplicates or conflicts of it, for the lookup to classify.
func (p *wireParams) fill(set []*order.Order, pub int32, ticket int64) [][]byte {
	p.reset()
	items, keyNull, parentNull, stateNull := 0, false, false, false
	for i, o := range set {
		if i > 0 && o.ID == set[i-1].ID {
			continue
		}
		p.uniq = append(p.uniq, o)
		items += len(o.Items)
		keyNull = keyNull || o.IdempotencyKey == ""
		parentNull = parentNull || !o.TraceParent.Valid()
		stateNull = stateNull || o.TraceState == ""
	}
	n := len(p.uniq)
	// $1–$8: the orders.
	s := p.begin(oidText, n, false)
	for _, o := range p.uniq {
		p.text(o.ID)
	}
	p.end(s)
	s = p.begin(oidText, n, false)
	for _, o := range p.uniq {
		p.text(o.UserID)
	}
	p.end(s)
	s = p.begin(oidText, n, false)
	for _, o := range p.uniq {
		p.text(o.Currency)
	}
	p.end(s)
	s = p.begin(oidInt8, n, false)
	for _, o := range p.uniq {
		p.int8(o.TotalCents)
	}
	p.end(s)
	s = p.begin(oidTimestamptz, n, false)
	for _, o := range p.uniq {
		p.timestamptz(o.CreatedAt)
	}
	p.end(s)
	s = p.begin(oidTimestamptz, n, false)
	for _, o := range p.uniq {
		p.timestamptz(o.ReceivedAt)
	}
	p.end(s)
	s = p.begin(oidText, n, keyNull)
	for _, o := range p.uniq {
		if o.IdempotencyKey == "" {
			p.null()
		} else {
			p.text(o.IdempotencyKey)
		}
	}
	p.end(s)
	s = p.begin(oidInt8, n, false)
	for _, o := range p.uniq {
		p.int8(int64(o.Hash))
	}
	p.end(s)
	// $9–$13: the items.
	s = p.begin(oidText, items, false)
	for _, o := range p.uniq {
		for range o.Items {
			p.text(o.ID)
		}
	}
	p.end(s)
	s = p.begin(oidInt4, items, false)
	for _, o := range p.uniq {
		for line := range o.Items {
			p.int4(int32(line))
		}
	}
	p.end(s)
	s = p.begin(oidText, items, false)
	for _, o := range p.uniq {
		for i := range o.Items {
			p.text(o.Items[i].SKU)
		}
	}
	p.end(s)
	s = p.begin(oidInt4, items, false)
	for _, o := range p.uniq {
		for i := range o.Items {
			p.int4(qty32(o.Items[i].Qty))
		}
	}
	p.end(s)
	s = p.begin(oidInt8, items, false)
	for _, o := range p.uniq {
		for i := range o.Items {
			p.int8(o.Items[i].PriceCents)
		}
	}
	p.end(s)
	// $14–$16: the order.created events' payloads and trace context.
	s = p.begin(oidBytea, n, false)
	for _, o := range p.uniq {
		p.bytes(o.Event)
	}
	p.end(s)
	s = p.begin(oidText, n, parentNull)
	for _, o := range p.uniq {
		if o.TraceParent.Valid() {
			p.bytes(o.TraceParent[:])
		} else {
			p.null()
		}
	}
	p.end(s)
	s = p.begin(oidText, n, stateNull)
	for _, o := range p.uniq {
		if o.TraceState == "" {
			p.null()
		} else {
			p.text(o.TraceState)
		}
	}
	p.end(s)
	// $17, $18: the Ticket, scalars.
	s = len(p.buf)
	p.buf = binary.BigEndian.AppendUint32(p.buf, uint32(pub))
	p.end(s)
	s = len(p.buf)
	p.buf = binary.BigEndian.AppendUint64(p.buf, uint64(ticket))
	p.end(s)

	for _, sp := range p.spans {
		p.values = append(p.values, p.buf[sp[0]:sp[1]:sp[1]])
	}
	return p.values
}

// reset drops the views of the orders p holds.
func (p *wireParams) reset() {
	clear(p.uniq)
	p.uniq = p.uniq[:0]
	p.buf, p.spans = p.buf[:0], p.spans[:0]
	clear(p.values)
	p.values = p.values[:0]
}

// begin writes a one-dimensional array's header (an empty array has no
// dimension) and returns where the parameter starts.
func (p *wireParams) begin(elem uint32, n int, hasNull bool) int {
	start := len(p.buf)
	ndim, flags := uint32(1), uint32(0)
	if n == 0 {
		ndim = 0
	}
	if hasNull {
		flags = 1
	}
	p.buf = binary.BigEndian.AppendUint32(p.buf, ndim)
	p.buf = binary.BigEndian.AppendUint32(p.buf, flags)
	p.buf = binary.BigEndian.AppendUint32(p.buf, elem)
	if n > 0 {
		p.buf = binary.BigEndian.AppendUint32(p.buf, uint32(n))
		p.buf = binary.BigEndian.AppendUint32(p.buf, 1) // lower bound
	}
	return start
}

func (p *wireParams) end(start int) { p.spans = append(p.spans, [2]int{start, len(p.buf)}) }

func (p *wireParams) text(s string) {
	p.buf = binary.BigEndian.AppendUint32(p.buf, uint32(len(s)))
	p.buf = append(p.buf, s...)
}

func (p *wireParams) bytes(b []byte) {
	p.buf = binary.BigEndian.AppendUint32(p.buf, uint32(len(b)))
	p.buf = append(p.buf, b...)
}

func (p *wireParams) null() { p.buf = binary.BigEndian.AppendUint32(p.buf, 0xFFFFFFFF) }

func (p *wireParams) int4(v int32) {
	p.buf = binary.BigEndian.AppendUint32(p.buf, 4)
	p.buf = binary.BigEndian.AppendUint32(p.buf, uint32(v))
}

func (p *wireParams) int8(v int64) {
	p.buf = binary.BigEndian.AppendUint32(p.buf, 8)
	p.buf = binary.BigEndian.AppendUint64(p.buf, uint64(v))
}

// microsecFromUnixEpochToY2K: PostgreSQL counts timestamps in microseconds
// from 2000-01-01 UTC.
const microsecFromUnixEpochToY2K = 946684800 * 1_000_000

func (p *wireParams) timestamptz(t time.Time) {
	us := t.Unix()*1_000_000 + int64(t.Nanosecond())/1000 - microsecFromUnixEpochToY2K
	p.int8(us)
}
