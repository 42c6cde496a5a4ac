// Command pgshard runs the pgshard PostgreSQL sharding proxy.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/pgshard/pgshard/config"
	"github.com/pgshard/pgshard/proxy"
)

func main() {
	configPath := flag.String("config", "proxy.yaml", "path to the YAML configuration")
	logLevel := flag.String("log-level", "info", "debug | info | warn | error")
	version := flag.Bool("version", false, "print the version and exit")
	flag.Parse()
	if *version {
		fmt.Println("pgshard", buildVersion())
		return
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		fmt.Fprintln(os.Stderr, "pgshard: -log-level:", err)
		os.Exit(2)
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	if err := run(*configPath, logger); err != nil {
		fmt.Fprintln(os.Stderr, "pgshard:", err)
		os.Exit(1)
	}
}

func run(path string, logger *slog.Logger) error {
	cfg, err := config.Load(path)
	if err != nil {
		return err
	}
	opts, err := cfg.ProxyOptions(logger)
	if err != nil {
		return err
	}
	// One registry for the process: the proxy's metrics, Go's and the
	// process's, served on metrics_listen.
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	opts.Registerer = reg
	srv, err := proxy.NewServer(opts)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	logger.Info("pgshard starting", "version", buildVersion(), "config", path)
	return srv.Run(ctx)
}

func buildVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "(devel)"
}
