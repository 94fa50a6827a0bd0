package main

import (
	"time"

	"github.com/spf13/pflag"

	"github.com/xcomponent/xcomponent/internal/httpapi"
)

// addHTTPFlags declares the connection settings of the HTTP API shared by serve, runtime and
// dashboard; t is filled when the flags are parsed.
func addHTTPFlags(f *pflag.FlagSet, t *httpapi.Transport) {
	f.StringArrayVar(&t.AllowedHosts, "allowed-host", nil, "host name accepted in the Host header besides IP addresses and localhost; '*' for any; repeatable (default: any when --bind is 0.0.0.0)")
	f.DurationVar(&t.ReadTimeout, "read-timeout", 30*time.Second, "bound of the reading of one request, body included")
	f.DurationVar(&t.IdleTimeout, "idle-timeout", 60*time.Second, "keep-alive connections idle that long are closed")
	f.IntVar(&t.MaxConns, "max-conns", 1024, "connections served at once; more wait to be accepted")
	f.IntVar(&t.MaxStreams, "max-streams", 256, "live streams open at once (then 503)")
	f.IntVar(&t.MaxStreamsPerClient, "max-streams-per-client", 16, "live streams of one token, or one address when auth is off (then 429)")
	f.IntVar(&t.StreamSnapshotBytes, "stream-snapshot-bytes", 4<<20, "bound of the instances sent to a stream client on connect")
}
