package order

import (
	"testing"
	"time"
)

func TestParseRFC3339(t *testing.T) {
	f := func(in string, ok bool) {
		t.Helper()
		got, gotOK := parseRFC3339([]byte(in))
		if gotOK != ok {
			t.Fatalf("parseRFC3339(%q) ok = %v; want %v", in, gotOK, ok)
		}
		if !ok {
			return
		}
		want, err := time.Parse(time.RFC3339Nano, in)
		if err != nil || !got.Equal(want) || got.Location() != time.UTC {
			t.Fatalf("parseRFC3339(%q) = %v; time.Parse = %v, %v", in, got, want, err)
		}
	}
	f("2026-11-25T10:00:00Z", true)
	f("2026-11-25T10:00:00.1Z", true)
	f("2026-11-25T10:00:00.123456789Z", true)
	f("2026-11-25T10:00:00.1234567891234Z", true)
	f("2026-11-25T10:00:00+01:00", true)
	f("2026-11-25T10:00:00-23:59", true)
	f("2024-02-29T00:00:00Z", true)
	f("2000-02-29T00:00:00Z", true)
	f("0001-01-01T00:00:00Z", true)
	f("9999-12-31T23:59:59.999999999Z", true)
	f("0001-01-01T00:30:00+00:30", true)
	f("1900-02-29T00:00:00Z", false)
	f("2023-02-29T00:00:00Z", false)
	f("2026-04-31T00:00:00Z", false)
	f("2026-00-10T00:00:00Z", false)
	f("2026-01-00T00:00:00Z", false)
	f("2026-11-25T10:00:00", false)
	f("2026-11-25T10:00:00.Z", false)
	f("2026-11-25T10:00:00.5", false)
	f("2026-11-25T10:00:00+01:00Z", false)
	f("2026-11-25T10:00:00-00:60", false)
	f("2026-11-25T10:00:00+1:00", false)
	f("2026-11-25T10:0a:00Z", false)
	f("2026-11-25T10:00:00Z ", false)
	f(" 2026-11-25T10:00:00Z", false)
	f("0000-12-31T23:59:59Z", false)
	f("0001-01-01T00:00:00+00:01", false)
	f("9999-12-31T23:59:59-00:01", false)
}
