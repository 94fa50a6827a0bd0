package main

import (
	"context"
	"os/signal"
	"syscall"
)

// signalContext is cancelled on SIGINT or SIGTERM; stop releases the signal handler.
func signalContext() (ctx context.Context, stop context.CancelFunc) {
	return signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
}
