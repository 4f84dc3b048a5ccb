package worker_test

import (
	"context"
	"fmt"

	"github.com/ThreeDotsLabs/watermill/message"
	"gorm.io/gorm"

	"github.com/stratusworks/worker"
	"github.com/stratusworks/worker/persist"
)

// Charge is a host's own table, in the provisioning database.
type Charge struct {
	ID     int64  `gorm:"primaryKey;autoIncrement"`
	Order  string `gorm:"size:255;not null"`
	Amount int64  `gorm:"not null"`
}

// A handler's database effect, exactly once: HandleTx commits the handler's
// writes together with the action's key, so a second delivery of the same
// action (here the host published it twice; after a crash between the
// commit and the ack the broker would redeliver it) is acknowledged without
// calling the handler.
//
// The host keeps its own table in the provisioning database, so it opens the
// store itself (package persist), creates the table there and passes the
// store to the worker as Config.Storage.
func ExampleWorker_HandleTx() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	store, err := persist.Open(ctx, persist.Config{Provisioning: persist.DBConfig{DSN: persist.MemoryDSN}, Logger: quiet})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer store.Close() // the worker does not close a store it was given
	if err := store.DB().AutoMigrate(&Charge{}); err != nil {
		fmt.Println(err)
		return
	}
	delivered := make(chan error, 2)
	w, err := worker.New(ctx, worker.Config{
		Storage: store,
		Logger:  quiet,
		// Only to let the example know when both deliveries are done.
		Middleware: []message.HandlerMiddleware{func(next message.HandlerFunc) message.HandlerFunc {
			return func(m *message.Message) ([]*message.Message, error) {
				out, err := next(m)
				delivered <- err
				return out, err
			}
		}},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	err = w.HandleTx("order.charge", func(ctx context.Context, tx *gorm.DB, a worker.Action) error {
		var req struct{ Amount int64 }
		if err := a.Decode(&req); err != nil {
			return worker.Permanent(err)
		}
		fmt.Println("charging", a.Key)
		return tx.Create(&Charge{Order: a.Key, Amount: req.Amount}).Error // through tx: commits with the key
	})
	if err != nil {
		fmt.Println(err)
		return
	}

	a, _ := worker.NewAction("order.charge", map[string]int64{"amount": 1250})
	a.Key = "order-42"
	_ = w.Publish(ctx, a)
	_ = w.Publish(ctx, a) // the same action again
	stopped := make(chan error)
	go func() { stopped <- w.Run(ctx) }()
	fmt.Println("delivery:", <-delivered)
	fmt.Println("delivery:", <-delivered)
	cancel()
	<-stopped

	var charges int64
	_ = store.DB().Model(&Charge{}).Count(&charges).Error
	fmt.Println("charges:", charges)
	// Output:
	// charging order-42
	// delivery: <nil>
	// delivery: <nil>
	// charges: 1
}
