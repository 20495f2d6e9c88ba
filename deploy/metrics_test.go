package deploy

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os/exec"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
	"sigs.k8s.io/yaml"
)

// targetLabels are added by Prometheus (and the operator's ServiceMonitor)
// to every scraped series; the server itself never exports them.
var targetLabels = map[string]bool{"job": true, "instance": true, "namespace": true, "pod": true, "service": true, "container": true, "endpoint": true}

// external are the metrics an alert may use that orderflow does not export:
// kube-state-metrics' restart counter (a crash-looping pod has no /metrics).
var external = map[string]bool{"kube_pod_container_status_restarts_total": true}

// exposition is one scrape: sample name → label name → values seen.
type exposition map[string]map[string]map[string]bool

// parseExposition reads the Prometheus text format.
func parseExposition(t *testing.T, body []byte) exposition {
	t.Helper()
	out := exposition{}
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		name, rest := line, ""
		if i := strings.IndexAny(line, "{ "); i >= 0 {
			name, rest = line[:i], line[i:]
		}
		ls := map[string]map[string]bool{}
		if out[name] == nil {
			out[name] = ls
		} else {
			ls = out[name]
		}
		if !strings.HasPrefix(rest, "{") {
			continue
		}
		rest = rest[1:]
		for len(rest) > 0 && rest[0] != '}' {
			eq := strings.IndexByte(rest, '=')
			if eq < 0 || len(rest) < eq+2 || rest[eq+1] != '"' {
				t.Fatalf("/metrics line %q: bad labels", line)
			}
			key := rest[:eq]
			rest = rest[eq+2:]
			var v strings.Builder
			for len(rest) > 0 && rest[0] != '"' {
				if rest[0] == '\\' && len(rest) > 1 {
					rest = rest[1:]
				}
				v.WriteByte(rest[0])
				rest = rest[1:]
			}
			rest = strings.TrimPrefix(strings.TrimPrefix(rest, `"`), ",")
			if ls[key] == nil {
				ls[key] = map[string]bool{}
			}
			ls[key][v.String()] = true
		}
	}
	return out
}

// grafanaVars replaces the dashboard's variables with what Prometheus would see.
var grafanaVars = strings.NewReplacer("$__rate_interval", "5m", "$__interval", "1m", "$__range", "1h", "$namespace", ".*", "${namespace}", ".*")

// checkQuery parses expr and reports every metric it selects that the
// scrape lacks, every label it matches, groups or joins on that those
// metrics lack, and every label value it asks for that the scrape never
// showed. It returns the metric names used.
func checkQuery(t *testing.T, where, expr string, have exposition) []string {
	t.Helper()
	e, err := parser.NewParser(parser.Options{}).ParseExpr(grafanaVars.Replace(expr))
	if err != nil {
		t.Errorf("%s: query %q does not parse: %v", where, expr, err)
		return nil
	}
	var used []string
	// selectors returns the vector selectors under n.
	selectors := func(n parser.Node) []*parser.VectorSelector {
		var out []*parser.VectorSelector
		parser.Inspect(n, func(n parser.Node, _ []parser.Node) error {
			if vs, ok := n.(*parser.VectorSelector); ok {
				out = append(out, vs)
			}
			return nil
		})
		return out
	}
	hasLabel := func(vss []*parser.VectorSelector, l string) bool {
		if targetLabels[l] {
			return true
		}
		for _, vs := range vss {
			if external[vs.Name] || have[vs.Name][l] != nil {
				return true
			}
		}
		return false
	}
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		switch n := n.(type) {
		case *parser.VectorSelector:
			if n.Name == "" {
				t.Errorf("%s: %q selects by labels only; name the metric", where, expr)
				return nil
			}
			used = append(used, n.Name)
			if external[n.Name] {
				return nil
			}
			ls, ok := have[n.Name]
			if !ok {
				t.Errorf("%s: metric %s (in %q) is not in the server's /metrics", where, n.Name, expr)
				return nil
			}
			for _, m := range n.LabelMatchers {
				if m.Name == model.MetricNameLabel || targetLabels[m.Name] {
					continue
				}
				vals, ok := ls[m.Name]
				if !ok {
					t.Errorf("%s: %s has no label %q (in %q)", where, n.Name, m.Name, expr)
					continue
				}
				if m.Type == labels.MatchNotEqual || m.Type == labels.MatchNotRegexp {
					continue
				}
				if !slices.ContainsFunc(mapKeys(vals), m.Matches) {
					t.Errorf("%s: no series of %s has %s (values seen: %v) (in %q)", where, n.Name, m, mapKeys(vals), expr)
				}
			}
		case *parser.AggregateExpr:
			vss := selectors(n.Expr)
			for _, l := range n.Grouping {
				if !hasLabel(vss, l) {
					t.Errorf("%s: %s by/without %q: no metric under it has that label (in %q)", where, n.Op, l, expr)
				}
			}
		case *parser.BinaryExpr:
			if n.VectorMatching == nil {
				return nil
			}
			vss := append(selectors(n.LHS), selectors(n.RHS)...)
			for _, l := range append(slices.Clone(n.VectorMatching.MatchingLabels), n.VectorMatching.Include...) {
				if !hasLabel(vss, l) {
					t.Errorf("%s: on/ignoring/group %q: no metric has that label (in %q)", where, l, expr)
				}
			}
		}
		return nil
	})
	return used
}

func mapKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// dashboardQueries returns panel title → queries of deploy/grafana/orderflow.json
// (rows' nested panels included), and the queries of its variables.
func dashboardQueries(t *testing.T) (map[string][]string, []string) {
	t.Helper()
	var d struct {
		Panels     []dashPanel `json:"panels"`
		Templating struct {
			List []struct {
				Name  string          `json:"name"`
				Type  string          `json:"type"`
				Query json.RawMessage `json:"query"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(readFile(t, "deploy/grafana/orderflow.json"), &d); err != nil {
		t.Fatalf("deploy/grafana/orderflow.json: %v", err)
	}
	out := map[string][]string{}
	var walk func([]dashPanel)
	walk = func(ps []dashPanel) {
		for _, p := range ps {
			walk(p.Panels)
			if p.Type == "row" {
				continue
			}
			if len(p.Targets) == 0 {
				t.Errorf("panel %q has no query", p.Title)
			}
			if _, dup := out[p.Title]; dup {
				t.Errorf("two panels titled %q", p.Title)
			}
			for _, tg := range p.Targets {
				out[p.Title] = append(out[p.Title], tg.Expr)
			}
		}
	}
	walk(d.Panels)
	var vars []string
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		var q struct {
			Query string `json:"query"`
		}
		if err := json.Unmarshal(v.Query, &q); err != nil {
			t.Fatalf("variable %s: %v", v.Name, err)
		}
		m := regexp.MustCompile(`^label_values\((\w+), *(\w+)\)$`).FindStringSubmatch(q.Query)
		if m == nil {
			t.Fatalf("variable %s query %q; want label_values(metric, label)", v.Name, q.Query)
		}
		vars = append(vars, m[1]+`{`+m[2]+`=~".*"}`)
	}
	return out, vars
}

type dashPanel struct {
	Type    string      `json:"type"`
	Title   string      `json:"title"`
	Panels  []dashPanel `json:"panels"`
	Targets []struct {
		Expr string `json:"expr"`
	} `json:"targets"`
}

// alertRule is one rule of deploy/prometheus/alerts.yaml.
type alertRule struct {
	Alert       string            `json:"alert"`
	Expr        string            `json:"expr"`
	For         string            `json:"for"`
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
}

func alertRules(t *testing.T) []alertRule {
	t.Helper()
	var f struct {
		Groups []struct {
			Name  string      `json:"name"`
			Rules []alertRule `json:"rules"`
		} `json:"groups"`
	}
	if err := yaml.UnmarshalStrict(readFile(t, "deploy/prometheus/alerts.yaml"), &f); err != nil {
		t.Fatalf("deploy/prometheus/alerts.yaml: %v", err)
	}
	var out []alertRule
	for _, g := range f.Groups {
		out = append(out, g.Rules...)
	}
	return out
}

// TestDashboardAndAlertsUseExistingMetrics runs the real server, sends it
// traffic of every kind (created, duplicate, conflict, 400, 401, 404, 413,
// 415, 422, 429, 503, status changes, both bulk endpoints), scrapes its
// /metrics and checks every metric, label and label value the dashboard's
// panels and the alert rules query: a renamed metric or label fails here.
// It also checks that the dashboard has a panel for each thing an operator
// watches and that each alert watches what it is named for.
func TestDashboardAndAlertsUseExistingMetrics(t *testing.T) {
	const mainKey, slowKey = "k_main_0123456789abcdef", "k_slow_0123456789abcdef"
	env, base, admin := serverEnv(t, testDB(t),
		"ORDERFLOW_API_KEYS=main:"+mainKey+",slow:"+slowKey+":0.001:1",
		"ORDERFLOW_INGEST_MAX_BODY_BYTES=4096",
		"ORDERFLOW_INGEST_MAX_INFLIGHT=2",
		"ORDERFLOW_INGEST_MAX_QUEUE_WAIT=1ms",
		"ORDERFLOW_KAFKA_SWEEP_INTERVAL=200ms",
		"ORDERFLOW_CATALOG_REFRESH_INTERVAL=200ms",
	)
	startServer(t, env, base, admin)
	auth := []string{"Authorization", "Bearer " + mainKey}
	const js, nd = "application/json", "application/x-ndjson"
	expect := func(want int, method, path, ct string, body []byte, hdr ...string) {
		t.Helper()
		if code, b := do(method, base+path, ct, body, hdr...); code != want {
			t.Fatalf("%s %s %s: %d %s; want %d", method, path, body, code, b, want)
		}
	}
	expect(201, "POST", "/v1/orders", js, orderJSON("m_1"), auth...)
	expect(200, "POST", "/v1/orders", js, orderJSON("m_1"), auth...)
	expect(409, "POST", "/v1/orders", js, []byte(`{"id":"m_1","user_id":"other","items":[{"sku":"milk-1l","qty":9}]}`), auth...)
	expect(400, "POST", "/v1/orders", js, []byte(`{"id":`), auth...)
	expect(415, "POST", "/v1/orders", "text/plain", orderJSON("m_2"), auth...)
	expect(413, "POST", "/v1/orders", js, fmt.Appendf(nil, `{"id":"m_3","user_id":"%s","items":[]}`, strings.Repeat("u", 5000)), auth...)
	expect(422, "POST", "/v1/orders", js, []byte(`{"id":"m_4","user_id":"u","items":[{"sku":"no-such-sku","qty":1}]}`), auth...)
	expect(401, "POST", "/v1/orders", js, orderJSON("m_5"))
	expect(200, "GET", "/v1/orders/m_1", "", nil, auth...)
	expect(404, "GET", "/v1/orders/nope", "", nil, auth...)
	expect(200, "POST", "/v1/orders/m_1/status", js, []byte(`{"status":"paid"}`), auth...)
	expect(409, "POST", "/v1/orders/m_1/status", js, []byte(`{"status":"created"}`), auth...)
	expect(200, "POST", "/v1/order-batches", nd, append(append(orderJSON("m_b1"), '\n'), orderJSON("m_b2")...), auth...)
	expect(200, "POST", "/v1/status-updates", nd, []byte(`{"id":"m_b1","status":"paid"}`+"\n"+`{"id":"m_b2","status":"cancelled"}`), auth...)
	// The slow key has one token, refilled after 1000s (at 1/s a commit
	// slower than a second on a busy machine refilled it): the second
	// request in a row is 429.
	expect(201, "POST", "/v1/orders", js, orderJSON("m_s1"), "Authorization", "Bearer "+slowKey)
	expect(429, "POST", "/v1/orders", js, orderJSON("m_s2"), "Authorization", "Bearer "+slowKey)
	// 2 in-flight slots and a 1ms wait: 32 requests at once get some 503s.
	codes := map[int]int{}
	var mu sync.Mutex
	for round := 0; codes[503] == 0 && round < 20; round++ {
		var wg sync.WaitGroup
		for i := range 32 {
			wg.Go(func() {
				code, _ := do("POST", base+"/v1/orders", js, orderJSON(fmt.Sprintf("m_c%d_%d", round, i)), auth...)
				mu.Lock()
				codes[code]++
				mu.Unlock()
			})
		}
		wg.Wait()
	}
	if codes[503] == 0 {
		t.Fatalf("no 503 from 2 in-flight slots under 20 rounds of 32 concurrent requests: %v", codes)
	}
	// Let the publisher and the sweeper run, and the catalog refresh.
	time.Sleep(time.Second)
	code, body := get(admin + "/metrics")
	if code != http.StatusOK {
		t.Fatalf("GET /metrics: %d", code)
	}
	have := parseExposition(t, body)

	panels, vars := dashboardQueries(t)
	used := map[string]bool{}
	for title, qs := range panels {
		for _, q := range qs {
			for _, m := range checkQuery(t, "dashboard panel "+title, q, have) {
				used[m] = true
			}
		}
	}
	for _, q := range vars {
		checkQuery(t, "dashboard variable", q, have)
	}
	for _, m := range []string{
		"orderflow_http_requests_total", "orderflow_http_request_duration_seconds_bucket", "orderflow_admission_rejected_total",
		"orderflow_orders_total", "orderflow_pipeline_queue_depth", "orderflow_pipeline_queue_capacity",
		"orderflow_pipeline_batch_rows_bucket", "orderflow_store_commit_seconds_bucket", "orderflow_store_commit_errors_total",
		"orderflow_store_retries_total", "orderflow_outbox_backlog", "orderflow_outbox_oldest_age_seconds",
		"orderflow_events_published_total", "orderflow_catalog_last_refresh_timestamp_seconds",
		"go_memstats_heap_inuse_bytes", "go_gc_duration_seconds_count", "go_goroutines", "process_cpu_seconds_total",
	} {
		if !used[m] {
			t.Errorf("no dashboard panel shows %s", m)
		}
	}

	watch := map[string]string{
		"OrderflowOutboxEventsOld": "orderflow_outbox_oldest_age_seconds",
		"OrderflowHigh5xxRatio":    "orderflow_http_requests_total",
		"OrderflowShedding":        "orderflow_http_requests_total",
		"OrderflowNotReady":        "orderflow_ready",
		"OrderflowCommitErrors":    "orderflow_store_commit_errors_total",
		"OrderflowPublishErrors":   "orderflow_events_published_total",
		"OrderflowCatalogStale":    "orderflow_catalog_last_refresh_timestamp_seconds",
		"OrderflowPodsRestarting":  "kube_pod_container_status_restarts_total",
	}
	seen := map[string]bool{}
	for _, r := range alertRules(t) {
		seen[r.Alert] = true
		got := checkQuery(t, "alert "+r.Alert, r.Expr, have)
		if want, ok := watch[r.Alert]; !ok {
			t.Errorf("alert %s is not in this test's list; add what it watches", r.Alert)
		} else if !slices.Contains(got, want) {
			t.Errorf("alert %s queries %v; want %s", r.Alert, got, want)
		}
	}
	for a := range watch {
		if !seen[a] {
			t.Errorf("alert %s is missing from deploy/prometheus/alerts.yaml", a)
		}
	}
}

// TestAlertRules runs promtool on the rule file and its unit tests, and
// checks that every alert has a severity, a summary, a firing and a silent
// unit test, and a runbook_url pointing at a section of docs/operations.md.
func TestAlertRules(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatalf("promtool is not installed: run `make tools` (Debian package prometheus); %v", err)
	}
	for _, args := range [][]string{{"check", "rules", "alerts.yaml"}, {"test", "rules", "alerts_test.yaml"}} {
		cmd := exec.Command(promtool, args...)
		cmd.Dir = "prometheus"
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}

	var tf struct {
		Tests []struct {
			AlertRuleTest []struct {
				Alertname string `json:"alertname"`
				ExpAlerts []any  `json:"exp_alerts"`
			} `json:"alert_rule_test"`
		} `json:"tests"`
	}
	if err := yaml.Unmarshal(readFile(t, "deploy/prometheus/alerts_test.yaml"), &tf); err != nil {
		t.Fatalf("alerts_test.yaml: %v", err)
	}
	fires, silent := map[string]bool{}, map[string]bool{}
	for _, tc := range tf.Tests {
		for _, a := range tc.AlertRuleTest {
			if len(a.ExpAlerts) > 0 {
				fires[a.Alertname] = true
			} else {
				silent[a.Alertname] = true
			}
		}
	}

	anchors := map[string]bool{}
	for _, l := range lines(string(readFile(t, "docs/operations.md"))) {
		if h, ok := strings.CutPrefix(l, "#"); ok {
			anchors[slug(strings.TrimLeft(h, "# "))] = true
		}
	}
	for _, r := range alertRules(t) {
		if r.Labels["severity"] != "critical" && r.Labels["severity"] != "warning" {
			t.Errorf("alert %s severity %q; want critical or warning", r.Alert, r.Labels["severity"])
		}
		if r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
			t.Errorf("alert %s lacks a summary or description", r.Alert)
		}
		if !fires[r.Alert] || !silent[r.Alert] {
			t.Errorf("alert %s: firing test %v, silent test %v in alerts_test.yaml; want both", r.Alert, fires[r.Alert], silent[r.Alert])
		}
		doc, anchor, _ := strings.Cut(r.Annotations["runbook_url"], "#")
		if doc != "docs/operations.md" || anchor != slug(r.Alert) || !anchors[anchor] {
			t.Errorf("alert %s runbook_url %q; want docs/operations.md#%s, a heading of docs/operations.md", r.Alert, r.Annotations["runbook_url"], slug(r.Alert))
		}
	}
}

// slug is the anchor GitHub and most Markdown renderers give a heading:
// lower case, punctuation dropped, spaces as dashes.
func slug(h string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(strings.TrimSpace(h)) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '-', r == '_':
			b.WriteRune(r)
		case r == ' ':
			b.WriteByte('-')
		}
	}
	return b.String()
}
