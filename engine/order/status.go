package order

var (
	statusFields       = [...]string{"status"}
	statusUpdateFields = [...]string{"id", "status"}
)

// DecodeStatus decodes the body of POST /v1/orders/{id}/status,
// {"status":"paid"}, with the same strictness as DecodeOrder: unknown fields
// are ignored (but must be well-formed, at most 32 levels deep), duplicate
// keys, null, a wrong type, trailing data and invalid UTF-8 are refused, and
// a status name that is not one of the six is invalid_value on field
// "status". Errors are *ValidationError (HTTP 400). It keeps no reference to
// body, does not allocate on success and is safe for concurrent use.
func DecodeStatus(body []byte) (Status, error) {
	d := decoder{s: scanner{buf: body}}
	_, st, err := d.status(false, nil)
	if err != nil {
		return 0, err
	}
	return st, nil
}

// DecodeStatusUpdate decodes one item of the bulk status endpoint (POST
// /v1/status-updates), {"id":"ord_1","status":"paid"}, with the same
// strictness as DecodeStatus. id is required and must be 1-64 characters of
// A-Z a-z 0-9 _ - . : (as an order id); its errors are on field "id", and a
// missing id is reported before a missing status. Keys that differ from
// "id" or "status" only in case are refused.
//
// The returned id is a sub-slice of body when the value has no escapes
// (valid as long as body is: for a fasthttp body, until the handler
// returns); an escaped id is decoded and appended to dst, and the result is
// that part of the returned slice. dst may be nil; with cap(dst)-len(dst)
// >= MaxIDLen DecodeStatusUpdate does not allocate on success. Errors are
// *ValidationError (HTTP 400). Safe for concurrent use.
func DecodeStatusUpdate(body, dst []byte) (id []byte, st Status, err error) {
	d := decoder{s: scanner{buf: body}}
	id, st, verr := d.status(true, dst)
	if verr != nil {
		return nil, 0, verr
	}
	return id, st, nil
}

// status decodes a status body; withID adds the required "id" field of the
// bulk items (decoded into dst when escaped).
func (d *decoder) status(withID bool, dst []byte) (id []byte, st Status, err *ValidationError) {
	s := &d.s
	switch c := s.peek(); {
	case c == '{':
		s.pos++
	case c == 0 && s.pos >= len(s.buf):
		return nil, 0, verr(CodeInvalidJSON, "", "empty body")
	case isValueStart(c):
		return nil, 0, d.notAnObject()
	default:
		return nil, 0, errSyntax
	}
	names := statusFields[:]
	if withID {
		names = statusUpdateFields[:]
	}
	seen, seenID := false, false
	if s.peek() == '}' {
		s.pos++
	} else {
		if c := s.peek(); c != '"' {
			if c == 0 {
				return nil, 0, errEOF
			}
			return nil, 0, errSyntax
		}
		for {
			key, err := d.key()
			if err != nil {
				return nil, 0, err
			}
			switch {
			case string(key) == "status":
				if seen {
					return nil, 0, verr(CodeDuplicateKey, "status", "duplicate key")
				}
				seen = true
				if st, err = d.statusValue(); err != nil {
					return nil, 0, withField(err, "status")
				}
			case withID && string(key) == "id":
				if seenID {
					return nil, 0, verr(CodeDuplicateKey, "id", "duplicate key")
				}
				seenID = true
				if id, err = d.idValue(dst); err != nil {
					return nil, 0, withField(err, "id")
				}
			default:
				if n := foldsTo(key, names); n != "" {
					return nil, 0, verr(CodeInvalidValue, n, errKeyCase)
				}
				if err := s.skip(1); err != nil {
					return nil, 0, err
				}
			}
			end, err := d.next('}')
			if err != nil {
				return nil, 0, err
			}
			if end {
				break
			}
		}
	}
	if err := s.end(); err != nil {
		return nil, 0, err
	}
	switch {
	case withID && !seenID:
		return nil, 0, verr(CodeMissingField, "id", "required")
	case !seen:
		return nil, 0, verr(CodeMissingField, "status", "required")
	}
	return id, st, nil
}

var errBadID = &ValidationError{Code: CodeInvalidValue, Field: "id",
	Message: "must be 1-64 characters of A-Z a-z 0-9 _ - . :"}

// maxEscapedIDLen bounds the raw length of a valid id: each of its at most
// MaxIDLen ASCII characters is spelled in at most 6 bytes (\u0041).
const maxEscapedIDLen = 6 * MaxIDLen

// idValue reads a required order id: a view into the body, or, when
// escaped, the id unescaped and appended to dst.
func (d *decoder) idValue(dst []byte) ([]byte, *ValidationError) {
	s := &d.s
	switch s.peek() {
	case '"':
	case 0:
		return nil, errEOF
	case 'n':
		if err := s.literal("null"); err != nil {
			return nil, err
		}
		return nil, verr(CodeNullValue, "id", "must not be null")
	default:
		return nil, d.wrongType("id", "must be a string")
	}
	raw, esc, err := s.str()
	if err != nil {
		return nil, err
	}
	if !esc {
		if !validID(raw) {
			return nil, errBadID
		}
		return raw[:len(raw):len(raw)], nil
	}
	if len(raw) > maxEscapedIDLen {
		return nil, errBadID
	}
	var buf [maxEscapedIDLen]byte
	v := buf[:unescape(buf[:], raw)]
	if !validID(v) {
		return nil, errBadID
	}
	n := len(dst)
	dst = append(dst, v...)
	return dst[n:len(dst):len(dst)], nil
}

var errBadStatus = &ValidationError{Code: CodeInvalidValue, Field: "status",
	Message: "must be one of created, paid, assembling, delivering, delivered, cancelled"}

func (d *decoder) statusValue() (Status, *ValidationError) {
	s := &d.s
	switch s.peek() {
	case '"':
	case 0:
		return 0, errEOF
	case 'n':
		if err := s.literal("null"); err != nil {
			return 0, err
		}
		return 0, verr(CodeNullValue, "status", "must not be null")
	default:
		return 0, d.wrongType("status", "must be a string")
	}
	raw, esc, err := s.str()
	if err != nil {
		return 0, err
	}
	if esc {
		n := unescape(d.keyBuf[:], raw)
		if n < 0 {
			return 0, errBadStatus
		}
		raw = d.keyBuf[:n]
	}
	switch string(raw) {
	case "created":
		return StatusCreated, nil
	case "paid":
		return StatusPaid, nil
	case "assembling":
		return StatusAssembling, nil
	case "delivering":
		return StatusDelivering, nil
	case "delivered":
		return StatusDelivered, nil
	case "cancelled":
		return StatusCancelled, nil
	}
	return 0, errBadStatus
}
