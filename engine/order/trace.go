package order

// W3C Trace Context (level 1): the traceparent and tracestate of a request,
// validated on the request path and carried with the change it produces to
// the headers of its Kafka events. Nothing here allocates.

// TraceParentLen is the length of a version-00 traceparent:
// "00-" 32 hex digits "-" 16 hex digits "-" 2 hex digits.
const TraceParentLen = 55

// MaxTraceStateLen is the longest tracestate kept: 512 characters of the
// combined header value, commas and optional whitespace included (what W3C
// asks every vendor to propagate at least). A longer one is dropped whole.
const MaxTraceStateLen = 512

// maxTraceStateMembers is W3C's limit on tracestate list members.
const maxTraceStateMembers = 32

// TraceParent is a W3C traceparent in its version-00 form, or all zero
// bytes for none. A fixed array: storing it on an order, update or event
// and copying it costs no allocation.
type TraceParent [TraceParentLen]byte

// Valid reports whether p holds a traceparent (the zero value holds none).
func (p *TraceParent) Valid() bool { return p[0] != 0 }

// String returns the traceparent, or "" for none. It allocates: for logs
// and tests.
func (p TraceParent) String() string {
	if !p.Valid() {
		return ""
	}
	return string(p[:])
}

// TraceID returns the 32 lowercase hex digits of the trace id, a view into
// p.
func (p *TraceParent) TraceID() []byte { return p[3:35] }

// ParentID returns the 16 lowercase hex digits of the parent id (the
// caller's span), a view into p.
func (p *TraceParent) ParentID() []byte { return p[36:52] }

// Sampled reports the sampled flag.
func (p *TraceParent) Sampled() bool { return hexVal(p[54])&1 == 1 }

// ParseTraceParent parses one traceparent header value per W3C Trace
// Context level 1 and returns it in version-00 form; ok is false for a
// value the spec says to ignore. Leading and trailing spaces and tabs are
// optional whitespace. Version 00 must be exactly
// 00-<32 hex>-<16 hex>-<2 hex>, lowercase, with neither id all zeros; its
// flags are kept as sent (pass-through). Version ff is invalid. A higher
// version is read forward-compatibly: at least 55 characters, the same
// first four fields, then the end or a dash; it is downgraded to version 00
// keeping the trace id, the parent id and the sampled flag only (the other
// flags are zero in version 00). It does not allocate.
func ParseTraceParent(v []byte) (TraceParent, bool) {
	var p TraceParent
	v = trimOWS(v)
	if len(v) < TraceParentLen || !isLowerHex(v[0]) || !isLowerHex(v[1]) || v[2] != '-' {
		return p, false
	}
	version := hexVal(v[0])<<4 | hexVal(v[1]) // both lowercase hex: 0-255
	switch {
	case version == 0xff:
		return p, false
	case version == 0 && len(v) != TraceParentLen:
		return p, false
	case len(v) > TraceParentLen && v[TraceParentLen] != '-':
		return p, false
	}
	if v[35] != '-' || v[52] != '-' ||
		!hexNonZero(v[3:35]) || !hexNonZero(v[36:52]) || !isLowerHex(v[53]) || !isLowerHex(v[54]) {
		return p, false
	}
	copy(p[:], v[:TraceParentLen])
	if version != 0 {
		p[0], p[1] = '0', '0'
		p[53], p[54] = '0', '0'+byte(hexVal(v[54])&1)
	}
	return p, true
}

// AppendTraceState validates the values of a request's tracestate headers
// (several headers form one list, in order, as if joined with commas) per
// W3C Trace Context level 1 and appends the list to dst: its members
// without the optional whitespace around them, empty members dropped,
// joined with commas. It returns dst unchanged and ok=false when the list
// is invalid: more than 32 members, over MaxTraceStateLen characters, a key
// or value outside the grammar, or a key twice. An empty list (no header,
// or only empty members) is valid and appends nothing. It does not allocate
// when dst has MaxTraceStateLen bytes of spare capacity.
//
// Keys: a simple key is a lowercase letter and up to 255 of a-z 0-9 _ - * /;
// a multi-tenant key is a tenant id (a lowercase letter or digit and up to
// 240 of those) "@" a system id (a lowercase letter and up to 13 of those).
// Values: 1-256 printable ASCII characters (space included) other than ','
// and '=', not ending in a space.
func AppendTraceState(dst []byte, values ...[]byte) ([]byte, bool) {
	total := 0
	for i, v := range values {
		if i > 0 {
			total++ // the comma that joins header fields
		}
		total += len(v)
	}
	if total > MaxTraceStateLen {
		return dst, false
	}
	var keys [maxTraceStateMembers][]byte
	n := 0
	start := len(dst)
	for _, v := range values {
		for v != nil {
			member := v
			if i := indexByte(v, ','); i >= 0 {
				member, v = v[:i], v[i+1:]
			} else {
				v = nil
			}
			member = trimOWS(member)
			if len(member) == 0 {
				continue
			}
			eq := indexByte(member, '=')
			if eq < 0 || n == maxTraceStateMembers {
				return dst[:start], false
			}
			key, val := member[:eq], member[eq+1:]
			if !validStateKey(key) || !validStateValue(val) {
				return dst[:start], false
			}
			for _, k := range keys[:n] {
				if string(k) == string(key) {
					return dst[:start], false
				}
			}
			keys[n] = key
			n++
			if len(dst) > start {
				dst = append(dst, ',')
			}
			dst = append(dst, member...)
		}
	}
	return dst, true
}

// validStateKey checks a tracestate key (see AppendTraceState).
func validStateKey(k []byte) bool {
	at := indexByte(k, '@')
	if at < 0 {
		return len(k) >= 1 && len(k) <= 256 && isLCAlpha(k[0]) && keyChars(k[1:])
	}
	tenant, system := k[:at], k[at+1:]
	return len(tenant) >= 1 && len(tenant) <= 241 && (isLCAlpha(tenant[0]) || isDigit(tenant[0])) && keyChars(tenant[1:]) &&
		len(system) >= 1 && len(system) <= 14 && isLCAlpha(system[0]) && keyChars(system[1:])
}

func keyChars(b []byte) bool {
	for _, c := range b {
		if !isLCAlpha(c) && !isDigit(c) && c != '_' && c != '-' && c != '*' && c != '/' {
			return false
		}
	}
	return true
}

// validStateValue checks a tracestate value: 0*255(chr) nblk-chr, where
// chr is 0x20-0x7E but ',' and '=', and nblk-chr is chr but space.
func validStateValue(v []byte) bool {
	if len(v) == 0 || len(v) > 256 || v[len(v)-1] == ' ' {
		return false
	}
	for _, c := range v {
		if c < 0x20 || c > 0x7e || c == ',' || c == '=' {
			return false
		}
	}
	return true
}

// trimOWS drops spaces and tabs at both ends.
func trimOWS(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

func indexByte(b []byte, c byte) int {
	for i, x := range b {
		if x == c {
			return i
		}
	}
	return -1
}

// hexNonZero reports whether b is lowercase hex digits, not all '0'.
func hexNonZero(b []byte) bool {
	nonZero := false
	for _, c := range b {
		if !isLowerHex(c) {
			return false
		}
		nonZero = nonZero || c != '0'
	}
	return nonZero
}

func isLowerHex(c byte) bool { return isDigit(c) || c >= 'a' && c <= 'f' }
func isLCAlpha(c byte) bool  { return c >= 'a' && c <= 'z' }
