package distributed_test

import (
	"context"
	"log"
	"os/signal"
	"syscall"

	"github.com/xcomponent/xcomponent"
	"github.com/xcomponent/xcomponent/distributed"
)

// A Go program that is a distributed runtime: it reads the environment of `xcomponent runtime`
// (BROKER_URL, DATABASE_URL, COMPONENT_FILE, RUNTIME_NAME, CREATE_DEMO_INSTANCE, PORT …),
// registers its own hooks by the method names of the YAML, and runs until SIGINT or SIGTERM,
// then stops gracefully. examples/distributed/runtime is a complete one.
func Example() {
	cfg, err := distributed.ConfigFromEnv()
	if err != nil {
		log.Fatal(err)
	}
	cfg.Hooks = distributed.Hooks{
		"checkPaymentMethod": func(ctx context.Context, h *xcomponent.Hook) error {
			if h.Data["paymentMethod"] == "visa" {
				h.Send.SendToSelf(xcomponent.Event{Type: "VALIDATE"}) // sent once PROCESS commits
			}
			return nil
		},
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := distributed.Run(ctx, cfg); err != nil {
		log.Fatal(err)
	}
}
