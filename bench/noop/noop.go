// Package noop is the ceiling of HTTP on this box: a fasthttp server that
// answers every request with 201 and a fixed order-shaped body, doing
// nothing else. The load test measures it beside orderflow (cmd/benchtargets
// -target noop) to show how much of a run's latency and CPU is the HTTP
// layer and the load generator themselves.
package noop

import (
	"time"

	"github.com/valyala/fasthttp"
)

// Body is the fixed answer to every request.
const Body = `{"id":"noop","status":"created","total_cents":0,"currency":"EUR"}`

var (
	body            = []byte(Body)
	contentTypeJSON = []byte("application/json")
)

// Handler answers 201 with Body. The request body is read by fasthttp (up
// to the server's limit) and ignored. Safe for concurrent use.
func Handler(ctx *fasthttp.RequestCtx) {
	ctx.SetStatusCode(fasthttp.StatusCreated)
	ctx.SetContentTypeBytes(contentTypeJSON)
	ctx.SetBody(body)
}

// NewServer returns a fasthttp server for Handler with the timeouts and
// body limit orderflow's own listener uses by default (16 MiB, so bulk
// bodies are read too).
func NewServer() *fasthttp.Server {
	return &fasthttp.Server{
		Handler:            Handler,
		Name:               "noop",
		ReadTimeout:        30 * time.Second,
		WriteTimeout:       30 * time.Second,
		IdleTimeout:        60 * time.Second,
		MaxRequestBodySize: 16 << 20,
		CloseOnShutdown:    true,
	}
}
