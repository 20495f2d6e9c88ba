package ingest

import (
	"reflect"
	"strings"
	"testing"

	"github.com/orderflow/orderflow/engine/order"
)

// -ingest.decoder: empty takes the default (the scanner), the two names
// are accepted, anything else is refused naming the flag, and New serves
// the decoder named.
func TestConfigDecoder(t *testing.T) {
	c := Config{}
	c.fill()
	if c.Decoder != DecoderScanner || DefaultConfig().Decoder != DecoderScanner {
		t.Fatalf("default decoder = %q (DefaultConfig %q); want %q", c.Decoder, DefaultConfig().Decoder, DecoderScanner)
	}
	for _, d := range []string{"", DecoderScanner, DecoderJsoniter} {
		if err := (Config{Decoder: d}).Validate(); err != nil {
			t.Errorf("Validate(Decoder %q): %v", d, err)
		}
	}
	for _, d := range []string{"Scanner", "json", "encoding/json"} {
		err := (Config{Decoder: d}).Validate()
		if err == nil || !strings.Contains(err.Error(), "-ingest.decoder") {
			t.Errorf("Validate(Decoder %q) = %v; want an error naming -ingest.decoder", d, err)
		}
	}
	if _, err := New(Config{Decoder: "json"}, Deps{}, nil, testLog()); err == nil {
		t.Error(`New(Decoder "json"): no error`)
	}
	for d, want := range map[string]orderDecoder{
		"":              (*order.Batch).DecodeOrder,
		DecoderScanner:  (*order.Batch).DecodeOrder,
		DecoderJsoniter: (*order.Batch).DecodeOrderJsoniter,
	} {
		ts := newTestServer(t, Config{Decoder: d}, nil)
		if reflect.ValueOf(ts.s.decode).Pointer() != reflect.ValueOf(want).Pointer() {
			t.Errorf("Decoder %q: the server decodes with another function", d)
		}
	}
}
