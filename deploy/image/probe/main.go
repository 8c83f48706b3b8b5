// Command probe is the container health check of Recur's image: the image
// is built FROM scratch, so there is no shell, curl or nc to probe with.
//
//	probe http://127.0.0.1:9090/healthz   # healthy when the answer is 2xx
//	probe tcp://127.0.0.1:7071            # healthy when the port accepts a connection
//
// It exits 0 when healthy and 1 otherwise, within --timeout.
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"time"
)

func main() {
	timeout := flag.Duration("timeout", 2*time.Second, "give up after this long")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "Usage: probe [--timeout D] http://HOST:PORT/PATH | tcp://HOST:PORT\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() != 1 {
		flag.Usage()
		os.Exit(2)
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	if err := probe(ctx, flag.Arg(0)); err != nil {
		fmt.Fprintln(os.Stderr, "probe:", err)
		os.Exit(1)
	}
}

// probe checks one target: an HTTP URL must answer 2xx, a tcp:// address
// must accept a connection.
func probe(ctx context.Context, target string) error {
	u, err := url.Parse(target)
	if err != nil {
		return err
	}
	switch u.Scheme {
	case "tcp":
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", u.Host)
		if err != nil {
			return err
		}
		return c.Close()
	case "http", "https":
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
		if err != nil {
			return err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			return fmt.Errorf("%s: %s", target, resp.Status)
		}
		return nil
	}
	return fmt.Errorf("%q: want http://, https:// or tcp://", target)
}
