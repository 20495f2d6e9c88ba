package order

// The bulk endpoints (POST /v1/order-batches, /v1/status-updates) take NDJSON
// or a JSON array. The splitters below only find the items' boundaries; each
// item is then decoded on its own (DecodeOrder, DecodeStatus), so one bad
// item never affects the others. The whole body is an error only when it
// cannot be split.
//
// Limits: the splitters take no maximum. The callback sees each item's
// index and returns false to stop: the caller enforces its item limit
// (10,000 by default, api/openapi.yaml) by stopping at index == max and answering as it
// sees fit; the splitter then returns nil at once without reading further.

var (
	errNoItems  = &ValidationError{Code: CodeInvalidValue, Message: "the body holds no items"}
	errNotArray = &ValidationError{Code: CodeWrongType, Message: "the body must be a JSON array"}
	errEmptyEl  = &ValidationError{Code: CodeInvalidJSON, Message: "empty array element"}
)

// SplitNDJSON calls fn for each non-blank line of body (lines end in "\n" or
// "\r\n"; surrounding spaces and tabs are trimmed) with its index among the
// items (blank lines are not counted) and the line's bytes, a view into
// body valid as long as body is. fn returns false to stop early; SplitNDJSON
// then returns nil. The lines are not parsed: each is one item. The only
// error is a body with no item at all (*ValidationError invalid_value).
// It does not allocate.
func SplitNDJSON(body []byte, fn func(index int, item []byte) bool) error {
	index := 0
	for len(body) > 0 {
		line := body
		rest := []byte(nil)
		for i, c := range body {
			if c == '\n' {
				line, rest = body[:i], body[i+1:]
				break
			}
		}
		body = rest
		line = trimSpace(line)
		if len(line) == 0 {
			continue
		}
		if !fn(index, line) {
			return nil
		}
		index++
	}
	if index == 0 {
		return errNoItems
	}
	return nil
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && isSpace(b[0]) {
		b = b[1:]
	}
	for len(b) > 0 && isSpace(b[len(b)-1]) {
		b = b[:len(b)-1]
	}
	return b
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }

// SplitArray calls fn for each element of the JSON array body with its
// index and raw bytes (whitespace trimmed; a view into body valid as long as
// body is), without decoding or validating the element: an element that is
// not valid JSON is the decoder's to refuse. fn returns false to stop early;
// SplitArray then returns nil.
//
// The body as a whole is an error (*ValidationError) when the elements'
// boundaries cannot be found: not an array (wrong_type), unterminated
// strings or brackets, empty elements, a missing ',' (invalid_json), data
// after the array (trailing_data), or no element at all (invalid_value).
// The body is checked completely before fn is first called, so on error fn
// was never called (nothing was submitted). Nesting is counted, not
// stacked, so depth costs neither stack nor memory; bracket kinds are not
// matched here. It does not allocate.
func SplitArray(body []byte, fn func(index int, item []byte) bool) error {
	if err := splitArray(body, nil); err != nil {
		return err
	}
	if err := splitArray(body, fn); err != nil {
		return err // unreachable: the first pass found no error
	}
	return nil
}

// splitArray walks the array; fn == nil only validates.
func splitArray(body []byte, fn func(index int, item []byte) bool) *ValidationError {
	s := scanner{buf: body}
	switch c := s.peek(); {
	case c == '[':
		s.pos++
	case c == 0 && s.pos >= len(body):
		return verr(CodeInvalidJSON, "", "empty body")
	default:
		return errNotArray
	}
	if s.peek() == ']' {
		s.pos++
		if err := s.end(); err != nil {
			return err
		}
		return errNoItems
	}
	for index := 0; ; index++ {
		s.ws()
		start := s.pos
		end, err := elementEnd(body, start)
		if err != nil {
			return err
		}
		s.pos = end
		if fn != nil && !fn(index, body[start:end]) {
			return nil
		}
		switch s.peek() {
		case ',':
			s.pos++
		case ']':
			s.pos++
			return s.end()
		case 0:
			if s.pos >= len(body) {
				return errEOF
			}
			return errSyntax
		default:
			return errSyntax
		}
	}
}

// elementEnd returns the end of the array element starting at i.
func elementEnd(b []byte, i int) (int, *ValidationError) {
	if i >= len(b) {
		return 0, errEOF
	}
	switch b[i] {
	case ',', ']':
		return 0, errEmptyEl
	case '}':
		return 0, errSyntax
	case '"':
		return strEnd(b, i)
	case '{', '[':
		depth := 0
		for i < len(b) {
			switch b[i] {
			case '"':
				end, err := strEnd(b, i)
				if err != nil {
					return 0, err
				}
				i = end
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1, nil
				}
			}
			i++
		}
		return 0, errEOF
	}
	// A scalar: up to the next delimiter; the caller checks what follows.
	for i < len(b) && b[i] != ',' && b[i] != ']' && !isSpace(b[i]) {
		i++
	}
	return i, nil
}

// strEnd returns the index after the closing quote of the string at i.
func strEnd(b []byte, i int) (int, *ValidationError) {
	for i++; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1, nil
		}
	}
	return 0, errEOF
}
