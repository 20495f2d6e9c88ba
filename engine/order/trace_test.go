package order

import (
	"bytes"
	"strings"
	"testing"
)

const (
	tpValid   = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	tpTraceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	tpHarness = "00-12345678901234567890123456789012-1234567890123456-01"
)

// The cases of W3C's trace-context test suite (test/test.py), plus the
// brief's edge cases: want "" means ignored.
func TestParseTraceParent(t *testing.T) {
	f := func(in, want string) {
		t.Helper()
		p, ok := ParseTraceParent([]byte(in))
		if ok != (want != "") || p.String() != want {
			t.Errorf("ParseTraceParent(%q) = %q, %v; want %q", in, p.String(), ok, want)
		}
		if ok != p.Valid() {
			t.Errorf("ParseTraceParent(%q): ok %v but Valid %v", in, ok, p.Valid())
		}
	}
	f(tpValid, tpValid)
	f(tpHarness, tpHarness)
	f("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00")
	// Version 00 flags are passed through as sent.
	f("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-ff", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-ff")
	// Optional whitespace around the value.
	f(" "+tpHarness, tpHarness)
	f("\t"+tpHarness, tpHarness)
	f(tpHarness+" ", tpHarness)
	f("\t "+tpHarness+" \t", tpHarness)
	// Version 00 is exactly 55 characters.
	f(tpHarness+".", "")
	f(tpHarness+"-what-the-future-will-be-like", "")
	f(tpHarness[:54], "")
	f("", "")
	f("   ", "")
	// A future version: the first four fields, then the end or a dash;
	// downgraded to 00 with only the sampled flag.
	f("cc-12345678901234567890123456789012-1234567890123456-01", tpHarness)
	f("cc-12345678901234567890123456789012-1234567890123456-01-what-the-future-will-be-like", tpHarness)
	f("cc-12345678901234567890123456789012-1234567890123456-01.what-the-future-will-be-like", "")
	f("cc-12345678901234567890123456789012-1234567890123456-03", tpHarness)
	f("01-12345678901234567890123456789012-1234567890123456-02", "00-12345678901234567890123456789012-1234567890123456-00")
	f("fe-12345678901234567890123456789012-1234567890123456-09-x", tpHarness)
	f("cc-12345678901234567890123456789012-1234567890123456-0", "")
	f("ff-12345678901234567890123456789012-1234567890123456-01", "")
	// Version field.
	f(".0-12345678901234567890123456789012-1234567890123456-01", "")
	f("0.-12345678901234567890123456789012-1234567890123456-01", "")
	f("000-12345678901234567890123456789012-1234567890123456-01", "")
	f("0000-12345678901234567890123456789012-1234567890123456-01", "")
	f("0-12345678901234567890123456789012-1234567890123456-01", "")
	f("0A-12345678901234567890123456789012-1234567890123456-01", "")
	// Trace id.
	f("00-00000000000000000000000000000000-1234567890123456-01", "")
	f("00-.2345678901234567890123456789012-1234567890123456-01", "")
	f("00-1234567890123456789012345678901.-1234567890123456-01", "")
	f("00-123456789012345678901234567890123-1234567890123456-01", "")
	f("00-1234567890123456789012345678901-1234567890123456-01", "")
	f("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", "")
	f("cc-00000000000000000000000000000000-1234567890123456-01", "")
	// Parent id.
	f("00-12345678901234567890123456789012-0000000000000000-01", "")
	f("00-12345678901234567890123456789012-.234567890123456-01", "")
	f("00-12345678901234567890123456789012-123456789012345.-01", "")
	f("00-12345678901234567890123456789012-12345678901234567-01", "")
	f("00-12345678901234567890123456789012-123456789012345-01", "")
	f("00-12345678901234567890123456789012-00F067AA0BA902B7-01", "")
	// Flags.
	f("00-12345678901234567890123456789012-1234567890123456-.0", "")
	f("00-12345678901234567890123456789012-1234567890123456-0.", "")
	f("00-12345678901234567890123456789012-1234567890123456-001", "")
	f("00-12345678901234567890123456789012-1234567890123456-1", "")
	f("00-12345678901234567890123456789012-1234567890123456-0A", "")
	// Separators.
	f("00_12345678901234567890123456789012-1234567890123456-01", "")
	f("00-12345678901234567890123456789012_1234567890123456-01", "")
	f("00-12345678901234567890123456789012-1234567890123456_01", "")
}

func TestTraceParentFields(t *testing.T) {
	p, ok := ParseTraceParent([]byte(tpValid))
	if !ok {
		t.Fatal("not parsed")
	}
	if string(p.TraceID()) != tpTraceID || string(p.ParentID()) != "00f067aa0ba902b7" || !p.Sampled() {
		t.Errorf("fields of %s: %s %s %v", tpValid, p.TraceID(), p.ParentID(), p.Sampled())
	}
	p, _ = ParseTraceParent([]byte("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-fe"))
	if p.Sampled() {
		t.Errorf("flags fe: sampled")
	}
	var zero TraceParent
	if zero.Valid() || zero.String() != "" {
		t.Errorf("zero TraceParent: valid %v, %q", zero.Valid(), zero.String())
	}
}

// Cases of W3C's test suite and the grammar's bounds; want is the stored
// list, "-" for invalid (dropped).
func TestAppendTraceState(t *testing.T) {
	f := func(want string, in ...string) {
		t.Helper()
		vals := make([][]byte, len(in))
		for i, v := range in {
			vals[i] = []byte(v)
		}
		dst := []byte("prefix")
		got, ok := AppendTraceState(dst, vals...)
		wantOK := want != "-"
		if !wantOK {
			want = ""
		}
		if ok != wantOK || string(got) != "prefix"+want {
			t.Errorf("AppendTraceState(%q) = %q, %v; want %q, %v", in, got, ok, "prefix"+want, wantOK)
		}
	}
	f("")
	f("", "")
	f("", " , ,\t")
	f("foo=1", "foo=1")
	f("foo=1,bar=2", "foo=1,bar=2")
	f("rojo=00f067aa0ba902b7,congo=t61rcWkgMzE", "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE")
	// Several headers are one list, in order; empty ones are members too.
	f("foo=1,bar=2,rojo=1,congo=2,baz=3", "foo=1,bar=2", "rojo=1,congo=2", "baz=3")
	f("foo=1", "foo=1", "")
	f("foo=1", "", "foo=1")
	// Optional whitespace around members is dropped; inside a value it stays.
	f("foo=1,bar=2,baz=3", "foo=1 \t , \t bar=2, \t baz=3")
	f("foo=1,bar=2,baz=3", "foo=1\t \t,\t \tbar=2,\t \tbaz=3")
	f("foo=1", " foo=1")
	f("foo=1", "\tfoo=1")
	f("foo=1", "foo=1 ")
	f("foo=1", "\t foo=1 \t")
	f("foo= 1", "foo= 1")
	f("foo=a b", "foo=a b")
	// Every allowed character.
	keyChars := "abcdefghijklmnopqrstuvwxyz0123456789_-*/"
	var val strings.Builder
	for c := byte(0x20); c <= 0x7e; c++ {
		if c != ',' && c != '=' {
			val.WriteByte(c)
		}
	}
	f(keyChars+"="+val.String(), keyChars+"="+val.String())
	f(keyChars+"@a-z0-9_-*/="+val.String()[:10]+"x", keyChars+"@a-z0-9_-*/="+val.String()[:10]+"x")
	// Duplicate keys, across headers too.
	f("-", "foo=1,foo=1")
	f("-", "foo=1,foo=2")
	f("-", "foo=1", "foo=1")
	f("-", "foo=1", "foo=2")
	f("foo=1,foo@x=2", "foo=1,foo@x=2")
	// Illegal keys.
	f("-", "foo =1")
	f("-", "FOO=1")
	f("-", "foo.bar=1")
	f("-", "1foo=1")
	f("-", "=1")
	f("-", "foo@=1,bar=2")
	f("-", "@foo=1,bar=2")
	f("-", "foo@@bar=1,bar=2")
	f("-", "foo@bar@baz=1,bar=2")
	f("-", "foo@1bar=1")
	f("1foo@bar=1", "1foo@bar=1")
	// Key lengths: 256 simple, 241@14 multi-tenant.
	f("foo=1,"+strings.Repeat("z", 256)+"=1", "foo=1", strings.Repeat("z", 256)+"=1")
	f("-", "foo=1", strings.Repeat("z", 257)+"=1")
	f("foo=1,"+strings.Repeat("t", 241)+"@"+strings.Repeat("v", 14)+"=1", "foo=1", strings.Repeat("t", 241)+"@"+strings.Repeat("v", 14)+"=1")
	f("-", "foo=1", strings.Repeat("t", 242)+"@v=1")
	f("-", "foo=1", "t@"+strings.Repeat("v", 15)+"=1")
	// Illegal values.
	f("-", "foo=bar=baz")
	f("-", "foo=,bar=3")
	f("-", "foo")
	f("-", "foo=\x7f")
	f("-", "foo=a\tb")
	f("-", "foo=\u00e9")
	f("a="+strings.Repeat("v", 256), "a="+strings.Repeat("v", 256))
	f("-", "a="+strings.Repeat("v", 257))
	// 32 members, not 33.
	var members []string
	for i := range 33 {
		members = append(members, "bar"+string(rune('a'+i/26))+string(rune('a'+i%26))+"=1")
	}
	f(strings.Join(members[:32], ","), strings.Join(members[:10], ","), strings.Join(members[10:32], ","))
	f("-", strings.Join(members[:10], ","), strings.Join(members[10:], ","))
	// 512 characters of combined value, commas and whitespace included.
	a := "a=" + strings.Repeat("v", 254)
	f(a+",b="+strings.Repeat("v", 253), a+",b="+strings.Repeat("v", 253))
	f("-", a+",b="+strings.Repeat("v", 254))
	f(a+",b="+strings.Repeat("v", 252), a+",b="+strings.Repeat("v", 252)+" ")
	f("-", a+",b="+strings.Repeat("v", 253)+" ")
	f(a+",b="+strings.Repeat("v", 253), a, "b="+strings.Repeat("v", 253))
	f("-", a, "b="+strings.Repeat("v", 254))
}

// FuzzTraceParent: ParseTraceParent never panics; what it accepts is a
// version-00 value that parses to itself.
func FuzzTraceParent(f *testing.F) {
	for _, s := range []string{tpValid, tpHarness, "cc-" + tpHarness[3:] + "-x", "ff-" + tpHarness[3:], " " + tpValid + "\t", ""} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		p, ok := ParseTraceParent(in)
		if !ok {
			if p.Valid() {
				t.Fatalf("ParseTraceParent(%q) refused but returned %q", in, p.String())
			}
			return
		}
		if p[0] != '0' || p[1] != '0' {
			t.Fatalf("ParseTraceParent(%q) = %q: not version 00", in, p.String())
		}
		again, ok := ParseTraceParent(p[:])
		if !ok || again != p {
			t.Fatalf("ParseTraceParent(%q) = %q, which parses to %q, %v", in, p.String(), again.String(), ok)
		}
		if !bytes.Contains(in, p[3:52]) {
			t.Fatalf("ParseTraceParent(%q) = %q: ids not taken from the input", in, p.String())
		}
	})
}

// FuzzTraceState: AppendTraceState never panics, never writes past what it
// returns, and what it accepts is a list it accepts again unchanged, within
// the limits.
func FuzzTraceState(f *testing.F) {
	for _, s := range []string{"foo=1,bar=2", "foo=1 \t , \t bar=2", "a@b=c", "foo=1,foo=2", "", ",,", "k=v=w"} {
		f.Add([]byte(s), []byte("x=1"))
	}
	f.Fuzz(func(t *testing.T, a, b []byte) {
		out, ok := AppendTraceState(nil, a, b)
		if !ok {
			if len(out) != 0 {
				t.Fatalf("AppendTraceState(%q, %q) refused but appended %q", a, b, out)
			}
			return
		}
		if len(out) > MaxTraceStateLen || bytes.Count(out, []byte(",")) >= maxTraceStateMembers {
			t.Fatalf("AppendTraceState(%q, %q) = %q: over the limits", a, b, out)
		}
		again, ok := AppendTraceState(nil, out)
		if !ok || !bytes.Equal(again, out) {
			t.Fatalf("AppendTraceState(%q, %q) = %q, which gives %q, %v", a, b, out, again, ok)
		}
	})
}
