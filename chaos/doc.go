// Package chaos holds orderflow's crash and fault tests; it has no code of
// its own outside _test.go files. Each test drives real load through the
// public HTTP API while it breaks something, then reconciles what clients
// were told against PostgreSQL and the Kafka topic:
//
//   - TestCrashKillRestart: the real binary, SIGKILLed at random moments
//     (also right after bursts of 2xx, between commit and publish) and
//     restarted; 0 acknowledged orders lost, 0 duplicated rows, every
//     committed order and status version on the topic.
//   - TestPostgresStopStartUnderLoad, TestPostgresConnectionsTerminated,
//     TestAmbiguousCommit: a private PostgreSQL stopped (-m immediate) and
//     started, backends terminated mid-batch, the connection cut at COMMIT.
//   - TestKafkaFaultsBacklogDrains: produce failing and the broker refusing
//     connections for a while; ingestion goes on, the outbox backlog grows
//     and drains, the producer stays within its buffer cap.
//   - TestFleetSameOrdersToThreeInstances: three engines on one database
//     and broker.
//   - TestFleetKafkaFaultOnOneInstance: two engines, requests to either at
//     random, the broker gone for one of them only (and its client buffer
//     overflowing); 0 out of version order per order.
//   - TestRollingRestartBehindHAProxy: three instances of the binary behind
//     HAProxy, restarted one by one the Kubernetes way (SIGTERM, drain
//     delay, start, ready) with the manifests' drain settings; retrying
//     clients see every order acknowledged and no error.
//
// Short forms run in `make test`; `make chaos` (scripts/chaos.sh) runs the
// long forms (-chaos.long) and appends the numbers to chaos/RESULTS.md.
package chaos
