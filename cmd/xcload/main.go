// Command xcload is an HTTP load generator for the xcomponent REST API.
//
// It creates --instances instances of a machine, then --concurrency workers send events to
// them: each instance belongs to exactly one worker, which sends it one event at a time
// (POST /api/components/:c/instances/:id/events, the next once the previous is answered), so
// the events of an instance keep their order. It stops by itself after --duration or
// --requests, and prints the throughput (acknowledged events per second), the latency
// percentiles of the event requests and the errors, as text or JSON (--json).
//
// With --rate N it is open-loop instead: N requests per second in all are due on a fixed
// schedule, whatever the answers; each due request goes to an idle instance (still one request
// in flight per instance), waits when all are busy (counted "late"), and its latency is
// reported both from the actual send and from the scheduled time (no coordinated omission).
// The report adds the target and achieved rates.
//
// The create call may answer 201 (this API) or 200 (xcomponent-ai's server), with the id in
// "instanceId" or "id", so the same tool drives both.
//
//	xcload --url http://127.0.0.1:3000 --component Bench --machine Toggle --event FLIP \
//	  --instances 256 --duration 15s
//	xcload --component Bench --event FLIP --instances 64 --rate 5000 --duration 15s
//
// --endpoint chooses where events go: events (above, the default), trigger
// (POST /api/instances/:id/trigger {"event"}, also served by xcomponent-ai's dashboard server)
// or instance-events (POST /api/instances/:id/events {"type"}, xcomponent-ai's serve only).
//
// Local servers are watched: the process listening on --url's port (found in /proc), or those
// given with --server-pid. The report gives their RSS (start, peak, end) and CPU time; with
// --sample D (soak mode) their RSS, goroutines (go_goroutines of their /metrics), open file
// descriptors and TCP connections are read every D, written as JSON lines to --sample-out, and
// the report compares each figure's first and last third of the measured period (and its slope)
// so that a leak shows. With --progress (on a terminal by default) a line a second on stderr
// gives the elapsed time, events/s, the p99 so far, errors and the watched processes' figures.
//
// It only talks to --url, which must be a loopback address unless --allow-remote is given.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run is the command: 0 when every request succeeded, 1 when some failed or the run could
// not start, 2 on a usage error.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cfg, err := parseFlags(args, stderr)
	if err != nil {
		if err == errHelp {
			return 0
		}
		fmt.Fprintln(stderr, "xcload:", err)
		return 2
	}
	rep, err := Run(ctx, cfg)
	if err != nil {
		fmt.Fprintln(stderr, "xcload:", err)
		return 1
	}
	if cfg.JSONOut != "" {
		if err := writeJSONFile(cfg.JSONOut, rep); err != nil {
			fmt.Fprintln(stderr, "xcload:", err)
			return 1
		}
	}
	if cfg.JSON {
		err = rep.WriteJSON(stdout)
	} else {
		err = rep.WriteText(stdout)
	}
	if err != nil {
		fmt.Fprintln(stderr, "xcload:", err)
		return 1
	}
	if rep.Failed > 0 {
		return 1
	}
	return 0
}

func writeJSONFile(path string, rep *Report) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("--json-out: %w", err)
	}
	if err := rep.WriteJSON(f); err != nil {
		f.Close()
		return fmt.Errorf("--json-out: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("--json-out: %w", err)
	}
	return nil
}
