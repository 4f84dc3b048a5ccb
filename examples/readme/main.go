// Command readme is the usage example from README.md, kept here so it
// compiles; main_test.go tests its handler with package workertest.
package main

import (
	"context"
	"log"
	"os/signal"
	"syscall"

	"github.com/stratusworks/worker"
)

type Launch struct{ Image, Size string }

// handleLaunch is the server.launch handler.
func handleLaunch(ctx context.Context, a worker.Action) error {
	var req Launch
	if err := a.Decode(&req); err != nil {
		return worker.Permanent(err) // bad input: no retries, straight to the poison store
	}
	log.Printf("launch %s/%s for %s, idempotency key %s", req.Image, req.Size, a.Customer, a.Key)
	return nil // nil = done: the action is acknowledged
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	w, err := worker.New(ctx, worker.Config{}) // embedded: in-memory queue + SQLite worker.db
	if err != nil {
		log.Fatal(err)
	}
	if err := w.HandleFunc("server.launch", handleLaunch); err != nil {
		log.Fatal(err)
	}
	a, _ := worker.NewAction("server.launch", Launch{Image: "debian-13", Size: "m1.small"})
	if err := w.Publish(ctx, a); err != nil {
		log.Fatal(err)
	}
	log.Fatal(w.Run(ctx)) // until Ctrl-C; then drains in-flight handlers
}
