package loadtest

import (
	"slices"
	"testing"
)

func TestParseBulkResults(t *testing.T) {
	f := func(body string, n int, want []int) {
		t.Helper()
		got := make([]int, n)
		parseBulkResults([]byte(body), got)
		if !slices.Equal(got, want) {
			t.Fatalf("parseBulkResults(%q): got %v; want %v", body, got, want)
		}
	}
	f(`{"created":2,"duplicates":0,"rejected":1,"results":[{"index":0,"id":"a","status":201},{"index":1,"status":400,"error":{"code":"x","message":"m \"index\":0,\"status\":201"}},{"index":2,"id":"c","status":200}]}`,
		3, []int{201, 400, 200})
	f(`{"created":1,"results":[{"index":1,"id":"b","status":201}]}`, 3, []int{0, 201, 0})
	f(`{"id":"noop","status":"created"}`, 2, []int{0, 0})
	f(`{"results":[{"index":7,"status":201}]}`, 2, []int{0, 0})
	f(``, 1, []int{0})
}

func TestParseVersion(t *testing.T) {
	f := func(body string, want int32) {
		t.Helper()
		if got := parseVersion([]byte(body)); got != want {
			t.Fatalf("parseVersion(%q): got %d; want %d", body, got, want)
		}
	}
	f(`{"id":"a","status":"paid","version":2}`, 2)
	f(`{"id":"a","status":"paid","version":13}`, 13)
	f(`{"id":"a"}`, 0)
}

func TestStateChecks(t *testing.T) {
	got := stateChecks("r", []stateObs{
		{n: 2, step: 1, oc: outcomeUnknown},
		{n: 1, step: 0, oc: outcomeAcked, version: 2},
		{n: 2, step: 0, oc: outcomeAcked, version: 2},
		{n: 1, step: 1, oc: outcomeAcked, version: 3},
		{n: 3, step: 0, oc: outcomeRefused},
		{n: 4, step: 0, oc: outcomeAcked}, // no version in the answer
	})
	want := []StateCheck{
		{ID: "lt_r_1", Status: "assembling", Version: 3},
		{ID: "lt_r_2", Status: "paid", Version: 2, AtLeast: true},
		{ID: "lt_r_3", Status: "created", Version: 1},
		{ID: "lt_r_4", Status: "paid", Version: 2},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("stateChecks: got %+v; want %+v", got, want)
	}
}

func TestBatchAndMixConfig(t *testing.T) {
	c := Config{Scenario: ScenarioBatches}.WithDefaults()
	if c.BatchSize != 100 || c.Validate() != nil {
		t.Fatalf("batches defaults %+v: want batch size 100 and valid", c)
	}
	c.BatchSize = MaxBatchSize + 1
	if c.Validate() == nil {
		t.Fatalf("batch size %d validated; want an error", c.BatchSize)
	}
	c = Config{Scenario: ScenarioMix, RunID: "0123456789012345678901234567890123456789"}.WithDefaults()
	if err := c.Validate(); err != nil {
		t.Fatalf("40-character run id: %v", err)
	}
	if id := OrderID(c.RunID, ^uint64(0)); len(id) > 64 {
		t.Fatalf("longest order id %q is %d characters; the API allows 64", id, len(id))
	}
}
