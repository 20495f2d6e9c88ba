// Package apitest checks orderflow's HTTP exchanges and Kafka events against
// the contract in api/: the OpenAPI document (through kin-openapi's
// openapi3filter) and the events' JSON Schemas (through
// santhosh-tekuri/jsonschema, JSON Schema 2020-12). Tests only: it pulls in
// the validators, which the server and the client never import.
//
// A test routes its requests through Spec.Transport (net/http clients) or
// calls Spec.Check (fasthttp clients, raw connections). Each exchange is
// checked both ways: a response the spec does not allow for that operation
// and status is a violation, and so is a 2xx answer to a request the spec
// refuses. Violations are returned and also kept, so Main can fail a
// package whose tests swallowed one (a test that accepts a reset, say).
// Spec also counts which (operation, status) pairs were seen, for coverage
// tests.
package apitest
