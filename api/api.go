// Package api holds orderflow's machine-readable contract and embeds it, so
// the server can serve it and tests can validate against the very files in
// this directory:
//
//   - openapi.yaml: the public HTTP API (OpenAPI 3.0.3), served by the admin
//     listener at GET /openapi.yaml;
//   - asyncapi.yaml: the Kafka topic (AsyncAPI 3.0): record key, CloudEvents
//     headers and the two event types;
//   - events/order.created.schema.json and
//     events/order.status_changed.schema.json: the event values (JSON Schema
//     2020-12).
//
// docs/api.md explains the same contract for people.
package api

import "embed"

// OpenAPI is the content of openapi.yaml. Read-only.
//
//go:embed openapi.yaml
var OpenAPI []byte

// AsyncAPI is the content of asyncapi.yaml. Read-only.
//
//go:embed asyncapi.yaml
var AsyncAPI []byte

// Events holds events/<ce_type>.schema.json, one JSON Schema per event type.
//
//go:embed events/*.schema.json
var Events embed.FS
