// Command runtime is a distributed runtime with its hooks written in Go: the order and payment
// runtimes of the distributed example. It reads the same environment as `xcomponent runtime`
// (BROKER_URL, DATABASE_URL, COMPONENT_FILE, RUNTIME_NAME, CREATE_DEMO_INSTANCE, PORT …; see
// distributed.ConfigFromEnv) and serves whichever component COMPONENT_FILE names:
//
//	go build -o bin/ ./examples/distributed/runtime
//	COMPONENT_FILE=examples/distributed/payment.yaml RUNTIME_NAME=payment-1 bin/runtime
//
// Hooks of a method the component does not name are simply never called, so one binary
// serves both components.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/xcomponent/xcomponent"
	"github.com/xcomponent/xcomponent/distributed"
	"github.com/xcomponent/xcomponent/internal/telemetry"
)

func main() {
	// LOG_FORMAT=json: every line on stderr is a JSON object (as `xcomponent --log-format json`).
	format := os.Getenv("LOG_FORMAT")
	if format != telemetry.FormatJSON {
		format = telemetry.FormatText
	}
	log := telemetry.NewLogger(os.Stderr, format, slog.LevelInfo)
	slog.SetDefault(log)
	cfg, err := distributed.ConfigFromEnv()
	if err != nil {
		log.Error(err.Error())
		os.Exit(2)
	}
	cfg.Logger = log
	cfg.Hooks = hooks(log, validationDelay())
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	// Traces: on with the standard OTEL_EXPORTER_OTLP_ENDPOINT (or OTEL_TRACES_EXPORTER=otlp).
	tp, flush, err := telemetry.Setup(ctx, false, "xcomponent-example-runtime", os.Getenv, log)
	if err != nil {
		log.Error(err.Error())
		os.Exit(2)
	}
	cfg.TracerProvider = tp
	err = distributed.Run(ctx, cfg)
	fctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	if ferr := flush(fctx); ferr != nil {
		log.Warn("traces not all exported", "err", ferr)
	}
	cancel()
	if err != nil {
		log.Error(err.Error())
		os.Exit(1)
	}
}

// cardMethods are the payment methods checkPaymentMethod validates by itself.
var cardMethods = map[string]bool{"visa": true, "mastercard": true, "cb": true}

// hooks are the Go handlers of the methods named in order.yaml and payment.yaml.
func hooks(log *slog.Logger, delay time.Duration) distributed.Hooks {
	notify := func(what string) xcomponent.HookFunc {
		return func(ctx context.Context, h *xcomponent.Hook) error {
			log.InfoContext(ctx, what, "component", h.Component, "instance", h.InstanceID, "orderId", h.Data["orderId"], "state", h.State)
			return nil
		}
	}
	return distributed.Hooks{
		// triggeredMethod of Payment PROCESS. The delay stands for the call to a payment
		// provider; VALIDATE (or DECLINE) is sent to the payment itself, after PROCESS commits.
		"checkPaymentMethod": func(ctx context.Context, h *xcomponent.Hook) error {
			select {
			case <-time.After(delay):
			case <-ctx.Done():
				return ctx.Err() // vetoes PROCESS: the payment stays Pending
			}
			method, _ := h.Data["paymentMethod"].(string)
			if cardMethods[method] {
				log.InfoContext(ctx, "payment method accepted: validating", "instance", h.InstanceID, "orderId", h.Data["orderId"], "method", method)
				h.Send.SendToSelf(xcomponent.Event{Type: "VALIDATE", Payload: map[string]any{"method": method}})
				return nil
			}
			h.Data["declineReason"] = fmt.Sprintf("payment method %q is not accepted (visa, mastercard or cb)", method)
			log.InfoContext(ctx, "payment method refused: declining", "instance", h.InstanceID, "orderId", h.Data["orderId"], "method", method)
			h.Send.SendToSelf(xcomponent.Event{Type: "DECLINE"})
			return nil
		},
		"notifyPaymentValidated": notify("payment validated"),
		"notifyPaymentDeclined":  notify("payment declined"),
		"notifyShipment":         notify("order shipped: notify the customer"),
		"notifyDelivery":         notify("order delivered: notify the customer"),
	}
}

// validationDelay is PAYMENT_VALIDATION_DELAY (default 300ms).
func validationDelay() time.Duration {
	if v := os.Getenv("PAYMENT_VALIDATION_DELAY"); v != "" {
		if d, err := time.ParseDuration(v); err == nil && d >= 0 {
			return d
		}
		slog.Warn(fmt.Sprintf("PAYMENT_VALIDATION_DELAY %q is not a duration: using 300ms", v))
	}
	return 300 * time.Millisecond
}
