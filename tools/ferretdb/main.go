// Command twinflow-ferretdb runs FerretDB v1 (SQLite backend) as TwinFlow's embedded inventory server.
//
// FerretDB's own cmd/ferretdb panics when built with `go install` (it wants a version.txt the module
// does not ship), so TwinFlow builds this small main around the embeddable package instead.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/FerretDB/FerretDB/ferretdb"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:27017", "TCP address to listen on")
	dataDir := flag.String("data-dir", "data", "directory for the SQLite files")
	logLevel := flag.String("log-level", "warn", "debug, info, warn or error")
	// Immediate transactions take the write lock up front, so concurrent writers wait on the busy
	// timeout instead of failing with SQLITE_BUSY when a read lock cannot be upgraded.
	sqliteParams := flag.String("sqlite-params", "_txlock=immediate", "query parameters of the SQLite URI")
	flag.Parse()

	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		fmt.Fprintf(os.Stderr, "twinflow-ferretdb: bad --log-level %q\n", *logLevel)
		os.Exit(2)
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	dir, err := filepath.Abs(*dataDir)
	if err == nil {
		err = os.MkdirAll(dir, 0o755)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "twinflow-ferretdb: data directory %q: %v\n", *dataDir, err)
		os.Exit(1)
	}

	f, err := ferretdb.New(&ferretdb.Config{
		Listener:  ferretdb.ListenerConfig{TCP: *listen},
		Logger:    logger,
		Handler:   "sqlite",
		SQLiteURL: "file:" + dir + "/?" + *sqliteParams,
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "twinflow-ferretdb: %v\n", err)
		os.Exit(1)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	// Readiness is the TCP port accepting connections; the launcher polls it.
	if err := f.Run(ctx); err != nil {
		fmt.Fprintf(os.Stderr, "twinflow-ferretdb: %v\n", err)
		os.Exit(1)
	}
}
