# Shortcuts; .ci/run is what CI runs.
.PHONY: serve distributed test lint bench build

serve:
	go run ./cmd/xcomponent serve examples/approval.yaml examples/order.yaml examples/payment.yaml

distributed:
	examples/distributed/run-local.sh

test:
	go test -race ./...

lint:
	gofmt -l $$(git ls-files '*.go')
	go vet ./...
	staticcheck ./...

bench:
	go test -run '^$$' -bench . -benchtime 2s -count 3 .
	go test ./internal/bench -run '^$$' -bench DurableTransition -benchtime 5s -count 3

build:
	go build -o bin/xcomponent ./cmd/xcomponent
	go build -o bin/xcload ./cmd/xcload
	go build -o bin/runtime ./examples/distributed/runtime
