// Package storetest is the behavioural test suite every store.Store implementation must pass.
//
// Conventions the suite checks in a number-agnostic way: data and payload maps are compared
// after a JSON round trip, because the SQL stores keep them as JSON and give back float64
// numbers (and an empty map for a nil one) while the memory store gives back the values it was
// given. Timer lists compare nil and empty as equal.
//
// Ids are UUID strings (the PostgreSQL store keeps them in UUID columns).
package storetest

import (
	"context"
	"testing"

	"github.com/xcomponent/xcomponent/store"
)

// Run runs the suite. open must return a new, empty store for each call and arrange for it to
// be closed at the end of the test (Close must be idempotent: the suite also closes stores).
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	tests := []struct {
		name string
		fn   func(*testing.T, store.Store)
	}{
		{"CreateAndRead", testCreateAndRead},
		{"Transitions", testTransitions},
		{"ConflictAppliesNothing", testConflictAppliesNothing},
		{"CreateExisting", testCreateExisting},
		{"UpdateUnknown", testUpdateUnknown},
		{"MultiInstanceCommitAtomic", testMultiInstanceAtomic},
		{"DuplicateInbox", testDuplicateInbox},
		{"Outbox", testOutbox},
		{"PruneInbox", testPruneInbox},
		{"LoadLive", testLoadLive},
		{"StreamLive", testStreamLive},
		{"Search", testSearch},
		{"SearchPagination", testSearchPagination},
		{"SearchDefaultLimit", testSearchDefaultLimit},
		{"HistoryRoundTrip", testHistoryRoundTrip},
		{"Terminated", testTerminated},
		{"HistoryPage", testHistoryPage},
		{"EventByID", testEventByID},
		{"Correlated", testCorrelated},
		{"Timers", testTimers},
		{"TimerClaims", testTimerClaims},
		{"TimerClaimsConcurrent", testTimerClaimsConcurrent},
		{"EntryPointUnique", testEntryPointUnique},
		{"ConcurrentDifferentInstances", testConcurrentDifferent},
		{"ConcurrentSameInstance", testConcurrentSame},
		{"ConcurrentConflictIsolation", testConflictIsolation},
		{"CountStates", testCountStates},
		{"PingClose", testPingClose},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := open(t)
			tc.fn(t, s)
		})
	}
}

func testPingClose(t *testing.T, s store.Store) {
	if err := s.Ping(context.Background()); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}
