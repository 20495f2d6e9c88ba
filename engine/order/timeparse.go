package order

import "time"

// parseRFC3339 parses an RFC 3339 time the way time.Parse(time.RFC3339Nano, s)
// does on its strict fast path (Go's time.parseRFC3339):
// YYYY-MM-DDTHH:MM:SS[.digits](Z|+HH:MM|-HH:MM), upper-case T and Z, fields
// in range (day checked against the month, second 00-59, offset hour 00-23),
// any number of fractional digits with those past the ninth ignored. It
// refuses the lax forms time.Parse's general fallback lets through (one-digit
// hours, ',' before the fraction, offsets of 24 hours or more), and times
// whose UTC year is outside 1-9999 (RFC 3339 cannot write them and
// PostgreSQL has no year 0). The result is in UTC. It does not allocate
// (time.Parse does for a numeric offset: it builds a FixedZone).
// FuzzParseRFC3339 checks it against time.Parse.
func parseRFC3339(s []byte) (time.Time, bool) {
	if len(s) < len("2006-01-02T15:04:05Z") {
		return time.Time{}, false
	}
	if s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':' {
		return time.Time{}, false
	}
	year, ok1 := num(s[0:4])
	month, ok2 := num(s[5:7])
	day, ok3 := num(s[8:10])
	hour, ok4 := num(s[11:13])
	minute, ok5 := num(s[14:16])
	sec, ok6 := num(s[17:19])
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6) ||
		month < 1 || month > 12 || day < 1 || day > daysIn(month, year) ||
		hour > 23 || minute > 59 || sec > 59 {
		return time.Time{}, false
	}
	s = s[19:]
	nsec := 0
	if len(s) >= 2 && s[0] == '.' && isDigit(s[1]) {
		n := 1
		scale := 100_000_000
		for ; n < len(s) && isDigit(s[n]); n++ {
			nsec += int(s[n]-'0') * scale
			scale /= 10
		}
		s = s[n:]
	}
	t := time.Date(year, time.Month(month), day, hour, minute, sec, nsec, time.UTC)
	switch {
	case len(s) == 1 && s[0] == 'Z':
	case len(s) == 6 && (s[0] == '+' || s[0] == '-') && s[3] == ':':
		oh, ok1 := num(s[1:3])
		om, ok2 := num(s[4:6])
		if !ok1 || !ok2 || oh > 23 || om > 59 {
			return time.Time{}, false
		}
		off := time.Duration(oh)*time.Hour + time.Duration(om)*time.Minute
		if s[0] == '+' {
			off = -off
		}
		t = t.Add(off)
	default:
		return time.Time{}, false
	}
	if y := t.Year(); y < 1 || y > 9999 {
		return time.Time{}, false
	}
	return t, true
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// num parses a short run of ASCII digits.
func num(b []byte) (int, bool) {
	n := 0
	for _, c := range b {
		if !isDigit(c) {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

func daysIn(month, year int) int {
	switch month {
	case 2:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}
