// Package deploy holds the tests of orderflow's deployment files; it has no
// code of its own outside _test.go files. It is a module of its own so that
// the heavy, test-only dependencies (kustomize, the Kubernetes API types,
// the Prometheus operator types, the PromQL parser) stay out of the
// server's module. `make test` runs it after the server's tests:
//
//   - TestImage: `make image`'s script builds the container image (docker,
//     or buildah without a daemon); its server runs against the local
//     PostgreSQL with the embedded broker, answers /readyz 200 and a 201.
//   - TestKustomize*: the base and the example overlay render, every object
//     decodes strictly into its Kubernetes type, and the manifests agree
//     with the code (env variables, probes, ports, drain, image, user).
//   - TestDashboardAndAlertsUseExistingMetrics: a real server gets traffic
//     of every kind; every metric and label the Grafana dashboard and the
//     alert rules query must be in its /metrics.
//   - TestAlertRules: `promtool check rules` and `promtool test rules`; every
//     alert links to its section of docs/operations.md.
package deploy
