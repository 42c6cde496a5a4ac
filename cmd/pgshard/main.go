// Command pgshard runs the pgshard PostgreSQL sharding proxy.
//
// Signals: SIGHUP reloads the configuration file; SIGTERM stops accepting
// clients and lets running transactions finish (up to shutdown_timeout);
// SIGINT, or a second SIGTERM, closes every client at once. A clean stop
// exits 0.
package main

import (
	"context"
	"flag"
	"fmt"
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
	logLevel := flag.String("log-level", "", "debug | info | warn | error (default: the config's log_level)")
	version := flag.Bool("version", false, "print the version and exit")
	flag.Parse()
	if *version {
		fmt.Println("pgshard", buildVersion())
		return
	}
	if err := run(*configPath, *logLevel); err != nil {
		fmt.Fprintln(os.Stderr, "pgshard:", err)
		os.Exit(1)
	}
}

func run(path, levelFlag string) error {
	cfg, err := config.Load(path)
	if err != nil {
		return err
	}
	logger, err := newLogger(os.Stderr, cfg.LogFormat, cfg.LogLevel, levelFlag)
	if err != nil {
		return err
	}
	opts, err := cfg.ProxyOptions(logger)
	if err != nil {
		return err
	}
	opts.LoadConfig = func() (proxy.Options, error) {
		cfg, err := config.Load(path)
		if err != nil {
			return proxy.Options{}, err
		}
		return cfg.ProxyOptions(logger)
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
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGTERM, os.Interrupt)
	defer signal.Stop(sigs)
	go func() {
		for sig := range sigs {
			switch sig {
			case syscall.SIGHUP:
				srv.Reload() // logs the outcome
			case syscall.SIGTERM:
				logger.Info("SIGTERM: shutting down once running transactions end")
				srv.Shutdown(true)
				signal.Reset(syscall.SIGTERM) // a second one kills
			default:
				logger.Info("SIGINT: shutting down now")
				srv.Shutdown(false)
			}
		}
	}()
	logger.Info("pgshard starting", "version", buildVersion(), "config", path)
	return srv.Run(context.Background())
}

// version is the version the image build links in (deploy/Dockerfile:
// -ldflags "-X main.version=..."); empty means the one in Go's build info.
var version string

// buildVersion is the version -version prints and the startup log shows:
// the linked-in version, else the main module's version from build info
// (a pseudo-version stamped from git, or "(devel)").
func buildVersion() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "(devel)"
}
