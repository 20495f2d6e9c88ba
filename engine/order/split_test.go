package order

import (
	"errors"
	"strings"
	"testing"
)

func collect(split func([]byte, func(int, []byte) bool) error, in string, stopAt int) ([]string, error) {
	var got []string
	err := split([]byte(in), func(i int, item []byte) bool {
		if i != len(got) {
			panic("index out of order")
		}
		if i == stopAt {
			return false
		}
		got = append(got, string(item))
		return true
	})
	return got, err
}

func TestSplitNDJSON(t *testing.T) {
	f := func(in string, want ...string) {
		t.Helper()
		got, err := collect(SplitNDJSON, in, -1)
		if err != nil || strings.Join(got, "|") != strings.Join(want, "|") || len(got) != len(want) {
			t.Fatalf("SplitNDJSON(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	f(`{"a":1}`, `{"a":1}`)
	f("{\"a\":1}\n{\"b\":2}\n", `{"a":1}`, `{"b":2}`)
	f("{\"a\":1}\r\n\r\n  \n\t{\"b\":2}\r\n{\"c\"\n", `{"a":1}`, `{"b":2}`, `{"c"`)
	f("\n\n x \n", "x")
	f("a\nb", "a", "b")
	fail := func(in string) {
		t.Helper()
		got, err := collect(SplitNDJSON, in, -1)
		var ve *ValidationError
		if !errors.As(err, &ve) {
			t.Fatalf("SplitNDJSON(%q) = %q, %v; want an error", in, got, err)
		}
	}
	fail("")
	fail("\n\r\n \t\n")
	if got, err := collect(SplitNDJSON, "a\nb\nc\n", 2); err != nil || len(got) != 2 {
		t.Fatalf("stop at 2: %q, %v", got, err)
	}
}

func TestSplitArray(t *testing.T) {
	f := func(in string, want ...string) {
		t.Helper()
		got, err := collect(SplitArray, in, -1)
		if err != nil || strings.Join(got, "|") != strings.Join(want, "|") || len(got) != len(want) {
			t.Fatalf("SplitArray(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	f(`[{"a":1}]`, `{"a":1}`)
	f(" [ {\"a\":1} ,\n{\"b\":[2,{}]} ] \n", `{"a":1}`, `{"b":[2,{}]}`)
	f(`[{"s":"]}\"\\"},{"t":"{["}]`, `{"s":"]}\"\\"}`, `{"t":"{["}`)
	f(`[1, "x", null, true, [1,2], -2.5e3]`, `1`, `"x"`, `null`, `true`, `[1,2]`, `-2.5e3`)
	f(`[{],{}]`, `{]`, `{}`) // bracket kinds are not matched: the element decoder refuses it
	f(`[`+strings.Repeat("[", 100000)+strings.Repeat("]", 100000)+`]`, strings.Repeat("[", 100000)+strings.Repeat("]", 100000))
	fail := func(in, code string) {
		t.Helper()
		got, err := collect(SplitArray, in, -1)
		var ve *ValidationError
		if !errors.As(err, &ve) || ve.Code != code {
			t.Fatalf("SplitArray(%q) = %q, %v; want %s", in, got, err, code)
		}
	}
	fail(``, "invalid_json")
	fail(`  `, "invalid_json")
	fail(`{"a":1}`, "wrong_type")
	fail(`x`, "wrong_type")
	fail(`[]`, "invalid_value")
	fail(` [ ] `, "invalid_value")
	fail(`[] x`, "trailing_data")
	fail(`[`, "invalid_json")
	fail(`[{"a":1}`, "invalid_json")
	fail(`[{"a":1},`, "invalid_json")
	fail(`[{"a":1},]`, "invalid_json")
	fail(`[,{"a":1}]`, "invalid_json")
	fail(`[{"a":1},,{}]`, "invalid_json")
	fail(`[{"a":1} {"b":2}]`, "invalid_json")
	fail(`[{"a":"]}`, "invalid_json")
	fail(`[{"a":1}] x`, "trailing_data")
	fail(`[{"a":1}]]`, "trailing_data")
	fail(`[}]`, "invalid_json")
	if got, err := collect(SplitArray, `[1,2,3,4]`, 2); err != nil || len(got) != 2 {
		t.Fatalf("stop at 2: %q, %v", got, err)
	}
	// A body that does not split is refused before fn sees any element.
	if got, err := collect(SplitArray, `[1,2,3,oops`, -1); err == nil || len(got) != 0 {
		t.Fatalf("SplitArray of a broken body: %q, %v; want an error and no calls", got, err)
	}
}

func TestSplitGolden(t *testing.T) {
	f := func(name string, split func([]byte, func(int, []byte) bool) error, wantIDs ...string) {
		t.Helper()
		var ids []string
		err := split(readTestdata(t, name), func(i int, item []byte) bool {
			b := GetBatch()
			defer PutBatch(b)
			o, err := b.DecodeOrder(item, testReceived, nil)
			if err != nil {
				ids = append(ids, "!"+err.(*ValidationError).Code)
			} else {
				ids = append(ids, strings.Clone(o.ID)) // o.ID dies with the batch
			}
			return true
		})
		if err != nil || strings.Join(ids, ",") != strings.Join(wantIDs, ",") {
			t.Fatalf("%s: %v, %v; want %v", name, ids, err, wantIDs)
		}
	}
	f("batch.ndjson", SplitNDJSON, "b1", "b2", "!invalid_value", "!invalid_json", "b5", "b6")
	f("batch_array.json", SplitArray, "a1", "a2", "!invalid_value", "!not_an_object", "a5")
}
