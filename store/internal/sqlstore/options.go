package sqlstore

import (
	"log/slog"
	"time"
)

// Options are the settings both SQL stores have (each driver adds its own).
type Options struct {
	Logger *slog.Logger
	// MaxBatch is the most commits applied in one transaction.
	MaxBatch int
	// CommitTimeout bounds one group-commit transaction.
	CommitTimeout time.Duration
}

// DefaultOptions: slog.Default(), batches of up to 512 commits, 30s per transaction.
func DefaultOptions() Options {
	return Options{Logger: slog.Default(), MaxBatch: 512, CommitTimeout: 30 * time.Second}
}
