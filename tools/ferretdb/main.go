// Command twinflow-ferretdb runs FerretDB v1 (SQLite backend) as TwinFlow's embedded inventory server.
//
// FerretDB's own cmd/ferretdb panics when built with `go install` (it wants a version.txt the module
// does not ship), so TwinFlow builds this small main around the embeddable package instead.
package main

import (
	"context"
	"database/sql"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/FerretDB/FerretDB/ferretdb"
	_ "modernc.org/sqlite"
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

	go indexIDs(ctx, dir, logger)

	// Readiness is the TCP port accepting connections; the launcher polls it.
	if err := f.Run(ctx); err != nil {
		fmt.Fprintf(os.Stderr, "twinflow-ferretdb: %v\n", err)
		os.Exit(1)
	}
}

// indexIDs gives every collection table an index on the expression FerretDB's queries use for _id.
//
// FerretDB 1.24 looks documents up by `_ferretdb_sjson->'$._id'`, while its own unique index is on a
// different spelling of the same path, which SQLite's planner does not match: every find, update and
// delete by _id scans and parses the whole collection (about 12 ms at 2,000 documents, 35 ms at 10,000).
// With this index the same lookups take about 2 ms. Collections are created at run time, so new tables
// are looked for every second.
//
// Each pass asks SQLite which tables lack the index rather than remembering which were done: FerretDB
// names a table after its collection (name plus a hash of the name), so a collection dropped and
// re-created gets the same table name, and DROP TABLE took the index with it. Each pass also opens the
// file afresh, because dropDatabase deletes the file and a handle kept open would go on looking at the
// deleted file instead of the new one.
func indexIDs(ctx context.Context, dir string, logger *slog.Logger) {
	for {
		files, _ := filepath.Glob(filepath.Join(dir, "*.sqlite"))
		for _, file := range files {
			indexFile(ctx, file, logger)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
	}
}

// missingIndexQuery lists FerretDB collection tables (they hold a _ferretdb_sjson column) without our index.
const missingIndexQuery = `SELECT t.name FROM sqlite_master t
	WHERE t.type = 'table' AND t.sql LIKE '%_ferretdb_sjson%'
	AND NOT EXISTS (SELECT 1 FROM sqlite_master i
		WHERE i.type = 'index' AND i.tbl_name = t.name AND i.name = t.name || '` + indexSuffix + `')`

const indexSuffix = "_twinflow_id"

// indexFile adds the _id index to every collection table of one database file that lacks it.
func indexFile(ctx context.Context, file string, logger *slog.Logger) {
	// mode=rw: a file that dropDatabase removed since the glob is not created again, empty, by this open.
	db, err := sql.Open("sqlite", "file:"+file+"?mode=rw&_pragma=busy_timeout(10000)")
	if err != nil {
		logger.Warn("cannot open for indexing", "file", file, "error", err)
		return
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	rows, err := db.QueryContext(ctx, missingIndexQuery)
	if err != nil {
		return // the file went away, or the server is shutting down: the next pass sees
	}
	var tables []string
	for rows.Next() {
		var name string
		if rows.Scan(&name) == nil {
			tables = append(tables, name)
		}
	}
	rows.Close()
	for _, table := range tables {
		quoted := `"` + strings.ReplaceAll(table, `"`, `""`) + `"`
		index := `"` + strings.ReplaceAll(table+indexSuffix, `"`, `""`) + `"`
		_, err := db.ExecContext(ctx,
			"CREATE INDEX IF NOT EXISTS "+index+" ON "+quoted+"(_ferretdb_sjson->'$._id')")
		if err != nil {
			// A table dropped between the query and here: the next pass no longer lists it.
			logger.Warn("cannot index _id", "table", table, "error", err)
		}
	}
}
