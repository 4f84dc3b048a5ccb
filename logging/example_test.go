package logging_test

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/stratusworks/worker/logging"
)

func Example() {
	dir, _ := os.MkdirTemp("", "logs")
	defer os.RemoveAll(dir)

	h, err := logging.NewCustomerHandler(slog.DiscardHandler, logging.Config{Dir: dir})
	if err != nil {
		panic(err)
	}
	defer h.Close()

	logger := slog.New(h)
	logger.With("customer", "acme").Info("server launched", "server", "i-1")
	logger.Info("a hostile id stays inside the directory", "customer", "../../etc")

	for _, c := range []string{"acme", "../../etc"} {
		p, _ := h.FilePath(c)
		rel, _ := filepath.Rel(dir, p)
		_, statErr := os.Stat(p)
		fmt.Println(filepath.ToSlash(rel), statErr == nil)
	}
	// Output:
	// acme/worker.log true
	// ______etc.otgphrnuygnicz7z/worker.log true
}
