// Command xcomponent runs, validates, draws and simulates YAML state-machine components.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/debug"
	"time"

	"github.com/spf13/cobra"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/trace"

	"github.com/xcomponent/xcomponent/internal/telemetry"
)

// version and commit are set at build time with -ldflags "-X main.version=… -X main.commit=…".
var (
	version = "dev"
	commit  = ""
)

// exitError carries a process exit code through cobra.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit %d", e.code)
	}
	return e.err.Error()
}

func main() {
	os.Exit(runProcess(os.Args[1:], os.Stdin, os.Stdout, os.Stderr, true))
}

// run executes the CLI and returns the exit code: 0 ok, 1 failure, 2 usage.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	return runProcess(args, stdin, stdout, stderr, false)
}

// runProcess is run; process says that it is the process's only command (main): the
// command's logger then also becomes slog's default, which the log package and the
// libraries that use either write through (one format for every line of stderr).
func runProcess(args []string, stdin io.Reader, stdout, stderr io.Writer, process bool) int {
	root, g := newRoot(stdin, stdout, stderr)
	g.process = process
	root.SetArgs(args)
	err := root.Execute()
	if err == nil {
		return 0
	}
	// With --log-format json, stderr has only JSON lines: the error is one of them.
	report := func(err error) {
		if g.jsonLogs(args) {
			g.logger().Error(err.Error())
			return
		}
		fmt.Fprintln(stderr, "error:", err)
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.err != nil {
			report(ee.err)
		}
		return ee.code
	}
	report(err)
	var ue *usageError
	if errors.As(err, &ue) {
		return 2
	}
	return 1
}

type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }

// globals are the flags every command shares.
type globals struct {
	logFormat string
	logLevel  string
	tracing   bool
	stdin     io.Reader
	stdout    io.Writer
	stderr    io.Writer
	// process: the command runs as the process (main), see runProcess.
	process bool
	log     *slog.Logger
}

// logger is the command's logger: every line it writes to stderr is in --log-format, at
// --log-level and above, with the trace id of the traced operation it was logged in.
func (g *globals) logger() *slog.Logger {
	if g.log == nil {
		var level slog.Level
		if err := level.UnmarshalText([]byte(g.logLevel)); err != nil {
			level = slog.LevelInfo
		}
		g.log = telemetry.NewLogger(g.stderr, g.logFormat, level)
	}
	return g.log
}

// jsonLogs says whether the command's logs are JSON, even when its flags could not all be
// parsed (the value of --log-format is then looked up in args).
func (g *globals) jsonLogs(args []string) bool {
	if g.logFormat == telemetry.FormatJSON {
		return true
	}
	for i, a := range args {
		if a == "--" {
			break
		}
		if a == "--log-format=json" || (a == "--log-format" && i+1 < len(args) && args[i+1] == "json") {
			g.logFormat = telemetry.FormatJSON
			g.log = nil
			return true
		}
	}
	return false
}

// tracerProvider sets up tracing for a long-running command (see telemetry.Setup): nil when
// it is off. shutdown flushes the spans still buffered.
func (g *globals) tracerProvider(ctx context.Context, service string) (trace.TracerProvider, func(), error) {
	tp, stop, err := telemetry.Setup(ctx, g.tracing, service, os.Getenv, g.logger())
	if err != nil {
		return nil, func() {}, &usageError{err}
	}
	return tp, func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := stop(sctx); err != nil {
			g.logger().Warn("traces not all exported", "err", err)
		}
	}, nil
}

func newRoot(stdin io.Reader, stdout, stderr io.Writer) (*cobra.Command, *globals) {
	g := &globals{stdin: stdin, stdout: stdout, stderr: stderr}
	root := &cobra.Command{
		Use:           "xcomponent",
		Short:         "Runtime for business state machines written in YAML",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetIn(stdin)
	root.PersistentFlags().StringVar(&g.logFormat, "log-format", "text", "log format: text|json")
	root.PersistentFlags().StringVar(&g.logLevel, "log-level", "info", "log level: debug|info|warn|error")
	root.PersistentFlags().BoolVar(&g.tracing, "tracing", false, "export OpenTelemetry traces (serve, runtime, dashboard) with OTLP over HTTP; also on when OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_TRACES_EXPORTER=otlp is set")
	root.PersistentPreRunE = func(*cobra.Command, []string) error {
		if _, err := telemetry.ParseFormat(g.logFormat); err != nil {
			return &usageError{err}
		}
		g.log = nil // the flags are parsed now
		if g.process {
			log := g.logger()
			slog.SetDefault(log) // the log package's output too
			otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) { log.Warn("opentelemetry", "err", err) }))
		}
		return nil
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &usageError{err} })
	root.AddCommand(
		newServeCmd(g),
		newRuntimeCmd(g),
		newDashboardCmd(g),
		newValidateCmd(g),
		newDiagramCmd(g),
		newSimulateCmd(g),
		newInitCmd(g),
		newVersionCmd(g),
	)
	// Wrong argument counts are usage errors (exit 2), like unknown flags.
	for _, c := range root.Commands() {
		if check := c.Args; check != nil {
			c.Args = func(cmd *cobra.Command, args []string) error {
				if err := check(cmd, args); err != nil {
					return &usageError{err}
				}
				return nil
			}
		}
	}
	return root, g
}

func newVersionCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version and commit",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			c := commit
			if c == "" {
				if info, ok := debug.ReadBuildInfo(); ok {
					for _, s := range info.Settings {
						if s.Key == "vcs.revision" {
							c = s.Value
						}
					}
				}
			}
			if c == "" {
				c = "unknown"
			}
			fmt.Fprintf(g.stdout, "xcomponent %s (commit %s)\n", version, c)
			return nil
		},
	}
}
