// Package e2e holds the end-to-end tests of xcomponent: they build the xcomponent binary,
// run `xcomponent serve` as a subprocess on SQLite and on PostgreSQL, drive it over HTTP, kill
// it (SIGKILL, SIGTERM) and check what the store kept.
//
// The package has no code of its own; everything is in its _test.go files. The restore
// measurement with 100,000 instances runs only with XCOMPONENT_E2E_HEAVY=1.
package e2e
