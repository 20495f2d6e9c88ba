package enginetest

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderflow/orderflow/engine"
	"github.com/orderflow/orderflow/internal/pgtest"
)

func post(t *testing.T, url, body string, hdr ...string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST %s %s: %v", url, body, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// Start with a generated catalog; a second instance on the first one's
// database and broker sees its orders; TestTimers are what the engine got.
func TestStartOptions(t *testing.T) {
	a := Start(t, WithCatalog(GeneratedProducts(3)), WithConfig(func(c *engine.Config) { c.Ingest.MaxBodyBytes = 4096 }))
	if a.Broker == nil || len(a.Brokers) == 0 || !strings.HasPrefix(a.URL, "http://127.0.0.1:") || !strings.HasPrefix(a.AdminURL, "http://127.0.0.1:") {
		t.Fatalf("instance %+v: want its own broker and loopback URLs", a)
	}
	if c := a.Config; c.Publish.SweepInterval != TestTimers.SweepInterval || c.Publish.SweepGrace != TestTimers.SweepGrace ||
		c.Catalog.RefreshInterval != TestTimers.CatalogRefresh || c.Ingest.MaxBodyBytes != 4096 {
		t.Fatalf("config %+v; want TestTimers and the WithConfig change", c)
	}
	order := `{"id":"et_1","user_id":"u","items":[{"sku":"` + GeneratedSKU(2) + `","qty":2}]}`
	if code, body := post(t, a.URL+"/v1/orders", order); code != http.StatusCreated || !strings.Contains(body, `"total_cents":204`) {
		t.Fatalf("POST %s: got %d %s; want 201 with total 2×102", order, code, body)
	}
	demo := `{"id":"et_2","user_id":"u","items":[{"sku":"milk-1l","qty":1}]}`
	if code, body := post(t, a.URL+"/v1/orders", demo); code != http.StatusUnprocessableEntity {
		t.Fatalf("POST %s: got %d %s; want 422: the generated catalog replaces the demo one", demo, code, body)
	}

	b := Start(t, WithDatabase(a.DatabaseURL), WithBroker(a.Broker))
	if b.DatabaseURL != a.DatabaseURL || b.Broker != a.Broker || b.URL == a.URL {
		t.Fatalf("second instance %+v; want the first one's database and broker, its own listener", b)
	}
	resp, err := http.Get(b.URL + "/v1/orders/et_1")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET et_1 from the second instance: %v %v; want 200", resp, err)
	}
	resp.Body.Close()
	recs := b.Consume(t, "et_", 1, 10*time.Second)
	if len(recs) != 1 || Header(recs[0], "ce_id") != "et_1/1" {
		t.Fatalf("records %v; want et_1/1", recs)
	}
	if err := a.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if err := a.Stop(); err != nil {
		t.Fatalf("second Stop: %v; want the first one's result", err)
	}
}

// WithEmbeddedBroker runs the engine's own broker; the demo catalog is the
// default.
func TestStartEmbeddedBroker(t *testing.T) {
	in := Start(t, WithEmbeddedBroker(), WithTimers(Timers{}))
	if in.Broker != nil || len(in.Brokers) != 1 || in.Config.Publish.SweepInterval != engine.DefaultConfig().Publish.SweepInterval {
		t.Fatalf("instance broker %v, brokers %v, sweep interval %v; want the embedded broker and the default timers",
			in.Broker, in.Brokers, in.Config.Publish.SweepInterval)
	}
	if code, body := post(t, in.URL+"/v1/orders", `{"id":"em_1","user_id":"u","items":[{"sku":"milk-1l","qty":1}]}`); code != http.StatusCreated {
		t.Fatalf("POST: got %d %s; want 201", code, body)
	}
	if n := pgtest.Int64(t, in.DatabaseURL, `SELECT count(*) FROM products`); n != int64(len(engine.DemoProducts)) {
		t.Fatalf("products = %d; want the demo catalog (%d)", n, len(engine.DemoProducts))
	}
	if recs := in.Consume(t, "em_", 1, 10*time.Second); len(recs) != 1 {
		t.Fatalf("records = %d; want 1 on the embedded broker", len(recs))
	}
}

func TestTimersZeroKeepsDefaults(t *testing.T) {
	def := engine.DefaultConfig()
	c := def
	Timers{}.apply(&c)
	if c.Publish.SweepInterval != def.Publish.SweepInterval || c.Publish.SweepGrace != def.Publish.SweepGrace ||
		c.Publish.DeliveryTimeout != def.Publish.DeliveryTimeout || c.Publish.MetadataMinAge != def.Publish.MetadataMinAge ||
		c.Catalog.RefreshInterval != def.Catalog.RefreshInterval || c.Pipeline.Linger != def.Pipeline.Linger {
		t.Fatalf("Timers{} changed the config: %+v; want the defaults", c)
	}
	Timers{Linger: 3 * time.Millisecond, SweepGrace: 7 * time.Second}.apply(&c)
	if c.Pipeline.Linger != 3*time.Millisecond || c.Publish.SweepGrace != 7*time.Second || c.Publish.SweepInterval != def.Publish.SweepInterval {
		t.Fatalf("Timers{Linger, SweepGrace}: linger %v, grace %v, interval %v", c.Pipeline.Linger, c.Publish.SweepGrace, c.Publish.SweepInterval)
	}
}

func TestKafkaSwitchRefusesProduce(t *testing.T) {
	c := NewBroker(t)
	down := KafkaSwitch(c)
	// Not idempotent, with few retries: an idempotent record already sent
	// is retried until the broker answers, whatever the context says.
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.DefaultProduceTopic(Topic),
		kgo.DisableIdempotentWrite(), kgo.RecordRetries(2), kgo.RecordDeliveryTimeout(time.Second),
		kgo.MetadataMinAge(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	produce := func(key string) error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return cl.ProduceSync(ctx, &kgo.Record{Key: []byte(key), Value: []byte("{}")}).FirstErr()
	}
	if err := produce("sw_up"); err != nil {
		t.Fatalf("produce with the switch up: %v", err)
	}
	down.Store(true)
	if err := produce("sw_down"); err == nil {
		t.Fatalf("produce with the switch down: no error; want it refused")
	}
	down.Store(false)
	if err := produce("sw_back"); err != nil {
		t.Fatalf("produce after the switch came back up: %v", err)
	}
	var keys []string
	for _, r := range consumeAll(t, c.ListenAddrs(), "sw_", time.Minute, false) {
		keys = append(keys, string(r.Key))
	}
	if strings.Join(keys, ",") != "sw_up,sw_back" {
		t.Fatalf("topic keys %q; want sw_up and sw_back only", keys)
	}
}

// ConsumeAll returns every record under the prefix that is on the topic
// when it is called, in each partition's order, and only those: no count
// to guess, no window to wait out.
func TestConsumeAllReadsToTheEnd(t *testing.T) {
	c := NewBroker(t)
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.DefaultProduceTopic(Topic))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	produce := func(keys ...string) {
		t.Helper()
		var recs []*kgo.Record
		for _, k := range keys {
			recs = append(recs, &kgo.Record{Key: []byte(k), Value: []byte(k)})
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			t.Fatalf("produce %v: %v", keys, err)
		}
	}
	read := func() map[string][]string { // key → values in the order read
		out := map[string][]string{}
		for _, r := range consumeAll(t, c.ListenAddrs(), "ca_", time.Minute, false) {
			out[string(r.Key)] = append(out[string(r.Key)], string(r.Value))
		}
		return out
	}
	if got := read(); len(got) != 0 {
		t.Fatalf("empty topic: read %v; want nothing", got)
	}
	produce("ca_a", "zz_a", "ca_b", "ca_a", "zz_b", "ca_c")
	got := read()
	if len(got) != 3 || len(got["ca_a"]) != 2 || len(got["ca_b"]) != 1 || len(got["ca_c"]) != 1 || got["zz_a"] != nil {
		t.Fatalf("read %v; want ca_a twice, ca_b and ca_c, nothing else", got)
	}
	produce("ca_d")
	if got := read(); len(got) != 4 || len(got["ca_d"]) != 1 || len(got["ca_a"]) != 2 {
		t.Fatalf("after one more: read %v; want the earlier ones again and ca_d", got)
	}
}

func TestFakeServer(t *testing.T) {
	var created []string
	f := StartFake(t, func(f *FakeServer) {
		f.Fail503Every = 5
		f.OnCreate = func(_ context.Context, id string) int {
			if id == "f_no" {
				return http.StatusInternalServerError
			}
			created = append(created, id)
			return 0
		}
	})
	o := func(id string) string { return `{"id":"` + id + `","user_id":"u","items":[{"sku":"a","qty":1}]}` }
	type step struct {
		body string
		hdr  []string
		want int
	}
	for i, s := range []step{
		{o("f_1"), nil, http.StatusCreated},
		{o("f_1"), nil, http.StatusOK}, // the same body again
		{o("f_2"), []string{"Idempotency-Key", "k"}, http.StatusCreated},
		{`{"id":"f_2","user_id":"other"}`, nil, http.StatusConflict}, // same id, other body
		{o("f_3"), nil, http.StatusServiceUnavailable},               // the 5th request
		{`{"user_id":"u"}`, nil, http.StatusBadRequest},
		{o("f_no"), nil, http.StatusInternalServerError}, // OnCreate refused it
	} {
		if code, body := post(t, f.URL+"/v1/orders", s.body, s.hdr...); code != s.want {
			t.Fatalf("step %d: POST %s: got %d %s; want %d", i, s.body, code, body, s.want)
		}
	}
	acked, refused := f.Snapshot()
	if strings.Join(acked, ",") != "f_1,f_2" || strings.Join(refused, ",") != "f_3" || strings.Join(created, ",") != "f_1,f_2" {
		t.Fatalf("acked %q, refused %q, created %q; want f_1,f_2 / f_3 / f_1,f_2", acked, refused, created)
	}
	st := f.Stats()
	if f.Requests() != 7 || st.Created != 2 || st.Resent != 1 || st.KeyMismatch != 1 || st.BadRequests != 1 || st.WithoutKey != 5 ||
		st.ContentTypes["application/json"] != 6 {
		t.Fatalf("requests %d, stats %+v", f.Requests(), st)
	}
	for i, s := range []struct {
		path, body string
		want       int
	}{
		{"/v1/orders/f_1/status", `{"status":"assembling"}`, http.StatusConflict}, // not the next one
		{"/v1/orders/f_1/status", `{"status":"paid"}`, http.StatusOK},
		{"/v1/orders/f_9/status", `{"status":"paid"}`, http.StatusNotFound},
		{"/v1/order-batches", o("f_b1") + "\n" + o("f_b2") + "\n", http.StatusOK},
		{"/v1/orders/f_b2/status", `{"status":"paid"}`, http.StatusOK},
	} {
		if code, body := post(t, f.URL+s.path, s.body); code != s.want {
			t.Fatalf("status step %d: POST %s %s: got %d %s; want %d", i, s.path, s.body, code, body, s.want)
		}
	}
	if st := f.Stats(); f.Version("f_1") != 2 || f.Version("f_b1") != 1 || f.Version("f_b2") != 2 || f.Version("f_9") != 0 ||
		st.Updates != 2 || st.Bulk != 1 || f.Requests() != 7 {
		t.Fatalf("versions f_1 %d, f_b1 %d, f_b2 %d, f_9 %d; stats %+v, requests %d; want 2, 1, 2, 0, 2 updates, 1 bulk request, still 7",
			f.Version("f_1"), f.Version("f_b1"), f.Version("f_b2"), f.Version("f_9"), st, f.Requests())
	}
	resp, err := http.Get(f.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if !bytes.Contains(b, []byte(`orderflow_http_requests_total{code="201"} 7`)) {
		t.Fatalf("/metrics:\n%s\nwant the request counter at 7", b)
	}
}
