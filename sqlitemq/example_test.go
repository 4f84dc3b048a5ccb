package sqlitemq_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stratusworks/worker/sqlitemq"
)

// A message published to the queue is still there after the process that
// published it is gone.
func Example() {
	dir, err := os.MkdirTemp("", "sqlitemq-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	ctx := context.Background()
	cfg := sqlitemq.Config{Path: filepath.Join(dir, "queue.db")}

	pub, err := sqlitemq.New(ctx, cfg)
	if err != nil {
		log.Fatal(err)
	}
	if err := pub.Publish("orders", message.NewMessage("order-1", []byte(`{"sku":"m1.small"}`))); err != nil {
		log.Fatal(err)
	}
	_ = pub.Close() // the publishing process ends

	sub, err := sqlitemq.New(ctx, cfg) // another process, later
	if err != nil {
		log.Fatal(err)
	}
	defer sub.Close()
	msgs, err := sub.Subscribe(ctx, "orders")
	if err != nil {
		log.Fatal(err)
	}
	msg := <-msgs
	fmt.Println(msg.UUID, string(msg.Payload))
	msg.Ack() // deleted from the file
	// Output: order-1 {"sku":"m1.small"}
}
