// Package daemon holds end-to-end tests and benchmarks that run a virtio-fs
// daemon binary and drive it through the vhost-user test front-end
// (internal/testutil/frontend): every supported FUSE opcode with content
// checks, error paths, hostile guest and front-end input, descriptor and
// fd leak checks, and throughput benchmarks.
//
// Each test runs against every daemon in the table: "ours" (built from
// ./cmd/virtiofsd by TestMain) and "reference" (the Rust virtiofsd 1.13.2
// at $VIRTIOFSD_TEST_DEPS/ref/virtiofsd, default /opt/virtiofsd-test).
// Reference subtests are skipped when it is not installed, unless CI=true.
// Where the two are expected to differ (the reference stops serving after a
// malformed request), the expectation is stated per daemon.
//
// The migration tests (migrate*_test.go) run a table of (source,
// destination, migration mode) instead: a FUSE session built on one daemon
// is moved with the vhost-user device-state transfer to another serving
// the same directory and continued there without a new FUSE INIT; a
// refused migration leaves the source serving; hostile streams are handed
// to destinations; BenchmarkMigrate times save and load.
//
// The tests need root (the daemons switch credentials and chown files).
//
// Running:
//
//	go test -race -timeout 10m ./test/daemon/
//	go test -run XXX -bench . -benchtime 3s ./test/daemon/   # prints the ratio table
//
// VIRTIOFSD_TEST_OURS=<binary> tests a prebuilt binary instead of building
// ./cmd/virtiofsd; VIRTIOFSD_TEST_DEPS overrides /opt/virtiofsd-test.
// Benchmarks report ops/s and MiB/s per daemon; after the run TestMain
// prints ours/reference ratios. They measure, they do not assert.
package daemon
