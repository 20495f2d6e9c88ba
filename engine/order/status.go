package order

var statusFields = [...]string{"status"}

// DecodeStatus decodes the body of POST /v1/orders/{id}/status,
// {"status":"paid"}, with the same strictness as DecodeOrder: unknown fields
// are ignored (but must be well-formed, at most 32 levels deep), duplicate
// keys, null, a wrong type, trailing data and invalid UTF-8 are refused, and
// a status name that is not one of the six is invalid_value on field
// "status". Errors are *ValidationError (HTTP 400). It keeps no reference to
// body, does not allocate on success and is safe for concurrent use.
func DecodeStatus(body []byte) (Status, error) {
	d := decoder{s: scanner{buf: body}}
	st, err := d.status()
	if err != nil {
		return 0, err
	}
	return st, nil
}

func (d *decoder) status() (Status, *ValidationError) {
	s := &d.s
	switch c := s.peek(); {
	case c == '{':
		s.pos++
	case c == 0 && s.pos >= len(s.buf):
		return 0, verr(CodeInvalidJSON, "", "empty body")
	case isValueStart(c):
		return 0, d.notAnObject()
	default:
		return 0, errSyntax
	}
	var st Status
	seen := false
	if s.peek() == '}' {
		s.pos++
	} else {
		if c := s.peek(); c != '"' {
			if c == 0 {
				return 0, errEOF
			}
			return 0, errSyntax
		}
		for {
			key, err := d.key()
			if err != nil {
				return 0, err
			}
			if string(key) == "status" {
				if seen {
					return 0, verr(CodeDuplicateKey, "status", "duplicate key")
				}
				seen = true
				if st, err = d.statusValue(); err != nil {
					return 0, withField(err, "status")
				}
			} else {
				if foldsTo(key, statusFields[:]) != "" {
					return 0, verr(CodeInvalidValue, "status", errKeyCase)
				}
				if err := s.skip(1); err != nil {
					return 0, err
				}
			}
			end, err := d.next('}')
			if err != nil {
				return 0, err
			}
			if end {
				break
			}
		}
	}
	if err := s.end(); err != nil {
		return 0, err
	}
	if !seen {
		return 0, verr(CodeMissingField, "status", "required")
	}
	return st, nil
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
