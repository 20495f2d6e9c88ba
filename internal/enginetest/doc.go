// Package enginetest is the one way a test starts a real orderflow engine:
// a fresh PostgreSQL database of its own (internal/pgtest), migrated and
// seeded with a catalog, an in-process Kafka-protocol broker (kfake), an
// engine on loopback ports with short test timers, started, checked ready
// through /readyz, and shut down in t.Cleanup.
//
//	in := enginetest.Start(t)                                   // demo catalog, TestTimers
//	in := enginetest.Start(t, enginetest.WithConfig(func(c *engine.Config) { c.Ingest.MaxBodyBytes = 4096 }))
//	b := enginetest.Start(t, enginetest.WithDatabase(in.DatabaseURL), enginetest.WithBroker(in.Broker)) // a second instance
//
// What differs between tests is an [Option]: the catalog, the timers, the
// database, the broker, and any other engine setting through [WithConfig].
// The pieces are also usable alone: [NewDatabase] and [NewBroker] for tests
// that run the real binary, [KafkaSwitch] to make the broker refuse produce
// requests, [Consume] to read the topic, and [FakeServer], a stand-in for
// orderflow's order endpoint, for the load generator's tests.
//
// Only tests import this package. A PostgreSQL that does not answer fails
// the test, as in pgtest: it is never skipped.
package enginetest
