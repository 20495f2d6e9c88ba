package order

import "unicode/utf8"

// This file holds the strict JSON scanner the decoders are built on. It walks
// the body by hand instead of through a jsoniter Iterator: jsoniter v1.1.12's
// only exported way to read object keys without allocating is its
// reflection struct decoder (ReadObject, ReadObjectCB and ReadMapCB build a
// string per key; readObjectStart and readFieldHash are unexported), and
// every rule the contract needs (UTF-8, control characters, lone surrogates,
// exact integers, bounded depth, trailing data) has to be checked on top of
// it anyway. decode_jsoniter.go does exactly that and measures 2-3x slower;
// see DecodeOrder. Nothing here allocates except on the error path.

// maxDepth bounds the nesting of arrays and objects, counting the top-level
// object as 1. Unknown fields are skipped recursively, so this also bounds
// the skipper's stack.
const maxDepth = 32

type scanner struct {
	buf []byte
	pos int
}

var (
	errEOF       = &ValidationError{Code: CodeInvalidJSON, Message: "unexpected end of JSON input"}
	errSyntax    = &ValidationError{Code: CodeInvalidJSON, Message: "invalid JSON syntax"}
	errCtlInStr  = &ValidationError{Code: CodeInvalidJSON, Message: "unescaped control character in string"}
	errBadEscape = &ValidationError{Code: CodeInvalidJSON, Message: "invalid escape sequence in string"}
	errBadUTF8   = &ValidationError{Code: CodeInvalidUTF8, Message: "string is not valid UTF-8"}
	errSurrogate = &ValidationError{Code: CodeInvalidUTF8, Message: "string holds an unpaired UTF-16 surrogate escape"}
	errBadNumber = &ValidationError{Code: CodeInvalidJSON, Message: "invalid number"}
	errTooDeep   = &ValidationError{Code: CodeTooDeep, Message: "JSON nests deeper than 32 levels"}
	errTrailing  = &ValidationError{Code: CodeTrailingData, Message: "data after the JSON value"}
	errKeyCase   = "field names are case-sensitive: this name differs from a known field only in case"
)

// withField returns e with Field set to field, copying shared errors.
func withField(e *ValidationError, field string) *ValidationError {
	if e == nil || e.Field != "" || field == "" {
		return e
	}
	c := *e
	c.Field = field
	return &c
}

// ws skips JSON whitespace.
func (s *scanner) ws() {
	for s.pos < len(s.buf) {
		switch s.buf[s.pos] {
		case ' ', '\t', '\n', '\r':
			s.pos++
		default:
			return
		}
	}
}

// peek returns the next non-whitespace byte without consuming it, or 0 at EOF.
func (s *scanner) peek() byte {
	s.ws()
	if s.pos >= len(s.buf) {
		return 0
	}
	return s.buf[s.pos]
}

// expect consumes the next non-whitespace byte, which must be c.
func (s *scanner) expect(c byte) *ValidationError {
	switch s.peek() {
	case c:
		s.pos++
		return nil
	case 0:
		return errEOF
	}
	return errSyntax
}

// literal consumes lit ("null", "true", "false") at pos.
func (s *scanner) literal(lit string) *ValidationError {
	if len(s.buf)-s.pos < len(lit) {
		if string(s.buf[s.pos:]) == lit[:len(s.buf)-s.pos] {
			return errEOF
		}
		return errSyntax
	}
	if string(s.buf[s.pos:s.pos+len(lit)]) != lit {
		return errSyntax
	}
	s.pos += len(lit)
	return nil
}

// str scans the string whose opening quote is at pos. It returns the raw
// bytes between the quotes (a view into buf) and whether they hold a
// backslash escape. It validates everything JSON and we require of a string:
// no raw control characters, valid escapes, valid UTF-8, and surrogate
// escapes only in high+low pairs.
func (s *scanner) str() (raw []byte, escaped bool, err *ValidationError) {
	buf := s.buf
	start := s.pos + 1
	i := start
	for {
		// Fast path: printable ASCII other than '"' and '\\'.
		for i < len(buf) && plainASCII[buf[i]] {
			i++
		}
		if i >= len(buf) {
			return nil, false, errEOF
		}
		switch c := buf[i]; {
		case c == '"':
			s.pos = i + 1
			return buf[start:i], escaped, nil
		case c == '\\':
			escaped = true
			n, e := escapeLen(buf[i:])
			if e != nil {
				return nil, false, e
			}
			i += n
		case c < 0x20:
			return nil, false, errCtlInStr
		default:
			r, size := utf8.DecodeRune(buf[i:])
			if r == utf8.RuneError && size == 1 {
				if !utf8.FullRune(buf[i:]) {
					return nil, false, errEOF
				}
				return nil, false, errBadUTF8
			}
			i += size
		}
	}
}

// plainASCII marks the bytes a string may hold as they are, without a
// closer look: printable ASCII other than '"' and '\\'.
var plainASCII = func() (t [256]bool) {
	for c := 0x20; c < 0x80; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// escapeLen validates the escape sequence at b[0] == '\\' and returns its
// length: 2 for \n and friends, 6 for \uXXXX, 12 for a surrogate pair.
func escapeLen(b []byte) (int, *ValidationError) {
	if len(b) < 2 {
		return 0, errEOF
	}
	switch b[1] {
	case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
		return 2, nil
	case 'u':
	default:
		return 0, errBadEscape
	}
	r, e := hex4(b[2:])
	if e != nil {
		return 0, e
	}
	switch {
	case r < 0xD800 || r > 0xDFFF:
		return 6, nil
	case r >= 0xDC00: // low surrogate first
		return 0, errSurrogate
	}
	// High surrogate: a low one must follow.
	if len(b) < 8 {
		if len(b) == 6 || (len(b) == 7 && b[6] == '\\') {
			return 0, errEOF
		}
		return 0, errSurrogate
	}
	if b[6] != '\\' || b[7] != 'u' {
		return 0, errSurrogate
	}
	r2, e := hex4(b[8:])
	if e != nil {
		return 0, e
	}
	if r2 < 0xDC00 || r2 > 0xDFFF {
		return 0, errSurrogate
	}
	return 12, nil
}

func hex4(b []byte) (rune, *ValidationError) {
	if len(b) < 4 {
		for _, c := range b {
			if hexVal(c) < 0 {
				return 0, errBadEscape
			}
		}
		return 0, errEOF
	}
	var r rune
	for _, c := range b[:4] {
		v := hexVal(c)
		if v < 0 {
			return 0, errBadEscape
		}
		r = r<<4 | rune(v)
	}
	return r, nil
}

func hexVal(c byte) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case 'a' <= c && c <= 'f':
		return int(c-'a') + 10
	case 'A' <= c && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

// unescape decodes raw, a string body that str validated, into dst and
// returns the number of bytes written. Decoding never grows a string, so
// len(dst) >= len(raw) is enough; it returns -1 if dst is too short.
func unescape(dst, raw []byte) int {
	n := 0
	for i := 0; i < len(raw); {
		c := raw[i]
		if c != '\\' {
			if n >= len(dst) {
				return -1
			}
			dst[n] = c
			n++
			i++
			continue
		}
		var r rune
		switch raw[i+1] {
		case 'u':
			r, _ = hex4(raw[i+2:])
			i += 6
			if r >= 0xD800 && r < 0xDC00 {
				r2, _ := hex4(raw[i+2:])
				r = 0x10000 + (r-0xD800)<<10 + (r2 - 0xDC00)
				i += 6
			}
		case 'b':
			r, i = '\b', i+2
		case 'f':
			r, i = '\f', i+2
		case 'n':
			r, i = '\n', i+2
		case 'r':
			r, i = '\r', i+2
		case 't':
			r, i = '\t', i+2
		default: // '"', '\\', '/'
			r, i = rune(raw[i+1]), i+2
		}
		if len(dst)-n < utf8.RuneLen(r) {
			return -1
		}
		n += utf8.EncodeRune(dst[n:], r)
	}
	return n
}

// number scans the JSON number at pos and reports whether it is an integer
// (no fraction, no exponent).
func (s *scanner) number() (raw []byte, isInt bool, err *ValidationError) {
	buf := s.buf
	start := s.pos
	i := start
	if i < len(buf) && buf[i] == '-' {
		i++
	}
	switch {
	case i >= len(buf):
		return nil, false, errEOF
	case buf[i] == '0':
		i++
	case '1' <= buf[i] && buf[i] <= '9':
		for i < len(buf) && '0' <= buf[i] && buf[i] <= '9' {
			i++
		}
	default:
		return nil, false, errBadNumber
	}
	isInt = true
	if i < len(buf) && buf[i] == '.' {
		isInt = false
		i++
		d := i
		for i < len(buf) && '0' <= buf[i] && buf[i] <= '9' {
			i++
		}
		if i == d {
			if i >= len(buf) {
				return nil, false, errEOF
			}
			return nil, false, errBadNumber
		}
	}
	if i < len(buf) && (buf[i] == 'e' || buf[i] == 'E') {
		isInt = false
		i++
		if i < len(buf) && (buf[i] == '+' || buf[i] == '-') {
			i++
		}
		d := i
		for i < len(buf) && '0' <= buf[i] && buf[i] <= '9' {
			i++
		}
		if i == d {
			if i >= len(buf) {
				return nil, false, errEOF
			}
			return nil, false, errBadNumber
		}
	}
	s.pos = i
	return buf[start:i], isInt, nil
}

// skip validates and skips the value at pos (after whitespace). depth is the
// nesting level of the container holding the value.
func (s *scanner) skip(depth int) *ValidationError {
	switch s.peek() {
	case 0:
		return errEOF
	case '"':
		_, _, err := s.str()
		return err
	case 'n':
		return s.literal("null")
	case 't':
		return s.literal("true")
	case 'f':
		return s.literal("false")
	case '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		_, _, err := s.number()
		return err
	case '[':
		if depth+1 > maxDepth {
			return errTooDeep
		}
		s.pos++
		if s.peek() == ']' {
			s.pos++
			return nil
		}
		for {
			if err := s.skip(depth + 1); err != nil {
				return err
			}
			switch s.peek() {
			case ',':
				s.pos++
			case ']':
				s.pos++
				return nil
			case 0:
				return errEOF
			default:
				return errSyntax
			}
		}
	case '{':
		if depth+1 > maxDepth {
			return errTooDeep
		}
		s.pos++
		if s.peek() == '}' {
			s.pos++
			return nil
		}
		for {
			switch s.peek() {
			case '"':
			case 0:
				return errEOF
			default:
				return errSyntax
			}
			if _, _, err := s.str(); err != nil {
				return err
			}
			if err := s.expect(':'); err != nil {
				return err
			}
			if err := s.skip(depth + 1); err != nil {
				return err
			}
			switch s.peek() {
			case ',':
				s.pos++
			case '}':
				s.pos++
				return nil
			case 0:
				return errEOF
			default:
				return errSyntax
			}
		}
	}
	return errSyntax
}

// end checks that only whitespace follows the top-level value.
func (s *scanner) end() *ValidationError {
	if s.peek() != 0 || s.pos < len(s.buf) {
		return errTrailing
	}
	return nil
}

// isValueStart reports whether c can start a JSON value.
func isValueStart(c byte) bool {
	switch c {
	case '"', '{', '[', 't', 'f', 'n', '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		return true
	}
	return false
}
