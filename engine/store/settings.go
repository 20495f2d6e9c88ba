package store

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// SettingProblem is a PostgreSQL setting, as orderflow's sessions see it,
// that is unsafe for orderflow or degrades it.
type SettingProblem struct {
	Name   string // e.g. "autovacuum"
	Value  string // as SHOW prints it
	Unsafe bool   // acknowledged data can be lost; otherwise it degrades
	Why    string // what goes wrong, for the log
}

// settingRules lists the settings orderflow depends on and the values that
// hurt it. synchronous_commit is forced on in every session the store opens
// (a startup parameter, see New); it is checked anyway, as the sessions see
// it, so that a connection pooler that drops startup parameters shows up.
var settingRules = []struct {
	name   string
	bad    func(v string) bool
	unsafe bool
	why    string
}{
	{"synchronous_commit", func(v string) bool { return v == "off" }, true,
		"a commit is acknowledged before its WAL is on disk: a PostgreSQL crash loses orders already answered 201"},
	{"fsync", func(v string) bool { return v == "off" }, true,
		"PostgreSQL does not force writes to disk: an operating system crash can lose or corrupt committed orders"},
	{"full_page_writes", func(v string) bool { return v == "off" }, true,
		"a crash during a page write can leave torn pages that recovery cannot repair"},
	{"autovacuum", func(v string) bool { return v == "off" }, false,
		"orders and order_items are never vacuumed or analysed (bloat, stale plans, transaction ID wraparound), and the system catalogs that outbox truncation updates grow until vacuumed by hand; the outbox itself stays small"},
	{"track_counts", func(v string) bool { return v == "off" }, false,
		"no table statistics are collected, so autovacuum cannot tell which tables need vacuuming"},
}

// CheckSettings reads the PostgreSQL settings orderflow depends on, as its
// own sessions see them, logs a warning for each that is unsafe or degrades
// orderflow, sets orderflow_postgres_setting_unsafe{setting,value} to 1 for
// it, and returns them. Call it once at start, after connecting.
func (s *Store) CheckSettings(ctx context.Context) ([]SettingProblem, error) {
	names := make([]string, len(settingRules))
	for i, r := range settingRules {
		names[i] = r.name
	}
	rows, err := s.pool.Query(ctx, `SELECT name, current_setting(name) FROM unnest($1::text[]) AS name`, names)
	if err != nil {
		return nil, fmt.Errorf("read postgresql settings: %w", err)
	}
	values := map[string]string{}
	var name, value string
	if _, err := pgx.ForEachRow(rows, []any{&name, &value}, func() error { values[name] = value; return nil }); err != nil {
		return nil, fmt.Errorf("read postgresql settings: %w", err)
	}
	var problems []SettingProblem
	for _, r := range settingRules {
		v := values[r.name]
		if !r.bad(v) {
			continue
		}
		p := SettingProblem{Name: r.name, Value: v, Unsafe: r.unsafe, Why: r.why}
		problems = append(problems, p)
		kind := "degrades orderflow"
		if p.Unsafe {
			kind = "UNSAFE: acknowledged orders can be lost"
		}
		s.log.Warn("postgresql setting "+p.Name+"="+p.Value+" "+kind, "setting", p.Name, "value", p.Value, "why", p.Why)
		if s.settingBad != nil {
			s.settingBad.WithLabelValues(p.Name, p.Value).Set(1)
		}
	}
	return problems, nil
}
