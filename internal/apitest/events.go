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
	"go.yaml.in/yaml/v4"

	"github.com/orderflow/orderflow/api"
)

// EventSchemas are the compiled api/events/*.schema.json, by ce_type, and
// the record key and header schemas of api/asyncapi.yaml.
type EventSchemas struct {
	byType  map[string]*jsonschema.Schema
	headers map[string]*jsonschema.Schema // by ce_type: the message's headers schema
	key     *jsonschema.Schema
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
	eventsOnce.Do(func() {
		events, eventsErr = LoadEvents(api.Events)
		if eventsErr == nil {
			eventsErr = events.loadAsyncAPI(api.AsyncAPI)
		}
	})
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

// loadAsyncAPI compiles the record key schema and each message's headers
// schema from an AsyncAPI 3.0 document, and checks that every message's
// payload names the event schema file of its type.
func (e *EventSchemas) loadAsyncAPI(doc []byte) error {
	var y any
	if err := yaml.Unmarshal(doc, &y); err != nil {
		return fmt.Errorf("asyncapi.yaml: %w", err)
	}
	root, _ := y.(map[string]any)
	if v, _ := root["asyncapi"].(string); !strings.HasPrefix(v, "3.0") {
		return fmt.Errorf("asyncapi.yaml: asyncapi %q; want 3.0.x", root["asyncapi"])
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft7) // AsyncAPI's default schema format is a JSON Schema draft-07 superset
	const url = "file:///api/asyncapi.json"
	if err := c.AddResource(url, y); err != nil {
		return fmt.Errorf("asyncapi.yaml: %w", err)
	}
	key, err := c.Compile(url + "#/components/schemas/key")
	if err != nil {
		return fmt.Errorf("asyncapi.yaml key: %w", err)
	}
	e.key, e.headers = key, map[string]*jsonschema.Schema{}
	msgs, _ := dig(root, "components", "messages").(map[string]any)
	for name, m := range msgs {
		typ, _ := dig(m, "name").(string)
		ref, _ := dig(m, "headers", "$ref").(string)
		payload, _ := dig(m, "payload", "schema", "$ref").(string)
		if e.byType[typ] == nil || payload != "./events/"+typ+".schema.json" || !strings.HasPrefix(ref, "#/") {
			return fmt.Errorf("asyncapi.yaml message %s: name %q, payload %q, headers %q: want an event type of api/events, its schema file and a local headers schema", name, typ, payload, ref)
		}
		h, err := c.Compile(url + ref)
		if err != nil {
			return fmt.Errorf("asyncapi.yaml message %s headers: %w", name, err)
		}
		e.headers[typ] = h
	}
	for typ := range e.byType {
		if e.headers[typ] == nil {
			return fmt.Errorf("asyncapi.yaml has no message for event type %s", typ)
		}
	}
	return nil
}

func dig(v any, path ...string) any {
	for _, p := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[p]
	}
	return v
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

var ceIDPattern = regexp.MustCompile(`^([A-Za-z0-9_.:-]{1,64})/([1-9][0-9]*)$`)

// Header is one record header (the shape of kgo.RecordHeader, without
// importing franz-go here).
type Header struct {
	Key   string
	Value []byte
}

// ValidateRecord checks one Kafka record against api/asyncapi.yaml and the
// event schemas: the key and the headers (each at most once) match the
// document's key schema and its message's headers schema for ce_type; the
// value matches its ce_type's schema; ce_id is "<key>/<version>" with the
// value's order id and version.
func (e *EventSchemas) ValidateRecord(key []byte, headers []Header, value []byte) error {
	h := map[string]string{}
	for _, hd := range headers {
		if _, dup := h[hd.Key]; dup {
			return fmt.Errorf("record %s: header %s twice", key, hd.Key)
		}
		h[hd.Key] = string(hd.Value)
	}
	typ := h["ce_type"]
	hs := e.headers[typ]
	if hs == nil {
		return fmt.Errorf("record %s: ce_type %q has no message in api/asyncapi.yaml", key, typ)
	}
	hv := map[string]any{}
	for k, v := range h {
		hv[k] = v
	}
	if err := hs.Validate(hv); err != nil {
		return fmt.Errorf("record %s: headers %v: %w", key, h, err)
	}
	if err := e.key.Validate(string(key)); err != nil {
		return fmt.Errorf("record key %q: %w", key, err)
	}
	m := ceIDPattern.FindStringSubmatch(h["ce_id"])
	if m == nil || m[1] != string(key) {
		return fmt.Errorf("record %s: ce_id %q is not <key>/<version>", key, h["ce_id"])
	}
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
