// Package order is the data model of orderflow and everything done to an
// order on the request path before it is queued: the ingest handler gets a
// Batch (GetBatch), decodes the request body into it (DecodeOrder, strict
// and allocation-free, every string copied into the batch arena so the
// fasthttp body can be released), prices it against the catalog (Price),
// seals it (Seal: content hash and the order.created event value, in the
// arena) and hands the Batch to the pipeline. The store writes Orders to
// PostgreSQL and the relay publishes Event to Kafka; both only read the
// batch. The encoders (AppendJSON, Append*) build response and event bodies
// append-style. Its one third-party import is jsoniter, used only by
// DecodeOrderJsoniter, the alternative order decoder the ingest server
// serves with -ingest.decoder=jsoniter (see DecodeOrder). Status-change
// bodies (DecodeStatus, DecodeStatusUpdate) and the bulk splitters
// (SplitNDJSON, SplitArray) have one implementation, on the scanner.
package order
