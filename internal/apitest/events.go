package apitest

import (
	"bytes"
	"fmt"
	"io/fs"
	"regexp"
	"strconv"
	"strings"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/orderflow/orderflow/api"
)

// EventSchemas are the compiled api/events/*.schema.json, by ce_type.
type EventSchemas struct {
	byType map[string]*jsonschema.Schema
}

var (
	eventsOnce sync.Once
	events     *EventSchemas
	eventsErr  error
)

// Events returns the event schemas compiled from the embedded api/events
// (JSON Schema 2020-12, formats asserted). It panics when they do not
// compile.
func Events() *EventSchemas {
	eventsOnce.Do(func() { events, eventsErr = LoadEvents(api.Events) })
	if eventsErr != nil {
		panic("apitest: " + eventsErr.Error())
	}
	return events
}

// LoadEvents compiles every events/<type>.schema.json of fsys.
func LoadEvents(fsys fs.FS) (*EventSchemas, error) {
	names, err := fs.Glob(fsys, "events/*.schema.json")
	if err != nil || len(names) == 0 {
		return nil, fmt.Errorf("no event schemas: %v", err)
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertFormat()
	out := &EventSchemas{byType: map[string]*jsonschema.Schema{}}
	for _, name := range names {
		b, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil, err
		}
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		url := "file:///api/" + name
		if err := c.AddResource(url, doc); err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		sch, err := c.Compile(url)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		typ := strings.TrimSuffix(strings.TrimPrefix(name, "events/"), ".schema.json")
		out.byType[typ] = sch
	}
	return out, nil
}

// Types lists the event types that have a schema.
func (e *EventSchemas) Types() []string {
	var out []string
	for t := range e.byType {
		out = append(out, t)
	}
	return out
}

// ValidateValue checks an event value against the schema of its type.
func (e *EventSchemas) ValidateValue(ceType string, value []byte) error {
	sch := e.byType[ceType]
	if sch == nil {
		return fmt.Errorf("event type %q has no schema in api/events", ceType)
	}
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(value))
	if err != nil {
		return fmt.Errorf("%s value is not JSON: %w", ceType, err)
	}
	if err := sch.Validate(v); err != nil {
		return fmt.Errorf("%s value %s: %w", ceType, value, err)
	}
	return nil
}

var (
	ceIDPattern   = regexp.MustCompile(`^([A-Za-z0-9_.:-]{1,64})/([1-9][0-9]*)$`)
	ceTimePattern = regexp.MustCompile(`^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}Z$`)
)

// Header is one record header (the shape of kgo.RecordHeader, without
// importing franz-go here).
type Header struct {
	Key   string
	Value []byte
}

// ValidateRecord checks one Kafka record against api/asyncapi.yaml and the
// event schemas: the key is the order id; the CloudEvents headers are
// present once each with their formats (ce_id "<key>/<version>", ce_time
// UTC with microseconds); the value matches its ce_type's schema and
// agrees with the key and ce_id.
func (e *EventSchemas) ValidateRecord(key []byte, headers []Header, value []byte) error {
	h := map[string]string{}
	for _, hd := range headers {
		if _, dup := h[hd.Key]; dup {
			return fmt.Errorf("record %s: header %s twice", key, hd.Key)
		}
		h[hd.Key] = string(hd.Value)
	}
	for _, k := range []string{"ce_specversion", "ce_type", "ce_source", "ce_id", "ce_time", "content-type"} {
		if h[k] == "" {
			return fmt.Errorf("record %s: header %s missing; have %v", key, k, h)
		}
	}
	if h["ce_specversion"] != "1.0" || h["content-type"] != "application/json" {
		return fmt.Errorf("record %s: ce_specversion %q, content-type %q", key, h["ce_specversion"], h["content-type"])
	}
	m := ceIDPattern.FindStringSubmatch(h["ce_id"])
	if m == nil || m[1] != string(key) {
		return fmt.Errorf("record %s: ce_id %q is not <key>/<version>", key, h["ce_id"])
	}
	if !ceTimePattern.MatchString(h["ce_time"]) {
		return fmt.Errorf("record %s: ce_time %q is not RFC 3339 UTC with microseconds", key, h["ce_time"])
	}
	typ := h["ce_type"]
	if err := e.ValidateValue(typ, value); err != nil {
		return fmt.Errorf("record %s: %w", key, err)
	}
	version, _ := strconv.Atoi(m[2])
	var id string
	var ver int
	switch typ {
	case "order.created":
		var v struct {
			Order struct {
				ID      string `json:"id"`
				Version int    `json:"version"`
			} `json:"order"`
		}
		_ = jsonUnmarshal(value, &v)
		id, ver = v.Order.ID, v.Order.Version
	case "order.status_changed":
		var v struct {
			ID      string `json:"order_id"`
			Version int    `json:"version"`
		}
		_ = jsonUnmarshal(value, &v)
		id, ver = v.ID, v.Version
	}
	if id != string(key) || ver != version {
		return fmt.Errorf("record %s: value names order %q version %d; ce_id is %q", key, id, ver, h["ce_id"])
	}
	return nil
}
